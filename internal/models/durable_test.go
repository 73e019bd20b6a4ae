package models

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"ollama-model-downloader/internal/testkit"
)

// syncRecorder stands in for disk.SyncDir: it notes every folder synced,
// and fails (EIO) for folders whose path ends with failOn.
type syncRecorder struct {
	mu     sync.Mutex
	dirs   []string
	failOn string
}

func (s *syncRecorder) sync(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirs = append(s.dirs, filepath.ToSlash(dir))
	if s.failOn != "" && strings.HasSuffix(filepath.ToSlash(dir), s.failOn) {
		return &os.PathError{Op: "sync", Path: dir, Err: syscall.EIO}
	}
	return nil
}

// manifestsIn lists the files under modelsDir/manifests.
func manifestsIn(t *testing.T, modelsDir string) []string {
	t.Helper()
	var got []string
	filepath.WalkDir(filepath.Join(modelsDir, "manifests"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p)
		}
		return nil
	})
	return got
}

// TestInstallZipManifestsLast: installing a zip or a folder writes and
// syncs every blob before any manifest (Ollama lists a model as soon as
// its manifest exists). When the blobs cannot be made durable, no manifest
// is written; when the manifest's own folder cannot, the install fails.
func TestInstallZipManifestsLast(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 2, 70_000, 300)
	src := filepath.Join(t.TempDir(), "tiny-latest.zip")
	testkit.WriteTestZip(t, src, m.Entries())
	install := func(failOn string) (*syncRecorder, string, error) {
		t.Helper()
		rec := &syncRecorder{failOn: failOn}
		modelsDir := t.TempDir()
		zs, err := openZipSource(src)
		if err != nil {
			t.Fatal(err)
		}
		defer zs.Close()
		l, err := OpenLayoutFrom(zs)
		if err != nil {
			t.Fatal(err)
		}
		err = (&installer{syncDir: rec.sync}).install(t.Context(), l, src, modelsDir, io.Discard)
		return rec, modelsDir, err
	}

	rec, modelsDir, err := install("")
	if err != nil {
		t.Fatal(err)
	}
	blobs, manifest := -1, -1
	for i, d := range rec.dirs {
		switch {
		case strings.HasSuffix(d, "/blobs") && blobs < 0:
			blobs = i
		case strings.Contains(d, "/manifests/") && manifest < 0:
			manifest = i
		}
	}
	if blobs < 0 || manifest < 0 || blobs > manifest {
		t.Errorf("folders synced in the order %v: want blobs/ before the manifest's folder", rec.dirs)
	}
	if len(manifestsIn(t, modelsDir)) != 1 {
		t.Fatalf("manifests: %v", manifestsIn(t, modelsDir))
	}

	_, modelsDir, err = install("/blobs")
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("blobs/ not synced: err = %v, want the EIO", err)
	}
	if got := manifestsIn(t, modelsDir); len(got) != 0 {
		t.Errorf("blobs/ could not be synced, yet a manifest was written: %v (Ollama lists a model without its blobs)", got)
	}

	_, _, err = install("/tiny")
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("the manifest's folder not synced: err = %v, want the EIO", err)
	}
}

// TestPullInstallSyncs: a pull straight into a models folder (install
// NAME) syncs blobs/ before writing the manifest and the manifest's folder
// after; either failing fails the pull, and a failed blobs/ sync leaves no
// manifest.
func TestPullInstallSyncs(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	testkit.TinyModel(f, "tiny", "latest")
	for _, tc := range []struct {
		failOn       string
		wantManifest bool
	}{{"/blobs", false}, {"/tiny", true}, {"", true}} {
		rec := &syncRecorder{failOn: tc.failOn}
		p := newTestPuller(t, f.URL, noReuse)
		p.SyncDir = rec.sync
		modelsDir := t.TempDir()
		_, err := p.Pull(t.Context(), PullRequest{Ref: "tiny", ModelsDir: modelsDir, Retries: -1})
		if tc.failOn != "" && !errors.Is(err, syscall.EIO) {
			t.Errorf("sync of %s failing: err = %v, want the EIO", tc.failOn, err)
		}
		if tc.failOn == "" && err != nil {
			t.Fatal(err)
		}
		if got := len(manifestsIn(t, modelsDir)) == 1; got != tc.wantManifest {
			t.Errorf("sync of %q failing: manifest written %v, want %v (synced %v)", tc.failOn, got, tc.wantManifest, rec.dirs)
		}
	}
}

// TestPullZipSyncsItsFolder: a pull into a zip is complete only once the
// zip's rename is durable: a folder that cannot be synced fails the pull.
func TestPullZipSyncsItsFolder(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	testkit.TinyModel(f, "tiny", "latest")
	for _, split := range []int64{0, 1 << 20} {
		out := t.TempDir()
		rec := &syncRecorder{failOn: filepath.ToSlash(out)}
		p := newTestPuller(t, f.URL, noReuse)
		p.SyncDir = rec.sync
		_, err := p.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Retries: -1, Split: split})
		if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "power cut") {
			t.Errorf("split %d: err = %v, want the failed folder sync", split, err)
		}
		if !bytes.Contains([]byte(strings.Join(rec.dirs, "\n")), []byte(filepath.ToSlash(out))) {
			t.Errorf("split %d: the zip's folder was never synced: %v", split, rec.dirs)
		}
	}
}
