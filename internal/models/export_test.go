package models

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// exportPuller is a puller for exports: no registry is ever asked (its
// address refuses connections).
func exportPuller(t *testing.T, concurrency int) *Puller {
	t.Helper()
	return newTestPuller(t, "http://"+testkit.ClosedPort(t), noReuse, func(cfg *pullTestConfig) { cfg.Concurrency = concurrency })
}

// zipFiles reads a zip (or split set) back as a layout: every file by
// name, each blob verified.
func zipFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	l, err := OpenLayout(path)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Verify(t.Context(), nil); len(problems) > 0 {
		t.Fatalf("%s does not verify: %q", path, problems)
	}
	files := map[string][]byte{}
	for _, b := range l.Blobs {
		rc, err := l.Open(b.Name)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		files[b.Name] = buf.Bytes()
	}
	for _, m := range l.Manifests {
		files[m.Name] = m.Data
	}
	return files
}

// TestExportSeveralModelsShareBlobs: two models that share their layers
// go into one zip, each blob once, byte for byte as in the models folder,
// with no network; the zip installs into an empty folder as they were.
func TestExportSeveralModelsShareBlobs(t *testing.T) {
	src := t.TempDir()
	qwen := withConfig(t, testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "0.5b", 1, 3<<20, 100), "qwen2", "494M", "Q4_0")
	mine := sameLayers(t, qwen, "127.0.0.1:5000", "team", "Mine", "v1", "llama")
	other := testkit.NewTestModel(t, "registry.ollama.ai", "library", "other", "latest", 9, 50)
	writeModels(t, src, qwen, mine, other)
	out := t.TempDir()
	var phases []string
	res, err := exportPuller(t, 2).Export(t.Context(), ExportRequest{
		Refs: []string{"qwen2:0.5b", "127.0.0.1:5000/team/mine:V1", "QWEN2:0.5b"}, ModelsDir: src, OutputDir: out,
		Progress: func(p PullProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "qwen2-0.5b-and-1-more.zip"); res.Path != want {
		t.Errorf("zip at %s, want %s", res.Path, want)
	}
	want := maps.Clone(qwen.Files())
	maps.Copy(want, mine.Files())
	if got := zipFiles(t, res.Path); !reflect.DeepEqual(got, want) {
		t.Errorf("the zip holds %v, want exactly both models %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	if !slices.Contains(phases, "copying") || res.Reused != 0 {
		t.Errorf("phases %q, reused %d: an export copies (it reuses nothing)", phases, res.Reused)
	}
	// Nothing left but the zip (and no staging).
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("the output folder holds %d entries, want the zip alone", len(entries))
	}
	// The zip installs into an empty models folder as the models were.
	target := t.TempDir()
	if err := InstallZip(t.Context(), res.Path, target, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadTree(t, target); !reflect.DeepEqual(got, want) {
		t.Errorf("installed %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}

	// The same export again finds its zip whole and leaves it be.
	before, _ := os.Stat(res.Path)
	again, err := exportPuller(t, 2).Export(t.Context(), ExportRequest{Refs: []string{"qwen2:0.5b", "127.0.0.1:5000/team/Mine:v1"}, ModelsDir: src, OutputDir: out})
	after, _ := os.Stat(res.Path)
	if err != nil || again.Path != res.Path || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("export again: %v, %s; want the same zip, untouched", err, again.Path)
	}
}

// TestExportRefusesDamagedBlob: a blob whose bytes are not its digest
// (same size) is named with its model, and no zip is published; a blob
// that is missing is refused before anything is written.
func TestExportRefusesDamagedBlob(t *testing.T) {
	src := t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 2<<20, 200)
	writeModels(t, src, m)
	blob := filepath.Join(src, filepath.FromSlash(testkit.BlobEntryName(m.Order[1])))
	data := testkit.ReadFile(t, blob)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err := exportPuller(t, 1).Export(t.Context(), ExportRequest{Refs: []string{"tiny"}, ModelsDir: src, OutputDir: out})
	file := filepath.Base(blob)
	if err == nil || !strings.Contains(err.Error(), "tiny:latest: blob "+file+" in "+filepath.Join(src, "blobs")+" is damaged") ||
		!strings.Contains(err.Error(), "nothing was exported") || !errors.Is(err, fault.ErrChecksumMismatch) {
		t.Fatalf("err = %v, want the damaged blob named with its model", err)
	}
	if _, err := os.Stat(filepath.Join(out, "tiny-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a zip was published: %v", err)
	}

	os.Remove(blob)
	out = t.TempDir()
	_, err = exportPuller(t, 1).Export(t.Context(), ExportRequest{Refs: []string{"tiny"}, ModelsDir: src, OutputDir: out})
	if err == nil || !strings.Contains(err.Error(), "tiny:latest is incomplete in "+src+": its blob "+file+" is missing") {
		t.Fatalf("err = %v, want the missing blob named", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused export wrote %d entries", len(entries))
	}
}

// TestExportResumesAfterStop: an export stopped (Ctrl-C) after its first
// large blob is in the zip continues from its resume state: that blob is
// not read again — here it is damaged in the models folder afterwards,
// and the rerun still writes the zip right.
func TestExportResumesAfterStop(t *testing.T) {
	src := t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "two", "latest", 1, 2<<20, 3<<20)
	writeModels(t, src, m)
	out := t.TempDir()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	names := []registry.Name{{Host: "registry.ollama.ai", Namespace: "library", Model: "two", Tag: "latest"}}
	state := filepath.Join(ExportStagingDir(out, names, src), zipStateFile)
	var recorded string
	_, err := exportPuller(t, 1).Export(ctx, ExportRequest{Refs: []string{"two"}, ModelsDir: src, OutputDir: out, Progress: func(p PullProgress) {
		if recorded != "" {
			return
		}
		var st zipPullState
		if data, err := os.ReadFile(state); err == nil && json.Unmarshal(data, &st) == nil {
			for d := range st.Done {
				recorded = d
				stop() // Ctrl-C, once one blob is durable in the zip
			}
		}
	}})
	if !errors.Is(err, context.Canceled) || recorded == "" {
		t.Fatalf("err = %v, recorded %q; want a stop after one blob", err, recorded)
	}
	if _, err := os.Stat(filepath.Join(out, "two-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a stopped export published its zip: %v", err)
	}
	// The blob already in the zip is damaged in the models folder now: a
	// rerun that read it again would refuse it.
	blob := filepath.Join(src, filepath.FromSlash(testkit.BlobEntryName(recorded)))
	good := testkit.ReadFile(t, blob)
	bad := slices.Clone(good)
	bad[0] ^= 1
	os.WriteFile(blob, bad, 0o644)
	res, err := exportPuller(t, 1).Export(t.Context(), ExportRequest{Refs: []string{"two"}, ModelsDir: src, OutputDir: out})
	if err != nil {
		t.Fatalf("the rerun read the blob already exported again: %v", err)
	}
	if got := zipFiles(t, res.Path); !reflect.DeepEqual(got, m.Files()) {
		t.Errorf("the resumed zip differs from the model")
	}
	if _, err := os.Stat(filepath.Dir(state)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("resume state left after success: %v", err)
	}
}

// TestExportSplit: -split writes parts that read back as the model.
func TestExportSplit(t *testing.T) {
	src := t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "big", "latest", 1, 3<<20)
	writeModels(t, src, m)
	out := t.TempDir()
	res, err := exportPuller(t, 2).Export(t.Context(), ExportRequest{Refs: []string{"big"}, ModelsDir: src, OutputDir: out, Split: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 4 || res.Path != filepath.Join(out, "big-latest.zip.001") {
		t.Fatalf("parts %v, path %s; want 4 parts from big-latest.zip.001", res.Parts, res.Path)
	}
	for _, p := range res.Parts[:3] {
		if fi, err := os.Stat(p); err != nil || fi.Size() != 1<<20 {
			t.Errorf("%s: %v, want 1 MiB", p, err)
		}
	}
	if got := zipFiles(t, res.Path); !reflect.DeepEqual(got, m.Files()) {
		t.Errorf("the split set does not hold the model")
	}
	if _, err := exportPuller(t, 2).Export(t.Context(), ExportRequest{Refs: []string{"big"}, ModelsDir: src, OutputDir: out, Split: 1000}); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("-split 1000: %v, want bad input", err)
	}
}

// TestExportSpeedLimit: an export's own limit paces its copy, and a
// change of the limit applies at once.
func TestExportSpeedLimit(t *testing.T) {
	src := t.TempDir()
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "slow", "latest", 1, 1<<20)
	writeModels(t, src, m)
	out := t.TempDir()
	// 1 MiB at 64 KiB/s takes 16 s: a second is far from enough.
	limiter := engine.NewRateLimiter(64 << 10)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := exportPuller(t, 1).Export(ctx, ExportRequest{Refs: []string{"slow"}, ModelsDir: src, OutputDir: out, Limiter: limiter})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the paced copy still running after a second", err)
	}
	limiter.SetRate(0)
	res, err := exportPuller(t, 1).Export(t.Context(), ExportRequest{Refs: []string{"slow"}, ModelsDir: src, OutputDir: out, Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	if got := zipFiles(t, res.Path); !reflect.DeepEqual(got, m.Files()) {
		t.Errorf("the zip does not hold the model")
	}
}

// TestPullOfflineSuggestsExport: a registry that cannot be reached is
// one line; when this machine's Ollama has the model, it says that export
// takes it from there (issue 23).
func TestPullOfflineSuggestsExport(t *testing.T) {
	local := t.TempDir()
	addr := testkit.ClosedPort(t)
	m := testkit.NewTestModel(t, addr, "library", "tiny", "latest", 1, 100)
	writeModels(t, local, m)
	c := newTestPuller(t, "http://"+addr, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{local} })
	_, err := c.Pull(t.Context(), PullRequest{Ref: addr + "/library/tiny", OutputDir: t.TempDir(), Retries: 0})
	want := "cannot reach the registry " + addr + ": the connection was refused; it is in this machine's Ollama (" + local + ", ID " + strings.TrimPrefix(m.Digest, "sha256:")[:12] + "): 'ollama-model-downloader export " + addr + "/library/tiny:latest' takes it from here"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if fault.Code(err) != "refused" {
		t.Errorf("error code %q, want refused (the cause stays known)", fault.Code(err))
	}
	_, err = c.Pull(t.Context(), PullRequest{Ref: addr + "/library/other", OutputDir: t.TempDir(), Retries: 0})
	if err == nil || err.Error() != "cannot reach the registry "+addr+": the connection was refused" {
		t.Errorf("a model not here: %v", err)
	}
	// Installing it where it already is says so.
	_, err = c.Pull(t.Context(), PullRequest{Ref: addr + "/library/tiny", ModelsDir: local, Retries: 0})
	if err == nil || !strings.HasSuffix(err.Error(), "; "+local+" already has it (ID "+strings.TrimPrefix(m.Digest, "sha256:")[:12]+")") {
		t.Errorf("install offline: %v", err)
	}
}

// TestCheckUpdate: the registry's manifest for the tag against the local
// one, by a HEAD of the manifest and no blob.
func TestCheckUpdate(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	served := testkit.TinyModel(f, "tiny", "latest")
	local := t.TempDir()
	name, _ := registry.ParseName("tiny", f.Host)
	for d, b := range served.Blobs {
		testkit.WriteTestFile(t, filepath.Join(local, "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:")), string(b))
	}
	manifest := filepath.Join(local, "manifests", name.Host, "library", "tiny", "latest")
	testkit.WriteTestFile(t, manifest, string(served.Manifest))
	c := newTestPuller(t, f.URL)
	ref := f.Host + "/library/tiny"

	got, err := c.CheckUpdate(t.Context(), local, ref)
	id := strings.TrimPrefix(served.Digest, "sha256:")[:12]
	if err != nil || got.Status != UpdateUpToDate || got.LocalID != id || got.RemoteID != id || got.Name != ref+":latest" {
		t.Errorf("same manifest: %+v, %v; want up to date", got, err)
	}
	newer := f.AddModel("library/tiny", "latest", testkit.TestBytes(1000, 7))
	got, err = c.CheckUpdate(t.Context(), local, ref)
	if err != nil || got.Status != UpdateAvailable || got.RemoteID != strings.TrimPrefix(newer.Digest, "sha256:")[:12] || got.LocalID != id {
		t.Errorf("a newer manifest: %+v, %v; want update available", got, err)
	}
	f.Mu.Lock()
	methods, blobs := slices.Clone(f.ManifestMethods), len(f.RegistryBlobHits)+len(f.CDNHits)
	f.Mu.Unlock()
	if !reflect.DeepEqual(methods, []string{"HEAD", "HEAD"}) || blobs != 0 {
		t.Errorf("the checks asked %q of the manifest and %d blobs; want one HEAD each, no blob", methods, blobs)
	}

	other := testkit.NewTestModel(t, f.Host, "library", "made-here", "latest", 3, 10)
	writeModels(t, local, other)
	if got, err := c.CheckUpdate(t.Context(), local, f.Host+"/library/made-here"); err != nil || got.Status != UpdateNotFound {
		t.Errorf("a tag the registry does not have: %+v, %v; want not_found", got, err)
	}
	if _, err := c.CheckUpdate(t.Context(), local, f.Host+"/library/absent"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a model not in the folder: %v, want not found", err)
	}
	f.Srv.Close()
	if got, err := c.CheckUpdate(t.Context(), local, ref); err != nil || got.Status != UpdateUnreachable || got.ErrorCode != "refused" {
		t.Errorf("registry gone: %+v, %v; want unreachable", got, err)
	}
}

// BenchmarkExport is a whole export of a 256 MiB model from a models
// folder: plan, copy with SHA-256 and CRC-32 in one pass, fsync, headers,
// read-back of the directory, publish.
func BenchmarkExport(b *testing.B) {
	src := b.TempDir()
	m := testkit.NewTestModel(b, "registry.ollama.ai", "library", "bench", "latest", 1, 256<<20, 1000)
	testkit.WriteTestFolder(b, src, m.Entries())
	p := NewPuller(newBenchRegistry(b))
	b.SetBytes(256<<20 + 1000)
	for b.Loop() {
		out := b.TempDir()
		if _, err := p.Export(b.Context(), ExportRequest{Refs: []string{"bench"}, ModelsDir: src, OutputDir: out}); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
	}
}

// newBenchRegistry is a registry client that is never asked.
func newBenchRegistry(b *testing.B) *registry.Client {
	c, err := registry.New(registry.Config{Registry: "http://127.0.0.1:1", Concurrency: 4})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// TestCheckUpdateWithoutHead: a registry that does not answer a HEAD with
// the manifest's digest is asked with a GET, whose bytes are hashed.
func TestCheckUpdateWithoutHead(t *testing.T) {
	m := testkit.NewTestModel(t, "", "library", "tiny", "latest", 1, 10)
	var methods []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method)
		mu.Unlock()
		if r.URL.Path != "/v2/library/tiny/manifests/latest" || r.Method != http.MethodGet {
			http.Error(w, "no", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", registry.MediaDockerManifest)
		w.Write(m.Manifest.Data)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	local := t.TempDir()
	m.Manifest.Name = "manifests/" + host + "/library/tiny/latest"
	writeModels(t, local, m)
	got, err := newTestPuller(t, srv.URL).CheckUpdate(t.Context(), local, host+"/library/tiny")
	if err != nil || got.Status != UpdateUpToDate {
		t.Errorf("check = %+v, %v; want up to date", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(methods, []string{"HEAD", "GET"}) {
		t.Errorf("asked %q, want a HEAD, then a GET", methods)
	}
}
