package models

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pullExpectFailure pulls ref from a registry at url and checks the error
// mentions want and that nothing was written in or beside the output.
func pullExpectFailure(t *testing.T, registryURL, ref, want string) error {
	t.Helper()
	c := newTestPuller(t, registryURL)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := c.Pull(ctx, PullRequest{Ref: ref, OutputDir: out, Retries: 1})
	if err == nil {
		t.Fatal("Pull succeeded, want an error")
	}
	if ctx.Err() != nil {
		t.Fatalf("Pull ran into the test's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
	if entries, _ := os.ReadDir(parent); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != "out" {
		t.Errorf("written beside the output folder: %v", entries)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("output folder not empty: %v", entries)
	}
	return err
}

// TestReliabilityManifestDigests: every digest that is not "sha256:" and
// 64 lower-case hex digits is refused before anything is written.
func TestReliabilityManifestDigests(t *testing.T) {
	good := `"` + testkit.TestDigest + `"`
	tests := []struct{ name, config, layer string }{
		{"short hex", `"sha256:` + strings.Repeat("a", 63) + `"`, good},
		{"long hex", `"sha256:` + strings.Repeat("a", 65) + `"`, good},
		{"sha512", `"sha512:` + strings.Repeat("a", 128) + `"`, good},
		{"upper-case algorithm", `"SHA256:` + strings.Repeat("a", 64) + `"`, good},
		{"mixed-case hex", `"sha256:` + strings.Repeat("aB", 32) + `"`, good},
		{"no algorithm", `"` + strings.Repeat("a", 64) + `"`, good},
		{"empty", `""`, good},
		{"dot-dot in a layer", good, `"sha256:../../../../../../tmp/x"`},
		{"slash in a layer", good, `"sha256:` + strings.Repeat("a", 31) + "/" + strings.Repeat("a", 32) + `"`},
		{"NUL in a layer", good, `"sha256:` + strings.Repeat("a", 63) + `\u0000"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t)
			raw := `{"schemaVersion":2,"config":{"digest":` + tc.config + `,"size":1},"layers":[{"digest":` + tc.layer + `,"size":1}]}`
			f.AddManifest("library/bad", "latest", registry.MediaDockerManifest, []byte(raw))
			pullExpectFailure(t, f.URL, "bad", "invalid blob digest")
			if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Ranges) }); n != 0 {
				t.Errorf("%d blob requests for a manifest that should be refused", n)
			}
		})
	}
}

// TestReliabilityIndexEntryDigest: an index entry pointing at an invalid
// digest is refused, not fetched.
func TestReliabilityIndexEntryDigest(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	raw := `{"schemaVersion":2,"mediaType":"` + registry.MediaOCIIndex + `","manifests":[{"mediaType":"` + registry.MediaDockerManifest +
		`","digest":"sha256:../../x","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`
	f.AddManifest("library/idx", "latest", registry.MediaOCIIndex, []byte(raw))
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Platform = "linux/amd64" })
	out := t.TempDir()
	_, err := c.Pull(t.Context(), PullRequest{Ref: "idx", OutputDir: out, Retries: 0})
	if err == nil || !strings.Contains(err.Error(), "invalid digest") {
		t.Fatalf("err = %v, want an invalid digest", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("output folder not empty: %v", entries)
	}
}

// tokenRegistry is a registry that always challenges for a Bearer token
// and whose token endpoint answers with token.
func tokenRegistry(t *testing.T, token http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	var tokenHits atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokenHits.Add(1)
			token(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="fake"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &tokenHits
}

// TestReliabilityTokenEndpointFails: a token service that fails or talks
// nonsense gives an error that says so, after bounded attempts.
func TestReliabilityTokenEndpointFails(t *testing.T) {
	const endlessChunks = 768 // 48 MiB
	var endlessSent atomic.Int64
	tests := []struct {
		name  string
		token http.HandlerFunc
		want  string
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "token service on fire", http.StatusInternalServerError)
		}, "token service on fire"},
		{"html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body>captive portal</body></html>"))
		}, "reading token"},
		{"json without a token", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"expires_in": 300}`))
		}, "neither token nor access_token"},
		{"token of the wrong type", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token": 42}`))
		}, "reading token"},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token": "`))
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for range endlessChunks { // far more than a token; bounded for the test
				if _, err := w.Write(chunk); err != nil {
					return
				}
				endlessSent.Add(int64(len(chunk)))
			}
		}, "reading token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, hits := tokenRegistry(t, tc.token)
			pullExpectFailure(t, url, strings.TrimPrefix(url, "http://")+"/library/tiny", tc.want)
			if n := hits.Load(); n > 2 {
				t.Errorf("token endpoint asked %d times with Retries: 1", n)
			}
		})
	}
	// The client stops reading a token answer early: what the server got
	// to send is bounded by socket buffers, not by the answer's length.
	if sent := endlessSent.Load(); sent >= endlessChunks*(64<<10)/2 {
		t.Errorf("the endless token answer was read to %d bytes", sent)
	}
}

// TestReliabilityRegistryRefusalBodiesShown: what the registry says in a
// 403 or 412 reaches the person.
func TestReliabilityRegistryRefusalBodiesShown(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
	}{
		{http.StatusForbidden, "Blocked by policy 42: contact it@example"},
		{http.StatusPreconditionFailed, `{"errors":[{"code":"DENIED","message":"please upgrade to 0.14"}]}`},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			f := testkit.NewFakeRegistry(t, testkit.WithManifestStatus(tc.code, tc.body))
			err := pullExpectFailure(t, f.URL, "tiny", strconv.Itoa(tc.code))
			want := tc.body
			if tc.code == http.StatusPreconditionFailed {
				want = "please upgrade to 0.14"
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q, want the registry's words %q", err, want)
			}
		})
	}
}
