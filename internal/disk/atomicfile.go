package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// WriteFileAtomic publishes path with the content write produces: a temp
// file in the same folder (<base>.tmp-*), fsync, chmod perm, rename over
// path, fsync the folder. A reader, or a kill -9 at any moment, sees the
// old content or the new one, never a mix. The temp file is removed on any
// failure; a full disk gives the one-line diskFullError.
func WriteFileAtomic(path string, perm os.FileMode, write func(w io.Writer) error) error {
	return replaceWith(path, perm, write, true)
}

// ReplaceFile is writeFileAtomic without the fsyncs: a reader sees the old
// content or the new, never a mix, but a power cut may lose the change or
// leave the file empty. It is for state that a crash may only make older
// or unreadable, never wrong: a .part's sidecar (its data is fsynced
// before the sidecar names it, and an unreadable sidecar restarts the
// download), a bucket of the index of finished URLs, owner.json. Two
// fsyncs per small file were most of the cost of 2,000 small files
// (issue 18).
func ReplaceFile(path string, perm os.FileMode, data []byte) error {
	return replaceWith(path, perm, WriteBytes(data), false)
}

// replaceWith is the one "temp file, rename" writer; durable adds the
// fsyncs of the file before the rename and of the folder after it.
func replaceWith(path string, perm os.FileMode, write func(w io.Writer) error, durable bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return atomicWriteError(path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return atomicWriteError(path, err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return atomicWriteError(path, err)
		}
	}
	if err := tmp.Chmod(perm); err != nil {
		return atomicWriteError(path, err)
	}
	if err := tmp.Close(); err != nil {
		return atomicWriteError(path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return atomicWriteError(path, err)
	}
	if durable {
		// The rename must reach the disk too; not every system can sync
		// a folder, so a failure here does not undo a published file.
		_ = SyncDir(dir)
	}
	return nil
}

// WriteBytes is the write function of writeFileAtomic for content that is
// already in memory.
func WriteBytes(data []byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// atomicWriteError names the file; a full disk is its own one-line error,
// which already says where.
func atomicWriteError(path string, err error) error {
	if full := FullError(err, path); errors.Is(full, ErrNoSpace) {
		return full
	}
	return fmt.Errorf("writing %s: %w", path, err)
}

// MoveAside renames path to path.corrupt-<UTC time>, with a counter
// when that name is taken, and returns the new name.
func MoveAside(path string, now time.Time) (string, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	to := path + ".corrupt-" + stamp
	for i := 2; i < 100; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = path + ".corrupt-" + stamp + "-" + strconv.Itoa(i)
	}
	return to, os.Rename(path, to)
}

// SyncDir makes a rename or a new file in dir durable. Windows cannot
// fsync a folder (and NTFS journals the rename itself).
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
