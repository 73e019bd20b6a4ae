package main

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testEntry is one entry of a zip built by a test.
type testEntry struct {
	name   string
	data   []byte
	method uint16      // zip.Store unless set
	mode   fs.FileMode // 0 = regular 0644
}

// testModel is a small model in the exact layout of SPEC §4.
type testModel struct {
	ref      string            // "registry.ollama.ai/library/tiny:latest"
	manifest testEntry         // manifests/<host>/<ns>/<model>/<tag>
	blobs    map[string][]byte // by digest
	order    []string          // digests: config, then layers
	digest   string            // of the manifest
}

func layoutTestDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newTestModel builds a model whose layers have the given sizes, with
// deterministic bytes that depend on seed.
func newTestModel(t testing.TB, host, ns, model, tag string, seed int, layerSizes ...int) testModel {
	t.Helper()
	m := testModel{ref: host + "/" + ns + "/" + model + ":" + tag, blobs: map[string][]byte{}}
	config := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":"test","seed":%d}`, seed))
	m.blobs[layoutTestDigest(config)] = config
	m.order = append(m.order, layoutTestDigest(config))
	var layers []string
	for i, size := range layerSizes {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte((j*31 + i*7 + seed*13) % 251)
		}
		d := layoutTestDigest(b)
		m.blobs[d] = b
		m.order = append(m.order, d)
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%d}`, d, size))
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%d},"layers":[%s]}`,
		layoutTestDigest(config), len(config), strings.Join(layers, ","))
	m.manifest = testEntry{name: "manifests/" + host + "/" + ns + "/" + model + "/" + tag, data: []byte(manifest)}
	m.digest = layoutTestDigest(m.manifest.data)
	return m
}

func blobEntryName(digest string) string {
	return "blobs/sha256-" + strings.TrimPrefix(digest, "sha256:")
}

// entries lists the model's files: blobs first, the manifest last.
func (m testModel) entries() []testEntry {
	var out []testEntry
	for _, d := range m.order {
		out = append(out, testEntry{name: blobEntryName(d), data: m.blobs[d]})
	}
	return append(out, m.manifest)
}

// files maps every file name of the layout to its bytes.
func (m testModel) files() map[string][]byte {
	out := map[string][]byte{}
	for _, e := range m.entries() {
		out[e.name] = e.data
	}
	return out
}

func writeTestZip(t testing.TB, path string, entries []testEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: e.method}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeTestFolder(t testing.TB, dir string, entries []testEntry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree maps every regular file under dir (slash names) to its bytes.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tamperCase is a broken variant of a good model zip.
type tamperCase struct {
	name    string
	mutate  func(m testModel, entries []testEntry) []testEntry
	problem string // a piece of the problem Verify must report
}

func tamperCases() []tamperCase {
	flip := func(m testModel, es []testEntry) []testEntry {
		b := append([]byte(nil), es[1].data...)
		b[len(b)/2] ^= 0x01
		es[1].data = b
		return es
	}
	return []tamperCase{
		{"flipped byte", flip, "content has digest"},
		{"missing blob", func(m testModel, es []testEntry) []testEntry { return append(es[:1], es[2:]...) }, "which is missing"},
		{"dot-dot entry", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "blobs/../../evil.sh", data: []byte("#!/bin/sh")})
		}, "zip-slip"},
		{"leading dot-dot", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "../evil", data: []byte("x")})
		}, "zip-slip"},
		{"absolute path", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "/etc/cron.d/evil", data: []byte("x")})
		}, "absolute"},
		{"backslash", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: `blobs\..\..\evil`, data: []byte("x")})
		}, "backslash"},
		{"stray entry", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "README.txt", data: []byte("hi")})
		}, "stray entry"},
		{"symlink entry", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "blobs/sha256-" + strings.Repeat("a", 64), data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777})
		}, "not a regular file"},
		{"bad blob name", func(m testModel, es []testEntry) []testEntry {
			return append(es, testEntry{name: "blobs/sha256-NOTHEX", data: []byte("x")})
		}, "not a blob name"},
		{"manifest names a missing blob", func(m testModel, es []testEntry) []testEntry {
			missing := layoutTestDigest([]byte("not in the zip"))
			es[len(es)-1].data = []byte(strings.Replace(string(es[len(es)-1].data), m.order[1], missing, 1))
			return es
		}, "which is missing"},
		{"manifest size differs", func(m testModel, es []testEntry) []testEntry {
			es[len(es)-1].data = []byte(strings.Replace(string(es[len(es)-1].data), fmt.Sprintf(`"size":%d}`, len(m.blobs[m.order[1]])), `"size":7}`, 1))
			return es
		}, "has 7 bytes"},
		{"manifest not JSON", func(m testModel, es []testEntry) []testEntry {
			es[len(es)-1].data = []byte("<html>")
			return es
		}, "not a JSON manifest"},
		{"manifest with an unsafe digest", func(m testModel, es []testEntry) []testEntry {
			es[len(es)-1].data = []byte(strings.Replace(string(es[len(es)-1].data), m.order[1], "sha256:../../etc/passwd", 1))
			return es
		}, "invalid digest"},
		{"duplicate entry", func(m testModel, es []testEntry) []testEntry { return append(es, es[1]) }, "appears twice"},
		{"no manifest", func(m testModel, es []testEntry) []testEntry { return es[:len(es)-1] }, "no manifest"},
		{"digest manifest under the wrong digest", func(m testModel, es []testEntry) []testEntry {
			es[len(es)-1].name = "manifests/registry.ollama.ai/library/tiny/sha256-" + strings.Repeat("0", 64)
			return es
		}, "not the digest in its name"},
	}
}

func TestModelLayoutVerify(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	t.Run("good", func(t *testing.T) {
		zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
		writeTestZip(t, zipPath, m.entries())
		l, err := openModelLayout(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		var progress int64
		if problems := l.Verify(t.Context(), func(n int64) { progress = n }); len(problems) > 0 {
			t.Fatalf("problems in a good zip: %q", problems)
		}
		if len(l.Manifests) != 1 || l.Manifests[0].Ref() != m.ref || l.Manifests[0].Digest != m.digest || len(l.Manifests[0].Refs) != 3 {
			t.Errorf("manifests = %+v", l.Manifests)
		}
		if want := int64(70_000 + 300 + len(m.blobs[m.order[0]])); progress != want {
			t.Errorf("progress = %d, want %d", progress, want)
		}
	})
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
			writeTestZip(t, zipPath, tc.mutate(m, m.entries()))
			l, err := openModelLayout(zipPath)
			if err != nil {
				t.Fatal(err)
			}
			problems := l.Verify(t.Context(), nil)
			if !strings.Contains(strings.Join(problems, "\n"), tc.problem) {
				t.Errorf("problems = %q, want one containing %q", problems, tc.problem)
			}
		})
	}
}

func TestModelLayoutFolderAndCompressedZip(t *testing.T) {
	m := newTestModel(t, "127.0.0.1:5000", "library", "tiny", "v1", 2, 5000)
	dir := t.TempDir()
	writeTestFolder(t, dir, m.entries())
	// What an Ollama models folder also holds.
	writeTestFolder(t, dir, []testEntry{
		{name: "blobs/sha256-" + strings.Repeat("b", 64) + "-partial", data: []byte("half")},
		{name: "blobs/sha256-" + strings.Repeat("b", 64) + "-partial-0", data: []byte("{}")},
		{name: "notes.txt", data: []byte("hi")},
	})
	l, err := openModelLayout(dir)
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

	entries := m.entries()
	for i := range entries {
		entries[i].method = zip.Deflate
	}
	zipPath := filepath.Join(t.TempDir(), "deflated.zip")
	writeTestZip(t, zipPath, entries)
	l, err = openModelLayout(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 {
		t.Fatalf("problems in a deflated zip: %q", problems)
	}
	b := l.Blobs[m.order[1]]
	rc, err := l.Open(b.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, seekable := rc.(io.Seeker); seekable || b.Stored {
		t.Errorf("a deflated entry claims to be seekable")
	}
}
