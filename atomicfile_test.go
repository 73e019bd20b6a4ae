package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := writeFileAtomic(path, 0o644, writeBytes([]byte("new"))); err != nil {
		t.Fatalf("writeFileAtomic: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("content = %q, %v; want \"new\"", got, err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, want 0644", fi.Mode().Perm())
	}
	assertNoTempFiles(t, dir, "state.json")

	// A writer that fails leaves the old file and no temp file behind.
	boom := errors.New("encoder failed")
	err = writeFileAtomic(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte("half")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing writer: got %v, want it wrapped", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Fatalf("after a failed write the file holds %q, want the previous \"new\"", got)
	}
	assertNoTempFiles(t, dir, "state.json")

	// A folder that does not exist is an error naming the file.
	missing := filepath.Join(dir, "no", "such", "x.json")
	if err := writeFileAtomic(missing, 0o644, writeBytes(nil)); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing folder: got %v", err)
	}
}

// assertNoTempFiles fails when dir holds anything but the named files.
func assertNoTempFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	for _, w := range want {
		keep[w] = true
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// BenchmarkWriteFileAtomic measures one sidecar-sized publish (temp file,
// fsync, rename, folder fsync): the cost a checkpoint pays once a second.
func BenchmarkWriteFileAtomic(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.bin.part.json")
	data := []byte(`{"url":"https://example.com/big.bin","etag":"\"v1\"","size":4700000000,"committed":1234567890}`)
	for b.Loop() {
		if err := writeFileAtomic(path, 0o644, writeBytes(data)); err != nil {
			b.Fatal(err)
		}
	}
}
