//go:build !(linux && (amd64 || arm64))

package main

import "errors"

// exchangePaths is only available on Linux; the race test falls back to
// two renames.
func exchangePaths(a, b string) error { return errors.ErrUnsupported }
