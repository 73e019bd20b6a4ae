package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeManifestBomb writes issue 18's zip: n Deflate-compressed manifests
// of size bytes each (compressed once, stored n times), plus a blob.
func writeManifestBomb(t testing.TB, path string, n, size int) {
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

// TestManifestBombRefused: issue 18's 300 × 4 MiB manifests (a 1.3 MB
// zip) are refused from the central directory, before a manifest is
// inflated, with a message; install writes nothing; a zip of too many
// entries is refused from its end record.
func TestManifestBombRefused(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.zip")
	writeManifestBomb(t, bomb, 300, 4<<20)
	if fi, _ := os.Stat(bomb); fi.Size() > 4<<20 {
		t.Fatalf("the bomb is %d bytes; it should be small", fi.Size())
	}
	_, err := openModelLayout(bomb)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "300 manifests") {
		t.Fatalf("openModelLayout(bomb): err = %v, want a refusal naming 300 manifests", err)
	}
	if !errors.Is(err, errBadZip) || errorCode(err) != "bad_zip" {
		t.Errorf("the refusal is not a bad_zip error: code %q", errorCode(err))
	}
	modelsDir := filepath.Join(dir, "models")
	var out bytes.Buffer
	if err := installZip(t.Context(), bomb, modelsDir, &out); err == nil {
		t.Fatalf("installZip accepted the bomb")
	}
	if _, err := os.Stat(modelsDir); !os.IsNotExist(err) {
		t.Errorf("the refused install created the models folder (%v)", err)
	}
	var stdout, stderr bytes.Buffer
	if code := runVerifyCommand(t.Context(), []string{bomb}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "refused") {
		t.Errorf("verify: exit %d\n%s", code, stdout.String())
	}

	// One manifest that claims more than a manifest may be.
	one := filepath.Join(dir, "one.zip")
	writeManifestBomb(t, one, 1, maxManifestBytes+1)
	if _, err := openModelLayout(one); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a 4 MiB + 1 manifest: err = %v, want a refusal", err)
	}

	// More entries than any model zip has.
	many := filepath.Join(dir, "many.zip")
	f, err := os.Create(many)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for i := range maxZipEntries + 1 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("blobs/x%d", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	f.Close()
	if _, err := openModelLayout(many); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("%d entries: err = %v, want a refusal", maxZipEntries+1, err)
	}
	// The reuse scan and the library listing pass over such zips quietly.
	if got := findReusableBlobs(t.Context(), reusePlaces{ZipDirs: []string{dir}}, []blobRef{{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1}}); len(got) != 0 {
		t.Errorf("reuse took a blob from a refused zip: %v", got)
	}
	if got := libraryModels(dir); len(got) != 0 {
		t.Errorf("the library lists models of refused zips: %+v", got)
	}
}

// BenchmarkOpenManifestBomb reports what reading issue 18's bomb costs
// now (it took 3.2 GB before the caps).
func BenchmarkOpenManifestBomb(b *testing.B) {
	bomb := filepath.Join(b.TempDir(), "bomb.zip")
	writeManifestBomb(b, bomb, 300, 4<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openModelLayout(bomb); err == nil {
			b.Fatal("bomb accepted")
		}
	}
}

// TestLibraryInstallSymlinkSwap is issue 18's race: a link in the output
// folder flips between a model zip inside and one outside while the API
// installs it. Every install either refuses (the link led outside) or
// installs the inside model, read through the file it opened: the model
// from outside never lands in a models folder.
func TestLibraryInstallSymlinkSwap(t *testing.T) {
	a := newAPIServer(t)
	inside := apiPullModelZip(t, a) // tiny:latest
	outside := filepath.Join(t.TempDir(), "evil.zip")
	evil := newTestModel(t, "registry.ollama.ai", "library", "evil", "latest", 7, 2000)
	writeTestZip(t, outside, evil.entries())
	link := filepath.Join(a.dir, "link.zip")
	if err := os.Symlink(inside, link); err != nil {
		t.Skipf("symbolic links unavailable: %v", err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var flips atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		targets := []string{outside, inside}
		for i := 0; i < 200_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := link + ".new"
			os.Remove(tmp)
			if os.Symlink(targets[i%2], tmp) == nil && os.Rename(tmp, link) == nil {
				flips.Add(1)
			}
		}
	}()
	installed, refused := 0, 0
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 40 && time.Now().Before(deadline); i++ {
		modelsDir := t.TempDir()
		body, k, v := apiForm("path", "link.zip", "models_dir", modelsDir)
		code, _, resp := a.do(t, "POST", "/api/library/install", body, k, v)
		var got installResponse
		json.Unmarshal(resp, &got)
		if code == http.StatusOK {
			installed++
		} else {
			refused++
		}
		if _, err := os.Stat(filepath.Join(modelsDir, "manifests", "registry.ollama.ai", "library", "evil")); err == nil {
			close(stop)
			wg.Wait()
			t.Fatalf("install %d put the model from outside the output folder into %s (HTTP %d)", i, modelsDir, code)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d installs of the inside zip, %d refused, %d link flips", installed, refused, flips.Load())
	if flips.Load() < 10 {
		t.Errorf("the link flipped only %d times: the race was not exercised", flips.Load())
	}
}
