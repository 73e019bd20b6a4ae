package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const DefaultListen = "127.0.0.1:11435"

// Mirror is a read-only OCI / Docker v2 registry over models in
// Ollama's layout (SPEC §12): /v2/, manifests by tag or digest, blobs with
// Range support, the catalog and tag lists; with a cache, a pull-through
// cache of an upstream registry (issue 16).
type Mirror struct {
	Sources     []string // zips and folders
	Log         *slog.Logger
	RescanAfter time.Duration // how old the list of models may get before a request rescans
	AnyHost     bool          // answer any Host header (LAN); otherwise only IP literals and localhost
	Cache       *Cache        // the pull-through cache; nil = the sources only
	Allow       AllowList     // clients answered; nil = every client that can connect
	Stats       *mirrorStats

	openLayout func(string) (*models.Layout, error) // openModelLayout; tests count the reads
	now        func() time.Time
	buffers    sync.Pool // *[]byte for blobs still arriving

	mu        sync.Mutex
	idx       *mirrorIndex
	scannedAt time.Time
	read      map[string]*mirrorSource // by path: what earlier scans read
}

func newModelMirror(sources []string, log *slog.Logger) *Mirror {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mirror{Sources: sources, Log: log, RescanAfter: 5 * time.Second, Stats: newMirrorStats(),
		openLayout: models.OpenLayout, now: time.Now}
}

// Options is what a mirror starts with: the serve-models flags, or
// the web UI's form.
type Options struct {
	Sources   []string
	OutputDir string // the cache lives in OutputDir/.ollama-cache
	Upstream  string // registry URL to cache; "" = the sources only
	CacheMax  int64
	Allow     AllowList
	AnyHost   bool
	Client    *http.Client       // for upstream; nil = proxies from the environment
	Files     *engine.Downloader // the file engine; nil = a new one on Client
	Log       *slog.Logger
}

// Start builds a mirror, opening (and locking) the cache when
// an upstream is given. Bad values match ErrBadInput; a cache another
// process holds matches ErrConflict.
func Start(o Options) (*Mirror, error) {
	m := newModelMirror(o.Sources, o.Log)
	m.Allow, m.AnyHost = o.Allow, o.AnyHost
	if o.Upstream == "" {
		if o.CacheMax > 0 {
			return nil, fault.BadInputf("a cache size needs an upstream registry to cache (-upstream)")
		}
		return m, nil
	}
	client := o.Client
	if client == nil {
		var err error
		if client, err = engine.NewHTTPClient(""); err != nil {
			return nil, err
		}
	}
	files := o.Files
	if files == nil {
		files = engine.NewDownloader(client, m.Log)
	}
	// Stock Ollama asks for a blob in up to 16 ranges spread over it, all
	// at once; the engine's copy for the cache opens its connections at
	// once too, instead of staying on one while that one is fast: each
	// range's bytes then come together (and on loopback or a LAN, several
	// connections fetch faster than one that also writes and hashes).
	files = files.WithClient(client)
	files.FastLink = math.Inf(1)
	upstream, err := registry.New(registry.Config{Registry: o.Upstream, Files: files, Client: client, Log: m.Log})
	if err != nil {
		return nil, err
	}
	m.Cache, err = openModelCache(cacheConfig{
		Dir:      filepath.Join(o.OutputDir, CacheFolderName),
		Upstream: upstream,
		Max:      o.CacheMax,
		Log:      m.Log,
		Stats:    m.Stats,
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Close stops the cache's fetches and releases its folder.
func (m *Mirror) Close() error {
	if m.Cache == nil {
		return nil
	}
	return m.Cache.Close()
}

// StatsView is the statistics for the web UI's panel.
func (m *Mirror) StatsView() StatsView {
	served := map[string]bool{}
	idx := m.Index()
	for _, repo := range idx.Repos {
		for _, tag := range repo.Tags {
			served[strings.ToLower(repo.Name+":"+tag)] = true
		}
	}
	if m.Cache != nil {
		for _, e := range m.Cache.Entries() {
			served[strings.ToLower(e.Name.Namespace+"/"+e.Name.Model+":"+e.Name.ManifestFile())] = true
		}
	}
	return m.Stats.view(m.now(), len(served))
}

// NewServer is a mirror's HTTP server, with the web UI server's
// limits (api.go ListenAndServe): headers within 10 s and 64 KiB, idle
// keep-alive connections closed after 2 minutes. There is no ReadTimeout
// or WriteTimeout: a 40 GB blob takes hours to send, and a client
// following a blob still coming from upstream may get nothing for a
// while (net/http also cancels a request's context when ReadTimeout
// passes during a long answer).
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// EngineClient is the HTTP client a file engine sends with (the app's,
// with its -proxy), or nil.
func EngineClient(files *engine.Downloader) *http.Client {
	if files == nil {
		return nil
	}
	c, _ := files.Client.(*http.Client)
	return c
}

// PullHosts are the host:port other machines reach a mirror at: the
// listening address, or each IPv4 address of this machine when it listens
// on all of them.
func PullHosts(addr *net.TCPAddr) []string {
	if !addr.IP.IsUnspecified() {
		return []string{addr.String()}
	}
	var hosts []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				hosts = append(hosts, net.JoinHostPort(ipn.IP.String(), fmt.Sprint(addr.Port)))
			}
		}
	}
	if len(hosts) == 0 {
		hosts = append(hosts, net.JoinHostPort("127.0.0.1", fmt.Sprint(addr.Port)))
	}
	return hosts
}

// PullCommand is what to type on another machine.
func PullCommand(host string) string {
	return "ollama pull --insecure " + host + "/library/<model>:<tag>"
}

// ServeHTTP answers the read-only part of the registry API.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.Log.Debug("mirror request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "range", r.Header.Get("Range"), "client", r.RemoteAddr)
	client := remoteAddr(r.RemoteAddr)
	if !m.Allow.allows(client) {
		// Ollama cannot send a token: the client's address is the gate.
		registryError(w, http.StatusForbidden, "DENIED", "this model mirror does not serve "+client.String()+"; its owner can let it in with -allow")
		return
	}
	if !m.AnyHost && !mirrorLoopbackHost(r.Host) {
		// A web page on another origin could point a DNS name at 127.0.0.1
		// (DNS rebinding); a loopback mirror answers only to addresses.
		registryError(w, http.StatusForbidden, "DENIED", "host "+r.Host+" is not served; use an IP address or localhost")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only: no push, upload or delete")
		return
	}
	done := m.Stats.begin(client, m.now())
	defer func() { done(m.now()) }()
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		writeMirrorJSON(w, r, struct{}{})
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		registryError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
		return
	}
	if rest == "_catalog" {
		writeMirrorJSON(w, r, map[string]any{"repositories": m.catalog()})
		return
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		repoName, tags := m.tags(name)
		if len(tags) == 0 {
			registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "no model "+name+" here")
			return
		}
		writeMirrorJSON(w, r, map[string]any{"name": repoName, "tags": tags})
		return
	}
	if strings.Contains(rest, "/blobs/uploads") {
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only: no push, upload or delete")
		return
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		m.serveManifest(w, r, rest[:i], rest[i+len("/manifests/"):])
		return
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		m.serveBlob(w, r, rest[:i], rest[i+len("/blobs/"):])
		return
	}
	registryError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
}

// catalog lists the models of the sources and of the cache.
func (m *Mirror) catalog() []string {
	idx := m.Index()
	seen := map[string]bool{}
	repos := []string{}
	for _, k := range idx.SortedRepos() {
		seen[k] = true
		repos = append(repos, idx.Repos[k].Name)
	}
	if m.Cache != nil {
		var more []string
		for _, e := range m.Cache.Entries() {
			name := e.Name.Namespace + "/" + e.Name.Model
			if !seen[strings.ToLower(name)] {
				seen[strings.ToLower(name)] = true
				more = append(more, name)
			}
		}
		slices.Sort(more)
		repos = append(repos, more...)
	}
	return repos
}

// tags lists a model's tags in the sources and the cache.
func (m *Mirror) tags(name string) (string, []string) {
	var repoName string
	var tags []string
	if repo := m.Index().repo(name); repo != nil {
		repoName, tags = repo.Name, slices.Clone(repo.Tags)
	}
	if m.Cache != nil {
		want := strings.ToLower(name)
		if !strings.Contains(want, "/") {
			want = "library/" + want
		}
		for _, e := range m.Cache.Entries() {
			if strings.ToLower(e.Name.Namespace+"/"+e.Name.Model) != want || e.Name.Tag == "" {
				continue
			}
			if repoName == "" {
				repoName = e.Name.Namespace + "/" + e.Name.Model
			}
			if !slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, e.Name.Tag) }) {
				tags = append(tags, e.Name.Tag)
			}
		}
	}
	slices.Sort(tags)
	return repoName, tags
}

// cacheName turns a registry path's name and reference into a model name
// of the upstream: "namespace/model" or "model" (library), with a tag or
// a digest.
func cacheName(name, ref, host string) (registry.Name, error) {
	if strings.Count(name, "/") > 1 {
		return registry.Name{}, fault.BadInputf("model name %q: a registry path names namespace/model", name)
	}
	s := name + ":" + ref
	if strings.HasPrefix(ref, registry.DigestAlgoPrefix) {
		s = name + "@" + ref
	}
	return registry.ParseName(s, host)
}

// sourceManifest finds a manifest in the zips and folders.
func (m *Mirror) sourceManifest(name, ref string) *models.LayoutManifest {
	repo := m.Index().repo(name)
	if repo == nil {
		return nil
	}
	key := strings.ToLower(ref)
	if strings.HasPrefix(ref, registry.DigestAlgoPrefix) {
		key = ref
	}
	return repo.manifests[key]
}

func (m *Mirror) serveManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	if m.Cache != nil {
		mn, err := cacheName(name, ref, m.Cache.host)
		if err != nil {
			registryError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
			return
		}
		e, err := m.Cache.manifest(r.Context(), mn)
		if err == nil {
			m.writeManifest(w, r, e.raw, e.digest, manifestContentType(e))
			return
		}
		if r.Context().Err() != nil {
			return
		}
		// Upstream has no such model or cannot be reached: a zip may.
		if mf := m.sourceManifest(name, ref); mf != nil {
			m.writeManifest(w, r, mf.Data, mf.Digest, mf.MediaType)
			return
		}
		if errors.Is(err, fault.ErrNotFound) {
			registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
			return
		}
		registryError(w, http.StatusBadGateway, "UNKNOWN", "the upstream registry did not give the manifest and it is not cached: "+err.Error())
		return
	}
	if m.Index().repo(name) == nil {
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "no model "+name+" here")
		return
	}
	mf := m.sourceManifest(name, ref)
	if mf == nil {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "no "+name+":"+ref+" here")
		return
	}
	m.writeManifest(w, r, mf.Data, mf.Digest, mf.MediaType)
}

func (m *Mirror) writeManifest(w http.ResponseWriter, r *http.Request, data []byte, digest, mediaType string) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Content-Length", fmt.Sprint(len(data)))
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(data)
	m.Stats.served.Add(int64(n))
}

// serveBlob answers a blob: from the cache's folder, from a zip or
// folder, or following its upstream fetch. Stock Ollama
// (server/download.go) sends the GET with a redirect policy that stops at
// the first redirect to another host name and takes that Location as the
// blob's direct URL: so a GET is answered with 307 to this same server
// under another name, marked "direct", where the ranged requests then
// land. HEAD is answered at once.
func (m *Mirror) serveBlob(w http.ResponseWriter, r *http.Request, name, digest string) {
	if !registry.ValidDigest(digest) {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "a digest is sha256:<64 lower-case hex>")
		return
	}
	var (
		cached string
		ref    registry.Blob
		own    registry.Name
		known  bool
		repo   registry.Name
	)
	if m.Cache != nil {
		var err error
		if repo, err = cacheName(name, registry.DefaultTag, m.Cache.host); err != nil {
			registryError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
			return
		}
		cached, ref, own, known = m.Cache.lookupBlob(digest, repo)
	}
	var loc mirrorBlobLocation
	inSources := false
	if cached == "" {
		loc, inSources = m.Index().blobs[digest]
	}
	if cached == "" && !inSources && !known {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "no blob "+digest+" here")
		return
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("direct") == "" {
		if alt := alternateHost(r); alt != "" {
			if cached == "" && !inSources {
				m.Cache.ensureFetch(ref, own) // start now; the ranged requests follow it
			}
			target := "http://" + alt + "/v2/" + name + "/blobs/" + digest + "?direct=1"
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
			return
		}
	}
	w = countingWriter{ResponseWriter: w, n: &m.Stats.served}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000, immutable") // content-addressed
	switch {
	case cached != "":
		m.serveCachedBlob(w, r, digest, repo)
	case inSources:
		m.serveSourceBlob(w, r, loc)
	default:
		m.serveUpstreamBlob(w, r, ref, own, repo)
	}
}

// serveCachedBlob sends a complete blob of the cache's folder.
func (m *Mirror) serveCachedBlob(w http.ResponseWriter, r *http.Request, digest string, repo registry.Name) {
	defer m.Cache.hold(digest, repo)()
	f, _, err := m.Cache.openBlob(digest)
	if err != nil {
		m.Log.Warn("mirror: opening a cached blob", "digest", digest, "err", err)
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob "+digest+" is gone")
		return
	}
	defer f.Close()
	http.ServeContent(w, r, "", time.Time{}, f)
}

// serveSourceBlob sends a blob of a zip or folder.
func (m *Mirror) serveSourceBlob(w http.ResponseWriter, r *http.Request, loc mirrorBlobLocation) {
	rs, closer, err := m.openSourceBlob(loc)
	if err != nil {
		if errors.Is(err, errSourceChanged) || errors.Is(err, fs.ErrNotExist) {
			m.rescanSoon()
		}
		m.Log.Warn("mirror: opening blob", "digest", loc.blob.Digest, "err", err)
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob "+loc.blob.Digest+" is gone")
		return
	}
	defer closer.Close()
	http.ServeContent(w, r, "", time.Time{}, rs)
}

// serveUpstreamBlob follows the upstream fetch of a blob (starting it
// when none runs). A fetch that fails before anything was sent is
// answered with 502; after, the connection is cut.
func (m *Mirror) serveUpstreamBlob(w http.ResponseWriter, r *http.Request, ref registry.Blob, own, repo registry.Name) {
	defer m.Cache.hold(ref.Digest, repo)()
	f, err := m.Cache.ensureFetch(ref, own)
	if err != nil {
		registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		return
	}
	if f == nil { // complete meanwhile
		m.serveCachedBlob(w, r, ref.Digest, repo)
		return
	}
	if r.Method == http.MethodHead && ref.Size <= m.Cache.headWaitBelow {
		// Ollama asks HEAD before each blob: for a small one, waiting for
		// the verdict costs nothing and turns a bad upstream blob into a
		// clear error now, rather than a cut transfer Ollama retries for
		// a minute.
		select {
		case <-f.done:
		case <-r.Context().Done():
			return
		}
	}
	if err, _ := f.failed(); err != nil {
		registryError(w, http.StatusBadGateway, "BLOB_UNKNOWN", err.Error())
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", fmt.Sprint(ref.Size))
		return
	}
	bp, _ := m.buffers.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 256<<10)
		bp = &b
	}
	defer m.buffers.Put(bp)
	if _, err := serveFetch(w, r, f, m.Cache.holdback, *bp); err != nil {
		w.Header().Del("Content-Length")
		registryError(w, http.StatusBadGateway, "BLOB_UNKNOWN", err.Error())
	}
}

// alternateHost is this server's address under another host name, for
// the blob redirect: an IPv4 address becomes its IPv4-mapped IPv6 form
// ([::ffff:192.168.1.5]) and back, an IPv6 address another spelling of
// itself, and a name the IP address the request arrived on. Go's dialer
// connects [::ffff:a.b.c.d] over IPv4, so one IPv4 listener answers both.
func alternateHost(r *http.Request) string {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = strings.Trim(r.Host, "[]"), ""
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if port == "" && local != nil {
		port = fmt.Sprint(local.Port)
	}
	if port == "" {
		return ""
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		if local == nil || local.IP == nil {
			return ""
		}
		return net.JoinHostPort(local.IP.String(), port)
	case ip.To4() != nil && strings.Contains(host, ":"):
		return net.JoinHostPort(ip.To4().String(), port)
	case ip.To4() != nil:
		return net.JoinHostPort("::ffff:"+ip.To4().String(), port)
	}
	var groups []string
	for i := 0; i < 16; i += 2 {
		groups = append(groups, fmt.Sprintf("%04x", int(ip[i])<<8|int(ip[i+1])))
	}
	for _, alt := range []string{strings.Join(groups, ":"), ip.String(), strings.ToUpper(ip.String())} {
		if alt != host {
			return net.JoinHostPort(alt, port)
		}
	}
	return ""
}

// mirrorLoopbackHost accepts the Host headers a loopback mirror answers:
// IP literals and localhost.
func mirrorLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func writeMirrorJSON(w http.ResponseWriter, r *http.Request, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// registryError answers in the registry's error format, which Ollama and
// docker clients show to the person.
func registryError(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": kind, "message": msg}}})
}
