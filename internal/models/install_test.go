package models

import (
	"bytes"
	"errors"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestInstallZip(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
	testkit.WriteTestZip(t, zipPath, m.Entries())
	modelsDir := filepath.Join(t.TempDir(), "models") // does not exist yet

	var out bytes.Buffer
	if err := InstallZip(t.Context(), zipPath, modelsDir, &out); err != nil {
		t.Fatalf("installZip: %v\n%s", err, out.String())
	}
	if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, m.Files()) {
		t.Errorf("models folder holds %d files, want exactly the zip's %d", len(got), len(m.Files()))
	}
	for _, want := range []string{"tiny:latest: installed", "written", "ollama run tiny:latest"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	fi, err := os.Stat(filepath.Join(modelsDir, filepath.FromSlash(m.Manifest.Name)))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("manifest mode = %v, %v; want 0644", fi.Mode(), err)
	}

	// Again: everything is there and identical, nothing to do.
	out.Reset()
	if err := InstallZip(t.Context(), zipPath, modelsDir, &out); err != nil {
		t.Fatalf("second installZip: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "already installed") || strings.Contains(out.String(), "written") {
		t.Errorf("second install output:\n%s", out.String())
	}

	// A second model sharing the config blob: only what is new is written.
	m2 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "q8", 1, 900)
	zip2 := filepath.Join(t.TempDir(), "tiny-q8.zip")
	testkit.WriteTestZip(t, zip2, m2.Entries())
	out.Reset()
	if err := InstallZip(t.Context(), zip2, modelsDir, &out); err != nil {
		t.Fatalf("installing a second tag: %v\n%s", err, out.String())
	}
	want := m.Files()
	for k, v := range m2.Files() {
		want[k] = v
	}
	if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, want) {
		t.Errorf("after two installs: %d files, want %d", len(got), len(want))
	}
	if !strings.Contains(out.String(), "already present") {
		t.Errorf("shared config blob not reported as present:\n%s", out.String())
	}
}

func TestInstallFromFolder(t *testing.T) {
	m := testkit.NewTestModel(t, "127.0.0.1:5000", "library", "tiny", "latest", 3, 4000)
	src := t.TempDir()
	testkit.WriteTestFolder(t, src, m.Entries())
	modelsDir := t.TempDir()
	var out bytes.Buffer
	if err := InstallZip(t.Context(), src, modelsDir, &out); err != nil {
		t.Fatalf("installZip(folder): %v\n%s", err, out.String())
	}
	if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, m.Files()) {
		t.Errorf("models folder differs from the source folder")
	}
}

func TestInstallRefusesTamperedZips(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	for _, tc := range testkit.TamperCases() {
		t.Run(tc.Name, func(t *testing.T) {
			zipPath := filepath.Join(t.TempDir(), "bad.zip")
			testkit.WriteTestZip(t, zipPath, tc.Mutate(m, m.Entries()))
			root := t.TempDir()
			modelsDir := filepath.Join(root, "models")
			var out bytes.Buffer
			err := InstallZip(t.Context(), zipPath, modelsDir, &out)
			if err == nil {
				t.Fatalf("installZip accepted a zip with %s:\n%s", tc.Name, out.String())
			}
			if !strings.Contains(out.String(), tc.Problem) {
				t.Errorf("output lacks %q:\n%s", tc.Problem, out.String())
			}
			if got := testkit.ReadTree(t, root); len(got) != 0 {
				t.Errorf("files written after a refused install: %v", got)
			}
			if _, err := os.Stat(modelsDir); !os.IsNotExist(err) {
				t.Errorf("models folder created after a refused install: %v", err)
			}
		})
	}
}

func TestInstallNeverOverwritesADifferentFile(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
	testkit.WriteTestZip(t, zipPath, m.Entries())
	layer := m.Blobs[m.Order[1]]
	damaged := append([]byte(nil), layer...)
	damaged[0] ^= 0xff

	tests := []struct {
		name     string
		existing []testkit.TestEntry
	}{
		{"another version of the tag", []testkit.TestEntry{{Name: m.Manifest.Name, Data: []byte(`{"schemaVersion":2}`)}}},
		{"a damaged blob of the same size", []testkit.TestEntry{{Name: testkit.BlobEntryName(m.Order[1]), Data: damaged}}},
		{"a blob of another size", []testkit.TestEntry{{Name: testkit.BlobEntryName(m.Order[2]), Data: []byte("short")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modelsDir := t.TempDir()
			testkit.WriteTestFolder(t, modelsDir, tc.existing)
			before := testkit.ReadTree(t, modelsDir)
			var out bytes.Buffer
			err := InstallZip(t.Context(), zipPath, modelsDir, &out)
			if !errors.Is(err, fault.ErrConflict) {
				t.Fatalf("installZip = %v, want ErrConflict\n%s", err, out.String())
			}
			if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, before) {
				t.Errorf("models folder changed: %d files, was %d", len(got), len(before))
			}
		})
	}
}

func TestInstallNotes(t *testing.T) {
	mf := []LayoutManifest{{Host: "registry.ollama.ai", Namespace: "library", Model: "tiny", Tag: "latest"}}
	joined := func(notes []string) string { return strings.Join(notes, "\n") }
	if got := joined(InstallNotes(linuxServiceModelsDir, "linux", mf)); !strings.Contains(got, "sudo chown -R ollama:ollama "+linuxServiceModelsDir) {
		t.Errorf("linux service folder: no chown note:\n%s", got)
	}
	if got := joined(InstallNotes(linuxServiceModelsDir+"/", "darwin", mf)); strings.Contains(got, "chown") {
		t.Errorf("darwin: chown note:\n%s", got)
	}
	if got := joined(InstallNotes("/home/u/.ollama/models", "linux", mf)); !strings.Contains(got, "ollama run tiny:latest") || strings.Contains(got, "chown -R") {
		t.Errorf("home folder notes:\n%s", got)
	}
}

// TestInstallPulledZip installs a zip made by this tool's own pull (its
// folder entries and all) and finds exactly the files Ollama would have.
func TestInstallPulledZip(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	res, err := newTestPuller(t, f.URL).Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	modelsDir := t.TempDir()
	var out bytes.Buffer
	if err := InstallZip(t.Context(), res.Path, modelsDir, &out); err != nil {
		t.Fatalf("installZip: %v\n%s", err, out.String())
	}
	want := map[string][]byte{}
	for name, c := range testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, want) {
		t.Errorf("installed %d files, want %d", len(got), len(want))
	}
}
