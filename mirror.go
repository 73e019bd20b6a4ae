package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

const serveModelsUsage = `Usage: ollama-model-downloader serve-models [-listen ADDR] [-output-dir DIR] [zip | folder]...

Serves downloaded models as a read-only registry, so that other machines
pull them with a stock Ollama instead of the Internet:

  ollama pull --insecure <this-machine>:11435/library/<model>:<tag>

What is served: the zips in -output-dir (the default), or the zips and
folders named as arguments. A folder is either in Ollama's layout (an Ollama
models folder, a kept staging folder, an extracted zip: it has manifests/)
or holds zips. New zips are picked up while it runs.

It listens on loopback only unless -listen says otherwise. Blob downloads
answer with a redirect to the same server under a second name (an IPv4
address and its IPv4-mapped IPv6 form, [::ffff:a.b.c.d]), because Ollama
only accepts a blob after a redirect to another host name.

Examples:
  ollama-model-downloader serve-models
  ollama-model-downloader serve-models -listen 0.0.0.0:11435          # the whole LAN
  ollama-model-downloader serve-models ~/.ollama/models qwen3-8b.zip
  curl http://127.0.0.1:11435/v2/_catalog

Flags:
`

const defaultMirrorListen = "127.0.0.1:11435"

// modelMirror is a read-only OCI / Docker v2 registry over models in
// Ollama's layout (SPEC §12): /v2/, manifests by tag or digest, blobs with
// Range support, the catalog and tag lists.
type modelMirror struct {
	Sources     []string // zips and folders
	Log         *slog.Logger
	RescanAfter time.Duration // how old the list of models may get before a request rescans
	AnyHost     bool          // answer any Host header (LAN); otherwise only IP literals and localhost

	mu        sync.Mutex
	idx       *mirrorIndex
	scannedAt time.Time
}

// mirrorIndex is what one scan of the sources found.
type mirrorIndex struct {
	repos map[string]*mirrorRepo        // by lower-case "namespace/model"
	blobs map[string]mirrorBlobLocation // by digest
}

type mirrorRepo struct {
	Name      string                     // "namespace/model" as on disk
	manifests map[string]*layoutManifest // by lower-case tag, and by digest
	tags      []string
}

type mirrorBlobLocation struct {
	layout *modelLayout
	blob   layoutBlob
}

func newModelMirror(sources []string, log *slog.Logger) *modelMirror {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &modelMirror{Sources: sources, Log: log, RescanAfter: 5 * time.Second}
}

// runServeModelsCommand is "ollama-model-downloader serve-models". It
// serves until ctx ends and returns the exit code: 0 stopped cleanly, 1
// failed, 2 bad usage.
func runServeModelsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve-models", flag.ContinueOnError)
	listen := fset.String("listen", defaultMirrorListen, "address to listen on; 0.0.0.0:11435 serves the LAN")
	outputDir := fset.String("output-dir", "downloaded-models", "folder whose zips are served when no argument is given")
	verbose := fset.Bool("v", false, "log every request")
	sources, code, ok := subcommandArgs(fset, args, serveModelsUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(sources) == 0 {
		sources = []string{*outputDir}
	}
	for _, s := range sources {
		if _, err := os.Stat(s); err != nil {
			fmt.Fprintf(stderr, "serve-models: %s: no such zip or folder (name the zips or folders to serve, or set -output-dir)\n", s)
			return 2
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "serve-models:", err)
		return 1
	}
	m := newModelMirror(sources, log)
	tcp := ln.Addr().(*net.TCPAddr)
	m.AnyHost = !tcp.IP.IsLoopback()
	printMirrorBanner(stdout, m.index(), tcp)

	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "serve-models:", err)
		return 1
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return 0
}

// printMirrorBanner says what is served and the command to type elsewhere.
func printMirrorBanner(out io.Writer, idx *mirrorIndex, addr *net.TCPAddr) {
	hosts := []string{addr.String()}
	if addr.IP.IsUnspecified() {
		hosts = hosts[:0]
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
					hosts = append(hosts, net.JoinHostPort(ipn.IP.String(), fmt.Sprint(addr.Port)))
				}
			}
		}
		if len(hosts) == 0 {
			hosts = append(hosts, net.JoinHostPort("<this-machine>", fmt.Sprint(addr.Port)))
		}
	}
	fmt.Fprintf(out, "Serving models read-only at http://%s/v2/\n", hosts[0])
	names := idx.sortedRepos()
	if len(names) == 0 {
		fmt.Fprintln(out, "No models found yet; zips added later are picked up.")
	}
	for _, name := range names {
		repo := idx.repos[name]
		for _, tag := range repo.tags {
			for _, h := range hosts {
				fmt.Fprintf(out, "  ollama pull --insecure %s/%s:%s\n", h, repo.Name, tag)
			}
		}
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

// index returns the current list of models, scanning the sources again
// when it is older than RescanAfter.
func (m *modelMirror) index() *mirrorIndex {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idx == nil || time.Since(m.scannedAt) > m.RescanAfter {
		m.idx = m.scan()
		m.scannedAt = time.Now()
	}
	return m.idx
}

// scan reads every source. A zip with problems is left out (and logged);
// a manifest whose blobs are not all there is left out.
func (m *modelMirror) scan() *mirrorIndex {
	idx := &mirrorIndex{repos: map[string]*mirrorRepo{}, blobs: map[string]mirrorBlobLocation{}}
	for _, src := range m.layoutPaths() {
		l, err := openModelLayout(src)
		if err != nil {
			m.Log.Warn("mirror: skipping", "source", src, "err", err)
			continue
		}
		if l.zip && len(l.Problems) > 0 {
			m.Log.Warn("mirror: skipping a zip with problems (run verify)", "source", src, "problem", l.Problems[0])
			continue
		}
	manifests:
		for i := range l.Manifests {
			mf := &l.Manifests[i]
			for _, ref := range mf.Refs {
				b, ok := l.Blobs[ref.Digest]
				if !ok || b.Size != ref.Size || !b.Stored {
					m.Log.Debug("mirror: skipping a manifest whose blobs are missing or compressed", "source", src, "manifest", mf.Name)
					continue manifests
				}
			}
			key := strings.ToLower(mf.Namespace + "/" + mf.Model)
			repo := idx.repos[key]
			if repo == nil {
				repo = &mirrorRepo{Name: mf.Namespace + "/" + mf.Model, manifests: map[string]*layoutManifest{}}
				idx.repos[key] = repo
			}
			tag := strings.ToLower(mf.Tag)
			if _, dup := repo.manifests[tag]; dup {
				continue // the first source (or host folder) wins
			}
			repo.manifests[tag] = mf
			repo.manifests[mf.Digest] = mf
			repo.tags = append(repo.tags, mf.Tag)
			for _, ref := range mf.Refs {
				if _, ok := idx.blobs[ref.Digest]; !ok {
					idx.blobs[ref.Digest] = mirrorBlobLocation{layout: l, blob: l.Blobs[ref.Digest]}
				}
			}
		}
	}
	for _, repo := range idx.repos {
		sort.Strings(repo.tags)
	}
	return idx
}

// layoutPaths expands the sources: a zip, a folder in Ollama's layout, or
// a folder of zips (and its kept staging folders).
func (m *modelMirror) layoutPaths() []string {
	var out []string
	for _, src := range m.Sources {
		fi, err := os.Stat(src)
		if err != nil {
			m.Log.Warn("mirror: skipping", "source", src, "err", err)
			continue
		}
		if !fi.IsDir() {
			out = append(out, src)
			continue
		}
		if mirrorIsDir(filepath.Join(src, "manifests")) {
			out = append(out, src)
			continue
		}
		zips, _ := filepath.Glob(filepath.Join(src, "*.zip"))
		out = append(out, zips...)
		staged, _ := filepath.Glob(filepath.Join(src, ".staging", "*", "manifests"))
		for _, s := range staged {
			out = append(out, filepath.Dir(s))
		}
	}
	return out
}

func mirrorIsDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func (idx *mirrorIndex) sortedRepos() []string {
	names := make([]string, 0, len(idx.repos))
	for k := range idx.repos {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// repo finds a repository the way Ollama matches names: ignoring case, and
// "model" meaning "library/model".
func (idx *mirrorIndex) repo(name string) *mirrorRepo {
	name = strings.ToLower(name)
	if !strings.Contains(name, "/") {
		name = "library/" + name
	}
	return idx.repos[name]
}

// ServeHTTP answers the read-only part of the registry API.
func (m *modelMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.Log.Debug("mirror request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "range", r.Header.Get("Range"))
	if !m.AnyHost && !mirrorLoopbackHost(r.Host) {
		// A web page on another origin could point a DNS name at 127.0.0.1
		// (DNS rebinding); a loopback mirror answers only to addresses.
		registryError(w, http.StatusForbidden, "DENIED", "host "+r.Host+" is not served; use an IP address or localhost")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
		return
	}
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
		idx := m.index()
		repos := []string{}
		for _, k := range idx.sortedRepos() {
			repos = append(repos, idx.repos[k].Name)
		}
		writeMirrorJSON(w, r, map[string]any{"repositories": repos})
		return
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		repo := m.index().repo(name)
		if repo == nil {
			registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "no model "+name+" here")
			return
		}
		writeMirrorJSON(w, r, map[string]any{"name": repo.Name, "tags": repo.tags})
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

func (m *modelMirror) serveManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	repo := m.index().repo(name)
	if repo == nil {
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "no model "+name+" here")
		return
	}
	key := strings.ToLower(ref)
	if strings.HasPrefix(ref, "sha256:") {
		key = ref
	}
	mf := repo.manifests[key]
	if mf == nil {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "no "+name+":"+ref+" here")
		return
	}
	h := w.Header()
	h.Set("Content-Type", mf.MediaType)
	h.Set("Docker-Content-Digest", mf.Digest)
	h.Set("ETag", `"`+mf.Digest+`"`)
	h.Set("Content-Length", fmt.Sprint(len(mf.Data)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(mf.Data)
}

// serveBlob answers a blob. Stock Ollama (server/download.go) sends the GET
// with a redirect policy that stops at the first redirect to another host
// name and takes that Location as the blob's direct URL: so a GET is
// answered with 307 to this same server under another name, marked
// "direct", where the ranged requests then land. HEAD is answered at once.
func (m *modelMirror) serveBlob(w http.ResponseWriter, r *http.Request, name, digest string) {
	if !validDigest(digest) {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "a digest is sha256:<64 lower-case hex>")
		return
	}
	loc, ok := m.index().blobs[digest]
	if !ok {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "no blob "+digest+" here")
		return
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("direct") == "" {
		if alt := alternateHost(r); alt != "" {
			target := "http://" + alt + "/v2/" + name + "/blobs/" + digest + "?direct=1"
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
			return
		}
	}
	f, err := loc.layout.Open(loc.blob.Name)
	if err != nil {
		m.Log.Warn("mirror: opening blob", "digest", digest, "err", err)
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob "+digest+" is gone")
		return
	}
	defer f.Close()
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "blob "+digest+" cannot be served with ranges")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Cache-Control", "max-age=31536000, immutable") // content-addressed
	http.ServeContent(w, r, "", time.Time{}, rs)
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
