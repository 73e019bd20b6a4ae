//go:build !linux && !darwin && !freebsd && !windows

package disk

import (
	"errors"
)

func isDiskFullOS(error) bool { return false }

// FreeSpace cannot be asked here; checkFreeSpace then lets downloads go.
func FreeSpace(dir string) (int64, error) { return 0, errors.New("free space unknown on this system") }

func mountPoint(dir string) string { return dir }
