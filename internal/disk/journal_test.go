package disk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// failingFile is a journal's file that fails on cue: a write that stops
// halfway (a full disk), a truncation that fails.
type failingFile struct {
	journalFile
	mu            sync.Mutex
	halfWrite     bool // the next write writes half and fails
	truncateFails bool
	syncs         int
}

func (f *failingFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	half := f.halfWrite
	f.halfWrite = false
	f.mu.Unlock()
	if half {
		n, _ := f.journalFile.WriteAt(p[:len(p)/2], off)
		return n, &os.PathError{Op: "write", Path: "journal", Err: syscall.ENOSPC}
	}
	return f.journalFile.WriteAt(p, off)
}

func (f *failingFile) Truncate(size int64) error {
	f.mu.Lock()
	fails := f.truncateFails
	f.mu.Unlock()
	if fails {
		return &os.PathError{Op: "truncate", Path: "journal", Err: syscall.EIO}
	}
	return f.journalFile.Truncate(size)
}

func (f *failingFile) Sync() error {
	f.mu.Lock()
	f.syncs++
	f.mu.Unlock()
	return f.journalFile.Sync()
}

func (f *failingFile) set(half, truncateFails bool) {
	f.mu.Lock()
	f.halfWrite, f.truncateFails = half, truncateFails
	f.mu.Unlock()
}

func openFailingJournal(t *testing.T) (*Journal, *failingFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.journal")
	j, _, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	ff := &failingFile{journalFile: j.f}
	j.f = ff
	t.Cleanup(func() { j.Close() })
	return j, ff, path
}

// TestJournalTornWriteNeverLeavesStaleBytes: a write that fails halfway
// is cut back; when that cut fails too, the journal takes no more lines
// until it succeeds, so the stale half can never end up between two good
// lines, to be read at the next start as a line nobody wrote.
func TestJournalTornWriteNeverLeavesStaleBytes(t *testing.T) {
	j, ff, path := openFailingJournal(t)
	if err := j.Write([]byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	ff.set(true, true)
	if err := j.Write([]byte(`{"seq":2,"a long line that the full disk cuts in half":"xxxxxxxxxxxxxxxxxxxxxxx"}`), []byte(`{"seq":3}`)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("half a write: err = %v, want the disk-full error", err)
	}
	// The cut failed: a short line must not go over the stale bytes.
	if err := j.Write([]byte(`{"seq":4}`)); err == nil || !strings.Contains(err.Error(), "cannot be cut off") {
		t.Fatalf("a write over stale bytes: err = %v, want a refusal", err)
	}
	ff.set(false, false) // the disk recovers
	if err := j.Write([]byte(`{"seq":5}`)); err != nil {
		t.Fatalf("once the cut works: %v", err)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "{\"seq\":1}\n{\"seq\":5}\n"; got != want {
		t.Errorf("journal holds %q, want only the acknowledged lines %q", got, want)
	}
}

// TestJournalUnsynced: what was written and not yet synced is counted, so
// that callers (and their tests) can tell whether a line is durable.
func TestJournalUnsynced(t *testing.T) {
	j, ff, _ := openFailingJournal(t)
	if n := j.Unsynced(); n != 0 {
		t.Fatalf("a new journal: %d unsynced bytes", n)
	}
	j.Write([]byte("abc"))
	if n := j.Unsynced(); n != 4 {
		t.Errorf("after a write: %d unsynced bytes, want 4", n)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := j.Unsynced(); n != 0 || ff.syncs != 1 {
		t.Errorf("after Sync: %d unsynced bytes, %d fsyncs; want 0 and 1", n, ff.syncs)
	}
	j.Write([]byte("de"))
	if err := j.Reset(); err != nil {
		t.Fatal(err)
	}
	if n := j.Unsynced(); n != 0 {
		t.Errorf("after Reset: %d unsynced bytes", n)
	}
}
