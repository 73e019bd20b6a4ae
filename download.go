package main

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
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultRegistry = "https://" + ollamaHost
	// registry.ollama.ai answers 412 to clients it thinks too old; it reads
	// the version from an Ollama-style User-Agent.
	defaultOllamaVersion = "0.13.0"
	defaultConcurrency   = 4
	defaultRetries       = 3
	maxManifestBytes     = 4 << 20
	maxErrorBody         = 64 << 10
	maxManifestBlobs     = 1024

	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	// Docker v2 first: Distribution refuses a manifest GET whose Accept does
	// not name it, and registry.ollama.ai serves that type.
	manifestAccept = mediaDockerManifest + ", " + mediaOCIManifest + ", " + mediaOCIIndex + ", " + mediaDockerList

	// Basic credentials for the registry when the -registry URL has none.
	envRegistryUser     = "OLLAMA_REGISTRY_USER"
	envRegistryPassword = "OLLAMA_REGISTRY_PASSWORD"
)

// registryClient pulls Ollama models from an OCI / Docker v2 registry into
// a staging folder laid out like ~/.ollama/models, then zips it.
type registryClient struct {
	cfg       registryConfig
	base      *url.URL // scheme://host[:port] of the default registry, without credentials
	userAgent string
	platform  string
	backoff   time.Duration // first pause between manifest attempts; doubles

	mu    sync.Mutex
	hosts map[string]*pullHost // by lower-case host
}

type registryConfig struct {
	Registry    string // base URL; scheme picks http/https; may carry user:pass
	Platform    string // "os/arch[/variant]" for multi-arch indexes; "" = runtime.GOOS/GOARCH
	Concurrency int    // blobs at a time, 1–32; 0 = 4
	Files       *rangeDownloader
	Client      *http.Client
	Log         *slog.Logger

	OllamaVersion string // version in the User-Agent; "" = defaultOllamaVersion
	// Basic credentials for the registry host; "" = from Registry's
	// user:pass, else OLLAMA_REGISTRY_USER / OLLAMA_REGISTRY_PASSWORD.
	Username, Password string
}

type pullRequest struct {
	Ref         string             // as typed by the user
	OutputDir   string             // staging lives under OutputDir/.staging/
	Output      string             // zip path; "" = OutputDir/<ZipName>
	KeepStaging bool               // keep the staging folder after zipping
	Retries     int                // < 0 = default
	Progress    func(pullProgress) // called often; must be cheap
	Limiter     *rateLimiter       // optional speed cap shared by all of this pull's blobs
	ModelsDir   string             // non-empty: install straight into this Ollama models folder, no zip
	Split       int64              // > 0: write the zip as NAME.zip.001, .002… of at most Split bytes
}

type pullProgress struct {
	Phase  string // "resolving", "downloading", "verifying", "packaging"
	Done   int64  // bytes over all blobs
	Total  int64  // -1 until the manifest is known
	Reused int64  // bytes taken from disk instead of the network
	Layers []layerProgress
}

// layerProgress is one blob of a model pull as the API shows it.
type layerProgress struct {
	Type   string `json:"type"` // model, template, license, params, system, projector, adapter, config…
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Done   int64  `json:"done"`
	Reused bool   `json:"reused"`
}

type pullResult struct {
	Path   string // the zip, its first part, or (ModelsDir) the manifest file
	Size   int64
	Name   modelName
	Reused int64
	Parts  []string
}

// pullHost is what a pull from one registry host needs: its base URL,
// an HTTP client whose transport authenticates to that host only, and a
// downloader using that client for blobs.
type pullHost struct {
	base  *url.URL
	http  *http.Client
	files *rangeDownloader
}

func newRegistryClient(cfg registryConfig) (*registryClient, error) {
	if cfg.Registry == "" {
		cfg.Registry = defaultRegistry
	}
	u, err := url.Parse(cfg.Registry)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, badInputf("registry %q: want a URL like https://registry.ollama.ai or http://127.0.0.1:5000", cfg.Registry)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, badInputf("registry %q: give only scheme and host, without a path", u.Redacted())
	}
	if cfg.Username == "" && u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if cfg.Username == "" {
		cfg.Username, cfg.Password = os.Getenv(envRegistryUser), os.Getenv(envRegistryPassword)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 32 {
		return nil, badInputf("concurrency must be 1-32, got %d", cfg.Concurrency)
	}
	platform := cfg.Platform
	if platform == "" {
		platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if p := strings.Split(platform, "/"); len(p) < 2 || len(p) > 3 || slices.Contains(p, "") {
		return nil, badInputf("platform %q: want os/arch, e.g. linux/amd64 or linux/arm64/v8", platform)
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
	return &registryClient{
		cfg:  cfg,
		base: &url.URL{Scheme: u.Scheme, Host: u.Host},
		// The form Ollama sends (ollama/server/internal: "ollama/%s (%s %s) Go/%s").
		userAgent: fmt.Sprintf("ollama/%s (%s %s) Go/%s", cfg.OllamaVersion, runtime.GOARCH, runtime.GOOS, runtime.Version()),
		platform:  platform,
		backoff:   500 * time.Millisecond,
		hosts:     map[string]*pullHost{},
	}, nil
}

// DefaultHost is the host (with port) of -registry: names without a host
// are pulled from it.
func (c *registryClient) DefaultHost() string { return c.base.Host }

// host returns the per-host client for a model's registry. The -registry
// host gets its scheme and credentials; other hosts (hf.co/...) use https,
// or http when -registry is http (like `ollama pull --insecure`), and never
// get the credentials.
func (c *registryClient) host(name modelName) *pullHost {
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

// blobDownloader is the shared engine with the registry host's
// authenticating client: the token must reach the registry's blob URL but
// never the CDN it redirects to, so it is added per request by
// registryAuth rather than as a header.
func blobDownloader(files *rangeDownloader, client httpDoer, log *slog.Logger) *rangeDownloader {
	if files == nil {
		return newRangeDownloader(client, log)
	}
	return files.withClient(client)
}

// Pull fetches a model's manifest and blobs into staging, verifies them and
// writes the zip. Running it again after a failure or cancel continues:
// verified blobs in staging are not fetched again.
func (c *registryClient) Pull(ctx context.Context, req pullRequest) (pullResult, error) {
	name, err := parseModelName(strings.TrimSpace(req.Ref), c.DefaultHost())
	if err != nil {
		return pullResult{}, err
	}
	if req.OutputDir == "" {
		return pullResult{}, badInputf("pulling %s: no output folder given", name.DisplayName())
	}
	retries := req.Retries
	if retries < 0 && c.cfg.Files != nil {
		retries = c.cfg.Files.retries // -retries, set on the shared engine
	}
	if retries < 0 {
		retries = defaultRetries
	}
	prog := &pullCounter{fn: req.Progress, total: -1}
	prog.phase("resolving")

	h := c.host(name)
	raw, m, err := c.resolveManifest(ctx, h, name, retries)
	if err != nil {
		return pullResult{}, err
	}
	blobs, err := manifestBlobs(m)
	if err != nil {
		return pullResult{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	prog.start(blobs)

	staging := pullStagingDir(req.OutputDir, name)
	entries := modelZipEntries(staging, name, raw, blobs)
	out := req.Output
	if out == "" {
		out = filepath.Join(req.OutputDir, name.ZipName())
	}
	// A rerun after success: the zip already holds this very manifest and
	// every blob verified, so nothing is fetched again.
	if _, err := os.Stat(out); err == nil {
		prog.phase("verifying")
	}
	if zipHolds(ctx, out, entries) {
		prog.finish()
		fi, err := os.Stat(out)
		if err != nil {
			return pullResult{}, err
		}
		c.cfg.Log.Debug("model already pulled", "model", name.String(), "zip", out)
		return pullResult{Path: out, Size: fi.Size(), Name: name}, nil
	}
	if err := prepareStaging(staging, blobs); err != nil {
		return pullResult{}, err
	}
	prog.phase("downloading")
	if err := c.fetchBlobs(ctx, h, name, staging, blobs, retries, req.Limiter, prog); err != nil {
		return pullResult{}, err
	}

	prog.phase("verifying")
	if err := writeStagedManifest(entries, raw); err != nil {
		return pullResult{}, err
	}

	prog.phase("packaging")
	zipPath, size, err := writeZip(ctx, out, entries)
	if err != nil {
		return pullResult{}, fmt.Errorf("writing zip for %s: %w", name.DisplayName(), err)
	}
	if !req.KeepStaging {
		if err := removePullStaging(req.OutputDir, name); err != nil {
			c.cfg.Log.Warn("removing staging folder", "path", staging, "err", err)
		}
	}
	c.cfg.Log.Debug("model pulled", "model", name.String(), "zip", zipPath, "bytes", size)
	return pullResult{Path: zipPath, Size: size, Name: name}, nil
}

// ociDescriptor points at a blob or, in an index, at a manifest.
type ociDescriptor struct {
	MediaType string       `json:"mediaType"`
	Digest    string       `json:"digest"`
	Size      int64        `json:"size"`
	Platform  *ociPlatform `json:"platform,omitempty"`
}

type ociPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p ociPlatform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ociManifest holds both shapes: an image manifest (config + layers) and an
// index / manifest list (manifests).
type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        *ociDescriptor  `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
	Manifests     []ociDescriptor `json:"manifests"`
}

func (m ociManifest) isIndex(contentType string) bool {
	for _, t := range []string{contentType, m.MediaType} {
		switch t {
		case mediaOCIIndex, mediaDockerList:
			return true
		case mediaOCIManifest, mediaDockerManifest:
			return false
		}
	}
	return m.Config == nil && len(m.Manifests) > 0
}

// resolveManifest fetches the manifest a name points at, following an
// index to the manifest for c.platform. It returns the bytes exactly as
// served: Ollama's model ID is their sha256.
func (c *registryClient) resolveManifest(ctx context.Context, h *pullHost, name modelName, retries int) ([]byte, ociManifest, error) {
	raw, ct, err := c.fetchManifest(ctx, h, name, name.Reference(), retries)
	if err != nil {
		return nil, ociManifest{}, err
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return nil, ociManifest{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	if !m.isIndex(ct) {
		return raw, m, nil
	}
	d, err := choosePlatform(m, c.platform)
	if err != nil {
		return nil, ociManifest{}, fmt.Errorf("resolving %s: %w", name.DisplayName(), err)
	}
	c.cfg.Log.Debug("index resolved", "model", name.String(), "platform", c.platform, "manifest", d.Digest)
	raw, ct, err = c.fetchManifest(ctx, h, name, d.Digest, retries)
	if err != nil {
		return nil, ociManifest{}, err
	}
	if m, err = decodeManifest(raw); err != nil {
		return nil, ociManifest{}, fmt.Errorf("reading manifest %s of %s: %w", d.Digest, name.DisplayName(), err)
	}
	if m.isIndex(ct) {
		return nil, ociManifest{}, withKind(errBadManifest, fmt.Errorf("resolving %s: the %s entry is another index, not a model manifest", name.DisplayName(), c.platform))
	}
	return raw, m, nil
}

func decodeManifest(raw []byte) (_ ociManifest, err error) {
	defer func() { err = withKind(errBadManifest, err) }()
	var m ociManifest
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
func choosePlatform(m ociManifest, want string) (ociDescriptor, error) {
	p := strings.Split(want, "/")
	var offered []string
	var match *ociDescriptor
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
		return ociDescriptor{}, withKind(errNoPlatform, fmt.Errorf("%w: no manifest for platform %s; available: %s (choose one with -platform)", errNotFound, want, strings.Join(offered, ", ")))
	}
	if !validDigest(match.Digest) {
		return ociDescriptor{}, withKind(errBadManifest, fmt.Errorf("index entry for %s has an invalid digest %.80q", want, match.Digest))
	}
	return *match, nil
}

// fetchManifest GETs one manifest by tag or digest, retrying transport
// errors, 429 and 5xx a bounded number of times.
func (c *registryClient) fetchManifest(ctx context.Context, h *pullHost, name modelName, ref string, retries int) ([]byte, string, error) {
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "manifests", ref).String()
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		raw, ct, err := c.fetchManifestOnce(ctx, h, name, u, ref)
		if err == nil || attempt >= retries || !retryable(err) || ctx.Err() != nil {
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

func (c *registryClient) fetchManifestOnce(ctx context.Context, h *pullHost, name modelName, u, ref string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetching manifest of %s: %w", name.DisplayName(), err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetching manifest of %s: %w", name.DisplayName(), explainNetError(err, h.base.Hostname()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", registryStatusError(resp, name, h.base.Host)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	if len(raw) > maxManifestBytes {
		return nil, "", withKind(errBadManifest, fmt.Errorf("manifest of %s is larger than %d bytes: refusing it", name.DisplayName(), maxManifestBytes))
	}
	if strings.HasPrefix(ref, digestAlgoPrefix) {
		sum := sha256.Sum256(raw)
		if got := digestAlgoPrefix + hex.EncodeToString(sum[:]); got != ref {
			return nil, "", fmt.Errorf("manifest of %s: %w: asked for %s, the registry sent %s", name.DisplayName(), errChecksumMismatch, ref, got)
		}
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return raw, ct, nil
}

// registryStatusError turns an unwanted registry answer into an error a
// person can act on, keeping the registry's own words (412 says "upgrade").
func registryStatusError(resp *http.Response, name modelName, host string) error {
	se := &statusError{Code: resp.StatusCode, URL: redactURL(resp.Request.URL.String()), Body: readErrorBody(resp.Body)}
	model := name.DisplayName()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return withKind(errModelNotFound, fmt.Errorf("model %s: %w (unknown model or tag; check the spelling): %w", model, errNotFound, se))
	case http.StatusUnauthorized:
		return withKind(errRegistryAuth, fmt.Errorf("model %s: %s requires credentials and offered no usable token challenge; pass them as -registry https://user:pass@%s or with %s/%s: %w",
			model, host, host, envRegistryUser, envRegistryPassword, se))
	case http.StatusForbidden:
		return withKind(errRegistryRefused, fmt.Errorf("model %s: access refused by %s or a filter on the way (403); if this network blocks it, try a proxy (HTTPS_PROXY or -proxy): %w", model, host, se))
	case http.StatusPreconditionFailed:
		return withKind(errRegistryRefused, fmt.Errorf("model %s: %s refuses this client version (412); its message: %q: %w", model, host, se.Body, se))
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

// explainNetError names the host that could not be resolved: for a blob
// this is usually the CDN the registry redirects to, not the registry.
func explainNetError(err error, registryHostname string) error {
	var dns *net.DNSError
	if !errors.As(err, &dns) {
		return err
	}
	if strings.EqualFold(dns.Name, registryHostname) {
		return fmt.Errorf("cannot resolve the registry host %s (check DNS or use a proxy): %w", dns.Name, dns)
	}
	return fmt.Errorf("cannot resolve %s, the download host the registry redirects blobs to (check DNS, or use a proxy that can reach it): %w", dns.Name, dns)
}

// blobRef is one blob to fetch.
type blobRef struct {
	Digest string
	Size   int64
}

func (b blobRef) file() string {
	return digestFilePrefix + strings.TrimPrefix(b.Digest, digestAlgoPrefix)
}

// manifestBlobs lists config and layers once each, after checking every
// digest: they become file names, so nothing else may pass.
func manifestBlobs(m ociManifest) (_ []blobRef, err error) {
	defer func() { err = withKind(errBadManifest, err) }()
	if m.Config == nil {
		return nil, errors.New("manifest has no config blob")
	}
	all := append([]ociDescriptor{*m.Config}, m.Layers...)
	if len(all) > maxManifestBlobs {
		return nil, fmt.Errorf("manifest lists %d blobs, more than %d", len(all), maxManifestBlobs)
	}
	var blobs []blobRef
	seen := map[string]int64{}
	for _, d := range all {
		if !validDigest(d.Digest) {
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
		blobs = append(blobs, blobRef{Digest: d.Digest, Size: d.Size})
	}
	return blobs, nil
}

// pullStagingDir is unique per model reference and safe as a path: every
// part was validated by parseModelName, and the hash keeps apart names
// that differ only in host or namespace.
func pullStagingDir(outputDir string, name modelName) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name.String())))
	tag := name.Tag
	if name.Digest != "" {
		tag = digestFilePrefix + name.digestHex()[:zipDigestShortLen]
	}
	return filepath.Join(outputDir, ".staging", name.Model+"-"+tag+"-"+hex.EncodeToString(sum[:6]))
}

// removePullStaging deletes a pull's staging folder (for cancel).
func removePullStaging(outputDir string, name modelName) error {
	if err := os.RemoveAll(pullStagingDir(outputDir, name)); err != nil {
		return fmt.Errorf("removing staging of %s: %w", name.DisplayName(), err)
	}
	_ = os.Remove(filepath.Join(outputDir, ".staging")) // only if empty
	return nil
}

// prepareStaging creates the staging folder and removes what a manifest
// no longer lists (a tag that moved since an interrupted pull), keeping the
// blobs and partial files of the current one.
func prepareStaging(dir string, blobs []blobRef) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("creating staging folder: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "manifests")); err != nil {
		return fmt.Errorf("cleaning staging folder: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return fmt.Errorf("reading staging folder: %w", err)
	}
	for _, e := range entries {
		keep := false
		for _, b := range blobs {
			if e.Name() == b.file() || strings.HasPrefix(e.Name(), b.file()+".") {
				keep = true
				break
			}
		}
		if !keep {
			if err := os.RemoveAll(filepath.Join(dir, "blobs", e.Name())); err != nil {
				return fmt.Errorf("cleaning staging folder: %w", err)
			}
		}
	}
	return nil
}

// fetchBlobs downloads every blob, cfg.Concurrency at a time; the first
// failure stops the others.
func (c *registryClient) fetchBlobs(ctx context.Context, h *pullHost, name modelName, dir string, blobs []blobRef, retries int, limiter *rateLimiter, prog *pullCounter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.cfg.Concurrency)
	errs := make([]error, len(blobs))
	var wg sync.WaitGroup
	for i, b := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := c.fetchBlob(ctx, h, name, dir, i, b, retries, limiter, prog); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the failure that stopped the pull, not the cancels it caused.
	var first error
	for _, err := range errs {
		if err != nil && first == nil {
			first = err
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return first
}

// fetchBlob downloads one blob through the resumable engine. A checksum
// mismatch (the engine already deleted the bad bytes) is retried a bounded
// number of times: a manifest that lists a wrong size or a registry that
// keeps sending bad bytes must end in a clear error, not a loop.
func (c *registryClient) fetchBlob(ctx context.Context, h *pullHost, name modelName, dir string, i int, b blobRef, retries int, limiter *rateLimiter, prog *pullCounter) error {
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "blobs", b.Digest).String()
	dest := filepath.Join(dir, "blobs", b.file())
	for attempt := 0; ; attempt++ {
		_, err := h.files.Download(ctx, fileRequest{
			URL:      u,
			Path:     dest,
			SHA256:   strings.TrimPrefix(b.Digest, digestAlgoPrefix),
			Size:     b.Size,
			Header:   http.Header{"User-Agent": {c.userAgent}},
			Retries:  retries,
			Limiter:  limiter,
			Progress: func(done, _ int64) { prog.set(i, done) },
		})
		if err == nil {
			prog.set(i, b.Size)
			return nil
		}
		if errors.Is(err, errConflict) && attempt == 0 {
			// A file in staging that is not this blob (staging edited by
			// hand): it is ours to replace.
			c.cfg.Log.Warn("replacing a staged blob that fails verification", "digest", b.Digest)
			if rerr := os.Remove(dest); rerr == nil {
				prog.set(i, 0)
				continue
			}
		}
		if errors.Is(err, errChecksumMismatch) && attempt < retries && ctx.Err() == nil {
			c.cfg.Log.Warn("blob failed verification, fetching it again", "digest", b.Digest, "attempt", attempt+1, "err", err)
			prog.set(i, 0) // the engine deleted the bad bytes
			continue
		}
		if errors.Is(err, errChecksumMismatch) {
			err = fmt.Errorf("%w (after %d attempts; the manifest says %d bytes)", err, attempt+1, b.Size)
		}
		return fmt.Errorf("downloading blob %s of %s: %w", b.Digest, name.DisplayName(), explainNetError(err, h.base.Hostname()))
	}
}

// modelZipEntries lists the zip's entries in Ollama's layout, each with
// the staging file it comes from and what it must hold:
//
//	blobs/sha256-<hex>
//	manifests/<host>/<namespace>/<model>/<tag or sha256-hex>
//
// The host keeps its port as Ollama does. Windows cannot name a folder
// "host:port", so staging uses "host_port" there; the zip keeps Ollama's.
func modelZipEntries(dir string, name modelName, raw []byte, blobs []blobRef) []zipEntry {
	entries := []zipEntry{{Name: "blobs/"}}
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b blobRef) int { return strings.Compare(a.Digest, b.Digest) })
	for _, b := range sorted {
		entries = append(entries, zipEntry{Name: "blobs/" + b.file(), Path: filepath.Join(dir, "blobs", b.file()),
			Size: b.Size, SHA256: strings.TrimPrefix(b.Digest, digestAlgoPrefix)})
	}
	stagedHost := name.Host
	if runtime.GOOS == "windows" {
		stagedHost = strings.ReplaceAll(stagedHost, ":", "_")
	}
	zdir := "manifests/"
	entries = append(entries, zipEntry{Name: zdir})
	for _, part := range []string{name.Host, name.Namespace, name.Model} {
		zdir = path.Join(zdir, part) + "/"
		entries = append(entries, zipEntry{Name: zdir})
	}
	sum := sha256.Sum256(raw)
	return append(entries, zipEntry{Name: zdir + name.ManifestFile(),
		Path: filepath.Join(dir, "manifests", stagedHost, name.Namespace, name.Model, name.ManifestFile()),
		Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:])})
}

// writeStagedManifest checks that every staged blob has its size (the
// engine verified the digests) and writes the manifest byte-for-byte as
// served: Ollama's model ID is its sha256.
func writeStagedManifest(entries []zipEntry, raw []byte) error {
	for _, e := range entries[:len(entries)-1] {
		if e.Path == "" {
			continue
		}
		fi, err := os.Stat(e.Path)
		if err != nil {
			return fmt.Errorf("checking staged blob: %w", err)
		}
		if fi.Size() != e.Size {
			return fmt.Errorf("staged %s: %w: %d bytes, manifest says %d", e.Name, errChecksumMismatch, fi.Size(), e.Size)
		}
	}
	m := entries[len(entries)-1].Path
	if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil {
		return fmt.Errorf("creating manifest folder: %w", err)
	}
	if err := writeFileAtomic(m, 0o644, writeBytes(raw)); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	return nil
}

// pullCounter sums per-blob progress and reports it; blob goroutines call
// set concurrently, so the callback is serialized.
type pullCounter struct {
	fn    func(pullProgress)
	mu    sync.Mutex
	cur   string
	done  []int64
	total int64
}

func (p *pullCounter) start(blobs []blobRef) {
	p.mu.Lock()
	p.done = make([]int64, len(blobs))
	p.total = 0
	for _, b := range blobs {
		p.total += b.Size
	}
	p.mu.Unlock()
}

// finish reports every blob as done (a pull that found its zip complete).
func (p *pullCounter) finish() {
	p.mu.Lock()
	for i := range p.done {
		p.done[i] = 0
	}
	if len(p.done) > 0 {
		p.done[0] = p.total
	}
	p.cur = "verifying"
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) phase(name string) {
	p.mu.Lock()
	p.cur = name
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) set(i int, done int64) {
	p.mu.Lock()
	p.done[i] = done
	p.mu.Unlock()
	p.report()
}

func (p *pullCounter) report() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var done int64
	for _, d := range p.done {
		done += d
	}
	p.fn(pullProgress{Phase: p.cur, Done: done, Total: p.total})
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
		return fmt.Errorf("requesting token for %s: %w", a.host, &statusError{Code: resp.StatusCode, URL: redactURL(realm.String()), Body: readErrorBody(resp.Body)})
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
