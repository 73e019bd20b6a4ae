package disk

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestFileLockExcludesASecondHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "owner.lock")
	first, err := TryLock(path)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock while the first is held: got %v, want errLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := TryLock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
}

func TestFileLockMissingFolder(t *testing.T) {
	_, err := TryLock(filepath.Join(t.TempDir(), "no", "such", "owner.lock"))
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want an error about opening the file", err)
	}
}
