package main

import (
	"archive/zip"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The web UI: HTML, CSS, JS and the font, all inside the binary.
//
//go:embed templates
var templatesFS embed.FS

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

// server is the REST API and the embedded web UI, with the security checks
// of SPEC §10 in front of both.
type server struct {
	cfg    serverConfig
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
	eventInterval   time.Duration // at most one SSE push per interval
	keepAlive       time.Duration // SSE comment when nothing changed
	pollCacheTTL    time.Duration // how long one encoded /api/downloads body may be reused
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
}

// serverConfig is what main hands the server.
type serverConfig struct {
	Manager   *manager
	History   *historyStore
	Files     *rangeDownloader // for the global speed limit; nil = not adjustable
	OutputDir string
	Addr      string // host:port the server is reachable at, for the Host check; ListenAndServe sets it itself
	Token     string // when set, every request needs it; required when listening beyond loopback; at least minTokenLength
	LocalKey  string // accepted like Token: the key a command of the same user reads from .state/owner.json
	Yield     func() // a command-line owner's: a web UI asks for the folder (POST /api/owner/yield)
	Version   string
	Log       *slog.Logger
}

// asset is one embedded UI file, hashed once at startup.
type asset struct {
	name  string
	data  []byte
	etag  string
	ctype string
}

// ownAddress is what a Host header may say. Checking it defeats DNS
// rebinding: a page on evil.example that re-resolves to 127.0.0.1 still
// sends Host: evil.example.
type ownAddress struct {
	port  string          // "" = any port (no address known yet)
	hosts map[string]bool // lower-case names and IP literals without brackets
	anyIP bool            // bound to 0.0.0.0 or [::]: any IP literal is us (IPs cannot be rebound)
}

func newServer(cfg serverConfig) *server {
	s := &server{
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
	s.assets, s.csp = loadAssets(templatesFS, "templates")
	// Go's own check: Sec-Fetch-Site first, else Origin against Host
	// (which the Host check has already pinned to this server).
	s.csrf = http.NewCrossOriginProtection()
	s.mux = s.routes()
	return s
}

// routes is the one route table (docs/API.md documents each line).
func (s *server) routes() *http.ServeMux {
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
	mux.HandleFunc("GET /api/library/file/{path...}", s.handleLibraryFile)
	mux.HandleFunc("DELETE /api/library/file/{path...}", s.handleLibraryDelete)
	mux.HandleFunc("POST /api/library/install", s.handleLibraryInstall)
	mux.HandleFunc("GET /api/mirror", s.handleMirror)
	mux.HandleFunc("POST /api/mirror/start", s.handleMirrorStart)
	mux.HandleFunc("POST /api/mirror/stop", s.handleMirrorStop)
	mux.HandleFunc("GET /api/history", s.handleHistory)
	mux.HandleFunc("DELETE /api/history/{id}", s.handleHistoryDelete)
	mux.HandleFunc("DELETE /api/history", s.handleHistoryClear)
	mux.HandleFunc("GET /api/statistics", s.handleStatistics)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("POST /api/owner/yield", s.handleYield)
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
func (s *server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")

	if !s.own.Load().allows(r.Host) {
		s.writeError(w, r, errForbidden("host %q is not this server's address (DNS rebinding protection): use http://127.0.0.1:<port>/", r.Host))
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if err := s.csrf.Check(r); err != nil {
		s.writeError(w, r, errForbidden("cross-origin request refused: use the page this server serves"))
		return
	}
	// The mux would answer a "." or ".." segment with a redirect to the
	// cleaned path; an API client deserves a plain refusal.
	for seg := range strings.SplitSeq(r.URL.Path, "/") {
		if seg == "." || seg == ".." {
			s.writeError(w, r, badInputf("path %q has a . or .. segment", r.URL.Path))
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
			s.writeError(w, r, fmt.Errorf("%s: %w", r.URL.Path, errNotFound))
			return
		}
	}
	s.mux.ServeHTTP(w, r)
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
	case errors.Is(err, errBadInput):
		return http.StatusBadRequest
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errConflict):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}

// writeError is the one error writer: {"error": "..."}. A 500 is logged
// and answered with a generic message (its text may hold paths or URLs).
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
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

// knownErrorCode is errorCode(err) (docs/API.md, "Error codes"), or "" when
// it has none to give.
func knownErrorCode(err error) string {
	if c := errorCode(err); c != "unknown" {
		return c
	}
	return ""
}

// writeJSON is the one JSON writer. The body is encoded before the status
// is sent, so an encoding failure can still become a 500.
func (s *server) writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encoding api response", "err", err)
		code = http.StatusInternalServerError
		body = []byte(`{"error":"internal error; the server log has the details"}`)
	}
	s.writeBody(w, code, append(body, '\n'))
}

func (s *server) writeBody(w http.ResponseWriter, code int, body []byte) {
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

func (s *server) gzipWriter(w io.Writer) *gzip.Writer {
	if gz, ok := s.gzipWriters.Get().(*gzip.Writer); ok {
		gz.Reset(w)
		return gz
	}
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
	return gz
}

// gzipBytes compresses a whole answer once, for answers shared by many
// clients (the download list).
func (s *server) gzipBytes(b []byte) []byte {
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
	s       *server
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

// params reads a request's parameters from a form (urlencoded or
// multipart), a JSON object, or the query string, into one url.Values so
// that every handler reads them the same way.
func params(r *http.Request) (url.Values, error) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype != "application/json" {
		var err error
		if ctype == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		if err != nil {
			return nil, badInputf("reading form: %v", err)
		}
		return r.Form, nil
	}
	var obj map[string]any
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badInputf("reading JSON body: %v (send an object such as {\"url\": \"…\"})", err)
	}
	vals := r.URL.Query()
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			vals.Add(k, v)
		case json.Number:
			vals.Add(k, v.String())
		case bool:
			vals.Add(k, strconv.FormatBool(v))
		case nil:
		case []any:
			for _, e := range v {
				str, ok := e.(string)
				if !ok {
					return nil, badInputf("JSON field %q: a list may hold only strings", k)
				}
				vals.Add(k, str)
			}
		default:
			return nil, badInputf("JSON field %q: want a string, number, boolean or list of strings", k)
		}
	}
	return vals, nil
}

// intParam parses an optional whole number within [lo, hi].
func intParam(vals url.Values, name string, def, lo, hi int) (int, error) {
	s := strings.TrimSpace(vals.Get(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badInputf("%s must be a whole number from %d to %d, not %q", name, lo, hi, s)
	}
	return n, nil
}

// addError is one line of an add request that the manager refused.
type addError struct {
	Source    string `json:"source"`
	Error     string `json:"error"`
	ErrorCode string `json:"error_code,omitempty"`
}

func (s *server) handleAdd(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var sources []string
	for _, v := range vals["url"] {
		for line := range strings.Lines(v) {
			if line = strings.TrimSpace(line); line != "" {
				sources = append(sources, line)
			}
		}
	}
	if len(sources) == 0 {
		s.writeError(w, r, badInputf("url is empty: give a URL (https://…) or a model name (llama3:latest), one per line"))
		return
	}
	if len(sources) > maxAddURLs {
		s.writeError(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%d downloads in one request: send at most %d at a time", len(sources), maxAddURLs)})
		return
	}
	// url may repeat (several downloads); a field that takes one value must
	// not, or one of two checksums would be silently ignored.
	for _, k := range []string{"retries", "sha256", "limit_rate"} {
		if len(vals[k]) > 1 {
			s.writeError(w, r, badInputf("%s was given %d times: send it once", k, len(vals[k])))
			return
		}
	}
	retries, err := intParam(vals, "retries", -1, 0, maxRetries)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum := strings.ToLower(strings.TrimSpace(vals.Get("sha256")))
	if sum != "" {
		if !isHex64(sum) {
			s.writeError(w, r, badInputf("sha256 must be 64 hexadecimal characters"))
			return
		}
		if len(sources) > 1 {
			s.writeError(w, r, badInputf("sha256 applies to one download, but %d were given", len(sources)))
			return
		}
	}

	var limit int64
	if vals.Has("limit_rate") {
		if limit, err = parseRate(vals.Get("limit_rate")); err != nil {
			s.writeError(w, r, badInputf("limit_rate: %v", err))
			return
		}
	}

	// Several lines are several downloads. Each is checked first; the good
	// ones are then queued together, with one save of the queue (issue 18:
	// one Add per line rewrote the queue file per line), even when another
	// line is refused; the refusals are listed.
	// A model can go straight into an Ollama models folder (absolute, as
	// the install API asks), or into a zip split in parts; a URL can be
	// fetched again even when unchanged upstream.
	force := vals.Get("force") == "true" || vals.Get("force") == "1"
	modelsDir := strings.TrimSpace(vals.Get("models_dir"))
	if modelsDir != "" && !filepath.IsAbs(modelsDir) {
		s.writeError(w, r, badInputf("models_dir must be an absolute path, got %q", modelsDir))
		return
	}
	var split int64
	if v := strings.TrimSpace(vals.Get("split")); v != "" && v != "0" {
		if split, err = parseRate(v); err != nil || split <= 0 {
			s.writeError(w, r, badInputf("split takes a size such as 4G (K, M, G), got %q", v))
			return
		}
	}
	// Where a file goes is the server's to decide (docs/API.md), except for
	// a command of this same user handing over its -o: it proves itself
	// with the key only it can read (.state/owner.json, mode 0600).
	var output string
	if s.fromLocalKey(r) {
		output = strings.TrimSpace(vals.Get("output"))
	}
	m := s.cfg.Manager
	var reqs []addRequest
	var failed []addError
	var firstErr error
	for _, src := range sources {
		req := addRequest{Source: src, Retries: retries, SHA256: sum, LimitRate: limit, Force: force, Output: output}
		if !isURLArg(src) {
			req.ModelsDir, req.Split, req.Force = modelsDir, split, false
		}
		if _, err := m.newJob(req); err != nil {
			if statusFor(err) == http.StatusInternalServerError {
				s.writeError(w, r, fmt.Errorf("adding %s: %w", src, err))
				return
			}
			firstErr = cmp.Or(firstErr, err)
			failed = append(failed, addError{Source: src, Error: err.Error(), ErrorCode: knownErrorCode(err)})
			continue
		}
		reqs = append(reqs, req)
	}
	if len(reqs) == 0 {
		if len(sources) > 1 {
			firstErr = fmt.Errorf("%s: %w", sources[0], firstErr)
		}
		s.writeError(w, r, firstErr)
		return
	}
	added, err := m.AddAll(reqs)
	if err != nil {
		s.writeError(w, r, err) // a full queue is 409
		return
	}
	s.writeJSON(w, http.StatusCreated, struct {
		Downloads []jobView  `json:"downloads"`
		Errors    []addError `json:"errors,omitempty"`
	}{added, failed})
}

func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Manager.Get(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, v)
}

// handleAction is pause, resume, cancel and retry: each answers with the
// download as it is afterwards.
func (s *server) handleAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	m := s.cfg.Manager
	var err error
	switch action := path.Base(r.URL.Path); action {
	case "pause":
		err = m.Pause(id)
	case "resume":
		err = m.Resume(id)
	case "cancel":
		err = m.Cancel(id)
	case "retry":
		err = m.Retry(id)
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

func (s *server) handleRemove(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	deleteFile := false
	if v := strings.TrimSpace(vals.Get("delete_file")); v != "" {
		if deleteFile, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, badInputf("delete_file must be true or false, not %q", v))
			return
		}
	}
	if err := s.cfg.Manager.Remove(r.PathValue("id"), deleteFile); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *server) handleMove(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to := strings.TrimSpace(vals.Get("to"))
	if !slices.Contains([]string{"top", "up", "down", "bottom"}, to) {
		s.writeError(w, r, badInputf("to must be top, up, down or bottom, not %q", to))
		return
	}
	if err := s.cfg.Manager.Move(r.PathValue("id"), to); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

// handleLimit sets one download's own speed limit (limit_rate=2M, 0 = none),
// also while it runs; the global limit in settings applies on top.
func (s *server) handleLimit(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !vals.Has("limit_rate") {
		s.writeError(w, r, badInputf("send limit_rate=<bytes per second, e.g. 500K or 2M; 0 = none>"))
		return
	}
	rate, err := parseRate(vals.Get("limit_rate"))
	if err != nil {
		s.writeError(w, r, badInputf("limit_rate: %v", err))
		return
	}
	if err := s.cfg.Manager.SetLimit(r.PathValue("id"), rate); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

func (s *server) handleBulk(w http.ResponseWriter, r *http.Request) {
	m := s.cfg.Manager
	var n int
	switch path.Base(r.URL.Path) {
	case "pause-all":
		n = m.PauseAll()
	case "resume-all":
		n = m.ResumeAll()
	case "cancel-all":
		n = m.CancelAll()
	case "clear-finished":
		n = m.ClearFinished()
	}
	s.writeJSON(w, http.StatusOK, map[string]int{"count": n})
}

// settingsResponse is GET and POST /api/settings.
type settingsResponse struct {
	Concurrency int    `json:"concurrency"`
	LimitRate   int64  `json:"limit_rate"` // bytes per second over all downloads, 0 = none
	OutputDir   string `json:"output_dir"`
	Version     string `json:"version"`

	// The daily time window, "HH:MM" local time; both "" = always.
	ScheduleStart string     `json:"schedule_start"`
	ScheduleEnd   string     `json:"schedule_end"`
	ScheduleOpen  bool       `json:"schedule_open"` // downloads may start now
	ScheduleNext  *time.Time `json:"schedule_next"` // while closed: when the window opens next; else null
}

func (s *server) settings() settingsResponse {
	dir := s.cfg.OutputDir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	var rate int64
	if s.cfg.Files != nil {
		rate = s.cfg.Files.RateLimit()
	}
	sched := s.cfg.Manager.Schedule()
	resp := settingsResponse{
		Concurrency: s.cfg.Manager.Concurrency(), LimitRate: rate, OutputDir: dir, Version: s.cfg.Version,
		ScheduleStart: sched.Start, ScheduleEnd: sched.End, ScheduleOpen: sched.Open,
	}
	if !sched.NextStart.IsZero() {
		resp.ScheduleNext = &sched.NextStart
	}
	return resp
}

func (s *server) handleSettings(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.settings())
}

func (s *server) handleSetSettings(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	schedule := vals.Has("schedule_start") || vals.Has("schedule_end")
	if !vals.Has("concurrency") && !vals.Has("limit_rate") && !schedule {
		s.writeError(w, r, badInputf("nothing to change: send concurrency=<1–32>, limit_rate=<bytes per second, e.g. 2M; 0 = none>, or schedule_start=HH:MM and schedule_end=HH:MM (both empty = any time)"))
		return
	}
	// Validate everything before changing anything.
	start, end := strings.TrimSpace(vals.Get("schedule_start")), strings.TrimSpace(vals.Get("schedule_end"))
	if schedule {
		if _, err := parseTimeWindow(start, end); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var rate int64 = -1
	if vals.Has("limit_rate") {
		if s.cfg.Files == nil {
			s.writeError(w, r, badInputf("the speed limit cannot be changed here"))
			return
		}
		v, err := parseRate(vals.Get("limit_rate"))
		if err != nil {
			s.writeError(w, r, badInputf("limit_rate: %v", err))
			return
		}
		rate = v
	}
	if vals.Has("concurrency") {
		n, err := intParam(vals, "concurrency", 0, 1, maxConcurrency)
		if err == nil {
			err = s.cfg.Manager.SetConcurrency(n)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if rate >= 0 {
		s.cfg.Files.SetRateLimit(rate)
	}
	if schedule {
		if err := s.cfg.Manager.SetSchedule(start, end); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.writeJSON(w, http.StatusOK, s.settings())
}

// libraryFile is one finished file in the output folder.
type libraryFile struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"` // relative to the output folder, forward slashes
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	Kind     string    `json:"kind"` // "model" for a model zip, else the lower-case extension, or "file"
}

// hiddenName reports whether a file or folder is ours rather than the
// user's: dot-folders (.state, .history, .staging), partial downloads and
// their sidecars, temporary files. Case does not matter: on macOS and
// Windows ".STATE" and "x.PART" are the same files as ".state" and "x.part".
func hiddenName(name string) bool {
	name = strings.ToLower(name)
	return strings.HasPrefix(name, ".") ||
		strings.HasSuffix(name, ".part") ||
		strings.HasSuffix(name, ".part.json") ||
		strings.HasSuffix(name, ".tmp")
}

func (s *server) handleLibrary(w http.ResponseWriter, r *http.Request) {
	files, truncated, err := s.library()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		Files     []libraryFile `json:"files"`
		Truncated bool          `json:"truncated,omitempty"`
	}{files, truncated})
}

// library lists the output folder, newest first, through os.Root so that
// a symlink cannot lead the walk outside it.
func (s *server) library() (files []libraryFile, truncated bool, err error) {
	files = []libraryFile{}
	root, err := os.OpenRoot(s.cfg.OutputDir)
	if errors.Is(err, fs.ErrNotExist) {
		return files, false, nil // nothing downloaded yet
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening output folder: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			s.log.Warn("listing library", "path", p, "err", err)
			return nil
		}
		if p == "." {
			return nil
		}
		if hiddenName(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if len(files) >= maxLibraryFiles {
			truncated = true
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed while we walked
		}
		files = append(files, libraryFile{
			Name:     d.Name(),
			Path:     p,
			Size:     info.Size(),
			Modified: info.ModTime().UTC().Truncate(time.Second),
			Kind:     fileKind(fsys, p),
		})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("listing output folder: %w", err)
	}
	slices.SortFunc(files, func(a, b libraryFile) int {
		if c := b.Modified.Compare(a.Modified); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return files, truncated, nil
}

// fileKind is "model" for a zip laid out as Ollama's models folder (its
// central directory names manifests/), else the extension.
func fileKind(fsys fs.FS, p string) string {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(p), "."))
	if ext == "zip" && isModelZip(fsys, p) {
		return "model"
	}
	if ext == "" {
		return "file"
	}
	return ext
}

// maxLibraryPath bounds a library path from a URL: longer ones are refused
// as bad input before the file system answers "name too long".
const (
	maxLibraryPath    = 1024
	maxLibrarySegment = 255
)

// libraryPath checks a path from a URL before it reaches the file system:
// relative, forward slashes, no . or .. segments, no NUL or backslash, not
// too long, and not one of the files the library hides.
func libraryPath(p string) error {
	switch {
	case p == "":
		return badInputf("file path is empty")
	case len(p) > maxLibraryPath:
		return badInputf("file path is %d bytes long; the most is %d", len(p), maxLibraryPath)
	case strings.ContainsAny(p, "\x00\\"):
		return badInputf("file path %q has a NUL or a backslash", p)
	case strings.HasPrefix(p, "/") || filepath.VolumeName(filepath.FromSlash(p)) != "" || len(p) >= 2 && p[1] == ':':
		// "C:x" is relative to a drive's current folder on Windows: refused everywhere.
		return badInputf("file path %q must be relative to the output folder", p)
	case !fs.ValidPath(p):
		return badInputf("file path %q must not have empty, . or .. segments", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) > maxLibrarySegment {
			return badInputf("file path %q has a name longer than %d bytes", p, maxLibrarySegment)
		}
		if hiddenName(seg) {
			return fmt.Errorf("library file %s: %w", p, errNotFound)
		}
	}
	return nil
}

// libraryEntry is a regular file of the library, reached through a chain
// of os.Roots, one per folder, in which no element is a symlink.
type libraryEntry struct {
	dir   *os.Root // the folder that holds the file
	base  string   // the file's name in dir
	file  *os.File
	info  fs.FileInfo
	roots []*os.Root
}

func (e *libraryEntry) Close() {
	if e.file != nil {
		e.file.Close()
	}
	for _, r := range slices.Backward(e.roots) {
		r.Close()
	}
}

// openLibraryFile opens a regular file of the library. Every element of
// the path is checked with Lstat and must be a real folder or, last, a
// regular file: a symlink is never followed, even one that stays inside
// the output folder (out/link.json → .state/queue.json would otherwise
// reach what hiddenName hides). Each folder is then opened as its own
// os.Root and compared with what Lstat saw, and so is the file, so a swap
// for a symlink between the check and the open is caught too.
func (s *server) openLibraryFile(p string) (*libraryEntry, error) {
	if err := libraryPath(p); err != nil {
		return nil, err
	}
	notFound := fmt.Errorf("library file %s: %w", p, errNotFound)
	root, err := os.OpenRoot(s.cfg.OutputDir)
	if err != nil {
		return nil, notFound
	}
	e := &libraryEntry{dir: root, roots: []*os.Root{root}}
	fail := func(err error) (*libraryEntry, error) {
		for _, r := range slices.Backward(e.roots) {
			r.Close()
		}
		if e.file != nil {
			e.file.Close()
		}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotFound) || strings.Contains(err.Error(), "escapes") {
			return nil, notFound
		}
		return nil, fmt.Errorf("opening library file %s: %w", p, err)
	}
	segs := strings.Split(p, "/")
	for _, seg := range segs[:len(segs)-1] {
		info, err := e.dir.Lstat(seg)
		if err != nil {
			return fail(err)
		}
		if !info.IsDir() { // a symlink to a folder is not one
			return fail(errNotFound)
		}
		sub, err := e.dir.OpenRoot(seg)
		if err != nil {
			return fail(err)
		}
		e.roots = append(e.roots, sub)
		got, err := sub.Stat(".")
		if err != nil {
			return fail(err)
		}
		if !os.SameFile(info, got) {
			return fail(errNotFound)
		}
		e.dir = sub
	}
	e.base = segs[len(segs)-1]
	info, err := e.dir.Lstat(e.base)
	if err != nil {
		return fail(err)
	}
	if !info.Mode().IsRegular() {
		return fail(errNotFound)
	}
	if e.file, err = e.dir.Open(e.base); err != nil {
		return fail(err)
	}
	if e.info, err = e.file.Stat(); err != nil {
		return fail(err)
	}
	if !e.info.Mode().IsRegular() || !os.SameFile(info, e.info) {
		return fail(errNotFound)
	}
	return e, nil
}

func (s *server) handleLibraryFile(w http.ResponseWriter, r *http.Request) {
	e, err := s.openLibraryFile(r.PathValue("path"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer e.Close()
	info := e.info
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(info.Name()))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	// A downloaded HTML file must never run as a page of this origin (it
	// could drive the API): always an attachment, and sandboxed if opened.
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": info.Name()}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, info.Name(), info.ModTime(), e.file)
}

func (s *server) handleLibraryDelete(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	e, err := s.openLibraryFile(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer e.Close()
	// Windows cannot remove a file that is open.
	e.file.Close()
	e.file = nil
	// Removed by its name in the folder that was checked: the folders on
	// the way cannot be swapped any more, and a file swapped for a symlink
	// meanwhile is the symlink that goes.
	if err := e.dir.Remove(e.base); err != nil {
		s.writeError(w, r, fmt.Errorf("deleting library file %s: %w", p, err))
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", historyDefaultLimit, 1, historyMaxLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	offset, err := intParam(q, "offset", 0, 0, 1<<30)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.History.List(historyQuery{Limit: limit, Offset: offset, Status: q.Get("status"), Search: q.Get("q")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if page.Records == nil {
		page.Records = []historyRecord{}
	}
	s.writeJSON(w, http.StatusOK, page)
}

func (s *server) handleHistoryDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.History.Delete(r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *server) handleHistoryClear(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.History.Clear(); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *server) handleStatistics(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.cfg.History.Stats(s.now()))
}

// sleep waits d unless the request or the server ends first.
func (s *server) sleep(ctx context.Context, d time.Duration) bool {
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

// uiContentType is the Content-Type of what the UI may embed; the
// platform's MIME tables differ (several lack woff2), the answer must not.
func uiContentType(ext string) string {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".woff":
		return "font/woff"
	case ".ttf":
		return "font/ttf"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return mime.TypeByExtension(ext)
}

// loadAssets reads the embedded UI once: content, a content-hash ETag and
// a Content-Type per file, and the page's Content-Security-Policy with
// the hashes of any inline <script> or <style> blocks in index.html, so
// the policy can forbid inline code while the page keeps working.
func loadAssets(fsys fs.FS, dir string) (map[string]*asset, string) {
	assets := map[string]*asset{}
	var inline struct{ script, style []string }
	fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(data)
		ext := strings.ToLower(path.Ext(p))
		ctype := uiContentType(ext)
		if ctype == "" {
			ctype = http.DetectContentType(data)
		}
		urlPath := strings.TrimPrefix(p, dir)
		assets[urlPath] = &asset{
			name:  path.Base(p),
			data:  data,
			etag:  `"` + hex.EncodeToString(sum[:16]) + `"`,
			ctype: ctype,
		}
		if urlPath == "/index.html" {
			inline.script = inlineHashes(data, "script")
			inline.style = inlineHashes(data, "style")
		}
		return nil
	})
	csp := strings.Join([]string{
		"default-src 'self'",
		strings.Join(append([]string{"script-src 'self'"}, inline.script...), " "),
		strings.Join(append([]string{"style-src 'self'"}, inline.style...), " "),
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return assets, csp
}

// inlineHashes returns the CSP source expressions ('sha256-…') of the
// inline <tag> blocks of an HTML page; blocks with a src are skipped.
func inlineHashes(page []byte, tag string) []string {
	lower := asciiLower(page)
	open, end := []byte("<"+tag), []byte("</"+tag)
	var hashes []string
	for i := 0; ; {
		start := bytes.Index(lower[i:], open)
		if start < 0 {
			return hashes
		}
		start += i
		gt := bytes.IndexByte(lower[start:], '>')
		if gt < 0 {
			return hashes
		}
		attrs := lower[start+len(open) : start+gt]
		body := start + gt + 1
		stop := bytes.Index(lower[body:], end)
		if stop < 0 {
			return hashes
		}
		if len(attrs) == 0 || attrs[0] == ' ' || attrs[0] == '\t' || attrs[0] == '\n' {
			if !bytes.Contains(attrs, []byte("src=")) {
				// Browsers hash the text after the HTML parser has turned
				// CR LF and lone CR into LF.
				text := bytes.ReplaceAll(page[body:body+stop], []byte("\r\n"), []byte("\n"))
				sum := sha256.Sum256(bytes.ReplaceAll(text, []byte("\r"), []byte("\n")))
				hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			}
		}
		i = body + stop
	}
}

// asciiLower lower-cases ASCII only, keeping byte offsets equal to the
// original's (strings.ToLower may change the length of non-ASCII text).
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func (s *server) handleAsset(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	a := s.assets[p]
	if a == nil {
		s.writeError(w, r, fmt.Errorf("%s: %w", r.URL.Path, errNotFound))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate each time: the ETag makes it a 304
	h.Set("Content-Security-Policy", s.csp)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}

// isModelZip reports whether a zip is laid out as Ollama's models folder.
// Only the central directory at the end is read, so a 40 GB zip is cheap.
func isModelZip(fsys fs.FS, p string) bool {
	f, err := fsys.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	info, err := f.Stat()
	if !ok || err != nil {
		return false
	}
	zr, err := zip.NewReader(ra, info.Size())
	if err != nil {
		return false
	}
	for _, zf := range zr.File {
		if strings.HasPrefix(zf.Name, "manifests/") {
			return true
		}
	}
	return false
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

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ListenAndServe binds addr (host:port; an empty host is 127.0.0.1), calls
// ready with the URL to open, and serves until ctx is done, then shuts
// down gracefully. The default port falls back to a free one when taken;
// port 0 is always a free one. Listening beyond loopback needs a token.
func (s *server) ListenAndServe(ctx context.Context, addr string, ready func(url string)) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badInputf("listen address %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if !isLoopbackHost(host) && s.cfg.Token == "" {
		return badInputf("listening on %s lets other machines in: set an access token (-token-file PATH or OMD_TOKEN) too", host)
	}
	if err := checkToken(s.cfg.Token); err != nil {
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
func (s *server) openURL(host, port string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, port) + "/"
	if s.cfg.Token != "" {
		u += "?token=" + url.QueryEscape(s.cfg.Token)
	}
	return u
}

// installResponse is the body of POST /api/library/install. Output is what
// installZip printed (verification, blobs written, notes), shown to a person
// on failure too.
type installResponse struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	ModelsDir string `json:"models_dir"`
	Output    string `json:"output"`
}

// handleLibraryInstall installs a model zip of the library into an Ollama
// models folder, exactly as "ollama-model-downloader install" does: the
// path is confined to the output folder like the file endpoints; a
// conflict with an installed model is 409, a zip that fails verification
// is 422, a models folder this process cannot write is 403.
func (s *server) handleLibraryInstall(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := strings.TrimSpace(vals.Get("path"))
	e, err := s.openLibraryFile(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e.Close()
	// A relative folder would be resolved against wherever the server was
	// started, which the person calling the API cannot see.
	if md := strings.TrimSpace(vals.Get("models_dir")); md != "" && !filepath.IsAbs(md) {
		s.writeError(w, r, badInputf("models_dir %q must be an absolute path, e.g. /home/me/.ollama/models; leave it out for the default", md))
		return
	}
	modelsDir, err := resolveModelsDir(strings.TrimSpace(vals.Get("models_dir")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var out bytes.Buffer
	err = installZip(r.Context(), filepath.Join(s.cfg.OutputDir, filepath.FromSlash(p)), modelsDir, &out)
	resp := installResponse{OK: err == nil, ModelsDir: modelsDir, Output: out.String()}
	code := http.StatusOK
	switch {
	case err == nil:
		s.log.Info("installed model zip", "path", p, "models_dir", modelsDir)
	case errors.Is(err, errConflict):
		code = http.StatusConflict
	case errors.Is(err, fs.ErrPermission):
		code = http.StatusForbidden
		err = fmt.Errorf("the models folder %s is not writable by this program (%w); choose another or fix its permissions", modelsDir, err)
	case r.Context().Err() != nil:
		return // the client went away
	default:
		// Everything else installZip refuses is the zip's fault: it is
		// read and verified before anything is written.
		code = http.StatusUnprocessableEntity
	}
	if err != nil {
		resp.Error = err.Error()
	}
	s.writeJSON(w, code, resp)
}

// uiMirror is the model mirror the web UI started: a modelMirror over the
// output folder on its own listener, owned by the server.
type uiMirror struct {
	srv    *http.Server
	addr   string // host:port it listens on
	served chan struct{}
}

// mirrorResponse is the body of GET /api/mirror and of start and stop.
type mirrorResponse struct {
	Running     bool   `json:"running"`
	Address     string `json:"address,omitempty"`
	PullExample string `json:"pull_example,omitempty"`
}

func (s *server) mirrorStatus() mirrorResponse {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	return s.mirror.status()
}

// status describes the mirror; a nil mirror is not running.
func (m *uiMirror) status() mirrorResponse {
	if m == nil {
		return mirrorResponse{}
	}
	return mirrorResponse{
		Running:     true,
		Address:     "http://" + m.addr,
		PullExample: "ollama pull --insecure " + m.addr + "/library/<model>:<tag>",
	}
}

func (s *server) handleMirror(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.mirrorStatus())
}

// handleMirrorStart starts serving the output folder's model zips as a
// registry (see serve-models). Loopback only unless this server has a
// token: a LAN mirror is then a deliberate choice of someone who has it.
func (s *server) handleMirrorStart(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	listen := cmp.Or(strings.TrimSpace(vals.Get("listen")), defaultMirrorListen)
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		s.writeError(w, r, badInputf("listen address %q: want host:port, e.g. %s", listen, defaultMirrorListen))
		return
	}
	if !isLoopbackHost(host) && s.cfg.Token == "" {
		s.writeError(w, r, errForbidden("the mirror may listen beyond loopback (%q) only when this server has an access token (-token)", listen))
		return
	}
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	if s.mirror != nil {
		s.writeError(w, r, fmt.Errorf("mirror already runs at %s: %w", s.mirror.addr, errConflict))
		return
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(r.Context(), "tcp", listen)
	if err != nil && vals.Get("listen") == "" {
		// Like the web UI's default port: only the default falls back to a
		// free port; an address the user chose fails loudly.
		s.log.Info("default mirror port is taken, using a free one", "listen", listen, "err", err)
		ln, err = lc.Listen(r.Context(), "tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		s.writeError(w, r, &httpError{http.StatusConflict, fmt.Sprintf("listening on %s: %v", listen, err)})
		return
	}
	m := newModelMirror([]string{s.cfg.OutputDir}, s.log)
	m.AnyHost = !isLoopbackHost(host)
	mir := &uiMirror{
		srv:    &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)},
		addr:   ln.Addr().String(),
		served: make(chan struct{}),
	}
	go func() {
		defer close(mir.served)
		mir.srv.Serve(ln)
	}()
	s.mirror = mir
	s.log.Info("model mirror started", "address", mir.addr)
	s.writeJSON(w, http.StatusOK, mir.status())
}

func (s *server) handleMirrorStop(w http.ResponseWriter, r *http.Request) {
	s.stopMirror()
	s.writeJSON(w, http.StatusOK, s.mirrorStatus())
}

// stopMirror stops the mirror if it runs, letting pulls in flight finish
// for up to shutdownTimeout.
func (s *server) stopMirror() {
	s.mirrorMu.Lock()
	mir := s.mirror
	s.mirror = nil
	s.mirrorMu.Unlock()
	if mir == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := mir.srv.Shutdown(ctx); err != nil {
		mir.srv.Close()
	}
	<-mir.served
	s.log.Info("model mirror stopped", "address", mir.addr)
}
