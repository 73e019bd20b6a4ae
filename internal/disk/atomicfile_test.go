package disk

import (
	"errors"
	"io"
	"ollama-model-downloader/internal/testkit"
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

	if err := WriteFileAtomic(path, 0o644, WriteBytes([]byte("new"))); err != nil {
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
	testkit.AssertNoTempFiles(t, dir, "state.json")

	// A writer that fails leaves the old file and no temp file behind.
	boom := errors.New("encoder failed")
	err = WriteFileAtomic(path, 0o644, func(w io.Writer) error {
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
	testkit.AssertNoTempFiles(t, dir, "state.json")

	// A folder that does not exist is an error naming the file.
	missing := filepath.Join(dir, "no", "such", "x.json")
	if err := WriteFileAtomic(missing, 0o644, WriteBytes(nil)); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing folder: got %v", err)
	}
}

// BenchmarkWriteFileAtomic measures one sidecar-sized publish (temp file,
// fsync, rename, folder fsync): the cost a checkpoint pays once a second.
func BenchmarkWriteFileAtomic(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.bin.part.json")
	data := []byte(`{"url":"https://example.com/big.bin","etag":"\"v1\"","size":4700000000,"committed":1234567890}`)
	for b.Loop() {
		if err := WriteFileAtomic(path, 0o644, WriteBytes(data)); err != nil {
			b.Fatal(err)
		}
	}
}
