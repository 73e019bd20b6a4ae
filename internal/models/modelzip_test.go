package models

import (
	"archive/zip"
	"io"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strings"
	"testing"
)

func TestModelLayoutVerify(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	t.Run("good", func(t *testing.T) {
		zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
		testkit.WriteTestZip(t, zipPath, m.Entries())
		l, err := OpenLayout(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		var progress int64
		if problems := l.Verify(t.Context(), func(n int64) { progress = n }); len(problems) > 0 {
			t.Fatalf("problems in a good zip: %q", problems)
		}
		if len(l.Manifests) != 1 || l.Manifests[0].Ref() != m.Ref || l.Manifests[0].Digest != m.Digest || len(l.Manifests[0].Refs) != 3 {
			t.Errorf("manifests = %+v", l.Manifests)
		}
		if want := int64(70_000 + 300 + len(m.Blobs[m.Order[0]])); progress != want {
			t.Errorf("progress = %d, want %d", progress, want)
		}
	})
	for _, tc := range testkit.TamperCases() {
		t.Run(tc.Name, func(t *testing.T) {
			zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
			testkit.WriteTestZip(t, zipPath, tc.Mutate(m, m.Entries()))
			l, err := OpenLayout(zipPath)
			if err != nil {
				t.Fatal(err)
			}
			problems := l.Verify(t.Context(), nil)
			if !strings.Contains(strings.Join(problems, "\n"), tc.Problem) {
				t.Errorf("problems = %q, want one containing %q", problems, tc.Problem)
			}
		})
	}
}

func TestModelLayoutFolderAndCompressedZip(t *testing.T) {
	m := testkit.NewTestModel(t, "127.0.0.1:5000", "library", "tiny", "v1", 2, 5000)
	dir := t.TempDir()
	testkit.WriteTestFolder(t, dir, m.Entries())
	// What an Ollama models folder also holds.
	testkit.WriteTestFolder(t, dir, []testkit.TestEntry{
		{Name: "blobs/sha256-" + strings.Repeat("b", 64) + "-partial", Data: []byte("half")},
		{Name: "blobs/sha256-" + strings.Repeat("b", 64) + "-partial-0", Data: []byte("{}")},
		{Name: "notes.txt", Data: []byte("hi")},
	})
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 {
		t.Fatalf("problems in a folder: %q", problems)
	}
	if len(l.Notes) != 1 || !strings.Contains(l.Notes[0], "notes.txt") {
		t.Errorf("notes = %q", l.Notes)
	}
	if got := l.Manifests[0].ShortRef(); got != "127.0.0.1:5000/library/tiny:v1" {
		t.Errorf("ShortRef = %q", got)
	}

	entries := m.Entries()
	for i := range entries {
		entries[i].Method = zip.Deflate
	}
	zipPath := filepath.Join(t.TempDir(), "deflated.zip")
	testkit.WriteTestZip(t, zipPath, entries)
	l, err = OpenLayout(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 {
		t.Fatalf("problems in a deflated zip: %q", problems)
	}
	b := l.Blobs[m.Order[1]]
	rc, err := l.Open(b.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, seekable := rc.(io.Seeker); seekable || b.Stored {
		t.Errorf("a deflated entry claims to be seekable")
	}
}
