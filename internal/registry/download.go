package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultRegistry = "https://" + OllamaHost
	// registry.ollama.ai answers 412 to clients it thinks too old; it reads
	// the version from an Ollama-style User-Agent.
	defaultOllamaVersion = "0.13.0"
	defaultConcurrency   = 4
	defaultRetries       = 3
	MaxManifestBytes     = 4 << 20
	maxErrorBody         = 64 << 10
	maxManifestBlobs     = 1024

	MediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	// Docker v2 first: Distribution refuses a manifest GET whose Accept does
	// not name it, and registry.ollama.ai serves that type.
	manifestAccept = MediaDockerManifest + ", " + MediaOCIManifest + ", " + MediaOCIIndex + ", " + MediaDockerList

	// Basic credentials for the registry when the -registry URL has none.
	EnvRegistryUser     = "OLLAMA_REGISTRY_USER"
	envRegistryPassword = "OLLAMA_REGISTRY_PASSWORD"
)

// Client speaks the OCI / Docker v2 registry protocol as Ollama
// does: names, auth challenges, manifests and blobs.
type Client struct {
	cfg       Config
	base      *url.URL // scheme://host[:port] of the default registry, without credentials
	userAgent string
	platform  string
	Backoff   time.Duration // first pause between manifest attempts; doubles

	mu    sync.Mutex
	hosts map[string]*pullHost // by lower-case host
}

type Config struct {
	Registry    string // base URL; scheme picks http/https; may carry user:pass
	Platform    string // "os/arch[/variant]" for multi-arch indexes; "" = runtime.GOOS/GOARCH
	Concurrency int    // blobs at a time, 1–32; 0 = 4
	Files       *engine.Downloader
	Client      *http.Client
	Log         *slog.Logger

	OllamaVersion string // version in the User-Agent; "" = defaultOllamaVersion
	// Basic credentials for the registry host; "" = from Registry's
	// user:pass, else OLLAMA_REGISTRY_USER / OLLAMA_REGISTRY_PASSWORD.
	Username, Password string
}

// pullHost is what a pull from one registry host needs: its base URL,
// an HTTP client whose transport authenticates to that host only, and a
// downloader using that client for blobs.
type pullHost struct {
	base  *url.URL
	http  *http.Client
	files *engine.Downloader
}

func New(cfg Config) (*Client, error) {
	if cfg.Registry == "" {
		cfg.Registry = defaultRegistry
	}
	u, err := url.Parse(cfg.Registry)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fault.BadInputf("registry %q: want a URL like https://registry.ollama.ai or http://127.0.0.1:5000", cfg.Registry)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fault.BadInputf("registry %q: give only scheme and host, without a path", u.Redacted())
	}
	if cfg.Username == "" && u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if cfg.Username == "" {
		cfg.Username, cfg.Password = os.Getenv(EnvRegistryUser), os.Getenv(envRegistryPassword)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 32 {
		return nil, fault.BadInputf("concurrency must be 1-32, got %d", cfg.Concurrency)
	}
	platform := cfg.Platform
	if platform == "" {
		platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if p := strings.Split(platform, "/"); len(p) < 2 || len(p) > 3 || slices.Contains(p, "") {
		return nil, fault.BadInputf("platform %q: want os/arch, e.g. linux/amd64 or linux/arm64/v8", platform)
	}
	if cfg.OllamaVersion == "" {
		cfg.OllamaVersion = defaultOllamaVersion
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:  cfg,
		base: &url.URL{Scheme: u.Scheme, Host: u.Host},
		// The form Ollama sends (ollama/server/internal: "ollama/%s (%s %s) Go/%s").
		userAgent: fmt.Sprintf("ollama/%s (%s %s) Go/%s", cfg.OllamaVersion, runtime.GOARCH, runtime.GOOS, runtime.Version()),
		platform:  platform,
		Backoff:   500 * time.Millisecond,
		hosts:     map[string]*pullHost{},
	}, nil
}

// DefaultHost is the host (with port) of -registry: names without a host
// are pulled from it.
func (c *Client) DefaultHost() string { return c.base.Host }

// URL is the -registry URL without its credentials: scheme://host[:port].
func (c *Client) URL() string { return c.base.String() }

// Host returns the per-host client for a model's registry. The -registry
// host gets its scheme and credentials; other hosts (hf.co/...) use https,
// or http when -registry is http (like `ollama pull --insecure`), and never
// get the credentials.
func (c *Client) host(name Name) *pullHost {
	key := strings.ToLower(name.Host)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[key]; ok {
		return h
	}
	base := &url.URL{Scheme: c.base.Scheme, Host: name.Host}
	auth := &registryAuth{
		next:      c.cfg.Client.Transport,
		host:      name.Host,
		scheme:    base.Scheme,
		userAgent: c.userAgent,
		tokens:    map[string]string{},
	}
	if auth.next == nil {
		auth.next = http.DefaultTransport
	}
	if strings.EqualFold(name.Host, c.base.Host) {
		base.Host = c.base.Host
		auth.user, auth.pass = c.cfg.Username, c.cfg.Password
	}
	client := &http.Client{
		Transport:     auth,
		CheckRedirect: c.cfg.Client.CheckRedirect,
		Jar:           c.cfg.Client.Jar,
		Timeout:       c.cfg.Client.Timeout,
	}
	h := &pullHost{base: base, http: client, files: blobDownloader(c.cfg.Files, client, c.cfg.Log)}
	c.hosts[key] = h
	return h
}

// DownloadBlob fetches blob digest of name through the engine (req names
// where it goes and what it must hash to). The request goes to the name's
// registry host with its credentials; a redirect to a CDN does not carry
// them. A host that cannot be resolved is named in the error.
func (c *Client) DownloadBlob(ctx context.Context, name Name, digest string, req engine.Request) error {
	h := c.host(name)
	req.URL = h.base.JoinPath("v2", name.Namespace, name.Model, "blobs", digest).String()
	req.Header = http.Header{"User-Agent": {c.userAgent}}
	_, err := h.files.Download(ctx, req)
	return ExplainNetError(err, h.base.Hostname())
}

// blobDownloader is the shared engine with the registry host's
// authenticating client: the token must reach the registry's blob URL but
// never the CDN it redirects to, so it is added per request by
// registryAuth rather than as a header.
func blobDownloader(files *engine.Downloader, client engine.Doer, log *slog.Logger) *engine.Downloader {
	if files == nil {
		return engine.NewDownloader(client, log)
	}
	return files.WithClient(client)
}

// Retries is the -retries set on the shared engine, else defaultRetries.
func (c *Client) Retries() int {
	if c.cfg.Files != nil && c.cfg.Files.Retries >= 0 {
		return c.cfg.Files.Retries
	}
	return defaultRetries
}

// Files is the engine blobs are fetched with (nil: a default one per host).
func (c *Client) Files() *engine.Downloader { return c.cfg.Files }

// Concurrency is how many blobs a pull fetches at a time.
func (c *Client) Concurrency() int { return c.cfg.Concurrency }

// Log is the logger the client was configured with.
func (c *Client) Log() *slog.Logger { return c.cfg.Log }

// Descriptor points at a blob or, in an index, at a manifest.
type Descriptor struct {
	MediaType string    `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	Platform  *Platform `json:"platform,omitempty"`
}

type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Manifest holds both shapes: an image manifest (config + layers) and an
// index / manifest list (manifests).
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *Descriptor  `json:"config"`
	Layers        []Descriptor `json:"layers"`
	Manifests     []Descriptor `json:"manifests"`
}

func (m Manifest) IsIndex(contentType string) bool {
	for _, t := range []string{contentType, m.MediaType} {
		switch t {
		case MediaOCIIndex, MediaDockerList:
			return true
		case MediaOCIManifest, MediaDockerManifest:
			return false
		}
	}
	return m.Config == nil && len(m.Manifests) > 0
}

// ResolveManifest fetches the manifest a name points at, following an
// index to the manifest for c.platform. It returns the bytes exactly as
// served: Ollama's model ID is their sha256.
func (c *Client) ResolveManifest(ctx context.Context, name Name, retries int) ([]byte, Manifest, error) {
	h := c.host(name)
	raw, ct, err := c.fetchManifest(ctx, h, name, name.Reference(), retries)
	if err != nil {
		return nil, Manifest{}, err
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	if !m.IsIndex(ct) {
		return raw, m, nil
	}
	d, err := choosePlatform(m, c.platform)
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("resolving %s: %w", name.DisplayName(), err)
	}
	c.cfg.Log.Debug("index resolved", "model", name.String(), "platform", c.platform, "manifest", d.Digest)
	raw, ct, err = c.fetchManifest(ctx, h, name, d.Digest, retries)
	if err != nil {
		return nil, Manifest{}, err
	}
	if m, err = DecodeManifest(raw); err != nil {
		return nil, Manifest{}, fmt.Errorf("reading manifest %s of %s: %w", d.Digest, name.DisplayName(), err)
	}
	if m.IsIndex(ct) {
		return nil, Manifest{}, fault.WithKind(fault.ErrBadManifest, fmt.Errorf("resolving %s: the %s entry is another index, not a model manifest", name.DisplayName(), c.platform))
	}
	return raw, m, nil
}

func DecodeManifest(raw []byte) (_ Manifest, err error) {
	defer func() { err = fault.WithKind(fault.ErrBadManifest, err) }()
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("not a registry manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("unsupported manifest schemaVersion %d (want 2)", m.SchemaVersion)
	}
	return m, nil
}

// choosePlatform picks the index entry for "os/arch[/variant]". Without a
// variant in the wish, an entry without one is preferred.
func choosePlatform(m Manifest, want string) (Descriptor, error) {
	p := strings.Split(want, "/")
	var offered []string
	var match *Descriptor
	for i, d := range m.Manifests {
		if d.Platform == nil {
			continue
		}
		offered = append(offered, d.Platform.String())
		if !strings.EqualFold(d.Platform.OS, p[0]) || !strings.EqualFold(d.Platform.Architecture, p[1]) {
			continue
		}
		if len(p) == 3 && !strings.EqualFold(d.Platform.Variant, p[2]) {
			continue
		}
		if match == nil || (len(p) == 2 && match.Platform.Variant != "" && d.Platform.Variant == "") {
			match = &m.Manifests[i]
		}
	}
	if match == nil {
		if len(offered) == 0 {
			offered = []string{"none"}
		}
		return Descriptor{}, fault.WithKind(fault.ErrNoPlatform, fmt.Errorf("%w: no manifest for platform %s; available: %s (choose one with -platform)", fault.ErrNotFound, want, strings.Join(offered, ", ")))
	}
	if !ValidDigest(match.Digest) {
		return Descriptor{}, fault.WithKind(fault.ErrBadManifest, fmt.Errorf("index entry for %s has an invalid digest %.80q", want, match.Digest))
	}
	return *match, nil
}

// FetchManifest GETs one manifest by tag or digest, retrying transport
// errors, 429 and 5xx a bounded number of times.
// FetchManifest GETs one manifest of name by tag or digest (ref) from its
// registry host, as served, with its media type; it does not follow an
// index (ResolveManifest does).
func (c *Client) FetchManifest(ctx context.Context, name Name, ref string, retries int) ([]byte, string, error) {
	return c.fetchManifest(ctx, c.host(name), name, ref, retries)
}

func (c *Client) fetchManifest(ctx context.Context, h *pullHost, name Name, ref string, retries int) ([]byte, string, error) {
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "manifests", ref).String()
	delay := c.Backoff
	for attempt := 0; ; attempt++ {
		raw, ct, err := c.fetchManifestOnce(ctx, h, name, u, ref)
		if err == nil || attempt >= retries || !engine.Retryable(err) || ctx.Err() != nil {
			return raw, ct, err
		}
		c.cfg.Log.Warn("fetching manifest failed, retrying", "model", name.String(), "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, "", fmt.Errorf("fetching manifest of %s: %w", name.DisplayName(), ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (c *Client) fetchManifestOnce(ctx context.Context, h *pullHost, name Name, u, ref string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetching manifest of %s: %w", name.DisplayName(), err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetching manifest of %s: %w", name.DisplayName(), ExplainNetError(err, h.base.Hostname()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", registryStatusError(resp, name, h.base.Host)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	if len(raw) > MaxManifestBytes {
		return nil, "", fault.WithKind(fault.ErrBadManifest, fmt.Errorf("manifest of %s is larger than %d bytes: refusing it", name.DisplayName(), MaxManifestBytes))
	}
	if strings.HasPrefix(ref, DigestAlgoPrefix) {
		sum := sha256.Sum256(raw)
		if got := DigestAlgoPrefix + hex.EncodeToString(sum[:]); got != ref {
			return nil, "", fmt.Errorf("manifest of %s: %w: asked for %s, the registry sent %s", name.DisplayName(), fault.ErrChecksumMismatch, ref, got)
		}
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return raw, ct, nil
}

// registryStatusError turns an unwanted registry answer into an error a
// person can act on, keeping the registry's own words (412 says "upgrade").
func registryStatusError(resp *http.Response, name Name, host string) error {
	se := &fault.StatusError{Code: resp.StatusCode, URL: engine.RedactURL(resp.Request.URL.String()), Body: readErrorBody(resp.Body)}
	model := name.DisplayName()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fault.WithKind(fault.ErrModelNotFound, fmt.Errorf("model %s: %w (unknown model or tag; check the spelling): %w", model, fault.ErrNotFound, se))
	case http.StatusUnauthorized:
		return fault.WithKind(fault.ErrRegistryAuth, fmt.Errorf("model %s: %s requires credentials and offered no usable token challenge; pass them as -registry https://user:pass@%s or with %s/%s: %w",
			model, host, host, EnvRegistryUser, envRegistryPassword, se))
	case http.StatusForbidden:
		return fault.WithKind(fault.ErrRegistryRefused, fmt.Errorf("model %s: access refused by %s or a filter on the way (403); if this network blocks it, try a proxy (HTTPS_PROXY or -proxy): %w", model, host, se))
	case http.StatusPreconditionFailed:
		return fault.WithKind(fault.ErrRegistryRefused, fmt.Errorf("model %s: %s refuses this client version (412); its message: %q: %w", model, host, se.Body, se))
	}
	return fmt.Errorf("model %s: %w", model, se)
}

// readErrorBody returns the first bytes of an error body as one line; a
// registry's JSON {"errors":[{"message":…}]} becomes its messages.
func readErrorBody(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
		var msgs []string
		for _, x := range e.Errors {
			msgs = append(msgs, strings.TrimSpace(x.Code+" "+x.Message))
		}
		return strings.Join(msgs, "; ")
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// ExplainNetError names the host that could not be resolved: for a blob
// this is usually the CDN the registry redirects to, not the registry.
func ExplainNetError(err error, registryHostname string) error {
	var dns *net.DNSError
	if !errors.As(err, &dns) {
		return err
	}
	if strings.EqualFold(dns.Name, registryHostname) {
		return fmt.Errorf("cannot resolve the registry host %s (check DNS or use a proxy): %w", dns.Name, dns)
	}
	return fmt.Errorf("cannot resolve %s, the download host the registry redirects blobs to (check DNS, or use a proxy that can reach it): %w", dns.Name, dns)
}

// Blob is one blob of a model.
type Blob struct {
	Digest    string
	Size      int64
	MediaType string
}

func (b Blob) File() string {
	return DigestFilePrefix + strings.TrimPrefix(b.Digest, DigestAlgoPrefix)
}

// LayerType names a blob's media type the way `ollama show` does:
// model, template, license, params, system, projector, adapter…; the
// config blob is "config".
func LayerType(mediaType string) string {
	if t, ok := strings.CutPrefix(mediaType, "application/vnd.ollama.image."); ok && t != "" {
		return t
	}
	switch mediaType {
	case "application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json":
		return "config"
	}
	return "layer"
}

// ManifestBlobs lists config and layers once each, after checking every
// digest: they become file names, so nothing else may pass.
func ManifestBlobs(m Manifest) (_ []Blob, err error) {
	defer func() { err = fault.WithKind(fault.ErrBadManifest, err) }()
	if m.Config == nil {
		return nil, errors.New("manifest has no config blob")
	}
	all := append([]Descriptor{*m.Config}, m.Layers...)
	if len(all) > maxManifestBlobs {
		return nil, fmt.Errorf("manifest lists %d blobs, more than %d", len(all), maxManifestBlobs)
	}
	var blobs []Blob
	seen := map[string]int64{}
	for _, d := range all {
		if !ValidDigest(d.Digest) {
			return nil, fmt.Errorf("invalid blob digest %.80q (want sha256: and 64 lower-case hex digits)", d.Digest)
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("blob %s has a negative size %d", d.Digest, d.Size)
		}
		if size, ok := seen[d.Digest]; ok {
			if size != d.Size {
				return nil, fmt.Errorf("blob %s is listed with two sizes, %d and %d", d.Digest, size, d.Size)
			}
			continue // the same blob twice (e.g. a layer that is also the config): fetch it once
		}
		seen[d.Digest] = d.Size
		blobs = append(blobs, Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType})
	}
	return blobs, nil
}

// registryAuth is the transport for one registry host: it sets Ollama's
// User-Agent, answers the host's 401 challenges (anonymous Bearer tokens,
// cached per scope; Basic when credentials were given) and retries once.
// It adds Authorization only to requests for that host: blobs are
// redirected to presigned CDN URLs that must not see (and reject) it.
type registryAuth struct {
	next       http.RoundTripper
	host       string // host[:port], compared case-insensitively
	scheme     string // credentials never go over another scheme (https → http)
	userAgent  string
	user, pass string

	mu     sync.Mutex
	tokens map[string]string // repository scope → bearer token
	basic  bool              // the host asked for Basic: send it up front
}

func (a *registryAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", a.userAgent)
	if !strings.EqualFold(req.URL.Host, a.host) || req.URL.Scheme != a.scheme {
		return a.next.RoundTrip(r)
	}
	scope := repositoryScope(req.URL.Path)
	a.authorize(r, scope)
	resp, err := a.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	ch, ok := parseChallenge(resp.Header.Values("WWW-Authenticate"))
	switch {
	case ok && ch.scheme == "bearer":
		if err := a.fetchToken(req.Context(), ch, scope); err != nil {
			discardBody(resp)
			return nil, err
		}
	case ok && ch.scheme == "basic" && a.user != "":
		a.mu.Lock()
		a.basic = true
		a.mu.Unlock()
	default:
		return resp, nil // the caller explains the 401
	}
	discardBody(resp)
	r = req.Clone(req.Context())
	r.Header.Set("User-Agent", a.userAgent)
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	a.authorize(r, scope)
	return a.next.RoundTrip(r)
}

func (a *registryAuth) authorize(r *http.Request, scope string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tok, ok := a.tokens[scope]; ok {
		r.Header.Set("Authorization", "Bearer "+tok)
	} else if a.basic {
		r.SetBasicAuth(a.user, a.pass)
	}
}

// fetchToken gets a token from the challenge's realm (Docker's token
// protocol) and caches it under scope. The lock is held while fetching so
// that concurrent blob requests share one token request.
func (a *registryAuth) fetchToken(ctx context.Context, ch authChallenge, scope string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	realm, err := url.Parse(ch.params["realm"])
	if err != nil || (realm.Scheme != "http" && realm.Scheme != "https") || realm.Host == "" {
		return fmt.Errorf("registry %s sent a token challenge without a usable realm %.100q", a.host, ch.params["realm"])
	}
	q := realm.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	if s := cmp.Or(ch.params["scope"], scope); s != "" {
		q.Set("scope", s)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return fmt.Errorf("requesting token: %w", err)
	}
	req.Header.Set("User-Agent", a.userAgent)
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := (&http.Client{Transport: a.next}).Do(req)
	if err != nil {
		return fmt.Errorf("requesting token from %s: %w", realm.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("requesting token for %s: %w", a.host, &fault.StatusError{Code: resp.StatusCode, URL: engine.RedactURL(realm.String()), Body: readErrorBody(resp.Body)})
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body); err != nil {
		return fmt.Errorf("reading token from %s: %w", realm.Host, err)
	}
	tok := cmp.Or(body.Token, body.AccessToken)
	if tok == "" {
		return fmt.Errorf("token answer from %s has neither token nor access_token", realm.Host)
	}
	a.tokens[scope] = tok
	return nil
}

func discardBody(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

// repositoryScope is the token scope for a /v2/<name>/(manifests|blobs)/…
// path, "" for anything else (the /v2/ ping).
func repositoryScope(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(rest, kind); i > 0 {
			return "repository:" + rest[:i] + ":pull"
		}
	}
	return ""
}

// authChallenge is one parsed WWW-Authenticate challenge (RFC 7235).
type authChallenge struct {
	scheme string // lower case
	params map[string]string
}

// parseChallenge picks the Bearer challenge if any, else Basic.
func parseChallenge(values []string) (authChallenge, bool) {
	var basic *authChallenge
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		ch := authChallenge{scheme: strings.ToLower(scheme), params: parseAuthParams(rest)}
		switch ch.scheme {
		case "bearer":
			return ch, true
		case "basic":
			basic = &ch
		}
	}
	if basic != nil {
		return *basic, true
	}
	return authChallenge{}, false
}

// parseAuthParams reads key=value and key="quoted, value" pairs.
func parseAuthParams(s string) map[string]string {
	params := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,\t")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		rest = strings.TrimLeft(rest, " \t")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(strings.TrimSpace(rest[:end]))
			s = rest[end:]
		}
		params[key] = val.String()
	}
	return params
}
