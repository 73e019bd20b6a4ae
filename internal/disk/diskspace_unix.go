//go:build linux || darwin || freebsd

package disk

import (
	"os"
	"path/filepath"
	"syscall"
)

// isDiskFullOS: ENOSPC is the only "disk full" here.
func isDiskFullOS(error) bool { return false }

// FreeSpace is the space an unprivileged process may still write on dir's
// file system (statfs f_bavail, as df shows it).
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// mountPoint is the top folder of dir's file system: the last parent that
// has dir's device number. That is the name df shows, the one a person
// recognises ("/data", "/media/usb").
func mountPoint(dir string) string {
	dev := func(p string) (uint64, bool) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, false
		}
		return uint64(st.Dev), true
	}
	want, ok := dev(dir)
	if !ok {
		return dir
	}
	for {
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		if d, ok := dev(parent); !ok || d != want {
			return dir
		}
		dir = parent
	}
}
