package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// zipContent is what a test expects of one zip entry.
type zipContent struct {
	Mode fs.FileMode
	Data string
}

// readZipTree returns every entry of a zip by name, checking on the way
// that names are slash-separated and stored uncompressed.
func readZipTree(t *testing.T, path string) map[string]zipContent {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("opening zip: %v", err)
	}
	defer zr.Close()
	got := map[string]zipContent{}
	for _, f := range zr.File {
		if strings.Contains(f.Name, `\`) {
			t.Errorf("entry %q has a backslash", f.Name)
		}
		if f.Method != zip.Store {
			t.Errorf("entry %q method = %d, want Store", f.Name, f.Method)
		}
		if _, dup := got[f.Name]; dup {
			t.Errorf("entry %q appears twice", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("opening %s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc) // checks the CRC-32 at EOF
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", f.Name, err)
		}
		got[f.Name] = zipContent{Mode: f.Mode(), Data: string(b)}
	}
	return got
}

func compareZipTree(t *testing.T, got, want map[string]zipContent) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("zip lacks %s", name)
		case g.Mode != w.Mode:
			t.Errorf("%s mode = %v, want %v", name, g.Mode, w.Mode)
		case g.Data != w.Data:
			t.Errorf("%s holds %d bytes that differ from the %d expected", name, len(g.Data), len(w.Data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("zip has a stray entry %s", name)
		}
	}
}

func writeTestFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWriteZip(t *testing.T) {
	src := t.TempDir()
	a := writeTestFile(t, filepath.Join(src, "a"), "alpha")
	b := writeTestFile(t, filepath.Join(src, "b"), "")
	entries := []zipEntry{
		{Name: "blobs/"},
		{Name: "blobs/sha256-aa", Path: a},
		{Name: "manifests/"},
		{Name: "manifests/127.0.0.1:5000/"},
		{Name: "manifests/127.0.0.1:5000/empty", Path: b},
	}
	dest := filepath.Join(t.TempDir(), "out", "m-latest.zip")
	got, size, err := writeZip(t.Context(), dest, entries)
	if err != nil {
		t.Fatal(err)
	}
	if got != dest {
		t.Errorf("path = %q, want %q", got, dest)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Errorf("size = %d, file has %d", size, fi.Size())
	}
	compareZipTree(t, readZipTree(t, dest), map[string]zipContent{
		"blobs/":                         {Mode: fs.ModeDir | 0o755},
		"blobs/sha256-aa":                {Mode: 0o644, Data: "alpha"},
		"manifests/":                     {Mode: fs.ModeDir | 0o755},
		"manifests/127.0.0.1:5000/":      {Mode: fs.ModeDir | 0o755},
		"manifests/127.0.0.1:5000/empty": {Mode: 0o644},
	})
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".*tmp"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriteZipExisting(t *testing.T) {
	src := t.TempDir()
	a := writeTestFile(t, filepath.Join(src, "a"), "alpha")
	entries := []zipEntry{{Name: "blobs/"}, {Name: "blobs/a", Path: a}}
	dir := t.TempDir()
	dest := filepath.Join(dir, "m.zip")

	// The same content again: the existing zip is kept.
	if _, _, err := writeZip(t.Context(), dest, entries); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(dest)
	got, _, err := writeZip(t.Context(), dest, entries)
	if err != nil {
		t.Fatal(err)
	}
	if got != dest {
		t.Errorf("identical rerun went to %q, want %q", got, dest)
	}
	after, _ := os.ReadFile(dest)
	if !bytes.Equal(before, after) {
		t.Errorf("identical rerun rewrote %s", dest)
	}

	// Different content: never overwrite, number the new one.
	writeTestFile(t, a, "beta!")
	for _, want := range []string{"m (1).zip", "m (2).zip"} {
		got, _, err := writeZip(t.Context(), dest, entries)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(got) != want {
			t.Errorf("path = %q, want %q", filepath.Base(got), want)
		}
		writeTestFile(t, a, "gamma"+want)
	}
	if tree := readZipTree(t, dest); tree["blobs/a"].Data != "alpha" {
		t.Errorf("original zip changed: blobs/a = %q", tree["blobs/a"].Data)
	}
	// A foreign file with the zip's name is kept too.
	other := writeTestFile(t, filepath.Join(dir, "x.zip"), "not a zip")
	got, _, err = writeZip(t.Context(), other, entries)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != "x (1).zip" {
		t.Errorf("path = %q, want x (1).zip", got)
	}
	if b, _ := os.ReadFile(other); string(b) != "not a zip" {
		t.Errorf("foreign file overwritten")
	}
}

func TestWriteZipRefusesUnsafeNames(t *testing.T) {
	src := writeTestFile(t, filepath.Join(t.TempDir(), "a"), "x")
	for _, name := range []string{"../a", "/abs", "a/../../b", `a\b`, "a//b", "./a", ""} {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "m.zip")
			if _, _, err := writeZip(t.Context(), dest, []zipEntry{{Name: name, Path: src}}); err == nil {
				t.Fatalf("writeZip accepted entry name %q", name)
			}
			if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a zip was published despite the error")
			}
			left, _ := os.ReadDir(filepath.Dir(dest))
			if len(left) != 0 {
				t.Errorf("files left behind: %v", left)
			}
		})
	}
}

func TestWriteZipCancelled(t *testing.T) {
	src := writeTestFile(t, filepath.Join(t.TempDir(), "a"), strings.Repeat("x", 1<<20))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dest := filepath.Join(t.TempDir(), "m.zip")
	_, _, err := writeZip(ctx, dest, []zipEntry{{Name: "a", Path: src}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(filepath.Dir(dest)); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

// BenchmarkZipWrite streams a 64 MiB staging tree (one large blob and a
// few small ones) into a zip, to show the writer's throughput.
func BenchmarkZipWrite(b *testing.B) {
	src := b.TempDir()
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	bigPath := filepath.Join(src, "big")
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		b.Fatal(err)
	}
	entries := []zipEntry{{Name: "blobs/"}, {Name: "blobs/sha256-big", Path: bigPath}}
	for _, n := range []string{"config", "template", "params"} {
		p := filepath.Join(src, n)
		if err := os.WriteFile(p, []byte(strings.Repeat(n, 100)), 0o644); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, zipEntry{Name: "blobs/sha256-" + n, Path: p})
	}
	out := b.TempDir()
	b.SetBytes(int64(len(big)))
	for b.Loop() {
		dest := filepath.Join(out, "m.zip")
		if _, _, err := writeZip(b.Context(), dest, entries); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(dest)
		b.StartTimer()
	}
}

func TestZipHolds(t *testing.T) {
	src := t.TempDir()
	a := writeTestFile(t, filepath.Join(src, "a"), "alpha")
	sum := sha256.Sum256([]byte("alpha"))
	good := []zipEntry{{Name: "blobs/"}, {Name: "blobs/a", Path: a, Size: 5, SHA256: hex.EncodeToString(sum[:])}}
	dest := filepath.Join(t.TempDir(), "m.zip")
	if _, _, err := writeZip(t.Context(), dest, good); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("omega"))
	tests := []struct {
		name    string
		entries []zipEntry
		want    bool
	}{
		{"same", good, true},
		{"other bytes, same size", []zipEntry{good[0], {Name: "blobs/a", Path: a, Size: 5, SHA256: hex.EncodeToString(other[:])}}, false},
		{"other size", []zipEntry{good[0], {Name: "blobs/a", Path: a, Size: 6, SHA256: good[1].SHA256}}, false},
		{"missing entry", good[:1], false},
		{"extra entry", append(slices.Clone(good), zipEntry{Name: "manifests/"}), false},
		{"renamed", []zipEntry{good[0], {Name: "blobs/b", Path: a, Size: 5, SHA256: good[1].SHA256}}, false},
	}
	for _, tc := range tests {
		if got := zipHolds(t.Context(), dest, tc.entries); got != tc.want {
			t.Errorf("%s: zipHolds = %v, want %v", tc.name, got, tc.want)
		}
	}
	if zipHolds(t.Context(), filepath.Join(t.TempDir(), "none.zip"), good) {
		t.Errorf("zipHolds is true for a missing zip")
	}
}
