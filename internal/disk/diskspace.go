package disk

import (
	"errors"
	"fmt"
	"ollama-model-downloader/internal/units"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNoSpace means a file system has less free space than a download
// needs: checked before the first body byte, or met while writing (ENOSPC).
var ErrNoSpace = errors.New("not enough free space")

// SpaceError is errNoSpace with the figures a person needs: where,
// how much is needed and how much is free. Need is 0 when the disk filled
// while writing (someone else wrote, or the size was unknown).
type SpaceError struct {
	Where      string // the file system's mount point, else the folder
	Need, Free int64
}

func (e *SpaceError) Error() string {
	if e.Need <= 0 {
		return fmt.Sprintf("the disk is full: no space left on %s; free some space and run the same command again to resume", e.Where)
	}
	return fmt.Sprintf("not enough free space on %s: need %s, %s free", e.Where, units.Decimal(e.Need), units.Decimal(e.Free))
}

func (e *SpaceError) Is(target error) bool { return target == ErrNoSpace }

// CheckFreeSpace refuses, before anything is fetched, a download of need
// more bytes into dir when its file system has less free space. A system
// that cannot tell its free space lets the download go ahead.
func CheckFreeSpace(dir string, need int64) error {
	if need <= 0 {
		return nil
	}
	dir = existingParent(dir)
	free, err := FreeSpace(dir)
	if err != nil || free >= need {
		return nil
	}
	return &SpaceError{Where: mountPoint(dir), Need: need, Free: free}
}

// FullError turns a write that failed for lack of space (ENOSPC, or
// ERROR_DISK_FULL on Windows) into one diskSpaceError naming the file
// system; any other error is returned as it is.
func FullError(err error, path string) error {
	if err == nil || errors.Is(err, ErrNoSpace) || !IsNoSpace(err) {
		return err
	}
	dir := existingParent(filepath.Dir(path))
	free, _ := FreeSpace(dir)
	return &SpaceError{Where: mountPoint(dir), Free: free}
}

// IsNoSpace reports whether err is the operating system's "disk full".
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || isDiskFullOS(err)
}

// existingParent is dir, or its nearest parent that exists: the output
// folder may not be made yet when the space is checked.
func existingParent(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	for {
		if _, err := os.Stat(abs); err == nil {
			return abs
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return abs
		}
		abs = parent
	}
}
