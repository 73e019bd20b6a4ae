//go:build !(linux && (amd64 || arm64))

package disk

import (
	"errors"
)

// syncFilesystem is not available here: each file is fsynced on its own.
func syncFilesystem(dir string) error { return errors.ErrUnsupported }

const haveSyncfs = false
