package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLibraryInstallSymlinkSwap is issue 18's race: a link in the output
// folder flips between a model zip inside and one outside while the API
// installs it. Every install either refuses (the link led outside) or
// installs the inside model, read through the file it opened: the model
// from outside never lands in a models folder.
func TestLibraryInstallSymlinkSwap(t *testing.T) {
	a := newAPIServer(t)
	inside := apiPullModelZip(t, a) // tiny:latest
	outside := filepath.Join(t.TempDir(), "evil.zip")
	evil := testkit.NewTestModel(t, "registry.ollama.ai", "library", "evil", "latest", 7, 2000)
	testkit.WriteTestZip(t, outside, evil.Entries())
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

// TestLibraryListsModels: /api/library's models are the zips' models as
// `ollama list` names them, a split set once with its parts.
func TestLibraryListsModels(t *testing.T) {
	a := newAPIServer(t)
	f := testkit.NewFakeRegistry(t)
	cfg := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte(`{"model_family":"llama","model_type":"1.2B","file_type":"Q8_0"}`))
	layer := f.AddBlob("application/vnd.ollama.image.model", testkit.TestBytes(3<<20, 3))
	raw, _ := json.Marshal(testkit.FakeManifestDoc{SchemaVersion: 2, MediaType: registry.MediaDockerManifest, Config: &cfg, Layers: []testkit.FakeDescriptor{layer}})
	digest := f.AddManifest("library/llama3.2", "1b", registry.MediaDockerManifest, raw)
	c := modelstest.NewPuller(t, f.URL, modelstest.NoReuse)
	if _, err := c.Pull(t.Context(), models.PullRequest{Ref: "llama3.2:1b", OutputDir: a.dir, Split: 1 << 20, Retries: -1}); err != nil {
		t.Fatal(err)
	}
	code, _, body := a.do(t, "GET", "/api/library", nil)
	var lib struct {
		Files  []libraryFile         `json:"files"`
		Models []models.LibraryModel `json:"models"`
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
