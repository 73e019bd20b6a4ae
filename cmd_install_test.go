package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunInstallCommand(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 1000)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zip")
	testkit.WriteTestZip(t, good, m.Entries())
	bad := filepath.Join(dir, "bad.zip")
	testkit.WriteTestZip(t, bad, m.Entries()[1:])

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
			if tc.where != "" && !reflect.DeepEqual(testkit.ReadTree(t, tc.where), m.Files()) {
				t.Errorf("%s does not hold the model", tc.where)
			}
		})
	}
}

// TestRunInstallCommandPullsModelNames: a model name goes to the puller
// with the models folder, and ends up installed there, nothing else.
func TestRunInstallCommandPullsModelNames(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	c := modelstest.NewPuller(t, f.URL, func(cfg *modelstest.Config) { cfg.ReuseModelsDirs = []string{} })
	modelsDir := t.TempDir()
	var got models.InstallPullRequest
	pull := func(ctx context.Context, req models.InstallPullRequest) (models.PullResult, error) {
		got = req
		if req.Ref == "bad name!" {
			return models.PullResult{}, fault.BadInputf("bad model name %q", req.Ref)
		}
		return c.Pull(ctx, models.PullRequest{Ref: req.Ref, ModelsDir: req.ModelsDir, OutputDir: req.OutputDir, Retries: -1})
	}
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"tiny", "-models-dir", modelsDir, "-output-dir", out, "-registry", "http://127.0.0.1:5000"}
	if code := runInstallCommandWith(t.Context(), args, &stdout, &stderr, pull); code != 0 {
		t.Fatalf("exit code = %d: %s", code, stderr.String())
	}
	if want := (models.InstallPullRequest{Ref: "tiny", ModelsDir: modelsDir, OutputDir: out, Registry: "http://127.0.0.1:5000"}); got != want {
		t.Errorf("pull(%+v), want %+v", got, want)
	}
	want := map[string][]byte{}
	for name, c := range testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	if got := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(got, want) {
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

// TestInstallIntoRunningOllama: a model made and pushed by the stock
// Ollama to Docker Distribution (blobs through a redirect to a CDN) is
// installed by Pull straight into the folder of another running `ollama
// serve`, which lists and shows it at once; show says the same without
// fetching the weights; a zip pull afterwards takes every blob from that
// folder and the CDN serves nothing.
func TestInstallIntoRunningOllama(t *testing.T) {
	bin := testkit.FindStockOllama(t)
	reg := testkit.StartDistribution(t, testkit.FindRegistry(t), true)
	maker := testkit.StartStockOllama(t, bin, t.TempDir())
	ref := reg.Host + "/library/omdtest:latest"
	testkit.PushStockModel(t, maker, ref, 256<<10)
	// What `ollama pull` makes of it is the reference (the maker's own
	// manifest differs from the pushed one: it names the GGUF it came from).
	stock := testkit.StartStockOllama(t, bin, t.TempDir())
	stock.Run(t, "", "pull", "--insecure", ref)
	var wantID string
	for _, m := range testkit.OllamaListID.FindAllStringSubmatch(stock.Run(t, "", "list"), -1) {
		if m[1] == ref {
			wantID = m[2]
		}
	}
	if wantID == "" {
		t.Fatalf("ollama pull did not list %s:\n%s", ref, stock.Run(t, "", "list"))
	}

	target := testkit.StartStockOllama(t, bin, t.TempDir())
	c := modelstest.NewPuller(t, reg.URL, modelstest.NoReuse)
	res, err := c.Pull(t.Context(), models.PullRequest{Ref: ref, ModelsDir: target.Models, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatalf("Pull into the models folder: %v\nregistry log:\n%s", err, reg.Log())
	}
	if want := filepath.Join(target.Models, "manifests", reg.Host, "library", "omdtest", "latest"); res.Path != want {
		t.Errorf("Path = %s, want the manifest %s", res.Path, want)
	}
	listed := target.Run(t, "", "list")
	found := false
	for _, m := range testkit.OllamaListID.FindAllStringSubmatch(listed, -1) {
		if m[1] == ref && m[2] == wantID {
			found = true
		}
	}
	if !found {
		t.Fatalf("the running Ollama does not list %s with ID %s:\n%s", ref, wantID, listed)
	}
	shown := target.Run(t, "", "show", ref)
	for _, want := range []string{"llama", "OMD Test License 1.0", "temperature"} {
		if !strings.Contains(shown, want) {
			t.Errorf("ollama show lacks %q:\n%s", want, shown)
		}
	}
	// Byte for byte what `ollama pull` wrote, and nothing of ours left.
	testkit.CompareZipTree(t, testkit.StagingTree(t, target.Models), testkit.StagingTree(t, stock.Models))
	filepath.WalkDir(target.Models, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(p, models.InstallStagingFolder) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})

	// show, from the registry, without the weights.
	before := reg.CdnHits.Load()
	var stdout, stderr bytes.Buffer
	if code := runShowCommand(t.Context(), []string{"-registry", reg.URL, "-output-dir", t.TempDir(), "-models-dir", t.TempDir(), "-json", ref}, &stdout, &stderr); code != 0 {
		t.Fatalf("show: exit %d: %s", code, stderr.String())
	}
	var info models.ModelInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		t.Fatalf("show -json: %v\n%s", err, stdout.String())
	}
	if info.ID != wantID || info.Family != "llama" || info.License != "OMD Test License 1.0" || info.Size != res.Size || info.System != "You answer briefly." {
		t.Errorf("show = %+v, want ID %s, family llama, the license's first line, size %d", info, wantID, res.Size)
	}
	if hits := reg.CdnHits.Load() - before; hits != 4 { // config, license, params, system
		t.Errorf("show made %d blob requests, want 4 (the small layers, not the model)", hits)
	}

	// A zip of the installed model costs the registry's CDN nothing.
	before = reg.CdnHits.Load()
	zc := modelstest.NewPuller(t, reg.URL, func(cfg *modelstest.Config) { cfg.ReuseModelsDirs = []string{target.Models} })
	z, err := zc.Pull(t.Context(), models.PullRequest{Ref: ref, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if hits := reg.CdnHits.Load() - before; hits != 0 || z.Reused != res.Size {
		t.Errorf("zip pull of an installed model: %d CDN requests, %d bytes reused; want 0 and %d", hits, z.Reused, res.Size)
	}
}

// TestInstallResumesAfterSIGKILL runs "install NAME" as a process, kills
// it while the model blob is on its way, and runs it again. After the
// kill Ollama would see nothing (no manifest, no odd name in blobs/);
// the rerun fetches only what was missing and installs the model.
func TestInstallResumesAfterSIGKILL(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := testkit.TestBytes(2<<20, 31)
	m := f.AddModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := testkit.DigestOf(big)
	const trickleAt = 1 << 20
	f.Set(func(f *testkit.FakeRegistry) { f.Trickle[bigDigest] = trickleAt })
	dir := t.TempDir()
	modelsDir := filepath.Join(dir, "models")
	out := filepath.Join(dir, "out")
	name, err := registry.ParseName("big", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	sidecar := filepath.Join(modelsDir, models.InstallStagingFolder, filepath.Base(models.PullStagingDir("", name)), "sha256-"+strings.TrimPrefix(bigDigest, "sha256:"))
	noModels := "OLLAMA_MODELS=" + filepath.Join(dir, "no-models") // this machine's models stay out of it
	args := []string{"install", "big", "-models-dir", modelsDir, "-registry", f.URL, "-output-dir", out}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := command(t, ctx, dir, args...)
	cmd.Env = append(cmd.Env, noModels)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed int64
	for i := 0; i < 200 && committed < trickleAt; i++ {
		if st, err := engine.ReadPartState(sidecar); err == nil {
			committed = st.Saved()
		}
		if committed < trickleAt {
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if committed < trickleAt {
		t.Fatalf("install did not checkpoint %d bytes of the model blob within 10s\n%s", trickleAt, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(modelsDir, "manifests")); err == nil {
		t.Errorf("a killed install left a manifest: Ollama would list half a model")
	}
	entries, _ := os.ReadDir(filepath.Join(modelsDir, "blobs"))
	for _, e := range entries {
		if !regexp.MustCompile(`^sha256-[0-9a-f]{64}$`).MatchString(e.Name()) {
			t.Errorf("a killed install left %s in blobs/ (Ollama prunes such names)", e.Name())
		}
	}

	f.Set(func(f *testkit.FakeRegistry) { delete(f.Trickle, bigDigest); f.Ranges = nil })
	cmd = command(t, ctx, dir, args...)
	cmd.Env = append(cmd.Env, noModels)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "Installed "+f.Host+"/library/big:latest") {
		t.Errorf("second run said:\n%s", msg)
	}
	testkit.CheckInstalled(t, modelsDir, f.Host, "big", "latest", m)
	if _, err := os.Stat(filepath.Join(modelsDir, models.InstallStagingFolder)); err == nil {
		t.Errorf("the staging folder is left behind")
	}
	if _, err := os.Stat(filepath.Join(out, ".staging")); err == nil {
		t.Errorf("install NAME staged in the output folder")
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if len(f.Ranges) != 1 || testkit.ParseRangeStart(f.Ranges[0]) < trickleAt {
		t.Errorf("second run's blob requests had Range %q, want one from byte >= %d", f.Ranges, trickleAt)
	}
	if got := f.BytesServed[bigDigest]; got > int64(len(big))+trickleAt/2 {
		t.Errorf("the model blob cost %d bytes over both runs, want about %d (resumed)", got, len(big))
	}
}
