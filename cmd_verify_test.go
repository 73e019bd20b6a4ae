package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManifestBombRefused: issue 18's 300 × 4 MiB manifests (a 1.3 MB
// zip) are refused from the central directory, before a manifest is
// inflated, with a message; install writes nothing; a zip of too many
// entries is refused from its end record.
func TestManifestBombRefused(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.zip")
	testkit.WriteManifestBomb(t, bomb, 300, 4<<20)
	if fi, _ := os.Stat(bomb); fi.Size() > 4<<20 {
		t.Fatalf("the bomb is %d bytes; it should be small", fi.Size())
	}
	_, err := models.OpenLayout(bomb)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "300 manifests") {
		t.Fatalf("openModelLayout(bomb): err = %v, want a refusal naming 300 manifests", err)
	}
	if !errors.Is(err, fault.ErrBadZip) || fault.Code(err) != "bad_zip" {
		t.Errorf("the refusal is not a bad_zip error: code %q", fault.Code(err))
	}
	modelsDir := filepath.Join(dir, "models")
	var out bytes.Buffer
	if err := models.InstallZip(t.Context(), bomb, modelsDir, &out); err == nil {
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
	testkit.WriteManifestBomb(t, one, 1, registry.MaxManifestBytes+1)
	if _, err := models.OpenLayout(one); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a 4 MiB + 1 manifest: err = %v, want a refusal", err)
	}

	// More entries than any model zip has.
	many := filepath.Join(dir, "many.zip")
	f, err := os.Create(many)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for i := range models.MaxZipEntries + 1 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("blobs/x%d", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	f.Close()
	if _, err := models.OpenLayout(many); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("%d entries: err = %v, want a refusal", models.MaxZipEntries+1, err)
	}
	// The reuse scan and the library listing pass over such zips quietly.
	if got := models.FindReusableBlobs(t.Context(), models.ReusePlaces{ZipDirs: []string{dir}}, []registry.Blob{{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1}}); len(got) != 0 {
		t.Errorf("reuse took a blob from a refused zip: %v", got)
	}
	if got := models.LibraryModels(dir); len(got) != 0 {
		t.Errorf("the library lists models of refused zips: %+v", got)
	}
}

func TestRunVerifyCommand(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 2000, 10)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zip")
	testkit.WriteTestZip(t, good, m.Entries())
	tampered := filepath.Join(dir, "tampered.zip")
	entries := m.Entries()
	entries[1].Data = append([]byte(nil), entries[1].Data...)
	entries[1].Data[5] ^= 1
	testkit.WriteTestZip(t, tampered, entries)
	folder := t.TempDir()
	testkit.WriteTestFolder(t, folder, m.Entries())

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{"good zip", []string{good}, 0, []string{"good.zip: OK: 1 model(s), 3 blob(s)", "model registry.ollama.ai/library/tiny:latest (" + m.Digest + ")"}},
		{"good folder", []string{folder}, 0, []string{": OK: 1 model(s)"}},
		{"tampered", []string{tampered}, 1, []string{"problem: blobs/sha256-", "content has digest", "FAILED: 1 problem(s)"}},
		{"one good one bad", []string{good, tampered}, 1, []string{"good.zip: OK", "tampered.zip: FAILED"}},
		{"not a zip", []string{filepath.Join(dir, "missing.zip")}, 1, []string{"FAILED"}},
		{"no argument", nil, 2, nil},
		{"unknown flag", []string{"-x", good}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runVerifyCommand(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}
