//go:build windows

package disk

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// LockFileEx flags (minwinbase.h) and the error it gives when another
// handle holds the range.
const (
	lockfileExclusiveLock   = 0x2
	lockfileFailImmediately = 0x1
	errorLockViolation      = syscall.Errno(33)
)

// lockFileNonBlocking takes an exclusive LockFileEx lock on the first byte
// of f; Windows releases it when the handle is closed or the process ends.
// The syscall package has no LockFileEx, so it is called from kernel32.
func lockFileNonBlocking(f *os.File) error {
	proc := syscall.NewLazyDLL("kernel32.dll").NewProc("LockFileEx")
	var ol syscall.Overlapped
	r, _, err := proc.Call(f.Fd(), lockfileExclusiveLock|lockfileFailImmediately, 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
	if r != 0 {
		return nil
	}
	if errors.Is(err, errorLockViolation) || errors.Is(err, syscall.ERROR_IO_PENDING) {
		return ErrLocked
	}
	return err
}
