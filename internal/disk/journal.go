package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Journal is an append-only file of JSON lines, one operation each, beside
// a snapshot that it brings up to date: the queue's and the history's way
// of recording one change without rewriting everything. Writes happen
// under their owner's lock, so the file's order is the order of the
// changes; the fsync that makes them durable happens outside it, shared by
// everyone who wrote meanwhile (groupSync). The file stays open: a record
// costs one write and a share of one fsync.
type Journal struct {
	path  string
	syncs groupSync

	mu   sync.Mutex // guards f and size against Reset during a write or sync
	f    *os.File
	size int64
}

// OpenJournal opens path, creating it, and returns its complete lines. A
// last line without its newline is a write a crash cut short: it was never
// acknowledged, so it is cut off.
func OpenJournal(path string) (*Journal, [][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading journal %s: %w", path, err)
	}
	complete := int64(bytes.LastIndexByte(data, '\n') + 1)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening journal: %w", err)
	}
	if complete < int64(len(data)) {
		if err := f.Truncate(complete); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("cutting a torn journal line: %w", err)
		}
	}
	if data == nil {
		// A new file must survive a power cut too.
		if err := SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("opening journal: %w", err)
		}
	}
	var lines [][]byte
	for line := range bytes.SplitSeq(data[:complete], []byte("\n")) {
		if len(line) > 0 {
			lines = append(lines, line)
		}
	}
	return &Journal{path: path, f: f, size: complete, syncs: groupSync{gather: time.Millisecond}}, lines, nil
}

// Write appends lines (each without its newline) in one write, at the
// end of the file. It does not sync: call Sync before telling anyone the
// change is saved. A failed write is cut back, so that half a line cannot
// glue itself to the next one.
func (j *Journal) Write(lines ...[]byte) error {
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	n, err := j.f.WriteAt(buf.Bytes(), j.size)
	if err != nil {
		if n > 0 {
			j.f.Truncate(j.size)
		}
		return fmt.Errorf("writing journal %s: %w", j.path, FullError(err, j.path))
	}
	j.size += int64(n)
	return nil
}

// Sync returns once everything written before the call is on disk.
func (j *Journal) Sync() error {
	return j.syncs.do(func() error {
		j.mu.Lock()
		f := j.f
		j.mu.Unlock()
		if f == nil {
			return nil
		}
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("syncing journal %s: %w", j.path, FullError(err, j.path))
		}
		return nil
	})
}

// Size is the journal's length in bytes.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Reset empties the journal once a durable snapshot holds what it held.
// Lines that survive a failed truncation carry sequence numbers the
// snapshot covers, and loading skips them.
func (j *Journal) Reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying journal %s: %w", j.path, err)
	}
	j.size = 0
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("emptying journal %s: %w", j.path, err)
	}
	return nil
}

// Close syncs and closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}
