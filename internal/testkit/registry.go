package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const TestDigest = "sha256:8de95da68dc485c0889c205384c24642f83ca18d089559c977ffc6a3972a71a8"

// FakeRegistry is an in-process Docker v2 registry that behaves like
// registry.ollama.ai: blobs answer 307 to a second "CDN" server on another
// port, which rejects requests that carry the registry's Authorization (as
// presigned S3/R2 URLs do). Options and the exported knobs below add a
// token challenge, Basic auth and failures. Other tests may reuse it.
type FakeRegistry struct {
	t    *testing.T
	URL  string // http://127.0.0.1:<port>
	Host string // 127.0.0.1:<port>
	CDN  string // base URL of the CDN server
	Srv  *httptest.Server
	cdn  *httptest.Server

	Mu        sync.Mutex
	manifests map[string]fakeManifest // "<repo>|<tag or digest>"
	blobs     map[string][]byte       // by digest
	tokens    map[string]bool         // issued bearer tokens
	sigs      map[string]int          // CDN signature → uses

	// Knobs; set them with options, or under mu while a test runs.
	Auth          string            // "", "token", "access_token", "basic", "nochallenge"
	Direct        bool              // blobs answer 200 from the registry, no redirect
	ExpireCDN     bool              // a CDN URL works once, then answers 403
	CdnHost       string            // host:port put in redirects instead of the CDN's (DNS tests)
	fail503       int               // next n blob requests answer 503
	Corrupt       int               // next n blob bodies have one byte flipped
	drop          int               // next n blob bodies stop half-way (connection closed)
	Hold          map[string]int64  // digest → pause its body after this many bytes until the client leaves
	Trickle       map[string]int64  // digest → after this many bytes, send one byte per 50 ms
	Pace          time.Duration     // when set, blob bodies go out 32 KiB at a time with this pause between
	Held          chan string       // receives a digest when its body is paused
	ManifestFail  int               // next n manifest GETs answer 503
	ManifestCode  int               // when set, every manifest GET answers this code…
	ManifestBody  string            // …with this body
	ServeManifest map[string][]byte // digest → bytes served instead of the stored ones (tampering)

	// Counters.
	RegistryBlobHits map[string]int   // blob GETs at the registry, by digest
	CDNHits          map[string]int   // requests at the CDN, by digest
	BytesServed      map[string]int64 // body bytes sent, by digest
	Ranges           []string         // Range headers of blob requests, in order
	TokenHits        int
	CDNAuthRejected  int
	UserAgents       []string
	Accepts          []string
	ManifestMethods  []string // HEAD or GET of each manifest request, in order
	Auths            []string // Authorization headers the registry (not the CDN) received
}

type fakeManifest struct {
	mediaType string
	raw       []byte
}

type FakeOption func(*FakeRegistry)

func WithTokenAuth(field string) FakeOption { return func(f *FakeRegistry) { f.Auth = field } }

func WithBasicAuth() FakeOption { return func(f *FakeRegistry) { f.Auth = "basic" } }

func WithDirectBlobs() FakeOption { return func(f *FakeRegistry) { f.Direct = true } }

func WithExpiringCDN() FakeOption { return func(f *FakeRegistry) { f.ExpireCDN = true } }

func WithFail503(n int) FakeOption { return func(f *FakeRegistry) { f.fail503 = n } }

func WithCorrupt(n int) FakeOption { return func(f *FakeRegistry) { f.Corrupt = n } }

func WithDrop(n int) FakeOption { return func(f *FakeRegistry) { f.drop = n } }

func WithManifestStatus(code int, body string) FakeOption {
	return func(f *FakeRegistry) { f.ManifestCode, f.ManifestBody = code, body }
}

// FakeUser and fakePassword are the Basic credentials withBasicAuth accepts.
const FakeUser, FakePassword = "alice", "s3cret"

// The manifest shapes the fake registry serves, with the JSON names the
// registry spec (and the product's own ociManifest) use.
type FakeDescriptor struct {
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

type FakeManifestDoc struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Config        *FakeDescriptor  `json:"config"`
	Layers        []FakeDescriptor `json:"layers"`
	Manifests     []FakeDescriptor `json:"manifests"`
}

const (
	fakeMediaManifest = "application/vnd.docker.distribution.manifest.v2+json"
	fakeMediaIndex    = "application/vnd.oci.image.index.v1+json"
)

func NewFakeRegistry(t *testing.T, opts ...FakeOption) *FakeRegistry {
	t.Helper()
	f := &FakeRegistry{
		t:                t,
		manifests:        map[string]fakeManifest{},
		blobs:            map[string][]byte{},
		tokens:           map[string]bool{},
		sigs:             map[string]int{},
		Hold:             map[string]int64{},
		Trickle:          map[string]int64{},
		Held:             make(chan string, 16),
		ServeManifest:    map[string][]byte{},
		RegistryBlobHits: map[string]int{},
		CDNHits:          map[string]int{},
		BytesServed:      map[string]int64{},
	}
	for _, o := range opts {
		o(f)
	}
	f.Srv = httptest.NewServer(http.HandlerFunc(f.serveRegistry))
	t.Cleanup(f.Srv.Close)
	f.cdn = httptest.NewServer(http.HandlerFunc(f.serveCDN))
	t.Cleanup(f.cdn.Close)
	f.URL, f.Host, f.CDN = f.Srv.URL, strings.TrimPrefix(f.Srv.URL, "http://"), f.cdn.URL
	return f
}

func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// AddBlob stores data and returns its descriptor.
func (f *FakeRegistry) AddBlob(mediaType string, data []byte) FakeDescriptor {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	d := DigestOf(data)
	f.blobs[d] = data
	return FakeDescriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// AddManifest stores raw manifest bytes under repo and ref (a tag, or ""
// for digest only); it is always reachable by its digest too.
func (f *FakeRegistry) AddManifest(repo, ref, mediaType string, raw []byte) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	d := DigestOf(raw)
	f.manifests[repo+"|"+d] = fakeManifest{mediaType, raw}
	if ref != "" {
		f.manifests[repo+"|"+ref] = fakeManifest{mediaType, raw}
	}
	return d
}

// FakeModel is a model stored in the fake registry.
type FakeModel struct {
	Manifest []byte
	Digest   string            // of the manifest
	Blobs    map[string][]byte // config and layers, by digest
}

// NewFakeModel builds an Ollama model (a config plus the given layers)
// whose manifest is shaped like registry.ollama.ai's.
func NewFakeModel(t *testing.T, name string, layers ...[]byte) FakeModel {
	t.Helper()
	m := FakeModel{Blobs: map[string][]byte{}}
	desc := func(mediaType string, b []byte) FakeDescriptor {
		d := FakeDescriptor{MediaType: mediaType, Digest: DigestOf(b), Size: int64(len(b))}
		m.Blobs[d.Digest] = b
		return d
	}
	cfg := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":"fake","file_type":"Q4_0","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"name":%q}`, name))
	c := desc("application/vnd.docker.container.image.v1+json", cfg)
	man := FakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaManifest, Config: &c}
	types := []string{"application/vnd.ollama.image.model", "application/vnd.ollama.image.template", "application/vnd.ollama.image.params"}
	for i, l := range layers {
		man.Layers = append(man.Layers, desc(types[min(i, len(types)-1)], l))
	}
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m.Manifest, m.Digest = raw, DigestOf(raw)
	return m
}

// AddModel stores a model made by newFakeModel and tags it ("" = reachable
// by digest only).
func (f *FakeRegistry) AddModel(repo, tag string, layers ...[]byte) FakeModel {
	f.t.Helper()
	m := NewFakeModel(f.t, repo+":"+tag, layers...)
	f.Mu.Lock()
	maps.Copy(f.blobs, m.Blobs)
	f.Mu.Unlock()
	f.AddManifest(repo, tag, fakeMediaManifest, m.Manifest)
	return m
}

// AddIndex tags an OCI index pointing at models by "os/arch".
func (f *FakeRegistry) AddIndex(repo, tag string, platforms map[string]FakeModel) []byte {
	f.t.Helper()
	idx := FakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaIndex}
	for _, p := range slices.Sorted(maps.Keys(platforms)) {
		osName, arch, _ := strings.Cut(p, "/")
		m := platforms[p]
		idx.Manifests = append(idx.Manifests, FakeDescriptor{MediaType: fakeMediaManifest, Digest: m.Digest, Size: int64(len(m.Manifest)),
			Platform: &fakePlatform{OS: osName, Architecture: arch}})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.AddManifest(repo, tag, fakeMediaIndex, raw)
	return raw
}

// Set changes knobs while the fake is serving.
func (f *FakeRegistry) Set(fn func(f *FakeRegistry)) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	fn(f)
}

// Count reads counters safely.
func (f *FakeRegistry) Count(fn func(f *FakeRegistry) int) int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return fn(f)
}

func (f *FakeRegistry) serveRegistry(w http.ResponseWriter, r *http.Request) {
	f.Mu.Lock()
	f.UserAgents = append(f.UserAgents, r.UserAgent())
	if a := r.Header.Get("Authorization"); a != "" {
		f.Auths = append(f.Auths, a)
	}
	f.Mu.Unlock()
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
	f.Mu.Lock()
	f.RegistryBlobHits[ref]++
	data, ok := f.blobs[ref]
	direct, expire, cdnHost := f.Direct, f.ExpireCDN, f.CdnHost
	f.Mu.Unlock()
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

func (f *FakeRegistry) serveManifestGET(w http.ResponseWriter, r *http.Request, repo, ref string) {
	f.Mu.Lock()
	f.Accepts = append(f.Accepts, r.Header.Get("Accept"))
	f.ManifestMethods = append(f.ManifestMethods, r.Method)
	code, body := f.ManifestCode, f.ManifestBody
	if f.ManifestFail > 0 {
		f.ManifestFail--
		code, body = http.StatusServiceUnavailable, "busy"
	}
	m, ok := f.manifests[repo+"|"+ref]
	if tampered, ok2 := f.ServeManifest[ref]; ok2 {
		m.raw = tampered
	}
	f.Mu.Unlock()
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
	w.Header().Set("Docker-Content-Digest", DigestOf(m.raw))
	w.Write(m.raw)
}

// authorized answers the challenge for the configured auth mode and
// reports whether the request may go on.
func (f *FakeRegistry) authorized(w http.ResponseWriter, r *http.Request, repo string) bool {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	got := r.Header.Get("Authorization")
	switch f.Auth {
	case "":
		return true
	case "token", "access_token":
		if tok, ok := strings.CutPrefix(got, "Bearer "); ok && f.tokens[tok] {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake-registry",scope="repository:%s:pull"`, f.Srv.URL, repo))
	case "basic":
		if u, p, ok := r.BasicAuth(); ok && u == FakeUser && p == FakePassword {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="fake-registry"`)
	}
	http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	return false
}

func (f *FakeRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.TokenHits++
	if r.URL.Query().Get("service") != "fake-registry" || !strings.HasPrefix(r.URL.Query().Get("scope"), "repository:") {
		http.Error(w, "bad token request", http.StatusBadRequest)
		return
	}
	tok := "tok-" + strconv.Itoa(f.TokenHits)
	f.tokens[tok] = true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{f.Auth: tok, "expires_in": "300"})
}

func (f *FakeRegistry) serveCDN(w http.ResponseWriter, r *http.Request) {
	hexDigest, ok := strings.CutPrefix(r.URL.Path, "/blob/")
	d := "sha256:" + hexDigest
	f.Mu.Lock()
	f.CDNHits[d]++
	data, known := f.blobs[d]
	if r.Header.Get("Authorization") != "" {
		f.CDNAuthRejected++
		f.Mu.Unlock()
		// What S3 says when a presigned URL also carries a header token.
		http.Error(w, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>", http.StatusBadRequest)
		return
	}
	sig := r.URL.Query().Get("X-Amz-Signature")
	f.sigs[sig]++
	expired := r.URL.Query().Get("once") == "1" && f.sigs[sig] > 1
	f.Mu.Unlock()
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
func (f *FakeRegistry) serveBlob(w http.ResponseWriter, r *http.Request, digest string, data []byte) {
	f.Mu.Lock()
	f.Ranges = append(f.Ranges, r.Header.Get("Range"))
	var fail, corrupt, drop bool
	if r.Method == http.MethodGet {
		fail, corrupt, drop = f.fail503 > 0, f.Corrupt > 0 && f.fail503 == 0, f.drop > 0 && f.fail503 == 0
		switch {
		case fail:
			f.fail503--
		case corrupt:
			f.Corrupt--
		case drop:
			f.drop--
		}
	}
	holdAt, hold := f.Hold[digest]
	trickleAt, trickle := f.Trickle[digest]
	f.Mu.Unlock()

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
			f.Held <- digest
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
	f.Mu.Lock()
	pace := f.Pace
	f.Mu.Unlock()
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

func (f *FakeRegistry) addServed(digest string, n int64) {
	f.Mu.Lock()
	f.BytesServed[digest] += n
	f.Mu.Unlock()
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

// ExpectedTree is the zip (or staging) content SPEC §4 prescribes for m
// pulled as host/namespace/model with manifest file name file.
func ExpectedTree(host, namespace, model, file string, m FakeModel) map[string]ZipContent {
	dir := fs.ModeDir | 0o755
	tree := map[string]ZipContent{
		"blobs/":                  {Mode: dir},
		"manifests/":              {Mode: dir},
		"manifests/" + host + "/": {Mode: dir},
		"manifests/" + host + "/" + namespace + "/":                      {Mode: dir},
		"manifests/" + host + "/" + namespace + "/" + model + "/":        {Mode: dir},
		"manifests/" + host + "/" + namespace + "/" + model + "/" + file: {Mode: 0o644, Data: string(m.Manifest)},
	}
	for d, b := range m.Blobs {
		tree["blobs/sha256-"+strings.TrimPrefix(d, "sha256:")] = ZipContent{Mode: 0o644, Data: string(b)}
	}
	return tree
}

// TinyModel stores a three-layer model of about 300 KB as library/<name>.
func TinyModel(f *FakeRegistry, name, tag string) FakeModel {
	return f.AddModel("library/"+name, tag, TestBytes(300<<10, 1), []byte("{{ .Prompt }}"), []byte(`{"stop":["<|end|>"]}`))
}

// StagingTree lists a staging folder like readZipTree lists a zip.
func StagingTree(t *testing.T, dir string) map[string]ZipContent {
	t.Helper()
	got := map[string]ZipContent{}
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
			got[rel+"/"] = ZipContent{Mode: info.Mode()}
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = ZipContent{Mode: info.Mode(), Data: string(b)}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// AddShowModel stores library/qwen:0.5b with a config, a license, a
// template and params this test wrote; it returns the manifest's digest
// the model blob's digest and the model's size.
func AddShowModel(f *FakeRegistry) (digest, modelDigest string, size int64) {
	cfgBlob := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte(`{"model_format":"gguf","model_family":"qwen2","model_families":["qwen2"],"model_type":"494.03M","file_type":"Q4_0","architecture":"amd64","os":"linux"}`))
	model := f.AddBlob("application/vnd.ollama.image.model", TestBytes(300_000, 2))
	license := f.AddBlob("application/vnd.ollama.image.license", []byte("\n  Apache License\n  Version 2.0, January 2004\n"))
	tmpl := f.AddBlob("application/vnd.ollama.image.template", []byte("{{ .Prompt }}"))
	params := f.AddBlob("application/vnd.ollama.image.params", []byte(`{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.7}`))
	man := FakeManifestDoc{SchemaVersion: 2, MediaType: fakeMediaManifest, Config: &cfgBlob, Layers: []FakeDescriptor{model, tmpl, license, params}}
	raw, _ := json.Marshal(man)
	return f.AddManifest("library/qwen", "0.5b", fakeMediaManifest, raw), model.Digest, cfgBlob.Size + model.Size + license.Size + tmpl.Size + params.Size
}
