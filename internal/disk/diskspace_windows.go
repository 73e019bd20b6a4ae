//go:build windows

package disk

import (
	"errors"
	"path/filepath"
	"syscall"
	"unsafe"
)

// isDiskFullOS recognises ERROR_DISK_FULL (112) and ERROR_HANDLE_DISK_FULL
// (39) from winerror.h: Windows' ENOSPC.
func isDiskFullOS(err error) bool {
	return errors.Is(err, syscall.Errno(112)) || errors.Is(err, syscall.Errno(39))
}

// FreeSpace asks GetDiskFreeSpaceExW for the bytes available to this user.
func FreeSpace(dir string) (int64, error) {
	p, err := syscall.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var avail, total, free uint64
	proc := syscall.NewLazyDLL("kernel32.dll").NewProc("GetDiskFreeSpaceExW")
	r, _, callErr := proc.Call(uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&avail)), uintptr(unsafe.Pointer(&total)), uintptr(unsafe.Pointer(&free)))
	if r == 0 {
		if callErr == nil {
			callErr = errors.New("GetDiskFreeSpaceExW failed")
		}
		return 0, callErr
	}
	return int64(avail), nil
}

// mountPoint is the drive or share dir lies on ("D:\").
func mountPoint(dir string) string {
	if v := filepath.VolumeName(dir); v != "" {
		return v + `\`
	}
	return dir
}
