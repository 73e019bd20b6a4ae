//go:build linux && (amd64 || arm64)

package testkit

import (
	"runtime"
	"syscall"
	"unsafe"
)

// ExchangePaths swaps two names atomically (renameat2 RENAME_EXCHANGE), so
// a folder can turn into a symlink with no moment in which neither exists:
// a race test then spends all its tries on the race.
func ExchangePaths(a, b string) error {
	const atFDCWD, renameExchange = -100, 2
	nr := uintptr(316) // amd64
	if runtime.GOARCH == "arm64" {
		nr = 276
	}
	pa, err := syscall.BytePtrFromString(a)
	if err != nil {
		return err
	}
	pb, err := syscall.BytePtrFromString(b)
	if err != nil {
		return err
	}
	fd := atFDCWD
	_, _, errno := syscall.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(pa)), uintptr(fd), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
