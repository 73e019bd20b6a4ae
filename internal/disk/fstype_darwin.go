//go:build darwin

package disk

import (
	"syscall"
)

// FileSystemType names the file system dir is on, as far as this tool
// cares: "vfat" for FAT ("msdos" to macOS), whose files stop at 4 GiB − 1;
// "" for anything else or when it cannot tell.
func FileSystemType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(existingParent(dir), &st); err != nil {
		return ""
	}
	var name []byte
	for _, c := range st.Fstypename {
		if c == 0 {
			break
		}
		name = append(name, byte(c))
	}
	if string(name) == "msdos" {
		return "vfat"
	}
	return ""
}
