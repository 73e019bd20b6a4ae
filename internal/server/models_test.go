package server

import (
	"encoding/json"
	"net/http"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/testkit"
	"testing"
)

// TestShowAPI: GET /api/model/show answers what show prints, 400 for a
// bad name, 404 for an unknown model.
func TestShowAPI(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	digest, _, size := testkit.AddShowModel(f)
	c := modelstest.NewPuller(t, f.URL)
	a := newAPIServerWith(t, c)
	code, _, body := a.do(t, "GET", "/api/model/show?name=qwen:0.5b", nil)
	var got models.ModelInfo
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
