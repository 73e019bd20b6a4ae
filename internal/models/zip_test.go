package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io/fs"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// makeTestZip writes a zip of entries (their data read from Path) through
// the planned writer, at path, and returns it.
func makeTestZip(t *testing.T, path string, entries []zipEntry) string {
	t.Helper()
	data := map[string][]byte{}
	var slots []zipSlot
	for _, e := range entries {
		s := zipSlot{Name: e.Name}
		if e.Path != "" {
			b, err := os.ReadFile(e.Path)
			if err != nil {
				t.Fatal(err)
			}
			data[e.Name], s.Size = b, int64(len(b))
		}
		slots = append(slots, s)
	}
	l, err := planZip(slots, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	space, err := openZipSpace([]string{path}, 0, l.Size, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Entries {
		s := &l.Entries[i]
		if b, ok := data[s.Name]; ok {
			if _, err := space.WriteAt(b, s.Data); err != nil {
				t.Fatal(err)
			}
			s.CRC = crc32.ChecksumIEEE(b)
		}
	}
	if err := l.WriteHeaders(space); err != nil {
		t.Fatal(err)
	}
	if err := space.Finish(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPublishZip: a zip is published by rename and never over another
// file: the same entries again keep the existing zip, different ones go
// to "name (1).zip", "name (2).zip"…, a foreign file is kept.
func TestPublishZip(t *testing.T) {
	src := t.TempDir()
	a := testkit.WriteTestFile(t, filepath.Join(src, "a"), "alpha")
	entries := []zipEntry{{Name: "blobs/"}, {Name: "blobs/a", Path: a}}
	dir := t.TempDir()
	dest := filepath.Join(dir, "m.zip")
	tmp := filepath.Join(dir, ".m.zip.tmp")

	publish := func() string {
		t.Helper()
		makeTestZip(t, tmp, entries)
		got, err := publishZip(tmp, dest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("temporary zip left: %v", err)
		}
		if got == "" {
			return dest
		}
		return got
	}
	if got := publish(); got != dest {
		t.Fatalf("first publish went to %q", got)
	}
	before, _ := os.ReadFile(dest)
	if got := publish(); got != dest {
		t.Errorf("identical rerun went to %q, want %q", got, dest)
	}
	if after, _ := os.ReadFile(dest); !bytes.Equal(before, after) {
		t.Errorf("identical rerun rewrote %s", dest)
	}
	for _, want := range []string{"m (1).zip", "m (2).zip"} {
		testkit.WriteTestFile(t, a, "other "+want)
		if got := publish(); filepath.Base(got) != want {
			t.Errorf("path = %q, want %q", filepath.Base(got), want)
		}
	}
	if tree := testkit.ReadZipTree(t, dest); tree["blobs/a"].Data != "alpha" {
		t.Errorf("original zip changed: blobs/a = %q", tree["blobs/a"].Data)
	}
	other := testkit.WriteTestFile(t, filepath.Join(dir, "x.zip"), "not a zip")
	makeTestZip(t, tmp, entries)
	got, err := publishZip(tmp, other)
	if err != nil || filepath.Base(got) != "x (1).zip" {
		t.Errorf("path = %q (%v), want x (1).zip", got, err)
	}
	if b, _ := os.ReadFile(other); string(b) != "not a zip" {
		t.Errorf("foreign file overwritten")
	}
}

func TestPlanZipRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"../a", "/abs", "a/../../b", `a\b`, "a//b", "./a", ""} {
		if _, err := planZip([]zipSlot{{Name: name, Size: 1}}, time.Now()); err == nil {
			t.Errorf("planZip accepted entry name %q", name)
		}
	}
}

// BenchmarkReuseCopy is the cost of taking a blob from disk into a zip:
// one read, SHA-256 and CRC-32 in the same pass, one write.
func BenchmarkReuseCopy(b *testing.B) {
	dir := b.TempDir()
	data := testkit.TestBytes(64<<20, 5)
	src := filepath.Join(dir, "blob")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	s := blobSource{Digest: testkit.DigestOf(data), Size: int64(len(data)), Path: src}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		space, err := openZipSpace([]string{filepath.Join(dir, "z")}, 0, int64(len(data)), true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := copyReusedBlob(b.Context(), space.Region(zipSlot{Name: "b", Size: int64(len(data))}), s, nil); err != nil {
			b.Fatal(err)
		}
		space.Close()
	}
}

func TestZipHolds(t *testing.T) {
	src := t.TempDir()
	a := testkit.WriteTestFile(t, filepath.Join(src, "a"), "alpha")
	sum := sha256.Sum256([]byte("alpha"))
	good := []zipEntry{{Name: "blobs/"}, {Name: "blobs/a", Path: a, Size: 5, SHA256: hex.EncodeToString(sum[:])}}
	dest := makeTestZip(t, filepath.Join(t.TempDir(), "m.zip"), good)
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
