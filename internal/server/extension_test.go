package server

import (
	"encoding/json"
	"net/http"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testExtOrigin  = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
	otherExtOrigin = "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba"
)

// newPairingServer is an API server that pairs browser extensions.
func newPairingServer(t *testing.T, edit ...func(*Config)) *apiServer {
	t.Helper()
	return newAPIServer(t, append([]func(*Config){func(c *Config) {
		c.Pairings = filepath.Join(c.OutputDir, ".state", PairingsFile)
	}}, edit...)...)
}

// pairReply is the answer to POST /api/extension/pair.
type pairReply struct {
	ID, Key, Code string
	ConfirmURL    string `json:"confirm_url"`
}

// askPairing is an extension asking to be paired.
func (a *apiServer) askPairing(t *testing.T, origin string) pairReply {
	t.Helper()
	body, ct, cv := apiForm("name", "Chromium 156 on Linux")
	code, hdr, b := a.do(t, "POST", extensionPairPath, body, ct, cv, "Origin", origin, "Sec-Fetch-Site", "none")
	if code != http.StatusCreated {
		t.Fatalf("pair request: %d %s", code, b)
	}
	if got := hdr.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("pair answer's Access-Control-Allow-Origin = %q, want %q", got, origin)
	}
	var p pairReply
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Key, pairingKeyPrefix) || len(p.Code) != 6 || p.ConfirmURL != "/?pair="+p.ID {
		t.Fatalf("pair answer %s", b)
	}
	return p
}

// pageApproves is the person's "Allow" on the web UI's pairing screen.
func (a *apiServer) pageApproves(t *testing.T, id string, hdr ...string) {
	t.Helper()
	code, _, b := a.do(t, "POST", "/api/pairings/"+id+"/approve", nil, append([]string{"Origin", a.ts.URL, "Sec-Fetch-Site", "same-origin"}, hdr...)...)
	if code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, b)
	}
}

// pair is askPairing and pageApproves: the extension's key.
func (a *apiServer) pair(t *testing.T, origin string) pairReply {
	t.Helper()
	p := a.askPairing(t, origin)
	a.pageApproves(t, p.ID)
	return p
}

// extDo is a request from the extension at origin with its key ("" for none).
func (a *apiServer) extDo(t *testing.T, method, path, origin, key string, kv ...string) (int, http.Header, []byte) {
	t.Helper()
	hdr := []string{"Sec-Fetch-Site", "none"}
	if origin != "" {
		hdr = append(hdr, "Origin", origin)
	}
	if key != "" {
		hdr = append(hdr, "Authorization", "Bearer "+key)
	}
	if method == "GET" {
		return a.do(t, method, path, nil, hdr...)
	}
	body, ct, cv := apiForm(kv...)
	return a.do(t, method, path, body, append(hdr, ct, cv)...)
}

func extensionState(t *testing.T, a *apiServer, key string) string {
	t.Helper()
	code, _, b := a.extDo(t, "GET", extensionStatusPath, "", key)
	if code == http.StatusUnauthorized {
		return "not paired"
	}
	var st struct{ State string }
	if err := json.Unmarshal(b, &st); code != http.StatusOK || err != nil {
		t.Fatalf("status: %d %s", code, b)
	}
	return st.State
}

// The whole pairing: refused before, waiting until the person allows it,
// then exactly the extension's routes from exactly its origin, kept across
// a restart (0600, the key's hash only), gone when revoked.
func TestExtensionPairing(t *testing.T) {
	a := newPairingServer(t)
	o := testkit.NewOrigin(t, testkit.WithSize(1000))

	// Before: an extension's POST was let in by its fetch metadata
	// (Sec-Fetch-Site: none) like a typed URL; now it is refused.
	for _, path := range []string{"/api/download/add", "/api/downloads/pause-all", "/api/settings"} {
		code, hdr, b := a.extDo(t, "POST", path, testExtOrigin, "", "url", o.FileURL())
		apiWantError(t, code, hdr, b, http.StatusUnauthorized)
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: an unpaired extension got CORS headers", path)
		}
	}

	p := a.askPairing(t, testExtOrigin)
	if got := extensionState(t, a, p.Key); got != "pending" {
		t.Errorf("before the person allows it the state is %q, want pending", got)
	}
	code, hdr, b := a.extDo(t, "POST", "/api/download/add", testExtOrigin, p.Key, "url", o.FileURL())
	apiWantError(t, code, hdr, b, http.StatusForbidden)

	// The page shows the request with its code; the extension cannot
	// allow itself.
	code, _, b = a.do(t, "GET", "/api/pairings", nil)
	if code != 200 || !strings.Contains(string(b), `"code":"`+p.Code+`"`) || !strings.Contains(string(b), testExtOrigin) {
		t.Errorf("GET /api/pairings = %d %s, want the request with its code", code, b)
	}
	code, hdr, b = a.extDo(t, "POST", "/api/pairings/"+p.ID+"/approve", testExtOrigin, p.Key)
	apiWantError(t, code, hdr, b, http.StatusForbidden)

	a.pageApproves(t, p.ID)
	if got := extensionState(t, a, p.Key); got != "paired" {
		t.Fatalf("after Allow the state is %q, want paired", got)
	}

	// Paired: adds with the browser's cookie, from its origin or with no
	// Origin (Chromium's GETs from an extension with host access).
	code, hdr, b = a.extDo(t, "POST", "/api/download/add", testExtOrigin, p.Key,
		"url", o.FileURL(), "cookie", "session=s3cret", "referrer", "https://site.example/p", "user_agent", "TestBrowser/1")
	if code != http.StatusCreated {
		t.Fatalf("paired add: %d %s", code, b)
	}
	if hdr.Get("Access-Control-Allow-Origin") != testExtOrigin || !strings.Contains(hdr.Get("Vary"), "Origin") {
		t.Errorf("paired answer's CORS headers: %v", hdr)
	}
	if !strings.Contains(string(b), `"request_headers":["Cookie","Referer","User-Agent"]`) || strings.Contains(string(b), "s3cret") {
		t.Errorf("add answer %s: want the header names and never the cookie", b)
	}
	if code, _, b := a.extDo(t, "GET", "/api/downloads?since=0", "", p.Key); code != 200 {
		t.Errorf("paired list: %d %s", code, b)
	}

	// Exactly its routes, exactly its origin.
	for _, tc := range []struct{ method, path, origin string }{
		{"GET", "/api/settings", ""},
		{"POST", "/api/settings", testExtOrigin},
		{"POST", "/api/downloads/cancel-all", testExtOrigin},
		{"GET", "/api/pairings", ""},
		{"DELETE", "/api/history", testExtOrigin},
		{"GET", "/api/library", ""},
		{"POST", "/api/download/add", otherExtOrigin},
		{"POST", "/api/download/add", "http://evil.example"},
		{"POST", "/api/download/add", a.ts.URL},
		{"GET", "/api/downloads", "null"},
	} {
		code, hdr, b := a.extDo(t, tc.method, tc.path, tc.origin, p.Key, "url", o.FileURL())
		apiWantError(t, code, hdr, b, http.StatusForbidden)
		if got := hdr.Get("Access-Control-Allow-Origin"); got != "" && got != testExtOrigin {
			t.Errorf("%s %s from %q: Access-Control-Allow-Origin %q", tc.method, tc.path, tc.origin, got)
		}
	}

	// Kept 0600, with the key's hash and never the key.
	file := filepath.Join(a.dir, ".state", PairingsFile)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", file, fi, err)
	}
	data, _ := os.ReadFile(file)
	if strings.Contains(string(data), p.Key) || !strings.Contains(string(data), keyHash(p.Key)) {
		t.Errorf("%s holds the key itself, or not its hash:\n%s", file, data)
	}

	// A restart keeps the pairing.
	b2 := newPairingServer(t, func(c *Config) { c.OutputDir = a.dir; c.Pairings = file })
	if got := extensionState(t, b2, p.Key); got != "paired" {
		t.Errorf("after a restart the state is %q, want paired", got)
	}

	// Revoked from the page: the key stops at once.
	code, _, b = a.do(t, "DELETE", "/api/pairings/"+p.ID, nil, "Origin", a.ts.URL)
	if code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if got := extensionState(t, a, p.Key); got != "not paired" {
		t.Errorf("after revoking the state is %q", got)
	}
	code, hdr, b = a.extDo(t, "POST", "/api/download/add", testExtOrigin, p.Key, "url", o.FileURL())
	apiWantError(t, code, hdr, b, http.StatusUnauthorized)
}

// CORS lets exactly a paired (or waiting) extension origin in.
func TestExtensionCORS(t *testing.T) {
	a := newPairingServer(t)
	a.pair(t, testExtOrigin)
	preflight := func(origin, path string) (int, http.Header) {
		code, hdr, _ := a.do(t, "OPTIONS", path, nil, "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		return code, hdr
	}
	tests := []struct {
		name, origin, path string
		want               int
	}{
		{"paired extension", testExtOrigin, "/api/download/add", http.StatusNoContent},
		{"paired extension, status", testExtOrigin, extensionStatusPath, http.StatusNoContent},
		{"unpaired extension", otherExtOrigin, "/api/download/add", http.StatusForbidden},
		{"unpaired extension asking to pair", otherExtOrigin, extensionPairPath, http.StatusNoContent},
		{"web page", "http://evil.example", "/api/download/add", http.StatusMethodNotAllowed},
		{"web page asking to pair", "http://evil.example", extensionPairPath, http.StatusMethodNotAllowed},
		{"the manager's own page", a.ts.URL, "/api/download/add", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr := preflight(tc.origin, tc.path)
			if code != tc.want {
				t.Errorf("preflight = %d, want %d", code, tc.want)
			}
			acao := hdr.Get("Access-Control-Allow-Origin")
			if tc.want == http.StatusNoContent {
				if acao != tc.origin || !strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "authorization") {
					t.Errorf("allowed preflight's headers: %v", hdr)
				}
			} else if acao != "" {
				t.Errorf("refused preflight names Access-Control-Allow-Origin %q", acao)
			}
		})
	}
	// A web page never gets CORS headers, not even on a plain GET.
	_, hdr, _ := a.do(t, "GET", "/api/downloads", nil, "Origin", "http://evil.example")
	if acao := hdr.Get("Access-Control-Allow-Origin"); acao != "" {
		t.Errorf("a web page's GET got Access-Control-Allow-Origin %q", acao)
	}
}

// With -listen beyond loopback (a token set) the same rules hold: the
// pairing request needs no token (it can do nothing until the person, who
// has the token, allows it), the paired key stands in for the token, and
// wrong keys are throttled like wrong tokens.
func TestExtensionWithToken(t *testing.T) {
	const token = "a-long-access-token-0123456789"
	a := newPairingServer(t, func(c *Config) { c.Token = token })
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	a.now = func() time.Time { return time.Unix(0, now.Load()) }

	p := a.askPairing(t, testExtOrigin)
	code, _, b := a.do(t, "POST", "/api/pairings/"+p.ID+"/approve", nil, "Origin", a.ts.URL)
	apiWantError(t, code, http.Header{"Content-Type": {"application/json"}}, b, http.StatusUnauthorized)
	a.pageApproves(t, p.ID, "Authorization", "Bearer "+token)

	if got := extensionState(t, a, p.Key); got != "paired" {
		t.Fatalf("state %q, want paired", got)
	}
	if code, _, b := a.extDo(t, "GET", "/api/downloads", "", p.Key); code != 200 {
		t.Errorf("the paired key without the token: %d %s", code, b)
	}
	if code, _, _ := a.extDo(t, "GET", "/api/downloads", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no key and no token: %d, want 401", code)
	}
	for range authFailLimit {
		a.extDo(t, "GET", "/api/downloads", "", pairingKeyPrefix+"guess")
	}
	if code, _, _ := a.extDo(t, "GET", "/api/downloads", "", pairingKeyPrefix+"guess"); code != http.StatusTooManyRequests {
		t.Errorf("after %d wrong keys: %d, want 429", authFailLimit, code)
	}
	if code, _, _ := a.extDo(t, "GET", "/api/downloads", "", p.Key); code != http.StatusTooManyRequests {
		t.Errorf("during the pause even the right key gets %d, want 429", code)
	}
}

// Waiting requests are bounded, expire, and one per origin.
func TestPairingRequestsBounded(t *testing.T) {
	a := newPairingServer(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	a.now = func() time.Time { return time.Unix(0, now.Load()) }

	first := a.askPairing(t, testExtOrigin)
	again := a.askPairing(t, testExtOrigin)
	if extensionState(t, a, first.Key) != "not paired" || extensionState(t, a, again.Key) != "pending" {
		t.Error("a second request from the same extension does not replace its first")
	}
	var ids []string
	for i := range maxPendingPairings {
		ids = append(ids, a.askPairing(t, "moz-extension://0000-"+string(rune('a'+i))).ID)
	}
	_, pending := a.pairs.list()
	if len(pending) != maxPendingPairings || pending[0].ID != ids[0] {
		t.Errorf("%d requests wait (first %v); want %d, the oldest pushed out", len(pending), pending[0].ID, maxPendingPairings)
	}
	now.Add(int64(pairingWait + time.Second))
	code, hdr, b := a.do(t, "POST", "/api/pairings/"+ids[1]+"/approve", nil, "Origin", a.ts.URL)
	apiWantError(t, code, hdr, b, http.StatusNotFound)
}

// Firefox may send no Origin from an extension with host access; then the
// extension names its origin, but only where no web page could have.
func TestPairingWithoutOriginHeader(t *testing.T) {
	a := newPairingServer(t)
	const fx = "moz-extension://1c9b7c8e-1f9e-4c55-8d42-6a0e3c2b9f11"
	body, ct, cv := apiForm("origin", fx, "name", "Firefox")
	code, _, b := a.do(t, "POST", extensionPairPath, body, ct, cv)
	if code != http.StatusCreated {
		t.Fatalf("pair without Origin: %d %s", code, b)
	}
	body, ct, cv = apiForm("origin", fx)
	code, hdr, b := a.do(t, "POST", extensionPairPath, body, ct, cv, "Sec-Fetch-Site", "cross-site")
	apiWantError(t, code, hdr, b, http.StatusForbidden)
	body, ct, cv = apiForm("origin", "https://evil.example")
	code, hdr, b = a.do(t, "POST", extensionPairPath, body, ct, cv)
	apiWantError(t, code, hdr, b, http.StatusForbidden)
	// The manager's own page cannot ask either.
	code, hdr, b = a.do(t, "POST", extensionPairPath, nil, "Origin", a.ts.URL, "Sec-Fetch-Site", "same-origin")
	apiWantError(t, code, hdr, b, http.StatusForbidden)
}

func TestPairingsFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, ".state", PairingsFile)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newPairingServer(t, func(c *Config) { c.OutputDir = dir; c.Pairings = file })
	if paired, _ := a.pairs.list(); len(paired) != 0 {
		t.Errorf("paired from an unreadable file: %v", paired)
	}
	matches, _ := filepath.Glob(file + ".corrupt-*")
	if len(matches) != 1 {
		entries, _ := os.ReadDir(filepath.Dir(file))
		t.Errorf("the unreadable file was not moved aside: %v", entries)
	}
	a.pair(t, testExtOrigin)
	if data, _ := os.ReadFile(file); !strings.Contains(string(data), testExtOrigin) {
		t.Errorf("a new pairing was not kept: %s", data)
	}
}

// A server without a pairings file (a command-line run's) takes nothing
// from extensions.
func TestExtensionRefusedWithoutPairing(t *testing.T) {
	a := newAPIServer(t)
	body, ct, cv := apiForm("name", "x")
	code, hdr, b := a.do(t, "POST", extensionPairPath, body, ct, cv, "Origin", testExtOrigin)
	apiWantError(t, code, hdr, b, http.StatusForbidden)
	code, hdr, b = a.extDo(t, "POST", "/api/download/add", testExtOrigin, "", "url", "https://x.example/a")
	apiWantError(t, code, hdr, b, http.StatusForbidden)
}

// The add API takes the browser's headers for URLs, checked.
func TestAddWithBrowserHeaders(t *testing.T) {
	a := newAPIServer(t)
	for _, tc := range []struct {
		name string
		kv   []string
		want int
	}{
		{"line break in the cookie", []string{"url", "https://x.example/a", "cookie", "a=1\r\nHost: evil"}, 400},
		{"referrer not http", []string{"url", "https://x.example/a", "referrer", "file:///etc/passwd"}, 400},
		{"cookie twice", []string{"url", "https://x.example/a", "cookie", "a=1", "cookie", "b=2"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct, cv := apiForm(tc.kv...)
			code, hdr, b := a.do(t, "POST", "/api/download/add", body, ct, cv)
			apiWantError(t, code, hdr, b, tc.want)
		})
	}
}
