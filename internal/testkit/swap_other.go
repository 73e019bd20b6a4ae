//go:build !(linux && (amd64 || arm64))

package testkit

import (
	"errors"
)

// ExchangePaths is only available on Linux; the race test falls back to
// two renames.
func ExchangePaths(a, b string) error { return errors.ErrUnsupported }
