//go:build linux

package disk

import (
	"os"
	"syscall"
)

// StartWriteback asks the kernel to start writing f's dirty pages to disk
// now, without waiting (sync_file_range SYNC_FILE_RANGE_WRITE). A download
// that calls it as it goes leaves little for the fsync that publishes the
// file: the disk writes while the network delivers, instead of after.
func StartWriteback(f *os.File) {
	_ = syscall.SyncFileRange(int(f.Fd()), 0, 0, 0x2)
}
