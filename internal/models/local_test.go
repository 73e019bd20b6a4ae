package models

import (
	"errors"
	"fmt"
	"maps"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withConfig is m with its config blob replaced by one that says family,
// parameters and quantization, as Ollama's config does.
func withConfig(t *testing.T, m testkit.TestModel, family, params, quant string) testkit.TestModel {
	t.Helper()
	old := m.Order[0]
	config := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":%q,"model_families":[%q],"model_type":%q,"file_type":%q}`, family, family, params, quant))
	d := testkit.LayoutTestDigest(config)
	m.Blobs = maps.Clone(m.Blobs)
	delete(m.Blobs, old)
	m.Blobs[d] = config
	m.Order = append([]string{d}, m.Order[1:]...)
	raw := strings.Replace(string(m.Manifest.Data), old, d, 1)
	m.Manifest.Data = []byte(replaceConfigSize(raw, len(config)))
	m.Digest = testkit.LayoutTestDigest(m.Manifest.Data)
	return m
}

// replaceConfigSize sets the size of the manifest's config descriptor.
func replaceConfigSize(raw string, size int) string {
	i := strings.Index(raw, `"config":{`)
	j := strings.Index(raw[i:], `"size":`) + i + len(`"size":`)
	k := strings.IndexByte(raw[j:], '}') + j
	return raw[:j] + fmt.Sprint(size) + raw[k:]
}

// sameLayers is a model named ref whose layers are m's (so they share
// every layer blob) with a config of its own.
func sameLayers(t *testing.T, m testkit.TestModel, host, ns, model, tag, family string) testkit.TestModel {
	t.Helper()
	o := withConfig(t, m, family, "1B", "Q8_0")
	o.Ref = host + "/" + ns + "/" + model + ":" + tag
	o.Manifest.Name = "manifests/" + host + "/" + ns + "/" + model + "/" + tag
	return o
}

func writeModels(t *testing.T, dir string, ms ...testkit.TestModel) {
	t.Helper()
	for _, m := range ms {
		testkit.WriteTestFolder(t, dir, m.Entries())
	}
}

func TestListLocal(t *testing.T) {
	dir := t.TempDir()
	qwen := withConfig(t, testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "0.5b", 1, 3000, 100), "qwen2", "494.03M", "Q4_0")
	// A second model sharing qwen's layers, on a registry with a port.
	mine := sameLayers(t, qwen, "127.0.0.1:5000", "team", "Mine", "v1", "llama")
	hf := withConfig(t, testkit.NewTestModel(t, "hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", 2, 500), "llama", "1.2B", "Q4_K_M")
	broken := testkit.NewTestModel(t, "registry.ollama.ai", "library", "broken", "latest", 3, 700)
	writeModels(t, dir, qwen, mine, hf, broken)
	os.Remove(filepath.Join(dir, filepath.FromSlash(testkit.BlobEntryName(broken.Order[1]))))
	testkit.WriteTestFile(t, filepath.Join(dir, "manifests", "registry.ollama.ai", "library", "junk", "latest"), "not json")
	// Modified times: hf newest, then qwen, then mine, then broken.
	now := time.Now().Truncate(time.Second)
	for i, m := range []testkit.TestModel{hf, qwen, mine, broken} {
		p := filepath.Join(dir, filepath.FromSlash(m.Manifest.Name))
		if err := os.Chtimes(p, now, now.Add(-time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	got := ListLocal(dir)
	if got.State != LocalOK || got.Error != "" || got.ModelsDir != dir {
		t.Fatalf("state %q, error %q, dir %q; want ok", got.State, got.Error, got.ModelsDir)
	}
	wantNames := []string{"hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "qwen2:0.5b", "127.0.0.1:5000/team/Mine:v1", "broken:latest"}
	if len(got.Models) != len(wantNames) {
		t.Fatalf("listed %d models, want %d: %+v", len(got.Models), len(wantNames), got.Models)
	}
	for i, m := range got.Models {
		if m.Name != wantNames[i] {
			t.Errorf("model %d is %q, want %q (newest first, named as ollama list names them)", i, m.Name, wantNames[i])
		}
	}
	byName := map[string]LocalModel{}
	for _, m := range got.Models {
		byName[m.Name] = m
	}
	q := byName["qwen2:0.5b"]
	if q.ID != strings.TrimPrefix(qwen.Digest, "sha256:")[:12] || q.Digest != qwen.Digest || q.Ref != "registry.ollama.ai/library/qwen2:0.5b" {
		t.Errorf("qwen2: id %q digest %q ref %q; want the manifest's digest", q.ID, q.Digest, q.Ref)
	}
	if q.Family != "qwen2" || q.Parameters != "494.03M" || q.Quantization != "Q4_0" {
		t.Errorf("qwen2 details = %q %q %q, want the config's", q.Family, q.Parameters, q.Quantization)
	}
	var qSize int64
	for _, b := range qwen.Blobs {
		qSize += int64(len(b))
	}
	if q.Size != qSize || q.MissingBlobs != 0 {
		t.Errorf("qwen2 size %d (missing %d), want %d", q.Size, q.MissingBlobs, qSize)
	}
	if !q.Modified.Equal(now.Add(-time.Hour).UTC()) {
		t.Errorf("qwen2 modified %v, want the manifest's time %v", q.Modified, now.Add(-time.Hour))
	}
	if b := byName["broken:latest"]; b.MissingBlobs != 1 {
		t.Errorf("broken: %d missing blobs, want 1", b.MissingBlobs)
	}
	// Every blob present once: mine's layers are qwen's.
	var want int64
	for _, m := range []testkit.TestModel{qwen, hf} {
		for _, b := range m.Blobs {
			want += int64(len(b))
		}
	}
	want += int64(len(mine.Blobs[mine.Order[0]])) + int64(len(broken.Blobs[broken.Order[0]]))
	if got.TotalSize != want {
		t.Errorf("total size %d, want %d (shared blobs once, missing ones not at all)", got.TotalSize, want)
	}
	if len(got.Skipped) != 1 || !strings.Contains(got.Skipped[0], "manifests/registry.ollama.ai/library/junk/latest") {
		t.Errorf("skipped = %q, want the junk manifest", got.Skipped)
	}
}

func TestListLocalFolderStates(t *testing.T) {
	missing := ListLocal(filepath.Join(t.TempDir(), "nope"))
	if missing.State != LocalMissing || !strings.Contains(missing.Error, "no Ollama models folder") || missing.Models == nil {
		t.Errorf("missing folder: %+v, want state missing with a sentence and an empty list", missing)
	}
	empty := ListLocal(t.TempDir())
	if empty.State != LocalOK || len(empty.Models) != 0 {
		t.Errorf("an empty folder (Ollama not yet used): %+v, want ok and no model", empty)
	}
	// A manifests "folder" that is a file cannot be read: the state says so.
	dir := t.TempDir()
	testkit.WriteTestFile(t, filepath.Join(dir, "manifests"), "x")
	bad := ListLocal(dir)
	if bad.State != LocalUnreadable || !strings.Contains(bad.Error, "cannot read the Ollama models folder "+dir) {
		t.Errorf("unreadable: %+v", bad)
	}
	if os.Geteuid() != 0 {
		locked := t.TempDir()
		writeModels(t, locked, testkit.NewTestModel(t, "registry.ollama.ai", "library", "x", "latest", 1, 10))
		os.Chmod(filepath.Join(locked, "manifests"), 0)
		t.Cleanup(func() { os.Chmod(filepath.Join(locked, "manifests"), 0o755) })
		if got := ListLocal(locked); got.State != LocalUnreadable || !strings.Contains(got.Error, "permission denied") {
			t.Errorf("a folder without read permission: %+v", got)
		}
	} // as root, TestListCommandUnreadableFolder runs the command as another user
}

func TestFindLocal(t *testing.T) {
	dir := t.TempDir()
	qwen := testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "0.5b", 1, 100)
	latest := testkit.NewTestModel(t, "registry.ollama.ai", "library", "qwen2", "latest", 2, 100)
	mixed := testkit.NewTestModel(t, "registry.ollama.ai", "Other", "Mixed", "v1", 3, 100)
	port := testkit.NewTestModel(t, "127.0.0.1:5000", "library", "tiny", "latest", 4, 100)
	hf := testkit.NewTestModel(t, "hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", 5, 100)
	writeModels(t, dir, qwen, latest, mixed, port, hf)
	tests := []struct {
		ref  string
		want testkit.TestModel
	}{
		{"qwen2", latest},
		{"qwen2:0.5b", qwen},
		{"QWEN2:0.5B", qwen},
		{"library/qwen2:0.5b", qwen},
		{"registry.ollama.ai/library/qwen2:0.5b", qwen},
		{"other/mixed:V1", mixed},
		{"127.0.0.1:5000/library/tiny", port},
		{"hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m", hf},
	}
	for _, tc := range tests {
		lm, err := FindLocal(dir, tc.ref)
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
			continue
		}
		if lm.Manifest.Digest != tc.want.Digest || lm.Manifest.Name != tc.want.Manifest.Name {
			t.Errorf("%s found %s, want %s", tc.ref, lm.Manifest.Name, tc.want.Manifest.Name)
		}
		if lm.Name.String() != tc.want.Ref {
			t.Errorf("%s: name %s, want it as on disk: %s", tc.ref, lm.Name.String(), tc.want.Ref)
		}
	}

	for _, tc := range []struct{ ref, want string }{
		{"qwen2:7b", "qwen2:7b is not in the Ollama models folder " + dir + " (it has qwen2:0.5b, qwen2:latest)"},
		{"llama3", "llama3:latest is not in the Ollama models folder " + dir + " ('list' shows what is there)"},
	} {
		_, err := FindLocal(dir, tc.ref)
		if err == nil || err.Error() != tc.want || !errors.Is(err, fault.ErrNotFound) || fault.Code(err) != "model_not_found" {
			t.Errorf("%s: err = %v (code %s), want %q, not found", tc.ref, err, fault.Code(err), tc.want)
		}
	}
	if _, err := FindLocal(dir, "bad name!"); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("a bad name: %v, want bad input", err)
	}
	nowhere := filepath.Join(dir, "nowhere")
	if _, err := FindLocal(nowhere, "qwen2"); !errors.Is(err, fault.ErrNotFound) || !strings.Contains(err.Error(), "no Ollama models folder at "+nowhere) {
		t.Errorf("no folder: %v, want one line naming it", err)
	}
}
