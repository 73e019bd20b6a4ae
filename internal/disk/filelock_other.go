//go:build !unix && !windows

package disk

import (
	"os"
)

// lockFileNonBlocking has no advisory lock to take on this system (wasm,
// plan9): one process per folder is then the person's to keep.
func lockFileNonBlocking(f *os.File) error { return nil }
