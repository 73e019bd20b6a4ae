package models

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePlannedZip fills a layout's entries with data (by name), writes the
// headers and returns the zip's bytes.
func writePlannedZip(t *testing.T, l *zipLayout, data map[string][]byte, split int64) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	n := splitPartCount(l.Size, split)
	paths := zipTempPaths(filepath.Join(dir, "m.zip"), n, split > 0)
	space, err := openZipSpace(paths, split, l.Size, true)
	if err != nil {
		t.Fatal(err)
	}
	defer space.Close()
	for i := range l.Entries {
		s := &l.Entries[i]
		if d, ok := data[s.Name]; ok {
			r := space.Region(*s)
			if _, err := r.Write(d); err != nil {
				t.Fatal(err)
			}
			s.CRC = crc32.ChecksumIEEE(d)
		}
	}
	if err := l.WriteHeaders(space); err != nil {
		t.Fatal(err)
	}
	if err := checkWrittenZip(space, l); err != nil {
		t.Fatalf("checkWrittenZip: %v", err)
	}
	if err := space.Finish(); err != nil {
		t.Fatal(err)
	}
	return dir, paths
}

func TestPlannedZipReadsBack(t *testing.T) {
	data := map[string][]byte{
		"blobs/sha256-" + strings.Repeat("a", 64): testkit.TestBytes(70_000, 3),
		"blobs/sha256-" + strings.Repeat("b", 64): []byte("template"),
		"manifests/h/library/m/latest":            []byte(`{"schemaVersion":2}`),
	}
	slots := []zipSlot{{Name: "blobs/"}}
	for _, n := range []string{"blobs/sha256-" + strings.Repeat("a", 64), "blobs/sha256-" + strings.Repeat("b", 64)} {
		slots = append(slots, zipSlot{Name: n, Size: int64(len(data[n]))})
	}
	slots = append(slots, zipSlot{Name: "manifests/"}, zipSlot{Name: "manifests/h/"}, zipSlot{Name: "manifests/h/library/"}, zipSlot{Name: "manifests/h/library/m/"},
		zipSlot{Name: "manifests/h/library/m/latest", Size: int64(len(data["manifests/h/library/m/latest"]))})
	when := time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)
	l, err := planZip(slots, when)
	if err != nil {
		t.Fatal(err)
	}
	dir, paths := writePlannedZip(t, l, data, 0)
	fi, err := os.Stat(paths[0])
	if err != nil || fi.Size() != l.Size {
		t.Fatalf("zip is %v bytes, layout says %d (%v)", fi.Size(), l.Size, err)
	}
	zr, err := zip.OpenReader(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != len(slots) {
		t.Fatalf("%d entries, want %d", len(zr.File), len(slots))
	}
	for i, f := range zr.File {
		if f.Name != slots[i].Name {
			t.Errorf("entry %d = %q, want %q", i, f.Name, slots[i].Name)
		}
		if !f.Modified.Equal(when) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, when)
		}
		if strings.HasSuffix(f.Name, "/") {
			if f.Mode() != fs.ModeDir|0o755 {
				t.Errorf("%s: mode %v", f.Name, f.Mode())
			}
			continue
		}
		if f.Mode() != 0o644 || f.Method != zip.Store {
			t.Errorf("%s: mode %v method %d, want 0644 stored", f.Name, f.Mode(), f.Method)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc) // archive/zip checks the CRC-32 at the end
		rc.Close()
		if err != nil || !bytes.Equal(got, data[f.Name]) {
			t.Errorf("%s: read %d bytes (%v), want its data", f.Name, len(got), err)
		}
	}
	// Info-ZIP's own test of every entry, when it is installed.
	if unzip, err := exec.LookPath("unzip"); err == nil {
		if out, err := exec.Command(unzip, "-t", paths[0]).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
			t.Errorf("unzip -t: %v\n%s", err, out)
		}
		extract := filepath.Join(dir, "x")
		if out, err := exec.Command(unzip, "-q", paths[0], "-d", extract).CombinedOutput(); err != nil {
			t.Fatalf("unzip: %v\n%s", err, out)
		}
		for name, want := range data {
			got, err := os.ReadFile(filepath.Join(extract, filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("unzip gave %s of %d bytes (%v), want %d", name, len(got), err, len(want))
			}
			if fi, err := os.Stat(filepath.Join(extract, filepath.FromSlash(name))); err == nil && !fi.ModTime().Equal(when) {
				t.Errorf("unzip set %s's time to %v, want %v", name, fi.ModTime(), when)
			}
		}
	}
}

// TestPlannedZip64 lays out an entry past 4 GiB (a sparse file: its data
// is never written) and checks that archive/zip finds every entry, its
// size and offset through the zip64 records.
func TestPlannedZip64(t *testing.T) {
	big := int64(5 << 30)
	slots := []zipSlot{{Name: "blobs/"}, {Name: "blobs/big", Size: big}, {Name: "blobs/after", Size: 3}}
	l, err := planZip(slots, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.zip")
	space, err := openZipSpace([]string{path}, 0, l.Size, true)
	if err != nil {
		t.Fatal(err)
	}
	defer space.Close()
	after, _ := l.Slot("blobs/after")
	if _, err := space.Region(*after).Write([]byte("end")); err != nil {
		t.Fatal(err)
	}
	after.CRC = crc32.ChecksumIEEE([]byte("end"))
	big32, _ := l.Slot("blobs/big")
	big32.CRC = 0x12345678 // never checked: the data is not read
	if err := l.WriteHeaders(space); err != nil {
		t.Fatal(err)
	}
	if err := checkWrittenZip(space, l); err != nil {
		t.Fatal(err)
	}
	if err := space.Finish(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if got := zr.File[1].UncompressedSize64; got != uint64(big) {
		t.Errorf("big entry size %d, want %d", got, big)
	}
	rc, err := zr.File[2].Open()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "end" {
		t.Errorf("entry after 4 GiB reads %q (%v)", got, err)
	}
}

// TestZipSpaceSplit writes across part boundaries and reads back: the
// parts' concatenation is the zip.
func TestZipSpaceSplit(t *testing.T) {
	dir := t.TempDir()
	size, part := int64(10_000), int64(3_000)
	paths := zipTempPaths(filepath.Join(dir, "m.zip"), splitPartCount(size, part), true)
	if len(paths) != 4 || filepath.Base(paths[0]) != ".m.zip.001.tmp" || filepath.Base(paths[3]) != ".m.zip.004.tmp" {
		t.Fatalf("temp paths %v", paths)
	}
	s, err := openZipSpace(paths, part, size, true)
	if err != nil {
		t.Fatal(err)
	}
	want := testkit.TestBytes(int(size), 9)
	// Out of order, across boundaries, as concurrent blobs write.
	for _, r := range [][2]int64{{5000, 9000}, {0, 2999}, {2999, 5000}, {9000, 10_000}} {
		if _, err := s.WriteAt(want[r[0]:r[1]], r[0]); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, size)
	if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt across parts: %v", err)
	}
	if _, err := s.WriteAt([]byte("x"), size); err == nil {
		t.Errorf("a write past the zip's end was accepted")
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(paths)-1 && int64(len(b)) != part {
			t.Errorf("part %d has %d bytes, want %d", i+1, len(b), part)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, want) {
		t.Errorf("the parts joined are not the zip")
	}
}

func TestRegionFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z")
	s, err := openZipSpace([]string{path}, 0, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.Region(zipSlot{Name: "e", Data: 40, Size: 10})
	if fi, _ := r.Stat(); fi.Size() != 10 {
		t.Errorf("Stat size %d, want 10", fi.Size())
	}
	if err := r.Truncate(11); err == nil {
		t.Errorf("Truncate past the region was accepted")
	}
	if err := r.Truncate(0); err != nil {
		t.Errorf("Truncate(0): %v", err)
	}
	if _, err := r.Write([]byte("0123456789x")); err == nil {
		t.Errorf("a write past the region's end was accepted")
	}
	if _, err := r.WriteAt([]byte("abc"), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "abc" {
		t.Errorf("read back %q (%v)", got, err)
	}
	raw := make([]byte, 3)
	if _, err := s.ReadAt(raw, 47); err != nil || string(raw) != "abc" {
		t.Errorf("the zip holds %q at 47 (%v), want the region's bytes", raw, err)
	}
}
