package testkit

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

// WriteManifestBomb writes issue 18's zip: n Deflate-compressed manifests
// of size bytes each (compressed once, stored n times), plus a blob.
func WriteManifestBomb(t testing.TB, path string, n, size int) {
	t.Helper()
	payload := bytes.Repeat([]byte(" "), size)
	copy(payload, `{"schemaVersion":2,"config":{"digest":"sha256:`+strings.Repeat("a", 64)+`","size":1},"layers":[]}`)
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(payload)
	fw.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	w, _ := zw.Create("blobs/sha256-" + strings.Repeat("a", 64))
	w.Write([]byte("x"))
	crc := crc32.ChecksumIEEE(payload)
	for i := range n {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("manifests/registry.ollama.ai/library/m%d/latest", i), Method: zip.Deflate,
			CRC32: crc, CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(size)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
