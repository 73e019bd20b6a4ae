package main

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestFileLockExcludesASecondHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "owner.lock")
	first, err := tryLockFile(path)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if _, err := tryLockFile(path); !errors.Is(err, errLocked) {
		t.Fatalf("second lock while the first is held: got %v, want errLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := tryLockFile(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
}

func TestFileLockMissingFolder(t *testing.T) {
	_, err := tryLockFile(filepath.Join(t.TempDir(), "no", "such", "owner.lock"))
	if err == nil || errors.Is(err, errLocked) {
		t.Fatalf("got %v, want an error about opening the file", err)
	}
}
