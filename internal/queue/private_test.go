package queue

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestQueueStateIsPrivate: .state is 0700 and the queue's files 0600
// (queued URLs carry signed query strings and credentials), also when an
// earlier version made them readable by everyone.
func TestQueueStateIsPrivate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows keeps access in ACLs, not modes")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, ".state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o755)
	if err := os.WriteFile(filepath.Join(state, "queue.journal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(state, "queue.journal"), 0o644)
	f := newFakeEngine(t)
	m := newTestManager(t, dir, 1, f)
	stop := runManager(t, m)
	mustAdd(t, m, "https://example.com/a.bin?X-Amz-Signature=secret")
	f.waitStarted("https://example.com/a.bin?X-Amz-Signature=secret")
	f.finishTransfer("https://example.com/a.bin?X-Amz-Signature=secret", nil)
	stop() // a clean stop writes queue.json
	for name, want := range map[string]os.FileMode{
		".state": 0o700, ".state/queue.journal": 0o600, ".state/queue.json": 0o600,
	} {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
}
