package registry

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestRegistryClient returns a client for f with short delays; mods
// change its configuration before it is built.
func newTestRegistryClient(t *testing.T, registryURL string, mods ...func(*Config)) *Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	log := slog.New(slog.DiscardHandler)
	files := engine.NewDownloader(&http.Client{Transport: tr}, log)
	files.Backoff, files.MaxBackoff = time.Millisecond, 5*time.Millisecond
	files.StallTimeout = 10 * time.Second
	cfg := Config{Registry: registryURL, Concurrency: 2, Files: files, Client: &http.Client{Transport: tr}, Log: log}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	return c
}

func TestRegistryAuthOnlyForRegistryHost(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // host → Authorization
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen[r.URL.Host] = r.Header.Get("Authorization")
		mu.Unlock()
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	a := &registryAuth{next: next, host: "127.0.0.1:5000", scheme: "https", userAgent: "ua", tokens: map[string]string{"repository:library/x:pull": "T"}}
	for _, u := range []string{"https://127.0.0.1:5000/v2/library/x/blobs/" + testkit.TestDigest, "https://127.0.0.1:6000/blob/x", "https://cdn.example/blob", "http://127.0.0.2:5000/v2/library/x/blobs/" + testkit.TestDigest} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := a.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Errorf("RoundTrip modified the caller's request")
		}
	}
	want := map[string]string{"127.0.0.1:5000": "Bearer T", "127.0.0.1:6000": "", "cdn.example": "", "127.0.0.2:5000": ""}
	if !maps.Equal(seen, want) {
		t.Errorf("Authorization by host = %v, want %v", seen, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     []string
		scheme string
		params map[string]string
	}{
		{[]string{`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/x:pull"`},
			"bearer", map[string]string{"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:library/x:pull"}},
		{[]string{`Basic realm="r"`, `bearer realm="https://a/t", scope="repository:a/b:pull,push"`},
			"bearer", map[string]string{"realm": "https://a/t", "scope": "repository:a/b:pull,push"}},
		{[]string{`Basic realm="say \"hi\""`}, "basic", map[string]string{"realm": `say "hi"`}},
		{[]string{`Bearer realm=https://a/t,service=s`}, "bearer", map[string]string{"realm": "https://a/t", "service": "s"}},
	}
	for _, tc := range tests {
		ch, ok := parseChallenge(tc.in)
		if !ok || ch.scheme != tc.scheme || !maps.Equal(ch.params, tc.params) {
			t.Errorf("parseChallenge(%q) = %+v, %v; want %s %v", tc.in, ch, ok, tc.scheme, tc.params)
		}
	}
	if _, ok := parseChallenge([]string{`Negotiate abc`}); ok {
		t.Errorf("parseChallenge accepted a Negotiate challenge")
	}
}

func TestManifestFixture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "registry", "qwen2-0.5b.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.IsIndex(MediaDockerManifest) {
		t.Fatal("plain manifest taken for an index")
	}
	blobs, err := ManifestBlobs(m)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	if len(blobs) != 5 || total != 352164041 {
		t.Errorf("%d blobs, %d bytes; want 5 blobs, 352164041 bytes", len(blobs), total)
	}
	if blobs[0].File() != "sha256-"+strings.TrimPrefix(m.Config.Digest, "sha256:") {
		t.Errorf("first blob is %s, want the config", blobs[0].Digest)
	}
}

func TestNewRegistryClient(t *testing.T) {
	t.Setenv(EnvRegistryUser, "")
	t.Setenv(envRegistryPassword, "")
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Registry: "ftp://x"}, "want a URL"},
		{Config{Registry: "registry.ollama.ai"}, "want a URL"},
		{Config{Registry: "https://r.example/v2/"}, "without a path"},
		{Config{Concurrency: 33}, "concurrency must be 1-32"},
		{Config{Concurrency: -1}, "concurrency must be 1-32"},
		{Config{Platform: "linux"}, "want os/arch"},
		{Config{Platform: "linux//"}, "want os/arch"},
	}
	for _, tc := range bad {
		_, err := New(tc.cfg)
		if !errors.Is(err, fault.ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newRegistryClient(%+v) err = %v, want bad input saying %q", tc.cfg, err, tc.want)
		}
	}

	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultHost() != "registry.ollama.ai" || c.base.Scheme != "https" {
		t.Errorf("default registry = %s, want https://registry.ollama.ai", c.base)
	}
	c, err = New(Config{Registry: "http://u:p%40ss@127.0.0.1:5000/", OllamaVersion: "0.99.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultHost() != "127.0.0.1:5000" || c.cfg.Username != "u" || c.cfg.Password != "p@ss" {
		t.Errorf("host %q, user %q, password %q; want 127.0.0.1:5000, u, p@ss", c.DefaultHost(), c.cfg.Username, c.cfg.Password)
	}
	if !strings.HasPrefix(c.userAgent, "ollama/0.99.1 (") {
		t.Errorf("User-Agent %q does not carry the configured version", c.userAgent)
	}
	t.Setenv(EnvRegistryUser, "envuser")
	t.Setenv(envRegistryPassword, "envpass")
	c, err = New(Config{Registry: "https://r.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Username != "envuser" || c.cfg.Password != "envpass" {
		t.Errorf("credentials from the environment: %q %q", c.cfg.Username, c.cfg.Password)
	}
}

// FuzzParseChallenge: any WWW-Authenticate value parses without hanging or
// panicking, and a Bearer challenge wins over Basic.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/x:pull"`,
		`Basic realm="registry"`, `Bearer realm="a\"b", scope=x,`, `bearer`, `Bearer ="`, `Negotiate, Bearer realm=x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ch, ok := parseChallenge([]string{header, `Basic realm="r"`})
		if !ok {
			t.Fatal("a Basic challenge was present but none was found")
		}
		if ch.scheme != "bearer" && ch.scheme != "basic" {
			t.Fatalf("scheme %q", ch.scheme)
		}
	})
}

// FuzzManifestBlobs: whatever a registry sends as a manifest, every blob
// that comes out names a file "sha256-<64 hex>" inside the staging folder.
func FuzzManifestBlobs(f *testing.F) {
	seed, err := os.ReadFile("testdata/registry/qwen2-0.5b.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:../../etc/passwd","size":1},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha512:00","size":-1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeManifest(raw)
		if err != nil {
			return
		}
		blobs, err := ManifestBlobs(m)
		if err != nil {
			return
		}
		for _, b := range blobs {
			name := b.File()
			hexPart, ok := strings.CutPrefix(name, "sha256-")
			if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" || b.Size < 0 {
				t.Fatalf("blob %+v becomes file %q", b, name)
			}
		}
	})
}
