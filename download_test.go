package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeRegistry is an in-process Docker v2 registry that behaves like
// registry.ollama.ai: blobs answer 307 to a second "CDN" server on another
// port, which rejects requests that carry the registry's Authorization (as
// presigned S3/R2 URLs do). Options and the exported knobs below add a
// token challenge, Basic auth and failures. Other tests may reuse it.
type fakeRegistry struct {
	t    *testing.T
	URL  string // http://127.0.0.1:<port>
	Host string // 127.0.0.1:<port>
	CDN  string // base URL of the CDN server
	srv  *httptest.Server
	cdn  *httptest.Server

	mu        sync.Mutex
	manifests map[string]fakeManifest // "<repo>|<tag or digest>"
	blobs     map[string][]byte       // by digest
	tokens    map[string]bool         // issued bearer tokens
	sigs      map[string]int          // CDN signature → uses

	// Knobs; set them with options, or under mu while a test runs.
	auth          string            // "", "token", "access_token", "basic", "nochallenge"
	direct        bool              // blobs answer 200 from the registry, no redirect
	expireCDN     bool              // a CDN URL works once, then answers 403
	cdnHost       string            // host:port put in redirects instead of the CDN's (DNS tests)
	fail503       int               // next n blob requests answer 503
	corrupt       int               // next n blob bodies have one byte flipped
	drop          int               // next n blob bodies stop half-way (connection closed)
	hold          map[string]int64  // digest → pause its body after this many bytes until the client leaves
	trickle       map[string]int64  // digest → after this many bytes, send one byte per 50 ms
	pace          time.Duration     // when set, blob bodies go out 32 KiB at a time with this pause between
	held          chan string       // receives a digest when its body is paused
	manifestFail  int               // next n manifest GETs answer 503
	manifestCode  int               // when set, every manifest GET answers this code…
	manifestBody  string            // …with this body
	serveManifest map[string][]byte // digest → bytes served instead of the stored ones (tampering)

	// Counters.
	RegistryBlobHits map[string]int   // blob GETs at the registry, by digest
	CDNHits          map[string]int   // requests at the CDN, by digest
	BytesServed      map[string]int64 // body bytes sent, by digest
	Ranges           []string         // Range headers of blob requests, in order
	TokenHits        int
	CDNAuthRejected  int
	UserAgents       []string
	Accepts          []string
	Auths            []string // Authorization headers the registry (not the CDN) received
}

type fakeManifest struct {
	mediaType string
	raw       []byte
}

type fakeOption func(*fakeRegistry)

func withTokenAuth(field string) fakeOption { return func(f *fakeRegistry) { f.auth = field } }
func withBasicAuth() fakeOption             { return func(f *fakeRegistry) { f.auth = "basic" } }
func withDirectBlobs() fakeOption           { return func(f *fakeRegistry) { f.direct = true } }
func withExpiringCDN() fakeOption           { return func(f *fakeRegistry) { f.expireCDN = true } }
func withFail503(n int) fakeOption          { return func(f *fakeRegistry) { f.fail503 = n } }
func withCorrupt(n int) fakeOption          { return func(f *fakeRegistry) { f.corrupt = n } }
func withDrop(n int) fakeOption             { return func(f *fakeRegistry) { f.drop = n } }
func withManifestStatus(code int, body string) fakeOption {
	return func(f *fakeRegistry) { f.manifestCode, f.manifestBody = code, body }
}

// fakeUser and fakePassword are the Basic credentials withBasicAuth accepts.
const fakeUser, fakePassword = "alice", "s3cret"

// The manifest shapes the fake registry serves, with the JSON names the
// registry spec (and the product's own ociManifest) use.
type fakeDescriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    string        `json:"digest"`
	Size      int64         `json:"size"`
	Platform  *fakePlatform `json:"platform,omitempty"`
}

type fakePlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

type fakeManifestDoc struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Config        *fakeDescriptor  `json:"config"`
	Layers        []fakeDescriptor `json:"layers"`
	Manifests     []fakeDescriptor `json:"manifests"`
}

const (
	fakeMediaManifest = "application/vnd.docker.distribution.manifest.v2+json"
	fakeMediaIndex    = "application/vnd.oci.image.index.v1+json"
)

func newFakeRegistry(t *testing.T, opts ...fakeOption) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{
		t:                t,
		manifests:        map[string]fakeManifest{},
		blobs:            map[string][]byte{},
		tokens:           map[string]bool{},
		sigs:             map[string]int{},
		hold:             map[string]int64{},
		trickle:          map[string]int64{},
		held:             make(chan string, 16),
		serveManifest:    map[string][]byte{},
		RegistryBlobHits: map[string]int{},
		CDNHits:          map[string]int{},
		BytesServed:      map[string]int64{},
	}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveRegistry))
	t.Cleanup(f.srv.Close)
	f.cdn = httptest.NewServer(http.HandlerFunc(f.serveCDN))
	t.Cleanup(f.cdn.Close)
	f.URL, f.Host, f.CDN = f.srv.URL, strings.TrimPrefix(f.srv.URL, "http://"), f.cdn.URL
	return f
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// addBlob stores data and returns its descriptor.
func (f *fakeRegistry) addBlob(mediaType string, data []byte) fakeDescriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digestOf(data)
	f.blobs[d] = data
	return fakeDescriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// addManifest stores raw manifest bytes under repo and ref (a tag, or ""
// for digest only); it is always reachable by its digest too.
func (f *fakeRegistry) addManifest(repo, ref, mediaType string, raw []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digestOf(raw)
	f.manifests[repo+"|"+d] = fakeManifest{mediaType, raw}
	if ref != "" {
		f.manifests[repo+"|"+ref] = fakeManifest{mediaType, raw}
	}
	return d
}

// fakeModel is a model stored in the fake registry.
type fakeModel struct {
	Manifest []byte
	Digest   string            // of the manifest
	Blobs    map[string][]byte // config and layers, by digest
}

// newFakeModel builds an Ollama model (a config plus the given layers)
// whose manifest is shaped like registry.ollama.ai's.
func newFakeModel(t *testing.T, name string, layers ...[]byte) fakeModel {
	t.Helper()
	m := fakeModel{Blobs: map[string][]byte{}}
	desc := func(mediaType string, b []byte) fakeDescriptor {
		d := fakeDescriptor{MediaType: mediaType, Digest: digestOf(b), Size: int64(len(b))}
		m.Blobs[d.Digest] = b
		return d
	}
	cfg := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":"fake","file_type":"Q4_0","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"name":%q}`, name))
	c := desc("application/vnd.docker.container.image.v1+json", cfg)
	man := fakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaManifest, Config: &c}
	types := []string{"application/vnd.ollama.image.model", "application/vnd.ollama.image.template", "application/vnd.ollama.image.params"}
	for i, l := range layers {
		man.Layers = append(man.Layers, desc(types[min(i, len(types)-1)], l))
	}
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m.Manifest, m.Digest = raw, digestOf(raw)
	return m
}

// addModel stores a model made by newFakeModel and tags it ("" = reachable
// by digest only).
func (f *fakeRegistry) addModel(repo, tag string, layers ...[]byte) fakeModel {
	f.t.Helper()
	m := newFakeModel(f.t, repo+":"+tag, layers...)
	f.mu.Lock()
	maps.Copy(f.blobs, m.Blobs)
	f.mu.Unlock()
	f.addManifest(repo, tag, fakeMediaManifest, m.Manifest)
	return m
}

// addIndex tags an OCI index pointing at models by "os/arch".
func (f *fakeRegistry) addIndex(repo, tag string, platforms map[string]fakeModel) []byte {
	f.t.Helper()
	idx := fakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaIndex}
	for _, p := range slices.Sorted(maps.Keys(platforms)) {
		osName, arch, _ := strings.Cut(p, "/")
		m := platforms[p]
		idx.Manifests = append(idx.Manifests, fakeDescriptor{MediaType: fakeMediaManifest, Digest: m.Digest, Size: int64(len(m.Manifest)),
			Platform: &fakePlatform{OS: osName, Architecture: arch}})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.addManifest(repo, tag, fakeMediaIndex, raw)
	return raw
}

// set changes knobs while the fake is serving.
func (f *fakeRegistry) set(fn func(f *fakeRegistry)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// count reads counters safely.
func (f *fakeRegistry) count(fn func(f *fakeRegistry) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f)
}

func (f *fakeRegistry) serveRegistry(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.UserAgents = append(f.UserAgents, r.UserAgent())
	if a := r.Header.Get("Authorization"); a != "" {
		f.Auths = append(f.Auths, a)
	}
	f.mu.Unlock()
	if r.URL.Path == "/token" {
		f.serveToken(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	kind := "/manifests/"
	i := strings.LastIndex(rest, kind)
	if i < 0 {
		kind = "/blobs/"
		i = strings.LastIndex(rest, kind)
	}
	if i <= 0 {
		http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`, http.StatusNotFound)
		return
	}
	repo, ref := rest[:i], rest[i+len(kind):]
	if !f.authorized(w, r, repo) {
		return
	}
	if kind == "/manifests/" {
		f.serveManifestGET(w, r, repo, ref)
		return
	}
	f.mu.Lock()
	f.RegistryBlobHits[ref]++
	data, ok := f.blobs[ref]
	direct, expire, cdnHost := f.direct, f.expireCDN, f.cdnHost
	f.mu.Unlock()
	if !ok {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, http.StatusNotFound)
		return
	}
	if direct {
		f.serveBlob(w, r, ref, data)
		return
	}
	// A fresh presigned URL on every resolution, as the real CDN does.
	sig := strconv.FormatInt(time.Now().UnixNano(), 36)
	host := strings.TrimPrefix(f.CDN, "http://")
	if cdnHost != "" {
		host = cdnHost
	}
	loc := "http://" + host + "/blob/" + strings.TrimPrefix(ref, "sha256:") + "?X-Amz-Signature=" + sig
	if expire {
		loc += "&once=1"
	}
	http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
}

func (f *fakeRegistry) serveManifestGET(w http.ResponseWriter, r *http.Request, repo, ref string) {
	f.mu.Lock()
	f.Accepts = append(f.Accepts, r.Header.Get("Accept"))
	code, body := f.manifestCode, f.manifestBody
	if f.manifestFail > 0 {
		f.manifestFail--
		code, body = http.StatusServiceUnavailable, "busy"
	}
	m, ok := f.manifests[repo+"|"+ref]
	if tampered, ok2 := f.serveManifest[ref]; ok2 {
		m.raw = tampered
	}
	f.mu.Unlock()
	if code != 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
		return
	}
	// Distribution refuses (404) a GET that does not accept the Docker v2
	// type; registry.ollama.ai serves it.
	if !strings.Contains(r.Header.Get("Accept"), fakeMediaManifest) {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"OCI manifest found, but accept header does not support OCI manifests"}]}`, http.StatusNotFound)
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
		return
	}
	w.Header().Set("Content-Type", m.mediaType)
	w.Header().Set("Docker-Content-Digest", digestOf(m.raw))
	w.Write(m.raw)
}

// authorized answers the challenge for the configured auth mode and
// reports whether the request may go on.
func (f *fakeRegistry) authorized(w http.ResponseWriter, r *http.Request, repo string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := r.Header.Get("Authorization")
	switch f.auth {
	case "":
		return true
	case "token", "access_token":
		if tok, ok := strings.CutPrefix(got, "Bearer "); ok && f.tokens[tok] {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake-registry",scope="repository:%s:pull"`, f.srv.URL, repo))
	case "basic":
		if u, p, ok := r.BasicAuth(); ok && u == fakeUser && p == fakePassword {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="fake-registry"`)
	}
	http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	return false
}

func (f *fakeRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.TokenHits++
	if r.URL.Query().Get("service") != "fake-registry" || !strings.HasPrefix(r.URL.Query().Get("scope"), "repository:") {
		http.Error(w, "bad token request", http.StatusBadRequest)
		return
	}
	tok := "tok-" + strconv.Itoa(f.TokenHits)
	f.tokens[tok] = true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{f.auth: tok, "expires_in": "300"})
}

func (f *fakeRegistry) serveCDN(w http.ResponseWriter, r *http.Request) {
	hexDigest, ok := strings.CutPrefix(r.URL.Path, "/blob/")
	d := "sha256:" + hexDigest
	f.mu.Lock()
	f.CDNHits[d]++
	data, known := f.blobs[d]
	if r.Header.Get("Authorization") != "" {
		f.CDNAuthRejected++
		f.mu.Unlock()
		// What S3 says when a presigned URL also carries a header token.
		http.Error(w, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>", http.StatusBadRequest)
		return
	}
	sig := r.URL.Query().Get("X-Amz-Signature")
	f.sigs[sig]++
	expired := r.URL.Query().Get("once") == "1" && f.sigs[sig] > 1
	f.mu.Unlock()
	switch {
	case !ok || !known:
		http.Error(w, "no such blob", http.StatusNotFound)
	case expired:
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
	default:
		f.serveBlob(w, r, d, data)
	}
}

// serveBlob serves data with Range support, applying the failure knobs.
func (f *fakeRegistry) serveBlob(w http.ResponseWriter, r *http.Request, digest string, data []byte) {
	f.mu.Lock()
	f.Ranges = append(f.Ranges, r.Header.Get("Range"))
	var fail, corrupt, drop bool
	if r.Method == http.MethodGet {
		fail, corrupt, drop = f.fail503 > 0, f.corrupt > 0 && f.fail503 == 0, f.drop > 0 && f.fail503 == 0
		switch {
		case fail:
			f.fail503--
		case corrupt:
			f.corrupt--
		case drop:
			f.drop--
		}
	}
	holdAt, hold := f.hold[digest]
	trickleAt, trickle := f.trickle[digest]
	f.mu.Unlock()

	if fail {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if corrupt {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	w.Header().Set("ETag", `"`+digest+`"`)
	if (drop || hold) && r.Header.Get("Range") == "" && r.Method == http.MethodGet {
		cut := int64(len(data) / 2)
		if hold {
			cut = holdAt
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		n, _ := w.Write(data[:cut])
		f.addServed(digest, int64(n))
		w.(http.Flusher).Flush()
		if hold {
			f.held <- digest
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	if trickle && r.Header.Get("Range") == "" && r.Method == http.MethodGet {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		n, _ := w.Write(data[:trickleAt])
		f.addServed(digest, int64(n))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := trickleAt; i < int64(len(data)); i++ {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := w.Write(data[i : i+1]); err != nil {
				return
			}
			f.addServed(digest, 1)
		}
		return
	}
	cw := &fakeCountingWriter{ResponseWriter: w}
	f.mu.Lock()
	pace := f.pace
	f.mu.Unlock()
	var body io.ReadSeeker = bytes.NewReader(data)
	if pace > 0 {
		body = &pacedReader{ReadSeeker: body, pace: pace, ctx: r.Context()}
	}
	http.ServeContent(cw, r, "", time.Time{}, body)
	f.addServed(digest, cw.n)
}

// pacedReader hands out 32 KiB per Read after a pause: a slow registry.
type pacedReader struct {
	io.ReadSeeker
	pace time.Duration
	ctx  context.Context
}

func (p *pacedReader) Read(b []byte) (int, error) {
	select {
	case <-p.ctx.Done():
		return 0, p.ctx.Err()
	case <-time.After(p.pace):
	}
	return p.ReadSeeker.Read(b[:min(len(b), 32<<10)])
}

func (f *fakeRegistry) addServed(digest string, n int64) {
	f.mu.Lock()
	f.BytesServed[digest] += n
	f.mu.Unlock()
}

type fakeCountingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *fakeCountingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// expectedTree is the zip (or staging) content SPEC §4 prescribes for m
// pulled as host/namespace/model with manifest file name file.
func expectedTree(host, namespace, model, file string, m fakeModel) map[string]zipContent {
	dir := fs.ModeDir | 0o755
	tree := map[string]zipContent{
		"blobs/":                  {Mode: dir},
		"manifests/":              {Mode: dir},
		"manifests/" + host + "/": {Mode: dir},
		"manifests/" + host + "/" + namespace + "/":                      {Mode: dir},
		"manifests/" + host + "/" + namespace + "/" + model + "/":        {Mode: dir},
		"manifests/" + host + "/" + namespace + "/" + model + "/" + file: {Mode: 0o644, Data: string(m.Manifest)},
	}
	for d, b := range m.Blobs {
		tree["blobs/sha256-"+strings.TrimPrefix(d, "sha256:")] = zipContent{Mode: 0o644, Data: string(b)}
	}
	return tree
}

// newTestRegistryClient returns a client for f with short delays; mods
// change its configuration before it is built.
func newTestRegistryClient(t *testing.T, registryURL string, mods ...func(*registryConfig)) *registryClient {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	log := slog.New(slog.DiscardHandler)
	files := newRangeDownloader(&http.Client{Transport: tr}, log)
	files.backoff, files.maxBackoff = time.Millisecond, 5*time.Millisecond
	files.stallTimeout = 10 * time.Second
	cfg := registryConfig{Registry: registryURL, Concurrency: 2, Files: files, Client: &http.Client{Transport: tr}, Log: log}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := newRegistryClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = time.Millisecond
	return c
}

// pullTestConfig is what a test may change before newTestPuller builds a
// puller: the registry client's configuration and the puller's knobs.
type pullTestConfig struct {
	registryConfig
	ReuseModelsDirs []string
	fsType          func(dir string) string
}

// newTestPuller is newTestRegistryClient's client inside a model puller.
func newTestPuller(t *testing.T, registryURL string, mods ...func(*pullTestConfig)) *modelPuller {
	t.Helper()
	var cfg pullTestConfig
	c := newTestRegistryClient(t, registryURL, func(rc *registryConfig) {
		cfg.registryConfig = *rc
		for _, m := range mods {
			m(&cfg)
		}
		*rc = cfg.registryConfig
	})
	p := newModelPuller(c)
	p.reuseModelsDirs = cfg.ReuseModelsDirs
	if cfg.fsType != nil {
		p.fsType = cfg.fsType
	}
	return p
}

// tinyModel stores a three-layer model of about 300 KB as library/<name>.
func tinyModel(f *fakeRegistry, name, tag string) fakeModel {
	return f.addModel("library/"+name, tag, testBytes(300<<10, 1), []byte("{{ .Prompt }}"), []byte(`{"stop":["<|end|>"]}`))
}

func TestPull(t *testing.T) {
	tests := []struct {
		name     string
		opts     []fakeOption
		withUser bool
	}{
		{"redirect to CDN", nil, false},
		{"bearer token", []fakeOption{withTokenAuth("token")}, false},
		{"bearer access_token", []fakeOption{withTokenAuth("access_token")}, false},
		{"direct blobs", []fakeOption{withDirectBlobs()}, false},
		{"basic auth", []fakeOption{withBasicAuth()}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistry(t, tc.opts...)
			m := tinyModel(f, "tiny", "latest")
			registryURL := f.URL
			if tc.withUser {
				registryURL = "http://" + fakeUser + ":" + fakePassword + "@" + f.Host
			}
			c := newTestPuller(t, registryURL)
			out := t.TempDir()
			var phases []string
			var last pullProgress
			res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, Retries: -1, Progress: func(p pullProgress) {
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
				}
				last = p
			}})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if want := filepath.Join(out, "tiny-latest.zip"); res.Path != want {
				t.Errorf("Path = %q, want %q", res.Path, want)
			}
			compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "latest", m))
			if _, err := os.Stat(filepath.Join(out, ".staging")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("staging folder left behind: %v", err)
			}
			if want := []string{"resolving", "downloading", "verifying", "packaging"}; !slices.Equal(phases, want) {
				t.Errorf("phases = %v, want %v", phases, want)
			}
			var total int64
			for _, b := range m.Blobs {
				total += int64(len(b))
			}
			if last.Done != total || last.Total != total {
				t.Errorf("last progress = %+v, want Done = Total = %d", last, total)
			}

			f.mu.Lock()
			defer f.mu.Unlock()
			if f.CDNAuthRejected != 0 {
				t.Errorf("the CDN received the registry's Authorization %d times", f.CDNAuthRejected)
			}
			for d := range m.Blobs {
				hits := f.RegistryBlobHits[d]
				if !f.direct {
					hits = f.CDNHits[d]
				}
				if hits != 1 {
					t.Errorf("blob %s fetched %d times, want once", d[:19], hits)
				}
			}
			if strings.Contains(tc.name, "token") && f.TokenHits != 1 {
				t.Errorf("token requested %d times, want once (cached per scope)", f.TokenHits)
			}
			ua := regexp.MustCompile(`^ollama/0\.13\.0 \([a-z0-9]+ [a-z0-9]+\) Go/go1\.`)
			for _, got := range f.UserAgents {
				if !ua.MatchString(got) {
					t.Errorf("User-Agent %q is not Ollama's form", got)
					break
				}
			}
			for _, got := range f.Accepts {
				if !strings.HasPrefix(got, mediaDockerManifest+",") || !strings.Contains(got, mediaOCIIndex) || !strings.Contains(got, mediaDockerList) || !strings.Contains(got, mediaOCIManifest) {
					t.Errorf("Accept = %q, want Docker v2 first and the OCI and list types", got)
				}
			}
		})
	}
}

// stagingTree lists a staging folder like readZipTree lists a zip.
func stagingTree(t *testing.T, dir string) map[string]zipContent {
	t.Helper()
	got := map[string]zipContent{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			got[rel+"/"] = zipContent{Mode: info.Mode()}
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = zipContent{Mode: info.Mode(), Data: string(b)}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPullKeepStaging(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "v1")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	name, err := parseModelName("tiny:v1", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny:v1", OutputDir: out, KeepStaging: true, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := expectedTree(f.Host, "library", "tiny", "v1", m)
	compareZipTree(t, readZipTree(t, res.Path), want)
	staging := pullStagingDir(out, name)
	if rel, err := filepath.Rel(filepath.Join(out, ".staging"), staging); err != nil || strings.Contains(rel, string(filepath.Separator)) {
		t.Errorf("staging %s is not one folder under .staging", staging)
	}
	compareZipTree(t, stagingTree(t, staging), want)

	if err := removePullStaging(out, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != "tiny-v1.zip" {
		t.Errorf("after removePullStaging the output folder holds %v, want only the zip", entries)
	}
}

// TestPullReplacesForeignStagedBlob: a file in staging under a blob's name
// that is not that blob is replaced, not trusted and not fatal.
func TestPullReplacesForeignStagedBlob(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	name, err := parseModelName("tiny", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range m.Blobs {
		// Same size, other bytes: only the digest can tell.
		writeTestFile(t, filepath.Join(pullStagingDir(out, name), "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:")), strings.Repeat("x", len(b)))
	}
	res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "latest", m))
}

func TestPullOutputAndRerun(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	dest := filepath.Join(t.TempDir(), "sub", "my model.zip")
	res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != dest {
		t.Errorf("Path = %q, want %q", res.Path, dest)
	}
	// The same pull again finds the zip complete: no blob is fetched, and
	// the zip is the same one, not "my model (1).zip".
	cdnBefore := f.count(func(f *fakeRegistry) int { return len(f.Ranges) })
	res, err = c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count(func(f *fakeRegistry) int { return len(f.Ranges) }) - cdnBefore; n != 0 {
		t.Errorf("rerun fetched %d blobs, want none", n)
	}
	if res.Path != dest {
		t.Errorf("rerun Path = %q, want %q", res.Path, dest)
	}
	compareZipTree(t, readZipTree(t, dest), expectedTree(f.Host, "library", "tiny", "latest", m))

	// The tag moved: the new model goes beside the old zip, never over it.
	m2 := f.addModel("library/tiny", "latest", []byte("new weights"))
	res, err = c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(dest), "my model (1).zip"); res.Path != want {
		t.Errorf("moved tag Path = %q, want %q", res.Path, want)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "latest", m2))
	compareZipTree(t, readZipTree(t, dest), expectedTree(f.Host, "library", "tiny", "latest", m))
}

func TestPullDigest(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	hexDigest := strings.TrimPrefix(m.Digest, "sha256:")

	res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny@" + m.Digest, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := "tiny-sha256-" + hexDigest[:12] + ".zip"; filepath.Base(res.Path) != want {
		t.Errorf("zip name = %q, want %q", filepath.Base(res.Path), want)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "sha256-"+hexDigest, m))

	// A registry that serves other bytes for a digest is caught.
	f.set(func(f *fakeRegistry) { f.serveManifest[m.Digest] = append(bytes.Clone(m.Manifest), ' ') })
	out := t.TempDir()
	_, err = c.Pull(t.Context(), pullRequest{Ref: "tiny@" + m.Digest, OutputDir: out, Retries: -1})
	if !errors.Is(err, errChecksumMismatch) {
		t.Fatalf("tampered manifest: err = %v, want errChecksumMismatch", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("files written despite the bad manifest: %v", entries)
	}
}

func TestPullIndex(t *testing.T) {
	f := newFakeRegistry(t)
	amd := f.addModel("library/multi", "", testBytes(10<<10, 2), []byte("amd64 template"))
	arm := f.addModel("library/multi", "", testBytes(10<<10, 3), []byte("arm64 template"))
	f.addIndex("library/multi", "latest", map[string]fakeModel{"linux/amd64": amd, "linux/arm64": arm})

	for _, tc := range []struct {
		platform string
		want     fakeModel
	}{{"linux/arm64", arm}, {"linux/amd64", amd}} {
		t.Run(tc.platform, func(t *testing.T) {
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Platform = tc.platform })
			res, err := c.Pull(t.Context(), pullRequest{Ref: "multi", OutputDir: t.TempDir(), Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "multi", "latest", tc.want))
		})
	}
	t.Run("no match", func(t *testing.T) {
		c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Platform = "windows/amd64" })
		_, err := c.Pull(t.Context(), pullRequest{Ref: "multi", OutputDir: t.TempDir(), Retries: -1})
		if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64") {
			t.Fatalf("err = %v, want errNotFound listing linux/amd64, linux/arm64", err)
		}
	})
}

func TestPullErrors(t *testing.T) {
	const upgrade = "The model you are attempting to pull requires a newer version of Ollama. Please download the latest version at: https://ollama.com/download"
	tests := []struct {
		name     string
		opts     []fakeOption
		ref      string
		manifest string // raw manifest stored as library/bad:latest
		wantIs   error
		wantMsg  string
	}{
		{name: "unknown tag", ref: "tiny:nosuch", wantIs: errNotFound, wantMsg: "unknown model or tag"},
		{name: "unknown model", ref: "nosuch", wantIs: errNotFound, wantMsg: "library/nosuch:latest: not found"},
		{name: "412 upgrade", opts: []fakeOption{withManifestStatus(412, upgrade)}, ref: "tiny", wantMsg: upgrade},
		{name: "403 blocked", opts: []fakeOption{withManifestStatus(403, "Forbidden")}, ref: "tiny", wantMsg: "try a proxy"},
		{name: "401 no challenge", opts: []fakeOption{withTokenAuth("nochallenge")}, ref: "tiny", wantMsg: envRegistryUser},
		{name: "basic without credentials", opts: []fakeOption{withBasicAuth()}, ref: "tiny", wantMsg: "requires credentials"},
		{name: "bad name", ref: "../etc/passwd", wantIs: errBadInput, wantMsg: "host \"..\": must start"},
		{name: "digest escapes", ref: "bad", wantMsg: "invalid blob digest",
			manifest: `{"schemaVersion":2,"config":{"digest":"sha256:../../../../etc/passwd","size":1},"layers":[]}`},
		{name: "upper-case digest", ref: "bad", wantMsg: "invalid blob digest",
			manifest: `{"schemaVersion":2,"config":{"digest":"sha256:` + strings.Repeat("A", 64) + `","size":1},"layers":[]}`},
		{name: "two sizes", ref: "bad", wantMsg: "two sizes",
			manifest: `{"schemaVersion":2,"config":{"digest":"` + testDigest + `","size":1},"layers":[{"digest":"` + testDigest + `","size":2}]}`},
		{name: "schema 1", ref: "bad", wantMsg: "schemaVersion 1", manifest: `{"schemaVersion":1}`},
		{name: "not json", ref: "bad", wantMsg: "not a registry manifest", manifest: `<html>`},
		{name: "too large", ref: "bad", wantMsg: "larger than",
			manifest: `{"schemaVersion":2,"x":"` + strings.Repeat("x", maxManifestBytes) + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistry(t, tc.opts...)
			tinyModel(f, "tiny", "latest")
			if tc.manifest != "" {
				f.addManifest("library/bad", "latest", mediaDockerManifest, []byte(tc.manifest))
			}
			c := newTestPuller(t, f.URL)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			_, err := c.Pull(t.Context(), pullRequest{Ref: tc.ref, OutputDir: out, Retries: 1})
			if err == nil {
				t.Fatal("Pull succeeded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want it to match %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantMsg)
			}
			// Nothing may be written outside the output folder, and nothing
			// at all before the manifest is accepted.
			if entries, _ := os.ReadDir(parent); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != "out" {
				t.Errorf("written beside the output folder: %v", entries)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("output folder not empty: %v", entries)
			}
			if tc.wantIs == errBadInput && f.count(func(f *fakeRegistry) int { return len(f.UserAgents) }) != 0 {
				t.Errorf("a request was made for an invalid name")
			}
		})
	}
}

func TestPullManifestRetry(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	f.set(func(f *fakeRegistry) { f.manifestFail = 2 })
	res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 2})
	if err != nil {
		t.Fatalf("Pull after two 503s with 2 retries: %v", err)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "latest", m))

	f.set(func(f *fakeRegistry) { f.manifestFail = 3 })
	_, err = c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 2})
	var se *statusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("Pull after three 503s with 2 retries: err = %v, want the 503", err)
	}
}

// TestPullOtherHostGetsNoCredentials pulls a name whose host is not the
// -registry host: the -registry credentials must not be sent there.
func TestPullOtherHostGetsNoCredentials(t *testing.T) {
	home := newFakeRegistry(t, withBasicAuth())
	other := newFakeRegistry(t)
	m := tinyModel(other, "tiny", "latest")
	c := newTestPuller(t, "http://"+fakeUser+":"+fakePassword+"@"+home.Host)
	res, err := c.Pull(t.Context(), pullRequest{Ref: other.Host + "/library/tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(other.Host, "library", "tiny", "latest", m))
	if auths := other.count(func(f *fakeRegistry) int { return len(f.Auths) }); auths != 0 {
		t.Errorf("the other registry received Authorization %d times", auths)
	}
}

func TestPullFailures(t *testing.T) {
	tests := []struct {
		name   string
		opts   []fakeOption
		ranged bool // a resume with Range must have happened
	}{
		{name: "503 then OK", opts: []fakeOption{withFail503(2)}},
		{name: "connection dropped mid-blob", opts: []fakeOption{withDrop(1)}, ranged: true},
		{name: "dropped, CDN URL expired", opts: []fakeOption{withDrop(1), withExpiringCDN()}, ranged: true},
		{name: "dropped, direct", opts: []fakeOption{withDrop(1), withDirectBlobs()}, ranged: true},
		{name: "corrupt once", opts: []fakeOption{withCorrupt(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistry(t, tc.opts...)
			m := tinyModel(f, "tiny", "latest")
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 1 })
			res, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 3})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "tiny", "latest", m))
			f.mu.Lock()
			defer f.mu.Unlock()
			if tc.ranged && !slices.ContainsFunc(f.Ranges, func(r string) bool { return strings.HasPrefix(r, "bytes=") && r != "bytes=0-" }) {
				t.Errorf("no resume with Range after the drop; ranges = %q", f.Ranges)
			}
			if f.expireCDN {
				resolved := 0
				for _, n := range f.RegistryBlobHits {
					resolved += n
				}
				if resolved != len(m.Blobs)+1 {
					t.Errorf("registry resolved blobs %d times, want %d (once more after the CDN URL expired)", resolved, len(m.Blobs)+1)
				}
			}
		})
	}
}

func TestPullBadBlobs(t *testing.T) {
	layer := testBytes(50<<10, 4)
	tests := []struct {
		name      string
		opts      []fakeOption
		sizeDelta int64 // added to the layer's size in the manifest
		wantMsg   string
	}{
		{name: "always corrupt", opts: []fakeOption{withCorrupt(100)}, wantMsg: "checksum mismatch"},
		{name: "size too large", sizeDelta: 10, wantMsg: "the manifest says"},
		{name: "size too small", sizeDelta: -10, wantMsg: "the manifest says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistry(t, tc.opts...)
			cfg := f.addBlob("application/vnd.docker.container.image.v1+json", []byte(`{}`))
			d := f.addBlob("application/vnd.ollama.image.model", layer)
			d.Size += tc.sizeDelta
			raw, _ := json.Marshal(fakeManifestDoc{SchemaVersion: 2, MediaType: mediaDockerManifest, Config: &cfg, Layers: []fakeDescriptor{d}})
			f.addManifest("library/bad", "latest", mediaDockerManifest, raw)
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 1 })
			out := t.TempDir()
			const retries = 2
			_, err := c.Pull(t.Context(), pullRequest{Ref: "bad", OutputDir: out, Retries: retries})
			if !errors.Is(err, errChecksumMismatch) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want a checksum mismatch saying %q", err, tc.wantMsg)
			}
			most := f.count(func(f *fakeRegistry) int { return slices.Max(slices.Collect(maps.Values(f.RegistryBlobHits))) })
			if most < 1 || most > retries+1 {
				t.Errorf("a blob was requested %d times, want 1 to %d (bounded retries)", most, retries+1)
			}
			if _, err := os.Stat(filepath.Join(out, "bad-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a zip was written despite the bad blob")
			}
		})
	}
}

func TestPullDuplicateBlob(t *testing.T) {
	f := newFakeRegistry(t)
	cfg := f.addBlob("application/vnd.docker.container.image.v1+json", []byte(`{"a":1}`))
	l := f.addBlob("application/vnd.ollama.image.model", testBytes(20<<10, 5))
	raw, _ := json.Marshal(fakeManifestDoc{SchemaVersion: 2, MediaType: mediaDockerManifest, Config: &cfg, Layers: []fakeDescriptor{l, cfg, l}})
	f.addManifest("library/dup", "latest", mediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 4 })
	var last pullProgress
	res, err := c.Pull(t.Context(), pullRequest{Ref: "dup", OutputDir: t.TempDir(), Retries: -1, Progress: func(p pullProgress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	m := fakeModel{Manifest: raw, Blobs: map[string][]byte{cfg.Digest: []byte(`{"a":1}`), l.Digest: testBytes(20<<10, 5)}}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "dup", "latest", m))
	for _, d := range []string{cfg.Digest, l.Digest} {
		if hits := f.count(func(f *fakeRegistry) int { return f.RegistryBlobHits[d] }); hits != 1 {
			t.Errorf("blob %s requested %d times, want once", d[:19], hits)
		}
	}
	if want := cfg.Size + l.Size; last.Total != want || last.Done != want {
		t.Errorf("progress = %+v, want Done = Total = %d (each blob counted once)", last, want)
	}
}

// TestPullResume cancels a pull while the large blob is half-way and pulls
// again: what was verified is not fetched again, the large blob continues
// from where it stopped, and the zip is complete.
func TestPullResume(t *testing.T) {
	f := newFakeRegistry(t)
	big := testBytes(2<<20, 6)
	m := f.addModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := digestOf(big)
	const holdAt = 1 << 20
	f.set(func(f *fakeRegistry) { f.hold[bigDigest] = holdAt })
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 4 })
	out := t.TempDir()

	var smallBytes int64
	for d, b := range m.Blobs {
		if d != bigDigest {
			smallBytes += int64(len(b))
		}
	}
	name, err := parseModelName("big", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	// The small blobs are staged as files before they are copied in.
	var small []string
	for d := range m.Blobs {
		if d != bigDigest {
			small = append(small, filepath.Join(pullStagingDir(out, name), "small", "sha256-"+strings.TrimPrefix(d, "sha256:")))
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reached := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		_, err := c.Pull(ctx, pullRequest{Ref: "big", OutputDir: out, Retries: -1, Progress: func(p pullProgress) {
			// Progress counts bytes before the engine publishes a blob:
			// wait until the small ones are recorded as verified too.
			if p.Done >= smallBytes+holdAt && allExist(small) {
				once.Do(func() { close(reached) })
			}
		}})
		errc <- err
	}()
	select {
	case <-reached:
	case err := <-errc:
		t.Fatalf("Pull ended before the large blob was half-way: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the pull did not reach the large blob's midpoint within 10s")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Pull: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pull did not return within 10s of the cancel")
	}

	f.set(func(f *fakeRegistry) { delete(f.hold, bigDigest); f.Ranges = nil })
	res, err := c.Pull(t.Context(), pullRequest{Ref: "big", OutputDir: out, Retries: -1})
	if err != nil {
		t.Fatalf("resumed Pull: %v", err)
	}
	compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "big", "latest", m))

	f.mu.Lock()
	defer f.mu.Unlock()
	for d := range m.Blobs {
		want := 1
		if d == bigDigest {
			want = 2
		}
		if got := f.CDNHits[d]; got != want {
			t.Errorf("blob %s fetched %d times, want %d", d[:19], got, want)
		}
	}
	if got := f.BytesServed[bigDigest]; got != int64(len(big)) {
		t.Errorf("large blob: %d bytes served over both runs, want %d (resumed, not restarted)", got, len(big))
	}
	if want := fmt.Sprintf("bytes=%d-", holdAt); !slices.Contains(f.Ranges, want) {
		t.Errorf("ranges on resume = %q, want %q", f.Ranges, want)
	}
}

// TestPullResumesAfterSIGKILL runs the real command as a subprocess, kills
// it while the large blob is on its way, and runs it again: the verified
// blobs are not fetched again, the large one continues from the offset the
// killed process had made durable, and the zip is complete.
func TestPullResumesAfterSIGKILL(t *testing.T) {
	f := newFakeRegistry(t)
	big := testBytes(2<<20, 8)
	m := f.addModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := digestOf(big)
	const trickleAt = 1 << 20
	f.set(func(f *fakeRegistry) { f.trickle[bigDigest] = trickleAt })
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	name, err := parseModelName("big", f.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The blob goes straight into the zip; its resume state is in staging.
	blobPath := func(d string) string {
		return filepath.Join(pullStagingDir(out, name), "zip", "sha256-"+strings.TrimPrefix(d, "sha256:"))
	}
	var small []string
	for d := range m.Blobs {
		if d != bigDigest {
			small = append(small, filepath.Join(pullStagingDir(out, name), "small", "sha256-"+strings.TrimPrefix(d, "sha256:")))
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := command(t, ctx, dir, "-output-dir", out, "-registry", f.URL, "-retries", "1", "big")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until the small blobs are published and the killed
	// process will have made at least trickleAt bytes of the big one durable.
	var committed int64
	for i := 0; i < 200 && committed < trickleAt; i++ {
		if st, err := readPartState(blobPath(bigDigest)); err == nil && allExist(small) {
			committed = st.Committed
		}
		if committed < trickleAt {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if committed < trickleAt {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the pull did not checkpoint %d bytes of the large blob within 10s\n%s", trickleAt, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	f.set(func(f *fakeRegistry) { delete(f.trickle, bigDigest); f.Ranges = nil })
	cmd = command(t, ctx, dir, "-output-dir", out, "-registry", f.URL, "big")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, b)
	}
	compareZipTree(t, readZipTree(t, filepath.Join(out, "big-latest.zip")), expectedTree(f.Host, "library", "big", "latest", m))

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range slices.Sorted(maps.Keys(m.Blobs)) {
		want := 1
		if d == bigDigest {
			want = 2
		}
		if got := f.CDNHits[d]; got != want {
			t.Errorf("blob %s fetched %d times, want %d", d[:19], got, want)
		}
	}
	if len(f.Ranges) != 1 || parseRangeStart(f.Ranges[0]) < trickleAt {
		t.Errorf("second run's requests had Range %q, want one from byte >= %d", f.Ranges, trickleAt)
	}
}

// TestPullSurvivesRepeatedKills is the model side of the crash loop: a pull
// killed with SIGKILL at random moments, up to 15 times, then run to the
// end. After every kill there is no zip or a byte-exact one, the queue file
// is whole JSON and every resume sidecar is readable; the final zip is
// exactly the model, and the history holds one completed pull.
func TestPullSurvivesRepeatedKills(t *testing.T) {
	f := newFakeRegistry(t)
	m := f.addModel("library/crash", "latest", testBytes(3<<20, 21), []byte("template"), []byte(`{"p":2}`))
	f.set(func(f *fakeRegistry) { f.pace = 40 * time.Millisecond }) // about 1 s for the big blob, more than one checkpoint
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	zipPath := filepath.Join(out, "crash-latest.zip")
	want := expectedTree(f.Host, "library", "crash", "latest", m)
	args := []string{"-output-dir", out, "-registry", f.URL, "-connections", "4", "-retries", "10", "crash"}

	deadline := time.Now().Add(60 * time.Second)
	kills := 0
	for i := 0; i < 15 && time.Now().Before(deadline); i++ {
		if _, err := os.Stat(zipPath); err == nil {
			break // finished between kills
		}
		cmd := command(t, t.Context(), dir, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Ten early kills (before the first checkpoint of the big blob),
		// then later ones, after which the pull gets further each time.
		delay := 50 + rand.IntN(650)
		if i >= 10 {
			delay = 700 + rand.IntN(800)
		}
		time.Sleep(time.Duration(delay) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills++
		if data, err := os.ReadFile(filepath.Join(out, ".state", "cli-queue.json")); err == nil && !json.Valid(data) {
			t.Fatalf("kill %d: the queue file is not valid JSON", i)
		}
		if _, err := os.Stat(zipPath); err == nil {
			compareZipTree(t, readZipTree(t, zipPath), want)
		}
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".part.json") {
				if _, err := readPartState(strings.TrimSuffix(p, ".part.json")); err != nil {
					t.Fatalf("kill %d: resume state %s unreadable: %v", i, p, err)
				}
			}
			return nil
		})
	}
	if kills < 10 {
		t.Fatalf("only %d kills before the pull finished: the registry is too fast for this test", kills)
	}
	t.Logf("%d kills", kills)
	f.set(func(f *fakeRegistry) { f.pace = 0 })
	if _, err := os.Stat(zipPath); err != nil { // else a killed run finished it
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		if msg, err := command(t, ctx, dir, args...).CombinedOutput(); err != nil {
			t.Fatalf("final run after %d kills: %v\n%s", kills, err, msg)
		}
	}
	compareZipTree(t, readZipTree(t, zipPath), want)
	h := mustOpenHistory(t, out)
	if page, err := h.List(historyQuery{Status: "completed"}); err != nil || page.Total != 1 {
		t.Errorf("history has %d completed pulls (%v), want 1", page.Total, err)
	}
}

func allExist(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func TestPullCDNNotResolvable(t *testing.T) {
	const cdnName = "cdn.fake-registry.test"
	f := newFakeRegistry(t)
	f.set(func(f *fakeRegistry) { f.cdnHost = cdnName + ":80" })
	tinyModel(f, "tiny", "latest")
	// A resolver that knows no CDN: only loopback is ever dialled.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, cdnName) {
			return nil, &net.DNSError{Err: "no such host", Name: cdnName, IsNotFound: true}
		}
		return dial(ctx, network, addr)
	}
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) {
		cfg.Client = &http.Client{Transport: tr}
		cfg.Files.client = cfg.Client
	})
	_, err := c.Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 1})
	if err == nil || !strings.Contains(err.Error(), "cannot resolve "+cdnName+", the download host the registry redirects blobs to") {
		t.Fatalf("err = %v, want it to name the CDN host %s", err, cdnName)

	}
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
	for _, u := range []string{"https://127.0.0.1:5000/v2/library/x/blobs/" + testDigest, "https://127.0.0.1:6000/blob/x", "https://cdn.example/blob", "http://127.0.0.2:5000/v2/library/x/blobs/" + testDigest} {
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
	m, err := decodeManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.isIndex(mediaDockerManifest) {
		t.Fatal("plain manifest taken for an index")
	}
	blobs, err := manifestBlobs(m)
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
	if blobs[0].file() != "sha256-"+strings.TrimPrefix(m.Config.Digest, "sha256:") {
		t.Errorf("first blob is %s, want the config", blobs[0].Digest)
	}
}

func TestNewRegistryClient(t *testing.T) {
	t.Setenv(envRegistryUser, "")
	t.Setenv(envRegistryPassword, "")
	bad := []struct {
		cfg  registryConfig
		want string
	}{
		{registryConfig{Registry: "ftp://x"}, "want a URL"},
		{registryConfig{Registry: "registry.ollama.ai"}, "want a URL"},
		{registryConfig{Registry: "https://r.example/v2/"}, "without a path"},
		{registryConfig{Concurrency: 33}, "concurrency must be 1-32"},
		{registryConfig{Concurrency: -1}, "concurrency must be 1-32"},
		{registryConfig{Platform: "linux"}, "want os/arch"},
		{registryConfig{Platform: "linux//"}, "want os/arch"},
	}
	for _, tc := range bad {
		_, err := newRegistryClient(tc.cfg)
		if !errors.Is(err, errBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newRegistryClient(%+v) err = %v, want bad input saying %q", tc.cfg, err, tc.want)
		}
	}

	c, err := newRegistryClient(registryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultHost() != "registry.ollama.ai" || c.base.Scheme != "https" {
		t.Errorf("default registry = %s, want https://registry.ollama.ai", c.base)
	}
	c, err = newRegistryClient(registryConfig{Registry: "http://u:p%40ss@127.0.0.1:5000/", OllamaVersion: "0.99.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultHost() != "127.0.0.1:5000" || c.cfg.Username != "u" || c.cfg.Password != "p@ss" {
		t.Errorf("host %q, user %q, password %q; want 127.0.0.1:5000, u, p@ss", c.DefaultHost(), c.cfg.Username, c.cfg.Password)
	}
	if !strings.HasPrefix(c.userAgent, "ollama/0.99.1 (") {
		t.Errorf("User-Agent %q does not carry the configured version", c.userAgent)
	}
	t.Setenv(envRegistryUser, "envuser")
	t.Setenv(envRegistryPassword, "envpass")
	c, err = newRegistryClient(registryConfig{Registry: "https://r.example"})
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
		m, err := decodeManifest(raw)
		if err != nil {
			return
		}
		blobs, err := manifestBlobs(m)
		if err != nil {
			return
		}
		for _, b := range blobs {
			name := b.file()
			hexPart, ok := strings.CutPrefix(name, "sha256-")
			if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" || b.Size < 0 {
				t.Fatalf("blob %+v becomes file %q", b, name)
			}
		}
	})
}
