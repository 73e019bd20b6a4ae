package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/templates"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// defaultPort is the web UI's port when -port is not given. Only this
	// port falls back to a random free one when taken (SPEC §3): a port the
	// user chose on purpose fails loudly instead.
	defaultPort = 8080

	maxBodyBytes    = 64 << 10 // request bodies: forms, JSON, nothing bigger
	maxLibraryFiles = 10000    // keeps GET /api/library bounded on a huge folder
	maxRetries      = 100
	maxAddURLs      = 1000 // downloads per add request; the queue itself holds maxQueueJobs
)

// Server is the REST API and the embedded web UI, with the security checks
// of SPEC §10 in front of both.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	assets map[string]*asset // URL path → embedded file
	csp    string            // Content-Security-Policy of the UI
	csrf   *http.CrossOriginProtection

	// own is the address this server answers as, for the Host check. It is
	// set from cfg.Addr and again by ListenAndServe once the port is known.
	own atomic.Pointer[ownAddress]

	// stopping is closed when the HTTP server shuts down, so that event
	// streams end: Shutdown waits for them otherwise.
	stopping chan struct{}
	stopOnce sync.Once

	// Knobs that tests turn.
	now             func() time.Time
	eventInterval   time.Duration                        // at most one SSE push per interval
	eventTimer      func(time.Duration) <-chan time.Time // the interval's timer; nil = a real one
	keepAlive       time.Duration                        // SSE comment when nothing changed
	pollCacheTTL    time.Duration                        // how long one encoded /api/downloads body may be reused
	shutdownTimeout time.Duration

	// mirrorMu guards mirror: the read-only registry the Library tab
	// starts and stops (serve-models inside the web UI).
	mirrorMu sync.Mutex
	mirror   *uiMirror

	// throttle counts wrong access tokens per client address.
	throttle authThrottle

	// cache is the whole download list as last encoded (events.go).
	cacheMu sync.Mutex
	cache   *fullBody

	// events hands each update of the list to every event stream.
	events            eventHub
	maxStreams        int           // concurrent event streams
	eventWriteTimeout time.Duration // a stream whose client does not read ends after it

	// gzipWriters are reused: a compressor's state is hundreds of KB.
	gzipWriters sync.Pool

	// pairs are the paired browser extensions (pairing.go); nil when
	// Config.Pairings is "".
	pairs *pairings
}

// Config is what main hands the server.
type Config struct {
	Manager   *queue.Manager
	History   *history.Store
	Files     *engine.Downloader // for the global speed limit; nil = not adjustable
	OutputDir string
	Addr      string // host:port the server is reachable at, for the Host check; ListenAndServe sets it itself
	Token     string // when set, every request needs it; required when listening beyond loopback; at least minTokenLength
	LocalKey  string // accepted like Token: the key a command of the same user reads from .state/owner.json
	Yield     func() // a command-line owner's: a web UI asks for the folder (POST /api/owner/yield)
	ModelsDir string // this machine's Ollama models folder for the models view; "" = $OLLAMA_MODELS, else ~/.ollama/models
	Version   string
	Log       *slog.Logger
	// Pairings is the file that keeps the paired browser extensions
	// (<output-dir>/.state/extensions.json); "" = extensions cannot pair.
	Pairings string
}

// ownAddress is what a Host header may say. Checking it defeats DNS
// rebinding: a page on evil.example that re-resolves to 127.0.0.1 still
// sends Host: evil.example.
type ownAddress struct {
	port  string          // "" = any port (no address known yet)
	hosts map[string]bool // lower-case names and IP literals without brackets
	anyIP bool            // bound to 0.0.0.0 or [::]: any IP literal is us (IPs cannot be rebound)
}

func New(cfg Config) *Server {
	s := &Server{
		cfg:             cfg,
		log:             cfg.Log,
		stopping:        make(chan struct{}),
		now:             time.Now,
		eventInterval:   time.Second,
		keepAlive:       15 * time.Second,
		pollCacheTTL:    250 * time.Millisecond,
		shutdownTimeout: 5 * time.Second,

		maxStreams:        maxEventStreams,
		eventWriteTimeout: eventWriteTimeout,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.own.Store(newOwnAddress(cfg.Addr))
	s.assets, s.csp = loadAssets(templates.FS, ".")
	// Go's own check: Sec-Fetch-Site first, else Origin against Host
	// (which the Host check has already pinned to this server).
	s.csrf = http.NewCrossOriginProtection()
	if cfg.Pairings != "" {
		s.pairs = openPairings(cfg.Pairings, func() time.Time { return s.now() }, s.log)
	}
	s.mux = s.routes()
	return s
}

// routes is the one route table (docs/API.md documents each line).
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/downloads", s.handleDownloads)
	mux.HandleFunc("POST /api/download/add", s.handleAdd)
	mux.HandleFunc("GET /api/download/{id}", s.handleGet)
	mux.HandleFunc("POST /api/download/{id}/pause", s.handleAction)
	mux.HandleFunc("POST /api/download/{id}/resume", s.handleAction)
	mux.HandleFunc("POST /api/download/{id}/cancel", s.handleAction)
	mux.HandleFunc("POST /api/download/{id}/retry", s.handleAction)
	mux.HandleFunc("POST /api/download/{id}/remove", s.handleRemove)
	mux.HandleFunc("POST /api/download/{id}/move", s.handleMove)
	mux.HandleFunc("POST /api/download/{id}/limit", s.handleLimit)
	mux.HandleFunc("POST /api/downloads/pause-all", s.handleBulk)
	mux.HandleFunc("POST /api/downloads/resume-all", s.handleBulk)
	mux.HandleFunc("POST /api/downloads/cancel-all", s.handleBulk)
	mux.HandleFunc("POST /api/downloads/clear-finished", s.handleBulk)
	mux.HandleFunc("GET /api/settings", s.handleSettings)
	mux.HandleFunc("POST /api/settings", s.handleSetSettings)
	mux.HandleFunc("GET /api/library", s.handleLibrary)
	mux.HandleFunc("GET /api/model/show", s.handleModelShow)
	mux.HandleFunc("GET /api/library/file/{path...}", s.handleLibraryFile)
	mux.HandleFunc("DELETE /api/library/file/{path...}", s.handleLibraryDelete)
	mux.HandleFunc("POST /api/library/install", s.handleLibraryInstall)
	mux.HandleFunc("GET /api/models/local", s.handleLocalModels)
	mux.HandleFunc("POST /api/models/local/check", s.handleLocalModelCheck)
	mux.HandleFunc("POST /api/models/export", s.handleExport)
	mux.HandleFunc("GET /api/mirror", s.handleMirror)
	mux.HandleFunc("POST /api/mirror/start", s.handleMirrorStart)
	mux.HandleFunc("POST /api/mirror/stop", s.handleMirrorStop)
	mux.HandleFunc("GET /api/history", s.handleHistory)
	mux.HandleFunc("DELETE /api/history/{id}", s.handleHistoryDelete)
	mux.HandleFunc("DELETE /api/history", s.handleHistoryClear)
	mux.HandleFunc("GET /api/statistics", s.handleStatistics)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("GET /api/owner", s.handleOwner)
	mux.HandleFunc("POST /api/owner/yield", s.handleYield)
	mux.HandleFunc("POST "+extensionPairPath, s.handleExtensionPair)
	mux.HandleFunc("GET "+extensionStatusPath, s.handleExtensionStatus)
	mux.HandleFunc("POST "+extensionUnpairPath, s.handleExtensionUnpair)
	mux.HandleFunc("GET /api/pairings", s.handlePairings)
	mux.HandleFunc("POST /api/pairings/{id}/approve", s.handlePairingApprove)
	mux.HandleFunc("DELETE /api/pairings/{id}", s.handlePairingDelete)
	// The UI: each embedded file under its own exact path, so that a wrong
	// method on an API path still answers 405 rather than falling into "GET /".
	for p := range s.assets {
		if p == "/index.html" {
			mux.HandleFunc("GET /{$}", s.handleAsset)
		}
		mux.HandleFunc("GET "+p, s.handleAsset)
	}
	return mux
}

// Handler is the whole server: checks first, then the routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")

	if !s.own.Load().allows(r.Host) {
		s.writeError(w, r, errForbidden("host %q is not this server's address (DNS rebinding protection): use http://127.0.0.1:<port>/", r.Host))
		return
	}
	verdict, r := s.fromExtension(w, r)
	if verdict == extensionAnswered {
		return
	}
	if verdict == notFromExtension {
		if !s.authorized(w, r) {
			return
		}
		if err := s.csrf.Check(r); err != nil {
			s.writeError(w, r, errForbidden("cross-origin request refused: use the page this server serves"))
			return
		}
	}
	// The mux would answer a "." or ".." segment with a redirect to the
	// cleaned path; an API client deserves a plain refusal.
	for seg := range strings.SplitSeq(r.URL.Path, "/") {
		if seg == "." || seg == ".." {
			s.writeError(w, r, fault.BadInputf("path %q has a . or .. segment", r.URL.Path))
			return
		}
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}
	// "GET /api/download/{id}" would take GET /api/download/add for the
	// download "add" and answer 404: the path exists, the method is wrong.
	if r.URL.Path == "/api/download/add" && r.Method != http.MethodPost {
		h.Set("Allow", http.MethodPost)
		s.writeError(w, r, errMethod("method %s is not allowed on %s (allowed: POST)", r.Method, r.URL.Path))
		return
	}
	if acceptsGzip(r) && r.Method != http.MethodHead {
		gw := &gzipResponseWriter{ResponseWriter: w, s: s}
		defer gw.close()
		w = gw
	}
	// ServeMux answers 404 and 405 in plain text; every answer here is JSON.
	if handler, pattern := s.mux.Handler(r); pattern == "" {
		rec := &headerRecorder{header: http.Header{}}
		handler.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			h.Set("Allow", rec.header.Get("Allow"))
			s.writeError(w, r, errMethod("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow")))
			return
		case http.StatusNotFound:
			s.writeError(w, r, fmt.Errorf("%s: %w", r.URL.Path, fault.ErrNotFound))
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// sameOriginReach applies the cross-origin check of POST and DELETE to a
// GET that makes the server connect elsewhere. Go's check lets every GET
// through, since a GET should change nothing; one that opens a connection
// where its parameters say is a request forgery all the same.
func (s *Server) sameOriginReach(r *http.Request) error {
	probe := r.Clone(r.Context())
	probe.Method = http.MethodPost
	if err := s.csrf.Check(probe); err != nil {
		return errForbidden("cross-origin request refused: this request makes the server connect elsewhere; use the page this server serves")
	}
	return nil
}

// headerRecorder captures what ServeMux's own 404/405 handlers would write.
type headerRecorder struct {
	header http.Header
	code   int
}

func (r *headerRecorder) Header() http.Header { return r.header }

func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}

func (r *headerRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// httpError is an answer with a status that none of the sentinels names.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errForbidden(format string, args ...any) error {
	return &httpError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

func errUnauthorized(msg string) error { return &httpError{http.StatusUnauthorized, msg} }

func errMethod(format string, args ...any) error {
	return &httpError{http.StatusMethodNotAllowed, fmt.Sprintf(format, args...)}
}

// statusFor maps an error to its HTTP status, in one place.
func statusFor(err error) int {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, fault.ErrBadInput):
		return http.StatusBadRequest
	case errors.Is(err, fault.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fault.ErrConflict):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}

// writeError is the one error writer: {"error": "..."}. A 500 is logged
// and answered with a generic message (its text may hold paths or URLs).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusFor(err)
	msg := err.Error()
	var mbe *http.MaxBytesError
	switch {
	case code == http.StatusInternalServerError:
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; the server log has the details"
	case errors.As(err, &mbe):
		msg = fmt.Sprintf("request body is larger than %d KiB", mbe.Limit>>10)
	}
	body := map[string]string{"error": msg}
	if c := knownErrorCode(err); c != "" {
		body["error_code"] = c
	}
	s.writeJSON(w, code, body)
}

// knownErrorCode is fault.Code(err) (docs/API.md, "Error codes"), or "" when
// it has none to give.
func knownErrorCode(err error) string {
	if c := fault.Code(err); c != "unknown" {
		return c
	}
	return ""
}

// writeJSON is the one JSON writer. The body is encoded before the status
// is sent, so an encoding failure can still become a 500.
func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encoding api response", "err", err)
		code = http.StatusInternalServerError
		body = []byte(`{"error":"internal error; the server log has the details"}`)
	}
	s.writeBody(w, code, append(body, '\n'))
}

func (s *Server) writeBody(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

// minGzipBytes: smaller JSON answers are sent as they are; compressing
// them saves less than the gzip framing and the work cost.
const minGzipBytes = 1024

// acceptsGzip reports whether the client takes gzip (Accept-Encoding,
// without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") {
				q := 1.0
				if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
					q, _ = strconv.ParseFloat(v, 64) // unreadable: 0, not accepted
				}
				return q > 0
			}
		}
	}
	return false
}

func (s *Server) gzipWriter(w io.Writer) *gzip.Writer {
	if gz, ok := s.gzipWriters.Get().(*gzip.Writer); ok {
		gz.Reset(w)
		return gz
	}
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
	return gz
}

// gzipBytes compresses a whole answer once, for answers shared by many
// clients (the download list).
func (s *Server) gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	gz := s.gzipWriter(&buf)
	gz.Write(b)
	gz.Close()
	s.gzipWriters.Put(gz)
	return buf.Bytes()
}

// gzipResponseWriter compresses JSON answers of at least minGzipBytes for a
// client that accepts gzip. Anything else passes through untouched: the
// UI's files and library files (Range requests count bytes of the file),
// the event stream, and answers a handler has encoded itself.
type gzipResponseWriter struct {
	http.ResponseWriter
	s       *Server
	gz      *gzip.Writer // set once compressing
	decided bool
}

func (g *gzipResponseWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

func (g *gzipResponseWriter) WriteHeader(code int) {
	if !g.decided {
		g.decided = true
		h := g.Header()
		if strings.HasPrefix(h.Get("Content-Type"), "application/json") && h.Get("Content-Encoding") == "" {
			h.Add("Vary", "Accept-Encoding")
			if n, err := strconv.Atoi(h.Get("Content-Length")); err != nil || n >= minGzipBytes {
				h.Del("Content-Length")
				h.Set("Content-Encoding", "gzip")
				g.gz = g.s.gzipWriter(g.ResponseWriter)
			}
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipResponseWriter) Write(b []byte) (int, error) {
	if !g.decided {
		g.WriteHeader(http.StatusOK)
	}
	if g.gz != nil {
		return g.gz.Write(b)
	}
	return g.ResponseWriter.Write(b)
}

func (g *gzipResponseWriter) close() {
	if g.gz != nil {
		g.gz.Close()
		g.s.gzipWriters.Put(g.gz)
		g.gz = nil
	}
}

// sleep waits d unless the request or the server ends first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.stopping:
		return false
	case <-t.C:
		return true
	}
}

func newOwnAddress(addr string) *ownAddress {
	o := &ownAddress{hosts: map[string]bool{"127.0.0.1": true, "localhost": true, "::1": true}}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return o
	}
	o.port = port
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		o.anyIP = true
	} else if host != "" {
		o.hosts[host] = true
	}
	return o
}

// allows reports whether a Host header names this server.
func (o *ownAddress) allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), "80" // no port: the scheme's default
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || o.port != "" && port != o.port {
		return false
	}
	return o.hosts[host] || o.anyIP && net.ParseIP(host) != nil
}

// ListenAndServe binds addr (host:port; an empty host is 127.0.0.1), calls
// ready with the URL to open, and serves until ctx is done, then shuts
// down gracefully. The default port falls back to a free one when taken;
// port 0 is always a free one. Listening beyond loopback needs a token.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(url string)) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fault.BadInputf("listen address %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if !engine.IsLoopbackHost(host) && s.cfg.Token == "" {
		return fault.BadInputf("listening on %s lets other machines in: set an access token (-token-file PATH or OMD_TOKEN) too", host)
	}
	if err := CheckToken(s.cfg.Token); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil && port == strconv.Itoa(defaultPort) {
		s.log.Info("default port is taken, using a free one", "port", port, "err", err)
		ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	s.own.Store(newOwnAddress(net.JoinHostPort(host, port)))

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // bodies are at most maxBodyBytes
		// No WriteTimeout: it would cut off a large library file or an
		// event stream. Idle keep-alive connections are closed instead.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv.RegisterOnShutdown(func() { s.stopOnce.Do(func() { close(s.stopping) }) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if ready != nil {
		ready(s.openURL(host, port))
	}
	select {
	case err := <-served:
		return fmt.Errorf("serving http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http server did not stop in time; closing connections", "err", err)
		srv.Close()
	}
	<-served // http.ErrServerClosed
	s.stopMirror()
	return nil
}

// openURL is the address a person opens: a wildcard bind is reached on
// loopback from this machine; the token rides along once (see authorized).
func (s *Server) openURL(host, port string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, port) + "/"
	if s.cfg.Token != "" {
		u += "?token=" + url.QueryEscape(s.cfg.Token)
	}
	return u
}
