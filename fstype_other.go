//go:build !linux && !darwin && !windows

package main

// fileSystemType cannot tell here: no file system is taken for FAT.
func fileSystemType(string) string { return "" }
