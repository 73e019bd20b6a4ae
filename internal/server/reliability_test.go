package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReliabilityAPIIgnoresPathFields: fields the add endpoint does not
// define — output paths among them — never steer where a file goes.
func TestReliabilityAPIIgnoresPathFields(t *testing.T) {
	a := newAPIServer(t)
	o := testkit.NewOrigin(t, testkit.WithSize(4<<10))
	outside := filepath.Join(t.TempDir(), "evil.bin")
	body := fmt.Sprintf(`{"url": %q, "output": %q, "path": %q, "dir": %q, "file_name": "../../evil.bin", "unknown": true}`,
		o.FileURL(), outside, outside, filepath.Dir(outside))
	code, _, resp := a.do(t, "POST", "/api/download/add", strings.NewReader(body), "Content-Type", "application/json")
	// Unknown fields are ignored (docs/API.md): 201, and the file lands
	// in the output folder under the server's name for it.
	if code != http.StatusCreated {
		t.Fatalf("status %d (%s), want 201 with the unknown fields ignored", code, resp)
	}
	var added struct{ Downloads []queue.JobView }
	if err := json.Unmarshal(resp, &added); err != nil || len(added.Downloads) != 1 {
		t.Fatalf("body %s: %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.cfg.Manager.Wait(ctx, added.Downloads[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, filepath.Join(a.dir, "data.bin")); !bytes.Equal(got, o.Content()) {
		t.Error("the download did not land in the output folder")
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written at the path an API caller chose: %v", err)
	}
}

// TestReliabilityAPIWrongTypes: values of the wrong JSON type are
// refused with a 400 that says which field, never half-applied.
func TestReliabilityAPIWrongTypes(t *testing.T) {
	a := newAPIServer(t)
	for _, body := range []string{
		`{"url": {"a": 1}}`,
		`{"url": [1, 2]}`,
		`{"url": [["http://127.0.0.1:1/x"]]}`,
		`"http://127.0.0.1:1/x"`,
		`null`,
		`{"url": "http://127.0.0.1:1/x", "retries": "3; rm -rf /"}`,
		`{"url": "http://127.0.0.1:1/x", "retries": 1e9}`,
		`{"url": "http://127.0.0.1:1/x", "retries": -1}`,
	} {
		t.Run(body, func(t *testing.T) {
			code, hdr, resp := a.do(t, "POST", "/api/download/add", strings.NewReader(body), "Content-Type", "application/json")
			apiWantError(t, code, hdr, resp, http.StatusBadRequest)
		})
	}
	if list := a.cfg.Manager.List(); len(list) != 0 {
		t.Errorf("refused requests queued %d downloads", len(list))
	}
}

// TestReliabilityAPIRepeatedScalarField: two values for a field that takes
// one (two checksums, two retry counts) are ambiguous; the caller must hear
// so rather than have one silently dropped.
func TestReliabilityAPIRepeatedScalarField(t *testing.T) {
	a := newAPIServer(t)
	two := `["` + strings.Repeat("a", 64) + `", "` + strings.Repeat("b", 64) + `"]`
	for _, tc := range []struct{ ctype, body string }{
		{"application/json", `{"url": "http://127.0.0.1:1/x", "sha256": ` + two + `}`},
		{"application/json", `{"url": "http://127.0.0.1:1/x", "retries": ["1", "50"]}`},
		{"application/x-www-form-urlencoded", "url=http%3A%2F%2F127.0.0.1%3A1%2Fx&sha256=" + strings.Repeat("a", 64) + "&sha256=" + strings.Repeat("b", 64)},
	} {
		code, hdr, resp := a.do(t, "POST", "/api/download/add", strings.NewReader(tc.body), "Content-Type", tc.ctype)
		apiWantError(t, code, hdr, resp, http.StatusBadRequest)
	}
	if list := a.cfg.Manager.List(); len(list) != 0 {
		t.Errorf("ambiguous requests queued %d downloads", len(list))
	}
}

// TestAddModelsDirNeedsTheLocalKey: models_dir (install straight into an
// Ollama models folder) is for a command of this user handing over its
// -models-dir, proven with the key of .state/owner.json; any other caller
// of a web UI without a token is refused and nothing is queued.
func TestAddModelsDirNeedsTheLocalKey(t *testing.T) {
	const key = "local-key-0123456789abcdef"
	a := newAPIServer(t, func(c *Config) { c.LocalKey = key })
	target := t.TempDir()
	add := func(hdr ...string) (int, http.Header, []byte) {
		body, k, v := apiForm("url", "tiny:1", "models_dir", target)
		return a.do(t, "POST", "/api/download/add", body, append([]string{k, v}, hdr...)...)
	}
	code, hdr, body := add()
	if msg := apiWantError(t, code, hdr, body, http.StatusForbidden); !strings.Contains(msg, "models_dir") {
		t.Errorf("refusal %q does not name models_dir", msg)
	}
	code, hdr, body = add("Authorization", "Bearer wrong-key-0123456789abcdef")
	apiWantError(t, code, hdr, body, http.StatusForbidden)
	if list := a.cfg.Manager.List(); len(list) != 0 {
		t.Fatalf("refused adds queued %d downloads", len(list))
	}
	code, _, body = add("Authorization", "Bearer "+key)
	if code != http.StatusCreated {
		t.Fatalf("with the local key: %d %s", code, body)
	}
	var added struct{ Downloads []queue.JobView }
	if err := json.Unmarshal(body, &added); err != nil || len(added.Downloads) != 1 || added.Downloads[0].ModelsDir != target {
		t.Fatalf("with the local key: %s (%v), want one download into %s", body, err, target)
	}
}

// TestAddSplitBelowItsMinimum: a split size below the smallest part is
// refused when the download is added, not when its zip is written.
func TestAddSplitBelowItsMinimum(t *testing.T) {
	a := newAPIServer(t)
	body, k, v := apiForm("url", "tiny:1", "split", "10K")
	code, hdr, resp := a.do(t, "POST", "/api/download/add", body, k, v)
	if msg := apiWantError(t, code, hdr, resp, http.StatusBadRequest); !strings.Contains(msg, "at least") {
		t.Errorf("refusal %q does not say the minimum", msg)
	}
	if list := a.cfg.Manager.List(); len(list) != 0 {
		t.Errorf("a refused add queued %d downloads", len(list))
	}
}
