package testkit

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEntry is one entry of a zip built by a test.
type TestEntry struct {
	Name   string
	Data   []byte
	Method uint16      // zip.Store unless set
	mode   fs.FileMode // 0 = regular 0644
}

// TestModel is a small model in the exact layout of SPEC §4.
type TestModel struct {
	Ref      string            // "registry.ollama.ai/library/tiny:latest"
	Manifest TestEntry         // manifests/<host>/<ns>/<model>/<tag>
	Blobs    map[string][]byte // by digest
	Order    []string          // digests: config, then layers
	Digest   string            // of the manifest
}

func LayoutTestDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewTestModel builds a model whose layers have the given sizes, with
// deterministic bytes that depend on seed.
func NewTestModel(t testing.TB, host, ns, model, tag string, seed int, layerSizes ...int) TestModel {
	t.Helper()
	m := TestModel{Ref: host + "/" + ns + "/" + model + ":" + tag, Blobs: map[string][]byte{}}
	config := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":"test","seed":%d}`, seed))
	m.Blobs[LayoutTestDigest(config)] = config
	m.Order = append(m.Order, LayoutTestDigest(config))
	var layers []string
	for i, size := range layerSizes {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte((j*31 + i*7 + seed*13) % 251)
		}
		d := LayoutTestDigest(b)
		m.Blobs[d] = b
		m.Order = append(m.Order, d)
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%d}`, d, size))
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%d},"layers":[%s]}`,
		LayoutTestDigest(config), len(config), strings.Join(layers, ","))
	m.Manifest = TestEntry{Name: "manifests/" + host + "/" + ns + "/" + model + "/" + tag, Data: []byte(manifest)}
	m.Digest = LayoutTestDigest(m.Manifest.Data)
	return m
}

func BlobEntryName(digest string) string {
	return "blobs/sha256-" + strings.TrimPrefix(digest, "sha256:")
}

// Entries lists the model's files: blobs first, the manifest last.
func (m TestModel) Entries() []TestEntry {
	var out []TestEntry
	for _, d := range m.Order {
		out = append(out, TestEntry{Name: BlobEntryName(d), Data: m.Blobs[d]})
	}
	return append(out, m.Manifest)
}

// Files maps every file name of the layout to its bytes.
func (m TestModel) Files() map[string][]byte {
	out := map[string][]byte{}
	for _, e := range m.Entries() {
		out[e.Name] = e.Data
	}
	return out
}

func WriteTestZip(t testing.TB, path string, entries []TestEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: e.Method}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.Data); err != nil {
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

func WriteTestFolder(t testing.TB, dir string, entries []TestEntry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TamperCase is a broken variant of a good model zip.
type TamperCase struct {
	Name    string
	Mutate  func(m TestModel, entries []TestEntry) []TestEntry
	Problem string // a piece of the problem Verify must report
}

func TamperCases() []TamperCase {
	flip := func(m TestModel, es []TestEntry) []TestEntry {
		b := append([]byte(nil), es[1].Data...)
		b[len(b)/2] ^= 0x01
		es[1].Data = b
		return es
	}
	return []TamperCase{
		{"flipped byte", flip, "content has digest"},
		{"missing blob", func(m TestModel, es []TestEntry) []TestEntry { return append(es[:1], es[2:]...) }, "which is missing"},
		{"dot-dot entry", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "blobs/../../evil.sh", Data: []byte("#!/bin/sh")})
		}, "zip-slip"},
		{"leading dot-dot", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "../evil", Data: []byte("x")})
		}, "zip-slip"},
		{"absolute path", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "/etc/cron.d/evil", Data: []byte("x")})
		}, "absolute"},
		{"backslash", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: `blobs\..\..\evil`, Data: []byte("x")})
		}, "backslash"},
		{"stray entry", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "README.txt", Data: []byte("hi")})
		}, "stray entry"},
		{"symlink entry", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "blobs/sha256-" + strings.Repeat("a", 64), Data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777})
		}, "not a regular file"},
		{"bad blob name", func(m TestModel, es []TestEntry) []TestEntry {
			return append(es, TestEntry{Name: "blobs/sha256-NOTHEX", Data: []byte("x")})
		}, "not a blob name"},
		{"manifest names a missing blob", func(m TestModel, es []TestEntry) []TestEntry {
			missing := LayoutTestDigest([]byte("not in the zip"))
			es[len(es)-1].Data = []byte(strings.Replace(string(es[len(es)-1].Data), m.Order[1], missing, 1))
			return es
		}, "which is missing"},
		{"manifest size differs", func(m TestModel, es []TestEntry) []TestEntry {
			es[len(es)-1].Data = []byte(strings.Replace(string(es[len(es)-1].Data), fmt.Sprintf(`"size":%d}`, len(m.Blobs[m.Order[1]])), `"size":7}`, 1))
			return es
		}, "has 7 bytes"},
		{"manifest not JSON", func(m TestModel, es []TestEntry) []TestEntry {
			es[len(es)-1].Data = []byte("<html>")
			return es
		}, "not a JSON manifest"},
		{"manifest with an unsafe digest", func(m TestModel, es []TestEntry) []TestEntry {
			es[len(es)-1].Data = []byte(strings.Replace(string(es[len(es)-1].Data), m.Order[1], "sha256:../../etc/passwd", 1))
			return es
		}, "invalid digest"},
		{"duplicate entry", func(m TestModel, es []TestEntry) []TestEntry { return append(es, es[1]) }, "appears twice"},
		{"no manifest", func(m TestModel, es []TestEntry) []TestEntry { return es[:len(es)-1] }, "no manifest"},
		{"digest manifest under the wrong digest", func(m TestModel, es []TestEntry) []TestEntry {
			es[len(es)-1].Name = "manifests/registry.ollama.ai/library/tiny/sha256-" + strings.Repeat("0", 64)
			return es
		}, "not the digest in its name"},
	}
}

// CheckInstalled compares a models folder with exactly one model.
func CheckInstalled(t *testing.T, modelsDir, host, model, tag string, m FakeModel) {
	t.Helper()
	want := map[string][]byte{}
	for name, c := range ExpectedTree(host, "library", model, tag, m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	got := ReadTree(t, modelsDir)
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: %d bytes installed, want %d", name, len(got[name]), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && !strings.HasPrefix(name, "blobs/") && !strings.HasPrefix(name, "manifests/") {
			t.Errorf("stray file in the models folder: %s", name)
		}
	}
}
