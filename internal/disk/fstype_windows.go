//go:build windows

package disk

import (
	"strings"
	"syscall"
	"unsafe"
)

// FileSystemType names the file system dir is on, as far as this tool
// cares: "vfat" for FAT and FAT32 (GetVolumeInformationW), whose files
// stop at 4 GiB − 1; "" for anything else or when it cannot tell.
func FileSystemType(dir string) string {
	p, err := syscall.UTF16PtrFromString(existingParent(dir))
	if err != nil {
		return ""
	}
	kernel := syscall.NewLazyDLL("kernel32.dll")
	var root [syscall.MAX_PATH + 1]uint16
	if r, _, _ := kernel.NewProc("GetVolumePathNameW").Call(uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&root[0])), uintptr(len(root))); r == 0 {
		return ""
	}
	var fsName [syscall.MAX_PATH + 1]uint16
	r, _, _ := kernel.NewProc("GetVolumeInformationW").Call(uintptr(unsafe.Pointer(&root[0])), 0, 0, 0, 0, 0,
		uintptr(unsafe.Pointer(&fsName[0])), uintptr(len(fsName)))
	if r == 0 {
		return ""
	}
	if strings.HasPrefix(strings.ToUpper(syscall.UTF16ToString(fsName[:])), "FAT") {
		return "vfat"
	}
	return ""
}
