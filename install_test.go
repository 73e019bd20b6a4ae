package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestInstallZip(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
	writeTestZip(t, zipPath, m.entries())
	modelsDir := filepath.Join(t.TempDir(), "models") // does not exist yet

	var out bytes.Buffer
	if err := installZip(t.Context(), zipPath, modelsDir, &out); err != nil {
		t.Fatalf("installZip: %v\n%s", err, out.String())
	}
	if got := readTree(t, modelsDir); !reflect.DeepEqual(got, m.files()) {
		t.Errorf("models folder holds %d files, want exactly the zip's %d", len(got), len(m.files()))
	}
	for _, want := range []string{"tiny:latest: installed", "written", "ollama run tiny:latest"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	fi, err := os.Stat(filepath.Join(modelsDir, filepath.FromSlash(m.manifest.name)))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("manifest mode = %v, %v; want 0644", fi.Mode(), err)
	}

	// Again: everything is there and identical, nothing to do.
	out.Reset()
	if err := installZip(t.Context(), zipPath, modelsDir, &out); err != nil {
		t.Fatalf("second installZip: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "already installed") || strings.Contains(out.String(), "written") {
		t.Errorf("second install output:\n%s", out.String())
	}

	// A second model sharing the config blob: only what is new is written.
	m2 := newTestModel(t, "registry.ollama.ai", "library", "tiny", "q8", 1, 900)
	zip2 := filepath.Join(t.TempDir(), "tiny-q8.zip")
	writeTestZip(t, zip2, m2.entries())
	out.Reset()
	if err := installZip(t.Context(), zip2, modelsDir, &out); err != nil {
		t.Fatalf("installing a second tag: %v\n%s", err, out.String())
	}
	want := m.files()
	for k, v := range m2.files() {
		want[k] = v
	}
	if got := readTree(t, modelsDir); !reflect.DeepEqual(got, want) {
		t.Errorf("after two installs: %d files, want %d", len(got), len(want))
	}
	if !strings.Contains(out.String(), "already present") {
		t.Errorf("shared config blob not reported as present:\n%s", out.String())
	}
}

func TestInstallFromFolder(t *testing.T) {
	m := newTestModel(t, "127.0.0.1:5000", "library", "tiny", "latest", 3, 4000)
	src := t.TempDir()
	writeTestFolder(t, src, m.entries())
	modelsDir := t.TempDir()
	var out bytes.Buffer
	if err := installZip(t.Context(), src, modelsDir, &out); err != nil {
		t.Fatalf("installZip(folder): %v\n%s", err, out.String())
	}
	if got := readTree(t, modelsDir); !reflect.DeepEqual(got, m.files()) {
		t.Errorf("models folder differs from the source folder")
	}
}

func TestInstallRefusesTamperedZips(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			zipPath := filepath.Join(t.TempDir(), "bad.zip")
			writeTestZip(t, zipPath, tc.mutate(m, m.entries()))
			root := t.TempDir()
			modelsDir := filepath.Join(root, "models")
			var out bytes.Buffer
			err := installZip(t.Context(), zipPath, modelsDir, &out)
			if err == nil {
				t.Fatalf("installZip accepted a zip with %s:\n%s", tc.name, out.String())
			}
			if !strings.Contains(out.String(), tc.problem) {
				t.Errorf("output lacks %q:\n%s", tc.problem, out.String())
			}
			if got := readTree(t, root); len(got) != 0 {
				t.Errorf("files written after a refused install: %v", got)
			}
			if _, err := os.Stat(modelsDir); !os.IsNotExist(err) {
				t.Errorf("models folder created after a refused install: %v", err)
			}
		})
	}
}

func TestInstallNeverOverwritesADifferentFile(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 70_000, 300)
	zipPath := filepath.Join(t.TempDir(), "tiny-latest.zip")
	writeTestZip(t, zipPath, m.entries())
	layer := m.blobs[m.order[1]]
	damaged := append([]byte(nil), layer...)
	damaged[0] ^= 0xff

	tests := []struct {
		name     string
		existing []testEntry
	}{
		{"another version of the tag", []testEntry{{name: m.manifest.name, data: []byte(`{"schemaVersion":2}`)}}},
		{"a damaged blob of the same size", []testEntry{{name: blobEntryName(m.order[1]), data: damaged}}},
		{"a blob of another size", []testEntry{{name: blobEntryName(m.order[2]), data: []byte("short")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modelsDir := t.TempDir()
			writeTestFolder(t, modelsDir, tc.existing)
			before := readTree(t, modelsDir)
			var out bytes.Buffer
			err := installZip(t.Context(), zipPath, modelsDir, &out)
			if !errors.Is(err, errConflict) {
				t.Fatalf("installZip = %v, want errConflict\n%s", err, out.String())
			}
			if got := readTree(t, modelsDir); !reflect.DeepEqual(got, before) {
				t.Errorf("models folder changed: %d files, was %d", len(got), len(before))
			}
		})
	}
}

func TestRunInstallCommand(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 1000)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zip")
	writeTestZip(t, good, m.entries())
	bad := filepath.Join(dir, "bad.zip")
	writeTestZip(t, bad, m.entries()[1:])

	envModels := filepath.Join(t.TempDir(), "env-models")
	t.Setenv("OLLAMA_MODELS", envModels)
	flagModels := filepath.Join(t.TempDir(), "flag-models")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
		where  string // folder that must now hold the model
	}{
		{"no argument", nil, 2, "name a zip", ""},
		{"unknown flag", []string{"-force", good}, 2, "flag provided but not defined", ""},
		{"help", []string{"-h"}, 0, "", ""}, // on stdout: TestCLIHelpOnStdout
		{"model name without a puller", []string{"tiny:latest"}, 2, "not a zip or a folder", ""},
		{"missing file", []string{filepath.Join(dir, "nope.zip")}, 1, "no such file", ""},
		{"tampered", []string{bad}, 1, "nothing was installed", ""},
		{"OLLAMA_MODELS", []string{good}, 0, "", envModels},
		{"flag after the argument", []string{good, "-models-dir", flagModels}, 0, "", flagModels},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runInstallCommand(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q: %s", tc.stderr, stderr.String())
			}
			if tc.where != "" && !reflect.DeepEqual(readTree(t, tc.where), m.files()) {
				t.Errorf("%s does not hold the model", tc.where)
			}
		})
	}
}

func TestInstallNotes(t *testing.T) {
	mf := []layoutManifest{{Host: "registry.ollama.ai", Namespace: "library", Model: "tiny", Tag: "latest"}}
	joined := func(notes []string) string { return strings.Join(notes, "\n") }
	if got := joined(installNotes(linuxServiceModelsDir, "linux", mf)); !strings.Contains(got, "sudo chown -R ollama:ollama "+linuxServiceModelsDir) {
		t.Errorf("linux service folder: no chown note:\n%s", got)
	}
	if got := joined(installNotes(linuxServiceModelsDir+"/", "darwin", mf)); strings.Contains(got, "chown") {
		t.Errorf("darwin: chown note:\n%s", got)
	}
	if got := joined(installNotes("/home/u/.ollama/models", "linux", mf)); !strings.Contains(got, "ollama run tiny:latest") || strings.Contains(got, "chown -R") {
		t.Errorf("home folder notes:\n%s", got)
	}
}

// TestRunInstallCommandPullsModelNames: a model name goes to the puller
// with the models folder, and ends up installed there, nothing else.
func TestRunInstallCommandPullsModelNames(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{} })
	modelsDir := t.TempDir()
	var got installPullRequest
	pull := func(ctx context.Context, req installPullRequest) (pullResult, error) {
		got = req
		if req.Ref == "bad name!" {
			return pullResult{}, badInputf("bad model name %q", req.Ref)
		}
		return c.Pull(ctx, pullRequest{Ref: req.Ref, ModelsDir: req.ModelsDir, OutputDir: req.OutputDir, Retries: -1})
	}
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"tiny", "-models-dir", modelsDir, "-output-dir", out, "-registry", "http://127.0.0.1:5000"}
	if code := runInstallCommandWith(t.Context(), args, &stdout, &stderr, pull); code != 0 {
		t.Fatalf("exit code = %d: %s", code, stderr.String())
	}
	if want := (installPullRequest{Ref: "tiny", ModelsDir: modelsDir, OutputDir: out, Registry: "http://127.0.0.1:5000"}); got != want {
		t.Errorf("pull(%+v), want %+v", got, want)
	}
	want := map[string][]byte{}
	for name, c := range expectedTree(f.Host, "library", "tiny", "latest", m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	if got := readTree(t, modelsDir); !reflect.DeepEqual(got, want) {
		t.Errorf("models folder holds %v, want exactly the model", slices.Sorted(maps.Keys(got)))
	}
	if !strings.Contains(stdout.String(), "Installed "+f.Host+"/library/tiny:latest (ID "+strings.TrimPrefix(m.Digest, "sha256:")[:12]) {
		t.Errorf("output lacks the installed line with the ID:\n%s", stdout.String())
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("install NAME wrote into the output folder: %v", err)
	}
	if code := runInstallCommandWith(t.Context(), []string{"bad name!", "-models-dir", modelsDir}, &stdout, &stderr, pull); code != 2 {
		t.Errorf("bad model name: exit code = %d, want 2", code)
	}
}

// TestInstallPulledZip installs a zip made by this tool's own pull (its
// folder entries and all) and finds exactly the files Ollama would have.
func TestInstallPulledZip(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	res, err := newTestPuller(t, f.URL).Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	modelsDir := t.TempDir()
	var out bytes.Buffer
	if err := installZip(t.Context(), res.Path, modelsDir, &out); err != nil {
		t.Fatalf("installZip: %v\n%s", err, out.String())
	}
	want := map[string][]byte{}
	for name, c := range expectedTree(f.Host, "library", "tiny", "latest", m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	if got := readTree(t, modelsDir); !reflect.DeepEqual(got, want) {
		t.Errorf("installed %d files, want %d", len(got), len(want))
	}
}
