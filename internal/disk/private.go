package disk

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// Modes of the state a process keeps beside the downloads (.state,
// .history): queued URLs carry signed query strings and credentials, the
// history says what a person fetched. Only the user who runs the tool
// reads them; on Windows the folder's ACL decides.
const (
	PrivateDirMode  fs.FileMode = 0o700
	PrivateFileMode fs.FileMode = 0o600
)

// MakePrivateDir creates dir (and its parents) for state only this user
// may read, and takes the group's and others' access away from one an
// earlier version made 0755.
func MakePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, PrivateDirMode); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if ExposedToOthers(info.Mode()) {
		if err := os.Chmod(dir, info.Mode().Perm()&^0o077); err != nil {
			return fmt.Errorf("making %s private to its user: %w", dir, err)
		}
	}
	return nil
}

// ExposedToOthers reports whether a file mode lets the group or other
// users in (always false on Windows, where modes say nothing about that).
func ExposedToOthers(mode fs.FileMode) bool {
	return runtime.GOOS != "windows" && mode.Perm()&0o077 != 0
}
