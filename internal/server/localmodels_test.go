package server

import (
	"encoding/json"
	"net/http"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalModelsAPI: the models of this machine's Ollama are listed,
// checked against their registry and exported through the queue into the
// output folder, where the Library shows the zip.
func TestLocalModelsAPI(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	served := testkit.TinyModel(f, "tiny", "latest")
	local := t.TempDir()
	for d, b := range served.Blobs {
		testkit.WriteTestFile(t, filepath.Join(local, "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:")), string(b))
	}
	testkit.WriteTestFile(t, filepath.Join(local, "manifests", f.Host, "library", "tiny", "latest"), string(served.Manifest))
	made := testkit.NewTestModel(t, "registry.ollama.ai", "library", "made-here", "latest", 3, 100)
	testkit.WriteTestFolder(t, local, made.Entries())
	a := newAPIServerWith(t, modelstest.NewPuller(t, f.URL, modelstest.NoReuse), func(c *Config) { c.ModelsDir = local })
	ref := f.Host + "/library/tiny:latest"

	code, _, body := a.do(t, "GET", "/api/models/local", nil)
	var list models.LocalModels
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/models/local = %d %s", code, body)
	}
	if list.State != models.LocalOK || list.ModelsDir != local || len(list.Models) != 2 || list.TotalSize <= 300<<10 {
		t.Errorf("list = %+v", list)
	}

	check := func(name string) models.UpdateCheck {
		t.Helper()
		body, k, v := apiForm("name", name)
		code, _, resp := a.do(t, "POST", "/api/models/local/check", body, k, v)
		var got models.UpdateCheck
		if err := json.Unmarshal(resp, &got); code != http.StatusOK || err != nil {
			t.Fatalf("check %s = %d %s", name, code, resp)
		}
		return got
	}
	if got := check(ref); got.Status != models.UpdateUpToDate || got.Name != ref {
		t.Errorf("check = %+v, want up to date", got)
	}
	f.AddModel("library/tiny", "latest", testkit.TestBytes(500, 9))
	if got := check(ref); got.Status != models.UpdateAvailable {
		t.Errorf("check after the tag moved = %+v, want update_available", got)
	}
	// It reaches out, so it is a POST and the origin checks apply.
	code, hdr, body := a.do(t, "GET", "/api/models/local/check?name="+ref, nil)
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") == "" {
		t.Errorf("GET check = %d %s, want 405", code, body)
	}
	form, k, v := apiForm("name", ref)
	code, hdr, body = a.do(t, "POST", "/api/models/local/check", form, k, v, "Sec-Fetch-Site", "cross-site")
	apiWantError(t, code, hdr, body, http.StatusForbidden)
	form, k, v = apiForm("name", "absent")
	code, hdr, body = a.do(t, "POST", "/api/models/local/check", form, k, v)
	if msg := apiWantError(t, code, hdr, body, http.StatusNotFound); !strings.Contains(msg, local) {
		t.Errorf("a model not there: %q, want the folder named", msg)
	}

	// Export through the queue: the zip lands in the output folder.
	form, k, v = apiForm("name", ref, "name", "made-here")
	code, _, body = a.do(t, "POST", "/api/models/export", form, k, v)
	var added struct{ Downloads []apiJob }
	if err := json.Unmarshal(body, &added); code != http.StatusCreated || err != nil || len(added.Downloads) != 1 {
		t.Fatalf("export = %d %s", code, body)
	}
	job := a.waitState(t, added.Downloads[0].ID, "completed", "failed")
	if job.State != "completed" || job.Kind != "export" || job.Path != "tiny-latest-and-1-more.zip" {
		t.Fatalf("export job = %+v", job)
	}
	code, _, body = a.do(t, "GET", "/api/library", nil)
	var lib struct {
		Models []models.LibraryModel `json:"models"`
	}
	json.Unmarshal(body, &lib)
	if code != http.StatusOK || len(lib.Models) != 2 || lib.Models[0].Path != job.Path {
		t.Errorf("library after the export = %d %s", code, body)
	}

	for _, tc := range []struct {
		name string
		kv   []string
		want int
	}{
		{"no name", nil, http.StatusBadRequest},
		{"not there", []string{"name", "absent"}, http.StatusNotFound},
		{"another folder without the key", []string{"name", ref, "models_dir", t.TempDir()}, http.StatusForbidden},
		{"another zip path without the key", []string{"name", ref, "output", filepath.Join(t.TempDir(), "x.zip")}, http.StatusForbidden},
		{"bad split", []string{"name", ref, "split", "lots"}, http.StatusBadRequest},
	} {
		form, k, v := apiForm(tc.kv...)
		code, hdr, body := a.do(t, "POST", "/api/models/export", form, k, v)
		t.Run(tc.name, func(t *testing.T) { apiWantError(t, code, hdr, body, tc.want) })
	}
}

// TestLocalModelsFolderStates: a folder that is not there, or cannot be
// read, is said so in the answer (the page shows it), not as an error.
func TestLocalModelsFolderStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dir   func(t *testing.T) string
		state string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, models.LocalMissing},
		{"unreadable", func(t *testing.T) string {
			d := t.TempDir()
			testkit.WriteTestFile(t, filepath.Join(d, "manifests"), "a file where a folder should be")
			return d
		}, models.LocalUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			a := newAPIServer(t, func(c *Config) { c.ModelsDir = dir })
			code, _, body := a.do(t, "GET", "/api/models/local", nil)
			var got models.LocalModels
			if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
				t.Fatalf("GET = %d %s", code, body)
			}
			if got.State != tc.state || !strings.Contains(got.Error, dir) || got.Models == nil {
				t.Errorf("answer = %+v, want state %s naming %s", got, tc.state, dir)
			}
		})
	}
}
