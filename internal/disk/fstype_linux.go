//go:build linux

package disk

import (
	"syscall"
)

// FileSystemType names the file system dir is on, as far as this tool
// cares: "vfat" for FAT12/16/32 (MSDOS_SUPER_MAGIC, 0x4d44), whose files
// stop at 4 GiB − 1; "" for anything else or when it cannot tell.
func FileSystemType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(existingParent(dir), &st); err != nil {
		return ""
	}
	if st.Type == 0x4d44 {
		return "vfat"
	}
	return ""
}
