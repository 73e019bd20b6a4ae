package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// findStockOllama finds the stock Ollama: $OLLAMA_BIN, the shared tools
// folder beside the repository (or its worktrees), ollama on PATH.
// Without one the test is skipped, except under CI where it must be there.
func findStockOllama(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("OLLAMA_BIN"), filepath.Join("..", "shared", "tools", "ollama"), filepath.Join("..", "..", "shared", "tools", "ollama")}
	if p, err := exec.LookPath("ollama"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the stock Ollama is missing: set OLLAMA_BIN or put it at ../shared/tools/ollama")
	}
	t.Skip("the stock Ollama is missing (set OLLAMA_BIN, or ../shared/tools/ollama): skipping")
	return ""
}

// findRegistry finds Debian's docker-registry, with the same rules.
func findRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath(registryBinary)
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (apt-get install docker-registry): %v", registryBinary, err)
	}
	t.Skipf("%s not installed; apt-get install docker-registry to run this test", registryBinary)
	return ""
}

// stockOllama is one `ollama serve` with its own HOME, models folder and port.
type stockOllama struct {
	bin, home, models, host string
	extraEnv                []string
	out                     *lockedBuffer
}

func (o *stockOllama) env() []string {
	return append([]string{"PATH=/usr/bin:/bin", "HOME=" + o.home, "OLLAMA_MODELS=" + o.models, "OLLAMA_HOST=" + o.host, "OLLAMA_NO_CLOUD=1"}, o.extraEnv...)
}

// startStockOllama starts `ollama serve` on models, with extraEnv, and
// waits (bounded) until it answers.
func startStockOllama(t *testing.T, bin, modelsDir string, extraEnv ...string) *stockOllama {
	t.Helper()
	o := &stockOllama{bin: bin, home: t.TempDir(), models: modelsDir, host: freeLoopbackAddr(t), extraEnv: extraEnv, out: &lockedBuffer{}}
	cmd := exec.Command(bin, "serve")
	cmd.Env = o.env()
	cmd.Stdout, cmd.Stderr = o.out, o.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ollama serve: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("ollama serve did not exit within 10s of being killed")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 400 && time.Now().Before(deadline); i++ {
		select {
		case <-exited:
			t.Fatalf("ollama serve exited:\n%s", o.out.String())
		default:
		}
		if resp, err := http.Get("http://" + o.host + "/api/version"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ollama serve did not answer within 20s:\n%s", o.out.String())
	return nil
}

// run runs the ollama CLI against this server.
func (o *stockOllama) run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Env, cmd.Dir = o.env(), dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ollama %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, o.out.String())
	}
	return string(out)
}

// writeTestGGUF writes a GGUF v3 file that `ollama create` accepts: the
// metadata keys Ollama reads and one F32 tensor of dataBytes bytes. The
// tensor is named under "v." so the stock build, which has no llama.cpp,
// does not ask llama-quantize to check it.
func writeTestGGUF(path string, dataBytes int, seed byte) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	str := func(s string) { binary.Write(&b, le, uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	binary.Write(&b, le, uint32(3))
	binary.Write(&b, le, uint64(1)) // tensors
	binary.Write(&b, le, uint64(4)) // metadata pairs
	str("general.architecture")
	binary.Write(&b, le, uint32(8)) // string
	str("llama")
	str("general.name")
	binary.Write(&b, le, uint32(8))
	str("omd-test")
	str("llama.context_length")
	binary.Write(&b, le, uint32(4)) // uint32
	binary.Write(&b, le, uint32(2048))
	str("general.file_type")
	binary.Write(&b, le, uint32(4))
	binary.Write(&b, le, uint32(0)) // F32
	str("v.test")
	binary.Write(&b, le, uint32(1)) // dimensions
	binary.Write(&b, le, uint64(dataBytes/4))
	binary.Write(&b, le, uint32(0)) // F32
	binary.Write(&b, le, uint64(0)) // offset
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b.Bytes())
	for left := dataBytes; err == nil && left > 0; {
		chunk := testBytes(min(left, 1<<20), seed)
		_, err = f.Write(chunk)
		left -= len(chunk)
		seed++
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pushStockModel makes a model with the stock Ollama (a GGUF, a license,
// parameters) and pushes it to the registry as ref; it returns what the
// registry now serves as ref's manifest digest (as `ollama list` shows).
func pushStockModel(t *testing.T, o *stockOllama, ref string, dataBytes int) {
	t.Helper()
	dir := t.TempDir()
	if err := writeTestGGUF(filepath.Join(dir, "tiny.gguf"), dataBytes, 5); err != nil {
		t.Fatal(err)
	}
	modelfile := "FROM ./tiny.gguf\nLICENSE \"\"\"OMD Test License 1.0\nsecond line\"\"\"\nPARAMETER temperature 0.25\nSYSTEM You answer briefly.\n"
	if err := os.WriteFile(filepath.Join(dir, "Modelfile"), []byte(modelfile), 0o644); err != nil {
		t.Fatal(err)
	}
	o.run(t, dir, "create", "omdtest", "-f", "Modelfile")
	o.run(t, dir, "cp", "omdtest", ref)
	o.run(t, dir, "push", "--insecure", ref)
}

var ollamaListID = regexp.MustCompile(`(?m)^(\S+)\s+([0-9a-f]{12})\s`)

// TestInstallIntoRunningOllama: a model made and pushed by the stock
// Ollama to Docker Distribution (blobs through a redirect to a CDN) is
// installed by Pull straight into the folder of another running `ollama
// serve`, which lists and shows it at once; show says the same without
// fetching the weights; a zip pull afterwards takes every blob from that
// folder and the CDN serves nothing.
func TestInstallIntoRunningOllama(t *testing.T) {
	bin := findStockOllama(t)
	reg := startDistribution(t, findRegistry(t), true)
	maker := startStockOllama(t, bin, t.TempDir())
	ref := reg.Host + "/library/omdtest:latest"
	pushStockModel(t, maker, ref, 256<<10)
	// What `ollama pull` makes of it is the reference (the maker's own
	// manifest differs from the pushed one: it names the GGUF it came from).
	stock := startStockOllama(t, bin, t.TempDir())
	stock.run(t, "", "pull", "--insecure", ref)
	var wantID string
	for _, m := range ollamaListID.FindAllStringSubmatch(stock.run(t, "", "list"), -1) {
		if m[1] == ref {
			wantID = m[2]
		}
	}
	if wantID == "" {
		t.Fatalf("ollama pull did not list %s:\n%s", ref, stock.run(t, "", "list"))
	}

	target := startStockOllama(t, bin, t.TempDir())
	c := newTestPuller(t, reg.URL, noReuse)
	res, err := c.Pull(t.Context(), pullRequest{Ref: ref, ModelsDir: target.models, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatalf("Pull into the models folder: %v\nregistry log:\n%s", err, reg.log())
	}
	if want := filepath.Join(target.models, "manifests", reg.Host, "library", "omdtest", "latest"); res.Path != want {
		t.Errorf("Path = %s, want the manifest %s", res.Path, want)
	}
	listed := target.run(t, "", "list")
	found := false
	for _, m := range ollamaListID.FindAllStringSubmatch(listed, -1) {
		if m[1] == ref && m[2] == wantID {
			found = true
		}
	}
	if !found {
		t.Fatalf("the running Ollama does not list %s with ID %s:\n%s", ref, wantID, listed)
	}
	shown := target.run(t, "", "show", ref)
	for _, want := range []string{"llama", "OMD Test License 1.0", "temperature"} {
		if !strings.Contains(shown, want) {
			t.Errorf("ollama show lacks %q:\n%s", want, shown)
		}
	}
	// Byte for byte what `ollama pull` wrote, and nothing of ours left.
	compareZipTree(t, stagingTree(t, target.models), stagingTree(t, stock.models))
	filepath.WalkDir(target.models, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(p, installStagingFolder) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})

	// show, from the registry, without the weights.
	before := reg.cdnHits.Load()
	var stdout, stderr bytes.Buffer
	if code := runShowCommand(t.Context(), []string{"-registry", reg.URL, "-output-dir", t.TempDir(), "-models-dir", t.TempDir(), "-json", ref}, &stdout, &stderr); code != 0 {
		t.Fatalf("show: exit %d: %s", code, stderr.String())
	}
	var info modelInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		t.Fatalf("show -json: %v\n%s", err, stdout.String())
	}
	if info.ID != wantID || info.Family != "llama" || info.License != "OMD Test License 1.0" || info.Size != res.Size || info.System != "You answer briefly." {
		t.Errorf("show = %+v, want ID %s, family llama, the license's first line, size %d", info, wantID, res.Size)
	}
	if hits := reg.cdnHits.Load() - before; hits != 4 { // config, license, params, system
		t.Errorf("show made %d blob requests, want 4 (the small layers, not the model)", hits)
	}

	// A zip of the installed model costs the registry's CDN nothing.
	before = reg.cdnHits.Load()
	zc := newTestPuller(t, reg.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{target.models} })
	z, err := zc.Pull(t.Context(), pullRequest{Ref: ref, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if hits := reg.cdnHits.Load() - before; hits != 0 || z.Reused != res.Size {
		t.Errorf("zip pull of an installed model: %d CDN requests, %d bytes reused; want 0 and %d", hits, z.Reused, res.Size)
	}
}

// TestInstallStagingSurvivesOllamaServe: files two hours old in the
// install staging folder survive an `ollama serve` start on that models
// folder, while the same in blobs/ (a partial name, an unreferenced blob)
// are pruned: the staging folder is outside what Ollama prunes.
func TestInstallStagingSurvivesOllamaServe(t *testing.T) {
	bin := findStockOllama(t)
	modelsDir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	hexDigest := strings.Repeat("ab", 32)
	stage := filepath.Join(modelsDir, installStagingFolder, "tiny-latest-0123456789ab")
	kept := []string{
		filepath.Join(stage, "sha256-"+hexDigest),
		filepath.Join(stage, "sha256-"+hexDigest+".part"),
		filepath.Join(stage, "sha256-"+hexDigest+".part.json"),
		filepath.Join(stage, "manifest"),
	}
	pruned := []string{
		filepath.Join(modelsDir, "blobs", "sha256-"+hexDigest+"-partial"),
		filepath.Join(modelsDir, "blobs", "sha256-"+hexDigest),
	}
	for _, p := range append(kept, pruned...) {
		writeTestFile(t, p, "data")
		if err := os.Chtimes(p, old, old); err != nil { // touch -d '2 hours ago'
			t.Fatal(err)
		}
	}
	os.Chtimes(stage, old, old)
	os.Chtimes(filepath.Dir(stage), old, old)
	o := startStockOllama(t, bin, modelsDir)
	deadline := time.Now().Add(15 * time.Second)
	for !allGone(pruned) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !allGone(pruned) {
		t.Fatalf("ollama serve did not prune blobs/ within 15s (the control failed):\n%s", o.out.String())
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("ollama serve removed %s: %v", p, err)
		}
	}
}

func allGone(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return false
		}
	}
	return true
}

// TestInstallResumesAfterSIGKILL runs "install NAME" as a process, kills
// it while the model blob is on its way, and runs it again. After the
// kill Ollama would see nothing (no manifest, no odd name in blobs/);
// the rerun fetches only what was missing and installs the model.
func TestInstallResumesAfterSIGKILL(t *testing.T) {
	f := newFakeRegistry(t)
	big := testBytes(2<<20, 31)
	m := f.addModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := digestOf(big)
	const trickleAt = 1 << 20
	f.set(func(f *fakeRegistry) { f.trickle[bigDigest] = trickleAt })
	dir := t.TempDir()
	modelsDir := filepath.Join(dir, "models")
	out := filepath.Join(dir, "out")
	name, err := parseModelName("big", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	sidecar := filepath.Join(modelsDir, installStagingFolder, filepath.Base(pullStagingDir("", name)), "sha256-"+strings.TrimPrefix(bigDigest, "sha256:"))
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
		if st, err := readPartState(sidecar); err == nil {
			committed = st.Committed
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

	f.set(func(f *fakeRegistry) { delete(f.trickle, bigDigest); f.Ranges = nil })
	cmd = command(t, ctx, dir, args...)
	cmd.Env = append(cmd.Env, noModels)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "Installed "+f.Host+"/library/big:latest") {
		t.Errorf("second run said:\n%s", msg)
	}
	checkInstalled(t, modelsDir, f.Host, "big", "latest", m)
	if _, err := os.Stat(filepath.Join(modelsDir, installStagingFolder)); err == nil {
		t.Errorf("the staging folder is left behind")
	}
	if _, err := os.Stat(filepath.Join(out, ".staging")); err == nil {
		t.Errorf("install NAME staged in the output folder")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.Ranges) != 1 || parseRangeStart(f.Ranges[0]) < trickleAt {
		t.Errorf("second run's blob requests had Range %q, want one from byte >= %d", f.Ranges, trickleAt)
	}
	if got := f.BytesServed[bigDigest]; got > int64(len(big))+trickleAt/2 {
		t.Errorf("the model blob cost %d bytes over both runs, want about %d (resumed)", got, len(big))
	}
}

// addShowModel stores library/qwen:0.5b with a config, a license, a
// template and params this test wrote; it returns the manifest's digest
// the model blob's digest and the model's size.
func addShowModel(f *fakeRegistry) (digest, modelDigest string, size int64) {
	cfgBlob := f.addBlob("application/vnd.docker.container.image.v1+json", []byte(`{"model_format":"gguf","model_family":"qwen2","model_families":["qwen2"],"model_type":"494.03M","file_type":"Q4_0","architecture":"amd64","os":"linux"}`))
	model := f.addBlob("application/vnd.ollama.image.model", testBytes(300_000, 2))
	license := f.addBlob("application/vnd.ollama.image.license", []byte("\n  Apache License\n  Version 2.0, January 2004\n"))
	tmpl := f.addBlob("application/vnd.ollama.image.template", []byte("{{ .Prompt }}"))
	params := f.addBlob("application/vnd.ollama.image.params", []byte(`{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.7}`))
	man := fakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaManifest, Config: &cfgBlob, Layers: []fakeDescriptor{model, tmpl, license, params}}
	raw, _ := json.Marshal(man)
	return f.addManifest("library/qwen", "0.5b", fakeMediaManifest, raw), model.Digest, cfgBlob.Size + model.Size + license.Size + tmpl.Size + params.Size
}

// TestShowReadsTheConfig: show on a model whose config this test wrote,
// from the in-process registry: every field, and the model blob never
// requested.
func TestShowReadsTheConfig(t *testing.T) {
	f := newFakeRegistry(t)
	digest, modelDigest, size := addShowModel(f)
	c := newTestPuller(t, f.URL)
	info, err := c.Show(t.Context(), "qwen:0.5b", reusePlaces{})
	if err != nil {
		t.Fatal(err)
	}
	want := modelInfo{Name: f.Host + "/library/qwen:0.5b", Display: "qwen:0.5b", ID: strings.TrimPrefix(digest, "sha256:")[:12], Digest: digest,
		Size: size, Family: "qwen2", Parameters: "494.03M", Quantization: "Q4_0",
		License: "Apache License"}
	if info.Name != want.Name || info.ID != want.ID || info.Size != want.Size || info.Family != want.Family || info.Parameters != want.Parameters ||
		info.Quantization != want.Quantization || info.License != want.License || !strings.Contains(info.Params, "temperature") {
		t.Errorf("Show = %+v\nwant %+v", info, want)
	}
	var types []string
	for _, l := range info.Layers {
		types = append(types, l.Type)
	}
	if got := strings.Join(types, " "); got != "config model template license params" {
		t.Errorf("layer types %q", got)
	}
	if n := f.count(func(f *fakeRegistry) int { return f.CDNHits[modelDigest] + f.RegistryBlobHits[modelDigest] }); n != 0 {
		t.Errorf("show requested the model blob %d times", n)
	}
}

// TestShowPrintsWhatOllamaShows: the show command's text names the model,
// its ID, parameters, quantization, license and params.
func TestShowPrintsWhatOllamaShows(t *testing.T) {
	f := newFakeRegistry(t)
	addShowModel(f)
	info, err := newTestPuller(t, f.URL).Show(t.Context(), "qwen:0.5b", reusePlaces{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printModelInfo(&out, info)
	for _, s := range []string{"qwen:0.5b", info.ID, "494.03M", "Q4_0", "Apache License", "stop", `"<|im_end|>"`, "temperature"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("show's text lacks %q:\n%s", s, out.String())
		}
	}
}

// TestShowAPI: GET /api/model/show answers what show prints, 400 for a
// bad name, 404 for an unknown model.
func TestShowAPI(t *testing.T) {
	f := newFakeRegistry(t)
	digest, _, size := addShowModel(f)
	c := newTestPuller(t, f.URL)
	a := newAPIServerWith(t, c)
	code, _, body := a.do(t, "GET", "/api/model/show?name=qwen:0.5b", nil)
	var got modelInfo
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Digest != digest || got.Size != size || len(got.Layers) != 5 {
		t.Errorf("GET /api/model/show: %d %s", code, body)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{{"name=bad%20name!", 400}, {"", 400}, {"name=nosuch:latest", 404}} {
		if code, _, body := a.do(t, "GET", "/api/model/show?"+tc.query, nil); code != tc.code {
			t.Errorf("GET /api/model/show?%s: %d %s, want %d", tc.query, code, body, tc.code)
		}
	}
}

// TestLibraryListsModels: /api/library's models are the zips' models as
// `ollama list` names them, a split set once with its parts.
func TestLibraryListsModels(t *testing.T) {
	a := newAPIServer(t)
	f := newFakeRegistry(t)
	cfg := f.addBlob("application/vnd.docker.container.image.v1+json", []byte(`{"model_family":"llama","model_type":"1.2B","file_type":"Q8_0"}`))
	layer := f.addBlob("application/vnd.ollama.image.model", testBytes(3<<20, 3))
	raw, _ := json.Marshal(fakeManifestDoc{SchemaVersion: 2, MediaType: mediaDockerManifest, Config: &cfg, Layers: []fakeDescriptor{layer}})
	digest := f.addManifest("library/llama3.2", "1b", mediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, noReuse)
	if _, err := c.Pull(t.Context(), pullRequest{Ref: "llama3.2:1b", OutputDir: a.dir, Split: 1 << 20, Retries: -1}); err != nil {
		t.Fatal(err)
	}
	code, _, body := a.do(t, "GET", "/api/library", nil)
	var lib struct {
		Files  []libraryFile  `json:"files"`
		Models []libraryModel `json:"models"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &lib) != nil {
		t.Fatalf("GET /api/library: %d %s", code, body)
	}
	if len(lib.Models) != 1 {
		t.Fatalf("models = %+v, want one", lib.Models)
	}
	got := lib.Models[0]
	name := f.Host + "/library/llama3.2:1b"
	if got.Name != name || got.ID != strings.TrimPrefix(digest, "sha256:")[:12] || got.Size != cfg.Size+layer.Size || got.Parameters != "1.2B" ||
		got.Quantization != "Q8_0" || got.Path != "llama3.2-1b.zip.001" || len(got.Parts) != 4 || got.Parts[3] != "llama3.2-1b.zip.004" {
		t.Errorf("model = %+v", got)
	}
	if fmt.Sprint(got.Modified) == "" || got.Modified.IsZero() {
		t.Errorf("no modified time")
	}
}
