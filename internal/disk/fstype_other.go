//go:build !linux && !darwin && !windows

package disk

// FileSystemType cannot tell here: no file system is taken for FAT.
func FileSystemType(string) string { return "" }
