package server

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/mirror"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/testkit"
	"ollama-model-downloader/templates"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

func mustOpenHistory(t testing.TB, outputDir string) *history.Store {
	t.Helper()
	h, err := history.Open(outputDir, nil)
	if err != nil {
		t.Fatalf("openHistory: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var update = flag.Bool("update", false, "rewrite the golden files under testdata/api")

// apiServer is a server under test with its httptest listener and folders.
type apiServer struct {
	*Server
	ts  *httptest.Server
	dir string // output folder
}

// newAPIServer starts the server on 127.0.0.1 with its own address known,
// as ListenAndServe would set it.
func newAPIServer(t *testing.T, edit ...func(*Config)) *apiServer {
	t.Helper()
	return newAPIServerWith(t, nil, edit...)
}

// newAPIServerWith is newAPIServer whose manager pulls models through
// models (nil: files only).
func newAPIServerWith(t *testing.T, models *models.Puller, edit ...func(*Config)) *apiServer {
	t.Helper()
	dir := t.TempDir()
	m, h, files := newAPITestManager(t, dir, models)
	ts := httptest.NewUnstartedServer(nil)
	cfg := Config{Manager: m, History: h, Files: files, OutputDir: dir, Addr: ts.Listener.Addr().String(), Version: "test"}
	for _, e := range edit {
		e(&cfg)
	}
	s := New(cfg)
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return &apiServer{Server: s, ts: ts, dir: dir}
}

// do sends one request and returns the status, headers and body.
func (a *apiServer) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// apiForm is a urlencoded POST body as curl -d sends it.
func apiForm(kv ...string) (io.Reader, string, string) {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return strings.NewReader(v.Encode()), "Content-Type", "application/x-www-form-urlencoded"
}

// apiWantError checks an answer is {"error": "..."} with the status.
func apiWantError(t *testing.T, code int, hdr http.Header, body []byte, wantCode int) string {
	t.Helper()
	if code != wantCode {
		t.Errorf("status = %d, want %d (body %s)", code, wantCode, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("body %q is not {\"error\": \"...\"} (%v)", body, err)
	}
	return e.Error
}

// apiWantStatus checks for a 200, or for the error answer wantCode.
func apiWantStatus(t *testing.T, code int, hdr http.Header, body []byte, wantCode int) {
	t.Helper()
	if wantCode != http.StatusOK {
		apiWantError(t, code, hdr, body, wantCode)
	} else if code != http.StatusOK {
		t.Errorf("status = %d, want 200 (%s)", code, body)
	}
}

func TestHostCheckRefusesRebinding(t *testing.T) {
	a := newAPIServer(t)
	_, port, _ := net.SplitHostPort(a.ts.Listener.Addr().String())
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST.:" + port, 200},
		{"[::1]:" + port, 200},
		{"evil.example:" + port, 403},
		{"evil.example", 403},
		{"127.0.0.1:1", 403},
		{"127.0.0.1", 403},
		{"192.168.1.10:" + port, 403},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			code, hdr, body := a.do(t, "GET", "/api/settings", nil, "Host", tc.host)
			apiWantStatus(t, code, hdr, body, tc.want)
		})
	}
}

func TestOwnAddressAllows(t *testing.T) {
	tests := []struct {
		addr, host string
		want       bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "localhost:8080", true},
		{"127.0.0.1:8080", "localhost:8081", false},
		{"0.0.0.0:8080", "192.168.1.5:8080", true},
		{"0.0.0.0:8080", "[fe80::1]:8080", true},
		{"0.0.0.0:8080", "evil.example:8080", false},
		{"[::]:8080", "10.0.0.2:8080", true},
		{"mybox.lan:80", "mybox.lan", true},
		{"mybox.lan:80", "MyBox.LAN:80", true},
		{"mybox.lan:80", "other.lan", false},
		{"192.168.1.5:8080", "192.168.1.6:8080", false},
		{"", "localhost:1234", true}, // no address known: loopback names on any port
		{"", "evil.example:1234", false},
		{"127.0.0.1:8080", "", false},
	}
	for _, tc := range tests {
		if got := newOwnAddress(tc.addr).allows(tc.host); got != tc.want {
			t.Errorf("address %q allows Host %q = %v, want %v", tc.addr, tc.host, got, tc.want)
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	a := newAPIServer(t)
	tests := []struct {
		name   string
		method string
		hdr    []string
		want   int
	}{
		{"no Origin (curl)", "POST", nil, 200},
		{"same origin", "POST", []string{"Origin", a.ts.URL}, 200},
		{"same origin by fetch metadata", "POST", []string{"Sec-Fetch-Site", "same-origin", "Origin", a.ts.URL}, 200},
		{"foreign origin", "POST", []string{"Origin", "http://evil.example"}, 403},
		{"localhost is another origin", "POST", []string{"Origin", strings.Replace(a.ts.URL, "127.0.0.1", "localhost", 1)}, 403},
		{"null origin", "POST", []string{"Origin", "null"}, 403},
		{"cross-site fetch metadata", "POST", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"foreign origin reading", "GET", []string{"Origin", "http://evil.example"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/downloads/pause-all"
			if tc.method == "GET" {
				path = "/api/settings"
			}
			code, hdr, body := a.do(t, tc.method, path, nil, tc.hdr...)
			apiWantStatus(t, code, hdr, body, tc.want)
		})
	}
}

func TestErrorsAreJSON(t *testing.T) {
	a := newAPIServer(t)
	tests := []struct {
		name, method, path string
		want               int
		allow              string
	}{
		{"unknown api path", "GET", "/api/nope", 404, ""},
		{"unknown page", "GET", "/nope.html", 404, ""},
		{"unknown download", "GET", "/api/download/d-nope", 404, ""},
		{"pause unknown download", "POST", "/api/download/d-nope/pause", 404, ""},
		{"resume unknown download", "POST", "/api/download/d-nope/resume", 404, ""},
		{"cancel unknown download", "POST", "/api/download/d-nope/cancel", 404, ""},
		{"retry unknown download", "POST", "/api/download/d-nope/retry", 404, ""},
		{"remove unknown download", "POST", "/api/download/d-nope/remove", 404, ""},
		{"move unknown download", "POST", "/api/download/d-nope/move?to=top", 404, ""},
		{"delete unknown history", "DELETE", "/api/history/h-nope", 404, ""},
		{"GET on a POST route", "GET", "/api/download/d-1/pause", 405, "POST"},
		{"DELETE on the list", "DELETE", "/api/downloads", 405, "GET, HEAD"},
		{"PUT on settings", "PUT", "/api/settings", 405, "GET, HEAD, POST"},
		{"POST on the page", "POST", "/", 405, "GET, HEAD"},
		{"GET on add", "GET", "/api/download/add", 405, "POST"},
		{"HEAD on add", "HEAD", "/api/download/add", 405, "POST"},
		{"PUT on add", "PUT", "/api/download/add", 405, "POST"},
		{"DELETE on a download", "DELETE", "/api/download/d-1", 405, "GET, HEAD"},
		{"POST on history", "POST", "/api/history", 405, "DELETE, GET, HEAD"},
		{"dot-dot in path", "GET", "/api/../api/settings", 400, ""},
		{"bad move target", "POST", "/api/download/d-1/move?to=sideways", 400, ""},
		{"bad delete_file", "POST", "/api/download/d-1/remove?delete_file=maybe", 400, ""},
		{"empty add", "POST", "/api/download/add", 400, ""},
		{"bad retries", "POST", "/api/download/add?url=https://h/x&retries=many", 400, ""},
		{"negative retries", "POST", "/api/download/add?url=https://h/x&retries=-1", 400, ""},
		{"bad sha256", "POST", "/api/download/add?url=https://h/x&sha256=abc", 400, ""},
		{"concurrency too high", "POST", "/api/settings?concurrency=33", 400, ""},
		{"concurrency zero", "POST", "/api/settings?concurrency=0", 400, ""},
		{"concurrency not a number", "POST", "/api/settings?concurrency=four", 400, ""},
		{"settings with nothing", "POST", "/api/settings", 400, ""},
		{"limit_rate not a rate", "POST", "/api/settings?limit_rate=fast", 400, ""},
		{"download limit not a rate", "POST", "/api/download/d-nope/limit?limit_rate=fast", 400, ""},
		{"download limit unknown id", "POST", "/api/download/d-nope/limit?limit_rate=1M", 404, ""},
		{"history limit zero", "GET", "/api/history?limit=0", 400, ""},
		{"history limit word", "GET", "/api/history?limit=ten", 400, ""},
		{"history negative offset", "GET", "/api/history?offset=-1", 400, ""},
		{"history bad status", "GET", "/api/history?status=lost", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, a.ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = strings.SplitN(tc.path, "?", 2)[0] // send ".." as written
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if tc.method == "HEAD" { // no body to check
				if resp.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
				}
			} else {
				apiWantError(t, resp.StatusCode, resp.Header, body, tc.want)
			}
			if tc.allow != "" && resp.Header.Get("Allow") != tc.allow {
				t.Errorf("Allow = %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
		})
	}
}

func TestHugeBodyIs413(t *testing.T) {
	a := newAPIServer(t)
	huge := "url=" + strings.Repeat("a", maxBodyBytes+1)
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/json"} {
		body := huge
		if ct == "application/json" {
			body = `{"url":"` + strings.Repeat("a", maxBodyBytes+1) + `"}`
		}
		code, hdr, resp := a.do(t, "POST", "/api/download/add", strings.NewReader(body), "Content-Type", ct)
		msg := apiWantError(t, code, hdr, resp, http.StatusRequestEntityTooLarge)
		if !strings.Contains(msg, "64 KiB") {
			t.Errorf("%s: message %q does not name the limit", ct, msg)
		}
	}
}

func TestStatusFor(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fault.BadInputf("x"), 400},
		{fmt.Errorf("download d-1: %w", fault.ErrNotFound), 404},
		{fmt.Errorf("pausing: %w", fault.ErrConflict), 409},
		{fmt.Errorf("reading: %w", &http.MaxBytesError{Limit: 1}), 413},
		{errForbidden("no"), 403},
		{errors.New("disk on fire"), 500},
	}
	for _, tc := range tests {
		if got := statusFor(tc.err); got != tc.want {
			t.Errorf("statusFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestInternalErrorIsGeneric(t *testing.T) {
	a := newAPIServer(t)
	rec := httptest.NewRecorder()
	a.writeError(rec, httptest.NewRequest("GET", "/api/x", nil), errors.New("open /home/secret/path: disk on fire"))
	msg := apiWantError(t, rec.Code, rec.Header(), rec.Body.Bytes(), 500)
	if strings.Contains(msg, "secret") {
		t.Errorf("500 message leaks the error: %q", msg)
	}
}

func TestUIServed(t *testing.T) {
	a := newAPIServer(t)
	for _, p := range []string{"/", "/index.html"} {
		code, hdr, body := a.do(t, "GET", p, nil)
		if code != 200 {
			t.Fatalf("GET %s = %d", p, code)
		}
		want, _ := templates.FS.ReadFile("index.html")
		if !bytes.Equal(body, want) {
			t.Errorf("GET %s body differs from templates/index.html", p)
		}
		if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cc := hdr.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control = %q, want no-cache", cc)
		}
		csp := hdr.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("CSP %q lacks %q", csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
			t.Errorf("CSP %q allows inline code or another host", csp)
		}
		etag := hdr.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		code, _, body = a.do(t, "GET", p, nil, "If-None-Match", etag)
		if code != http.StatusNotModified || len(body) != 0 {
			t.Errorf("revalidation = %d with %d bytes, want 304 and none", code, len(body))
		}
	}
	// Every embedded file is served under its own path with its type.
	for p, as := range a.assets {
		code, hdr, body := a.do(t, "GET", p, nil)
		if code != 200 || !bytes.Equal(body, as.data) || hdr.Get("Content-Type") != as.ctype {
			t.Errorf("GET %s = %d, %d bytes, %q", p, code, len(body), hdr.Get("Content-Type"))
		}
	}
}

func TestLoadAssetsTypesAndInlineHashes(t *testing.T) {
	page := "<!doctype html><STYLE>body{color:red}</STYLE><script src=\"app.js\"></script>" +
		"<script>console.log('سلام')</script><scripts></scripts><script type=module>\r\nlet a = 1;\r\n</script>"
	fsys := fstest.MapFS{
		"ui/index.html":          {Data: []byte(page)},
		"ui/app.js":              {Data: []byte("1")},
		"ui/fonts/vazir.woff2":   {Data: []byte("w")},
		"ui/style.css":           {Data: []byte("c")},
		"ui/icons/download.svg":  {Data: []byte("<svg/>")},
		"ui/data/unknown.qqq123": {Data: []byte("\x00\x01")},
	}
	assets, csp := loadAssets(fsys, "ui")
	wantTypes := map[string]string{
		"/index.html":          "text/html; charset=utf-8",
		"/app.js":              "text/javascript; charset=utf-8",
		"/fonts/vazir.woff2":   "font/woff2",
		"/style.css":           "text/css; charset=utf-8",
		"/icons/download.svg":  "image/svg+xml",
		"/data/unknown.qqq123": "application/octet-stream",
	}
	for p, want := range wantTypes {
		if a := assets[p]; a == nil || a.ctype != want {
			t.Errorf("asset %s = %+v, want type %q", p, a, want)
		}
	}
	if assets["/app.js"].etag == assets["/style.css"].etag {
		t.Error("different files share an ETag")
	}
	for _, inline := range []string{"body{color:red}", "console.log('سلام')", "\nlet a = 1;\n"} {
		if h := apiCSPHash(inline); !strings.Contains(csp, h) {
			t.Errorf("CSP %q lacks %s for %q", csp, h, inline)
		}
	}
	if n := strings.Count(csp, "'sha256-"); n != 3 {
		t.Errorf("CSP has %d hashes, want 3: %s", n, csp)
	}
}

func TestLibrary(t *testing.T) {
	a := newAPIServer(t)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	apiWriteFile(t, outside, "secret")
	files := map[string]string{
		"ubuntu.iso":              "iso bytes",
		"sub/notes.txt":           "hello",
		"فایل.bin":                "persian",
		"README":                  "no extension",
		"src-1.0.tar.gz":          "tarball",
		".state/queue.json":       "{}",
		".history/history.json":   "[]",
		".staging/blobs/sha256-1": "x",
		"big.bin.part":            "partial",
		"big.bin.part.json":       "{}",
		".hidden":                 "h",
	}
	for name, data := range files {
		apiWriteFile(t, filepath.Join(a.dir, name), data)
	}
	apiWriteModelZip(t, filepath.Join(a.dir, "tiny-latest.zip"))
	apiWriteZip(t, filepath.Join(a.dir, "photos.zip"), "a.jpg")
	if err := os.Symlink(outside, filepath.Join(a.dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(a.dir, "linkdir")); err != nil {
		t.Fatal(err)
	}

	code, _, body := a.do(t, "GET", "/api/library", nil)
	if code != 200 {
		t.Fatalf("GET /api/library = %d %s", code, body)
	}
	var got struct{ Files []libraryFile }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, f := range got.Files {
		kinds[f.Path] = f.Kind
		if f.Name != filepath.Base(f.Path) || f.Modified.IsZero() {
			t.Errorf("file %+v: bad name or time", f)
		}
		if f.Path == "ubuntu.iso" && f.Size != int64(len("iso bytes")) {
			t.Errorf("ubuntu.iso size = %d", f.Size)
		}
	}
	want := map[string]string{
		"ubuntu.iso": "iso", "sub/notes.txt": "txt", "فایل.bin": "bin", "README": "file",
		"tiny-latest.zip": "model", "photos.zip": "zip", "src-1.0.tar.gz": "tar.gz",
	}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("library = %v, want %v", kinds, want)
	}

	// Serving: whole, ranged, and a Persian name survives in the attachment.
	code, hdr, body := a.do(t, "GET", "/api/library/file/sub/notes.txt", nil)
	if code != 200 || string(body) != "hello" {
		t.Errorf("GET notes.txt = %d %q", code, body)
	}
	if cd := hdr.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition = %q, want attachment", cd)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("file CSP = %q, want sandbox", csp)
	}
	code, _, body = a.do(t, "GET", "/api/library/file/ubuntu.iso", nil, "Range", "bytes=4-")
	if code != http.StatusPartialContent || string(body) != "bytes" {
		t.Errorf("ranged GET = %d %q, want 206 \"bytes\"", code, body)
	}
	code, hdr, body = a.do(t, "GET", "/api/library/file/"+url.PathEscape("فایل.bin"), nil)
	if code != 200 || string(body) != "persian" || !strings.Contains(hdr.Get("Content-Disposition"), "filename*=utf-8''") {
		t.Errorf("Persian file = %d %q %q", code, body, hdr.Get("Content-Disposition"))
	}

	// Deleting a file, then it is gone.
	code, _, body = a.do(t, "DELETE", "/api/library/file/sub/notes.txt", nil)
	if code != 200 || !bytes.Contains(body, []byte(`"ok":true`)) {
		t.Errorf("DELETE = %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "sub/notes.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there after DELETE: %v", err)
	}
}

func TestLibraryPathsConfined(t *testing.T) {
	a := newAPIServer(t)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	apiWriteFile(t, outside, "secret")
	apiWriteFile(t, filepath.Join(a.dir, "ok.txt"), "ok")
	apiWriteFile(t, filepath.Join(a.dir, "x.bin.part"), "partial")
	apiWriteFile(t, filepath.Join(a.dir, ".state/queue.json"), "{}")
	if err := os.Symlink(outside, filepath.Join(a.dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(a.dir, outside)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string // path as sent on the wire
		want       int
	}{
		{"dot-dot", "/api/library/file/../" + filepath.ToSlash(rel), 400},
		{"encoded dot-dot", "/api/library/file/%2e%2e/%2e%2e/etc/passwd", 400},
		{"encoded slashes", "/api/library/file/..%2F..%2Fetc%2Fpasswd", 400},
		{"relative to outside", "/api/library/file/" + url.PathEscape(filepath.ToSlash(rel)), 400},
		{"absolute", "/api/library/file/%2F" + url.PathEscape(strings.TrimPrefix(filepath.ToSlash(outside), "/")), 400},
		{"backslashes", "/api/library/file/..%5C..%5Csecret.txt", 400},
		{"NUL", "/api/library/file/ok.txt%00.jpg", 400},
		{"drive letter", "/api/library/file/C:%5Cwindows%5Cwin.ini", 400},
		{"symlink out", "/api/library/file/link.txt", 404},
		{"partial file", "/api/library/file/x.bin.part", 404},
		{"state folder", "/api/library/file/.state/queue.json", 404},
		{"missing", "/api/library/file/nope.txt", 404},
		{"a folder", "/api/library/file/.state", 404},
	}
	for _, tc := range tests {
		for _, method := range []string{"GET", "DELETE"} {
			t.Run(tc.name+" "+method, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), method, a.ts.URL, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.URL.Opaque = tc.path
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				apiWantError(t, resp.StatusCode, resp.Header, body, tc.want)
				if bytes.Contains(body, []byte("secret")) && !bytes.Contains(body, []byte("secret.txt")) {
					t.Errorf("body leaks the secret: %s", body)
				}
			})
		}
	}
	if runtime.GOOS != "windows" {
		// A colon is an ordinary character on Unix; only a drive prefix is refused.
		apiWriteFile(t, filepath.Join(a.dir, "meeting 10:30.txt"), "colon")
		if code, _, body := a.do(t, "GET", "/api/library/file/"+url.PathEscape("meeting 10:30.txt"), nil); code != 200 || string(body) != "colon" {
			t.Errorf("file with a colon = %d %q", code, body)
		}
	}
	for _, p := range []string{outside, filepath.Join(a.dir, "ok.txt"), filepath.Join(a.dir, "x.bin.part"), filepath.Join(a.dir, ".state/queue.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (a refused DELETE removed it)", p, err)
		}
	}
}

// listen runs a's ListenAndServe on a free loopback port until the test
// ends or stop is called; stop returns what ListenAndServe returned.
func (a *apiServer) listen(t *testing.T) (u string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.ListenAndServe(ctx, "127.0.0.1:0", func(u string) { urls <- u }) }()
	select {
	case u = <-urls:
	case err := <-done:
		t.Fatalf("ListenAndServe returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("ready was not called")
	}
	return u, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("ListenAndServe did not return after its context was done")
			return nil
		}
	}
}

func TestListenAndServe(t *testing.T) {
	a := newAPIServer(t)
	// Longer than the test waits: an event stream that shutdown did not end
	// would hold Shutdown until this deadline.
	a.shutdownTimeout = time.Minute
	u, stop := a.listen(t)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*/$`).MatchString(u) {
		t.Errorf("ready URL = %q", u)
	}
	resp, err := http.Get(u + "api/settings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET settings on the live server = %d", resp.StatusCode)
	}

	// An event stream stays open until shutdown ends it.
	stream, err := http.Get(u + "api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	br := bufio.NewReader(stream.Body)
	br.ReadString('\n') // id: <rev>
	line, err := br.ReadString('\n')
	if err != nil || line != "event: downloads\n" {
		t.Fatalf("second event line = %q, %v", line, err)
	}
	if err := stop(); err != nil {
		t.Errorf("ListenAndServe = %v after shutdown, want nil (an event stream held shutdown?)", err)
	}
}

func TestListenAndServeAddresses(t *testing.T) {
	t.Run("beyond loopback needs a token", func(t *testing.T) {
		a := newAPIServer(t)
		for _, addr := range []string{"0.0.0.0:0", "[::]:0", "mybox.lan:0"} {
			err := a.ListenAndServe(t.Context(), addr, nil)
			if !errors.Is(err, fault.ErrBadInput) {
				t.Errorf("ListenAndServe(%s) without token = %v, want ErrBadInput", addr, err)
			}
		}
	})
	t.Run("token URL", func(t *testing.T) {
		a := newAPIServer(t, func(c *Config) { c.Token = "a b&c-0123456789abcdef" })
		if got, want := a.openURL("0.0.0.0", "9"), "http://127.0.0.1:9/?token=a+b%26c-0123456789abcdef"; got != want {
			t.Errorf("openURL = %q, want %q", got, want)
		}
		if got, want := a.openURL("::1", "9"), "http://[::1]:9/?token=a+b%26c-0123456789abcdef"; got != want {
			t.Errorf("openURL = %q, want %q", got, want)
		}
	})
	t.Run("chosen port taken is an error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		a := newAPIServer(t)
		err = a.ListenAndServe(t.Context(), ln.Addr().String(), func(string) { t.Error("ready called") })
		if err == nil {
			t.Error("ListenAndServe on a taken port succeeded")
		}
	})
	t.Run("default port taken falls back", func(t *testing.T) {
		// Hold the default port ourselves if it is free; either way it is taken.
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", defaultPort)); err == nil {
			defer ln.Close()
		}
		a := newAPIServer(t)
		ctx, cancel := context.WithCancel(t.Context())
		urls := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- a.ListenAndServe(ctx, fmt.Sprintf("127.0.0.1:%d", defaultPort), func(u string) { urls <- u })
		}()
		select {
		case u := <-urls:
			if strings.Contains(u, fmt.Sprintf(":%d/", defaultPort)) {
				t.Errorf("URL %q uses the taken port", u)
			}
		case err := <-done:
			t.Fatalf("ListenAndServe = %v, want a fallback port", err)
		case <-time.After(10 * time.Second):
			t.Fatal("ready was not called")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("no shutdown")
		}
	})
}

// apiCSPHash is the CSP source expression of an inline block.
func apiCSPHash(inline string) string {
	sum := sha256.Sum256([]byte(inline))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// newAPITestManager runs a real manager with the real download engine over
// dir until the test ends, and returns it with its history.
func newAPITestManager(t testing.TB, dir string, models *models.Puller) (*queue.Manager, *history.Store, *engine.Downloader) {
	t.Helper()
	h := mustOpenHistory(t, dir)
	files := engine.NewDownloader(&http.Client{}, slog.New(slog.DiscardHandler))
	files.Retries = 3 // tests fail fast
	files.Backoff = 10 * time.Millisecond
	files.MaxBackoff = 50 * time.Millisecond
	files.StallTimeout = 5 * time.Second
	m, err := queue.New(queue.Config{OutputDir: dir, Concurrency: 4, Retries: 1, Files: files, Models: models, History: h, ProgressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("manager did not stop")
		}
	})
	return m, h, files
}

func apiWriteFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func apiWriteZip(t *testing.T, path string, names ...string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, n)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func apiWriteModelZip(t *testing.T, path string) {
	t.Helper()
	apiWriteZip(t, path, "blobs/sha256-"+strings.Repeat("a", 64), "manifests/registry.ollama.ai/library/tiny/latest")
}

// apiVolatileKeys are JSON fields that differ from run to run (download ids
// are replaced by the tests that make them); golden files
// hold a placeholder instead of their value.
var apiVolatileKeys = map[string]bool{
	"created_at": true, "started_at": true, "finished_at": true, "modified": true,
	"speed": true, "total_speed": true, "eta_seconds": true, "duration_seconds": true,
	"average_speed": true, "output_dir": true, "rev": true,
	"schedule_open": true, "schedule_next": true, "open": true, "next_start": true,
	"server_time": true, "time_zone": true, "utc_offset": true,
}

// apiCheckGolden compares a status and JSON body with testdata/api/<name>.json
// after normalising volatile fields and the test's ports and folders;
// -update rewrites the file.
func apiCheckGolden(t *testing.T, name string, code int, body []byte, replace ...string) {
	t.Helper()
	text := string(body)
	for i := 0; i+1 < len(replace); i += 2 {
		text = strings.ReplaceAll(text, replace[i], replace[i+1])
	}
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("%s: body is not JSON: %v\n%s", name, err, body)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"status": code, "body": apiNormalise(v)}); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "api", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

func apiNormalise(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if apiVolatileKeys[k] && e != "" { // null too: schedule_next is null or a time, depending on the clock
				v[k] = "<" + k + ">"
				continue
			}
			v[k] = apiNormalise(e)
		}
	case []any:
		for i, e := range v {
			v[i] = apiNormalise(e)
		}
	}
	return v
}

// goldenGet fetches a path and checks it against its golden file.
func (a *apiServer) golden(t *testing.T, name, method, path string, body io.Reader, hdr ...string) {
	t.Helper()
	code, _, resp := a.do(t, method, path, body, hdr...)
	apiCheckGolden(t, name, code, resp, a.ts.Listener.Addr().String(), "127.0.0.1:PORT", a.dir, "<output-dir>")
}

func TestGoldenErrors(t *testing.T) {
	a := newAPIServer(t)
	a.golden(t, "error-404-unknown-path", "GET", "/api/nope", nil)
	a.golden(t, "error-404-unknown-download", "POST", "/api/download/d-nope/pause", nil)
	a.golden(t, "error-405", "GET", "/api/download/d-1/pause", nil)
	a.golden(t, "error-400-settings", "POST", "/api/settings", strings.NewReader("concurrency=64"), "Content-Type", "application/x-www-form-urlencoded")
	a.golden(t, "error-400-add-empty", "POST", "/api/download/add", strings.NewReader("url=&retries=3"), "Content-Type", "application/x-www-form-urlencoded")
	a.golden(t, "error-413", "POST", "/api/download/add", strings.NewReader("url="+strings.Repeat("x", maxBodyBytes)), "Content-Type", "application/x-www-form-urlencoded")
	a.golden(t, "error-403-host", "GET", "/api/downloads", nil, "Host", "evil.example")
	a.golden(t, "error-403-origin", "POST", "/api/downloads/pause-all", nil, "Origin", "http://evil.example")
	tok := newAPIServer(t, func(c *Config) { c.Token = "golden-token-0123456789" })
	tok.golden(t, "error-401", "GET", "/api/downloads", nil)
}

func TestGoldenLibrary(t *testing.T) {
	a := newAPIServer(t)
	apiWriteFile(t, filepath.Join(a.dir, "isos/ubuntu.iso"), "iso bytes")
	apiWriteFile(t, filepath.Join(a.dir, "half.bin.part"), "partial")
	apiWriteModelZip(t, filepath.Join(a.dir, "tiny-latest.zip"))
	// Fixed times so the newest-first order is part of the golden file.
	for i, p := range []string{"isos/ubuntu.iso", "tiny-latest.zip"} {
		tm := time.Date(2026, 11, 25, 10, i, 0, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(a.dir, p), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	a.golden(t, "library", "GET", "/api/library", nil)
	a.golden(t, "library-delete", "DELETE", "/api/library/file/isos/ubuntu.iso", nil)
	a.golden(t, "library-after-delete", "GET", "/api/library", nil)
}

func TestGoldenHistoryAndStatistics(t *testing.T) {
	a := newAPIServer(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	recs := []history.Record{
		{ID: "d-1", Kind: "file", Source: "https://example.com/isos/ubuntu.iso", FileName: "ubuntu.iso", Path: "ubuntu.iso",
			Size: 4000, Status: "completed", Domain: "example.com", FileType: "iso"},
		{ID: "d-2", Kind: "model", Source: "llama3:latest", FileName: "llama3-latest.zip", Path: "llama3-latest.zip",
			Size: 9000, Status: "completed", Domain: "registry.ollama.ai", FileType: "model"},
		{ID: "d-3", Kind: "file", Source: "https://example.com/big.bin", FileName: "big.bin",
			Size: 100, Status: "failed", Error: "https://example.com/big.bin: 503 Service Unavailable", Domain: "example.com", FileType: "bin"},
		{ID: "d-4", Kind: "file", Source: "https://other.example/x.iso", FileName: "x.iso",
			Status: "canceled", Domain: "other.example", FileType: "iso"},
	}
	for i := range recs {
		recs[i].StartedAt = now.Add(-time.Duration(48-i) * time.Hour)
		recs[i].FinishedAt = recs[i].StartedAt.Add(4 * time.Second)
		recs[i].Duration = 4
		recs[i].AverageSpeed = float64(recs[i].Size) / 4
		if err := a.cfg.History.Add(recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	a.golden(t, "history", "GET", "/api/history?limit=50&offset=0", nil)
	a.golden(t, "history-page", "GET", "/api/history?limit=2&offset=1", nil)
	a.golden(t, "history-failed", "GET", "/api/history?status=failed", nil)
	a.golden(t, "history-search", "GET", "/api/history?q=UBUNTU", nil)
	a.golden(t, "statistics", "GET", "/api/statistics", nil)
	a.golden(t, "history-delete", "DELETE", "/api/history/d-3", nil)
	a.golden(t, "history-delete-unknown", "DELETE", "/api/history/d-3", nil)
	a.golden(t, "history-after-delete", "GET", "/api/history", nil)
	a.golden(t, "history-clear", "DELETE", "/api/history", nil)
	a.golden(t, "history-after-clear", "GET", "/api/history", nil)
	a.golden(t, "statistics-after-clear", "GET", "/api/statistics", nil)
}

// apiJob is the part of a download object the tests read.
type apiJob struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Source     string `json:"source"`
	Name       string `json:"name"`
	Path       string `json:"path"`
	State      string `json:"state"`
	Error      string `json:"error"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	Position   int    `json:"position"`
	LimitRate  int64  `json:"limit_rate"`
}

// addDownloads posts a form to /api/download/add and returns what was added.
func (a *apiServer) addDownloads(t *testing.T, kv ...string) []apiJob {
	t.Helper()
	body, k, v := apiForm(kv...)
	code, _, resp := a.do(t, "POST", "/api/download/add", body, k, v)
	if code != http.StatusCreated {
		t.Fatalf("add = %d %s", code, resp)
	}
	var got struct{ Downloads []apiJob }
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatal(err)
	}
	return got.Downloads
}

// waitState polls GET /api/download/{id} until the download is in one of
// the states, within a bounded time and number of polls.
func (a *apiServer) waitState(t *testing.T, id string, states ...string) apiJob {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var j apiJob
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		code, _, body := a.do(t, "GET", "/api/download/"+id, nil)
		if code != 200 {
			t.Fatalf("GET download %s = %d %s", id, code, body)
		}
		j = apiJob{}
		if err := json.Unmarshal(body, &j); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(states, j.State) {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("download %s is %q (%s), want one of %v", id, j.State, j.Error, states)
	return j
}

func TestEndToEndDownloadsThroughAPI(t *testing.T) {
	a := newAPIServer(t)
	origins := []*testkit.Origin{
		testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithPath("/one.bin")),
		testkit.NewOrigin(t, testkit.WithSize(300<<10), testkit.WithPath("/two.iso")),
		testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithPath("/three.bin")),
	}
	var lines []string
	for _, o := range origins {
		lines = append(lines, o.FileURL())
	}
	added := a.addDownloads(t, "url", strings.Join(lines, "\n"), "retries", "2")
	if len(added) != len(origins) {
		t.Fatalf("added %d downloads, want %d", len(added), len(origins))
	}
	for i, j := range added {
		done := a.waitState(t, j.ID, "completed", "failed", "canceled")
		if done.State != "completed" {
			t.Fatalf("download %s = %s: %s", j.Source, done.State, done.Error)
		}
		want := origins[i].Content()
		got := testkit.ReadFile(t, filepath.Join(a.dir, filepath.FromSlash(done.Path)))
		if !bytes.Equal(got, want) || done.BytesDone != int64(len(want)) {
			t.Errorf("%s: %d bytes on disk, %d reported, want %d", done.Path, len(got), done.BytesDone, len(want))
		}
	}

	// The finished files are in the library and servable.
	code, _, body := a.do(t, "GET", "/api/library", nil)
	var lib struct{ Files []libraryFile }
	if err := json.Unmarshal(body, &lib); code != 200 || err != nil {
		t.Fatalf("library = %d %v", code, err)
	}
	if len(lib.Files) != len(origins) {
		t.Errorf("library has %d files, want %d: %+v", len(lib.Files), len(origins), lib.Files)
	}
	code, _, body = a.do(t, "GET", "/api/library/file/two.iso", nil)
	if code != 200 || !bytes.Equal(body, origins[1].Content()) {
		t.Errorf("serving two.iso = %d, %d bytes", code, len(body))
	}
}

// TestSeedCurlExamples runs the seed's curl examples (SPEC §8) as a person
// would type them, against a live server on 127.0.0.1.
func TestSeedCurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is not installed; .ci/run must install it")
		}
		t.Skip("curl is not installed")
	}
	a := newAPIServer(t)
	// Slow enough to be paused before it finishes.
	file := testkit.NewOrigin(t, testkit.WithSize(4<<20), testkit.WithPath("/file.bin"), testkit.WithThrottle(20*time.Millisecond))
	_, port, _ := net.SplitHostPort(a.ts.Listener.Addr().String())
	_, originPort, _ := net.SplitHostPort(file.Listener.Addr().String())

	curl := func(line string, out any) {
		t.Helper()
		line = strings.NewReplacer("PORT", port, "ORIGIN", originPort).Replace(line)
		cmd := exec.CommandContext(t.Context(), "sh", "-c", line)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, stderr.Bytes())
		}
		if err := json.Unmarshal(stdout, out); err != nil {
			t.Fatalf("%s: answer is not JSON: %v\n%s", line, err, stdout)
		}
	}

	var added struct{ Downloads []apiJob }
	curl(`curl -X POST -d 'url=http://127.0.0.1:ORIGIN/file.bin&retries=3' http://127.0.0.1:PORT/api/download/add`, &added)
	if len(added.Downloads) != 1 || added.Downloads[0].Source != file.FileURL() {
		t.Fatalf("add answered %+v", added)
	}
	id := added.Downloads[0].ID

	var list struct {
		Downloads   []apiJob
		Concurrency int
	}
	curl(`curl http://127.0.0.1:PORT/api/downloads`, &list)
	if len(list.Downloads) != 1 || list.Downloads[0].ID != id || list.Concurrency != 4 {
		t.Errorf("downloads = %+v", list)
	}

	var j apiJob
	curl(`curl -X POST http://127.0.0.1:PORT/api/download/`+id+`/pause`, &j)
	if j.ID != id || j.State != "paused" {
		t.Errorf("after pause: %+v", j)
	}
	curl(`curl -X POST http://127.0.0.1:PORT/api/download/`+id+`/resume`, &j)
	if j.State != "queued" && j.State != "downloading" {
		t.Errorf("after resume: %+v", j)
	}
	curl(`curl -X POST http://127.0.0.1:PORT/api/download/`+id+`/cancel`, &j)
	if j.State != "canceled" {
		t.Errorf("after cancel: %+v", j)
	}
	file.SetThrottle(0)

	// The JSON form of add, a model name in url, and the unknown-id answer.
	curl(`curl -X POST -H 'Content-Type: application/json' -d '{"url": "http://127.0.0.1:ORIGIN/file.bin", "retries": 3}' http://127.0.0.1:PORT/api/download/add`, &added)
	if len(added.Downloads) != 1 {
		t.Errorf("JSON add answered %+v", added)
	}
	var e struct{ Error string }
	curl(`curl -X POST http://127.0.0.1:PORT/api/download/d-unknown/pause`, &e)
	if e.Error == "" {
		t.Error("pausing an unknown id gave no error")
	}

	var stats map[string]any
	curl(`curl http://127.0.0.1:PORT/api/statistics`, &stats)
	if _, ok := stats["total_files"]; !ok {
		t.Errorf("statistics = %v", stats)
	}
	var hist struct {
		Total   *int
		Records []map[string]any
	}
	curl(`curl 'http://127.0.0.1:PORT/api/history?limit=50&offset=0'`, &hist)
	if hist.Total == nil {
		t.Errorf("history has no total: %+v", hist)
	}
}

// sseItem is one event's data, or a keep-alive comment ("" data).
type sseItem struct{ data string }

// readSSE opens /api/events and forwards what arrives, until the stream
// ends (then it closes the channel).
func (a *apiServer) readSSE(t *testing.T) <-chan sseItem {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", a.ts.URL+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET /api/events = %d %q", resp.StatusCode, ct)
	}
	items := make(chan sseItem, 1024)
	go func() {
		defer close(items)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var data string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, ":"):
				items <- sseItem{}
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\n")
			case line == "\n" && data != "":
				items <- sseItem{data: data}
				data = ""
			}
		}
	}()
	return items
}

// nextEvent returns the next event's body, counting keep-alives skipped.
func nextEvent(t *testing.T, items <-chan sseItem, within time.Duration) (body downloadsResponse, keepAlives int) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case it, ok := <-items:
			if !ok {
				t.Fatal("event stream ended")
			}
			if it.data == "" {
				keepAlives++
				continue
			}
			if err := json.Unmarshal([]byte(it.data), &body); err != nil {
				t.Fatalf("event data %q: %v", it.data, err)
			}
			return body, keepAlives
		case <-timeout:
			t.Fatalf("no event within %v", within)
		}
	}
}

func TestEventsStream(t *testing.T) {
	a := newAPIServer(t)
	a.eventInterval = 50 * time.Millisecond
	a.keepAlive = 20 * time.Millisecond
	events := a.readSSE(t)

	first, _ := nextEvent(t, events, 10*time.Second)
	if len(first.Downloads) != 0 || first.Concurrency != 4 {
		t.Fatalf("first event = %+v", first)
	}
	// Nothing changes: only keep-alive comments arrive, three of them
	// over more than two event intervals.
	quietUntil := time.After(10 * time.Second)
	for comments := 0; comments < 3; {
		select {
		case it := <-events:
			if it.data != "" {
				t.Fatalf("event without a change: %s", it.data)
			}
			comments++
		case <-quietUntil:
			t.Fatalf("%d keep-alive comments in 10 s with keepAlive 20 ms", comments)
		}
	}

	// A download: events follow it, progress included, to completion.
	o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithPath("/sse.bin"), testkit.WithThrottle(5*time.Millisecond))
	added := a.addDownloads(t, "url", o.FileURL())
	var states []string
	midway := 0 // events showing a partial download: progress is pushed, not only state changes
	for i := 0; i < 500; i++ {
		ev, _ := nextEvent(t, events, 10*time.Second)
		if len(ev.Downloads) != 1 || ev.Downloads[0].ID != added[0].ID {
			t.Fatalf("event = %+v", ev)
		}
		d := ev.Downloads[0]
		if len(states) == 0 || states[len(states)-1] != d.State {
			states = append(states, d.State)
		}
		if d.State == "downloading" && d.BytesDone > 0 && d.BytesDone < d.BytesTotal {
			midway++
		}
		if d.State == "completed" {
			break
		}
	}
	if states[len(states)-1] != "completed" {
		t.Fatalf("states seen: %v", states)
	}
	if midway < 2 {
		t.Errorf("%d events showed progress during a ~300 ms download with a 50 ms interval", midway)
	}
}

// TestEventsCoalesced: every change within one event interval (a
// download added, started, finished) goes out as one event when the
// interval ends, not before. The test ends the interval itself.
func TestEventsCoalesced(t *testing.T) {
	a := newAPIServer(t)
	ticks := make(chan time.Time)
	a.eventTimer = func(time.Duration) <-chan time.Time { return ticks }
	a.keepAlive = time.Hour
	events := a.readSSE(t)
	nextEvent(t, events, 10*time.Second)
	published := func() uint64 { a.events.mu.Lock(); defer a.events.mu.Unlock(); return a.events.seq }
	before := published()
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithPath("/c.bin"))
	added := a.addDownloads(t, "url", o.FileURL())
	a.waitState(t, added[0].ID, "completed")
	if n := published() - before; n != 0 {
		t.Fatalf("%d events published within the interval", n)
	}
	select {
	case ticks <- time.Now(): // the broadcaster waits on the interval: end it
	case <-time.After(10 * time.Second):
		t.Fatal("the broadcaster does not wait on its interval")
	}
	ev, _ := nextEvent(t, events, 10*time.Second)
	if len(ev.Downloads) != 1 || ev.Downloads[0].State != "completed" {
		t.Errorf("the interval's one event: %+v, want the download completed", ev.Downloads)
	}
	if n := published() - before; n != 1 {
		t.Errorf("%d events for the interval's changes, want 1", n)
	}
}

// BenchmarkAPIDownloads polls GET /api/downloads over real loopback HTTP
// with 500 downloads present (4 downloading from an origin that holds
// them open, the rest queued) and 50 concurrent pollers, reporting
// latency percentiles. "cached" is the server as shipped; "uncached"
// encodes every answer afresh, the cost without the shared encoding.
func BenchmarkAPIDownloads(b *testing.B) {
	hold := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("ETag", `"held"`)
		if r.Method == http.MethodHead {
			return
		}
		w.Write(make([]byte, 4<<10))
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer origin.Close()
	defer close(hold)

	dir := b.TempDir()
	m, h, _ := newAPITestManager(b, dir, nil)
	for i := range 500 {
		if _, err := m.Add(queue.AddRequest{Source: fmt.Sprintf("%s/bench-%d.bin", origin.URL, i), Retries: -1}); err != nil {
			b.Fatal(err)
		}
	}
	ts := httptest.NewUnstartedServer(nil)
	s := New(Config{Manager: m, History: h, OutputDir: dir, Addr: ts.Listener.Addr().String()})
	ts.Config.Handler = s.Handler()
	ts.Start()
	defer ts.Close()

	const pollers = 50
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", s.pollCacheTTL}, {"uncached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s.pollCacheTTL = bc.ttl
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pollers}}
			defer client.CloseIdleConnections()
			var mu sync.Mutex
			var lat []time.Duration
			var size int
			b.SetParallelism((pollers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					resp, err := client.Get(ts.URL + "/api/downloads")
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(t0))
					mu.Lock()
					size = int(n)
					mu.Unlock()
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			at := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(at(0.50), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}

func TestGoldenDownloads(t *testing.T) {
	a := newAPIServer(t)
	o := testkit.NewOrigin(t, testkit.WithSize(100<<10), testkit.WithPath("/files/report.pdf"))
	originAddr := o.Listener.Addr().String()
	var replace []string
	golden := func(name, method, path string, kv ...string) {
		t.Helper()
		var body io.Reader
		var hdr []string
		if kv != nil {
			var k, v string
			body, k, v = apiForm(kv...)
			hdr = []string{k, v}
		}
		code, _, resp := a.do(t, method, path, body, hdr...)
		apiCheckGolden(t, name, code, resp, append([]string{originAddr, "ORIGIN", a.dir, "<output-dir>"}, replace...)...)
	}

	golden("downloads-empty", "GET", "/api/downloads")
	added := a.addDownloads(t, "url", o.FileURL(), "retries", "2")
	replace = append(replace, added[0].ID, "<id-1>")
	a.waitState(t, added[0].ID, "completed")
	golden("download", "GET", "/api/download/"+added[0].ID)
	golden("downloads", "GET", "/api/downloads")
	golden("download-pause-completed", "POST", "/api/download/"+added[0].ID+"/pause")
	golden("download-resume-completed", "POST", "/api/download/"+added[0].ID+"/resume")
	golden("download-limit", "POST", "/api/download/"+added[0].ID+"/limit", "limit_rate", "1M")

	// One at a time from here, so that the second slow download waits queued.
	golden("settings-set-1", "POST", "/api/settings", "concurrency", "1")

	// Several lines, one refused: the others are added, the refusal listed.
	slow := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithPath("/slow.bin"), testkit.WithThrottle(50*time.Millisecond))
	code, _, resp := a.do(t, "POST", "/api/download/add", strings.NewReader(url.Values{
		"url": {slow.FileURL() + "\nftp://example.com/x.bin\n\n" + slow.FileURL() + "?copy=2"}, "retries": {"0"},
	}.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var two struct{ Downloads []apiJob }
	if err := json.Unmarshal(resp, &two); err != nil || len(two.Downloads) != 2 {
		t.Fatalf("add two = %d %s", code, resp)
	}
	replace = append(replace, slow.Listener.Addr().String(), "SLOW", two.Downloads[0].ID, "<id-2>", two.Downloads[1].ID, "<id-3>")
	apiCheckGolden(t, "add-partial", code, resp, replace...)

	golden("download-move-top", "POST", "/api/download/"+two.Downloads[1].ID+"/move", "to", "top")
	golden("download-move-bad", "POST", "/api/download/"+two.Downloads[1].ID+"/move", "to", "sideways")
	golden("download-pause", "POST", "/api/download/"+two.Downloads[1].ID+"/pause")
	golden("download-resume", "POST", "/api/download/"+two.Downloads[1].ID+"/resume")
	golden("download-cancel", "POST", "/api/download/"+two.Downloads[1].ID+"/cancel")
	golden("download-retry", "POST", "/api/download/"+two.Downloads[1].ID+"/retry")
	golden("downloads-pause-all", "POST", "/api/downloads/pause-all")
	golden("downloads-resume-all", "POST", "/api/downloads/resume-all")
	golden("downloads-cancel-all", "POST", "/api/downloads/cancel-all")
	golden("downloads-clear-finished", "POST", "/api/downloads/clear-finished")
	golden("downloads-after-clear", "GET", "/api/downloads")
	golden("add-json-model-bad-name", "POST", "/api/download/add?url=Bad%20Name!!")

	golden("settings", "GET", "/api/settings")
	golden("settings-set-8", "POST", "/api/settings", "concurrency", "8")
	if got := a.cfg.Manager.Concurrency(); got != 8 {
		t.Errorf("concurrency after POST = %d, want 8", got)
	}
	golden("settings-limit-rate", "POST", "/api/settings", "limit_rate", "2M")
	if got := a.cfg.Files.RateLimit(); got != 2<<20 {
		t.Errorf("speed limit after POST = %d, want %d", got, 2<<20)
	}
	golden("settings-no-limit", "POST", "/api/settings", "limit_rate", "0")
	golden("settings-schedule", "POST", "/api/settings", "schedule_start", "02:00", "schedule_end", "07:00")
	if got := a.cfg.Manager.Schedule(); got.Start != "02:00" || got.End != "07:00" {
		t.Errorf("schedule after POST = %+v, want 02:00–07:00", got)
	}
	golden("settings-schedule-bad", "POST", "/api/settings", "schedule_start", "25:00", "schedule_end", "07:00")
	golden("settings-schedule-half", "POST", "/api/settings", "schedule_start", "02:00", "concurrency", "2")
	if got := a.cfg.Manager.Concurrency(); got != 8 {
		t.Errorf("a refused schedule changed the concurrency to %d", got)
	}
	golden("settings-schedule-always", "POST", "/api/settings", "schedule_start", "", "schedule_end", "")

	// Remove with and without the file.
	keep := a.addDownloads(t, "url", o.FileURL()+"?keep")
	a.waitState(t, keep[0].ID, "completed")
	drop := a.addDownloads(t, "url", o.FileURL()+"?drop")
	a.waitState(t, drop[0].ID, "completed")
	keepJob := a.waitState(t, keep[0].ID, "completed")
	dropJob := a.waitState(t, drop[0].ID, "completed")
	replace = append(replace, keep[0].ID, "<id-keep>", drop[0].ID, "<id-drop>")
	golden("download-remove", "POST", "/api/download/"+keep[0].ID+"/remove")
	golden("download-remove-with-file", "POST", "/api/download/"+drop[0].ID+"/remove", "delete_file", "true")
	golden("download-removed", "GET", "/api/download/"+keep[0].ID)
	if _, err := os.Stat(filepath.Join(a.dir, keepJob.Path)); err != nil {
		t.Errorf("remove without delete_file removed the file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.dir, dropJob.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove with delete_file kept the file: %v", err)
	}
}

func TestParams(t *testing.T) {
	multipart := "--XX\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\nhttps://h/m\r\n--XX\r\nContent-Disposition: form-data; name=\"retries\"\r\n\r\n4\r\n--XX--\r\n"
	tests := []struct {
		name, ctype, body, query string
		want                     url.Values
		wantErr                  bool
	}{
		{"form", "application/x-www-form-urlencoded", "url=https%3A%2F%2Fh%2Fx&retries=3", "", url.Values{"url": {"https://h/x"}, "retries": {"3"}}, false},
		{"query only", "", "", "concurrency=8", url.Values{"concurrency": {"8"}}, false},
		{"multipart", "multipart/form-data; boundary=XX", multipart, "", url.Values{"url": {"https://h/m"}, "retries": {"4"}}, false},
		{"json", "application/json", `{"url": "https://h/x", "retries": 3, "delete_file": true, "sha256": null}`, "", url.Values{"url": {"https://h/x"}, "retries": {"3"}, "delete_file": {"true"}}, false},
		{"json list", "application/json; charset=utf-8", `{"url": ["https://h/a", "llama3"]}`, "", url.Values{"url": {"https://h/a", "llama3"}}, false},
		{"json not an object", "application/json", `["https://h/a"]`, "", nil, true},
		{"json nested", "application/json", `{"url": {"a": 1}}`, "", nil, true},
		{"json list of numbers", "application/json", `{"url": [1]}`, "", nil, true},
		{"json broken", "application/json", `{"url": `, "", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/x?"+tc.query, strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			got, err := params(r)
			if tc.wantErr {
				if !errors.Is(err, fault.ErrBadInput) {
					t.Errorf("params = %v, %v; want ErrBadInput", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if !slices.Equal(got[k], want) {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

// apiPullModelZip pulls a tiny model from a fake registry into the
// server's output folder, as the Models tab would, and returns its
// library path.
func apiPullModelZip(t *testing.T, a *apiServer) string {
	t.Helper()
	f := testkit.NewFakeRegistry(t)
	testkit.TinyModel(f, "tiny", "latest")
	c := modelstest.NewPuller(t, f.URL)
	res, err := c.Pull(t.Context(), models.PullRequest{Ref: "tiny", OutputDir: a.dir, Retries: -1})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	rel, err := filepath.Rel(a.dir, res.Path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}

// apiLocalKey is the owner's key the library-install tests give their
// server: a models_dir other than the default needs it.
const apiLocalKey = "local-key-0123456789abcdef"

func TestLibraryInstall(t *testing.T) {
	a := newAPIServer(t, func(c *Config) { c.LocalKey = apiLocalKey })
	p := apiPullModelZip(t, a)
	modelsDir := filepath.Join(t.TempDir(), "models")

	// Another folder than this machine's Ollama one is refused without the
	// owner's key, and nothing is written there.
	body, k, v := apiForm("path", p, "models_dir", modelsDir)
	code, hdr, resp := a.do(t, "POST", "/api/library/install", body, k, v)
	apiWantError(t, code, hdr, resp, http.StatusForbidden)
	if _, err := os.Stat(modelsDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused install created the models folder: %v", err)
	}
	// This machine's folder ($OLLAMA_MODELS) needs no key.
	t.Setenv("OLLAMA_MODELS", filepath.Join(t.TempDir(), "default-models"))
	body, k, v = apiForm("path", p)
	if code, _, resp := a.do(t, "POST", "/api/library/install", body, k, v); code != http.StatusOK {
		t.Fatalf("install into the default folder: %d %s", code, resp)
	}

	body, k, v = apiForm("path", p, "models_dir", modelsDir)
	code, _, resp = a.do(t, "POST", "/api/library/install", body, k, v, "Authorization", "Bearer "+apiLocalKey)
	if code != http.StatusOK {
		t.Fatalf("install: %d %s", code, resp)
	}
	var got installResponse
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || got.ModelsDir != modelsDir || !strings.Contains(got.Output, "tiny:latest: installed") {
		t.Errorf("answer = %+v", got)
	}
	// The models folder holds exactly the zip's files.
	want := map[string][]byte{}
	for name, zc := range testkit.ReadZipTree(t, filepath.Join(a.dir, filepath.FromSlash(p))) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(zc.Data)
		}
	}
	if tree := testkit.ReadTree(t, modelsDir); !reflect.DeepEqual(tree, want) {
		t.Errorf("models folder has %d files, want the zip's %d", len(tree), len(want))
	}

	// A different manifest already installed under the same name: 409, untouched.
	manifest := ""
	for name := range want {
		if strings.HasPrefix(name, "manifests/") {
			manifest = filepath.Join(modelsDir, filepath.FromSlash(name))
		}
	}
	apiWriteFile(t, manifest, `{"schemaVersion":2}`)
	body, k, v = apiForm("path", p, "models_dir", modelsDir)
	code, hdr, resp = a.do(t, "POST", "/api/library/install", body, k, v, "Authorization", "Bearer "+apiLocalKey)
	apiWantError(t, code, hdr, resp, http.StatusConflict)
	if data, _ := os.ReadFile(manifest); string(data) != `{"schemaVersion":2}` {
		t.Errorf("conflicting manifest was replaced: %s", data)
	}

	// JSON works as well, and the default is $OLLAMA_MODELS.
	env := filepath.Join(t.TempDir(), "env-models")
	t.Setenv("OLLAMA_MODELS", env)
	code, _, resp = a.do(t, "POST", "/api/library/install", strings.NewReader(`{"path":"`+p+`"}`), "Content-Type", "application/json")
	if code != http.StatusOK || !strings.Contains(string(resp), env) {
		t.Errorf("install into $OLLAMA_MODELS: %d %s", code, resp)
	}
	if tree := testkit.ReadTree(t, env); len(tree) != len(want) {
		t.Errorf("$OLLAMA_MODELS has %d files, want %d", len(tree), len(want))
	}
}

func TestLibraryInstallRefuses(t *testing.T) {
	a := newAPIServer(t, func(c *Config) { c.LocalKey = apiLocalKey })
	good := apiPullModelZip(t, a)
	data, err := os.ReadFile(filepath.Join(a.dir, filepath.FromSlash(good)))
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte inside the big layer: the zip still opens, the digest fails.
	tampered := bytes.Clone(data)
	tampered[len(tampered)/3] ^= 0xff
	apiWriteFile(t, filepath.Join(a.dir, "tampered.zip"), string(tampered))
	apiWriteFile(t, filepath.Join(a.dir, "notes.txt"), "hello")
	outside := filepath.Join(t.TempDir(), "outside.zip")
	apiWriteFile(t, outside, string(data))

	tests := []struct {
		name, path string
		code       int
	}{
		{"parent", "../outside.zip", http.StatusBadRequest},
		{"absolute", outside, http.StatusBadRequest},
		{"empty", "", http.StatusBadRequest},
		{"backslash", `a\..\b.zip`, http.StatusBadRequest},
		{"unknown", "nope.zip", http.StatusNotFound},
		{"hidden", ".state/queue.json", http.StatusNotFound},
		{"not a model", "notes.txt", http.StatusUnprocessableEntity},
		{"tampered", "tampered.zip", http.StatusUnprocessableEntity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modelsDir := filepath.Join(t.TempDir(), "models")
			body, k, v := apiForm("path", tc.path, "models_dir", modelsDir)
			code, hdr, resp := a.do(t, "POST", "/api/library/install", body, k, v, "Authorization", "Bearer "+apiLocalKey)
			apiWantError(t, code, hdr, resp, tc.code)
			if _, err := os.Stat(modelsDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("models folder was created or written: %v", err)
			}
		})
	}
	t.Run("relative models_dir", func(t *testing.T) {
		cwd := t.TempDir()
		t.Chdir(cwd)
		for _, rel := range []string{"models", "./models", "../models", "C:models"} {
			body, k, v := apiForm("path", good, "models_dir", rel)
			code, hdr, resp := a.do(t, "POST", "/api/library/install", body, k, v)
			apiWantError(t, code, hdr, resp, http.StatusBadRequest)
		}
		if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
			t.Errorf("a relative models_dir wrote into the working folder: %v", entries)
		}
	})
}

func TestMirrorStartStop(t *testing.T) {
	a := newAPIServer(t)
	t.Cleanup(a.stopMirror)
	apiPullModelZip(t, a)
	mirrorState := func() mirrorResponse {
		t.Helper()
		code, _, resp := a.do(t, "GET", "/api/mirror", nil)
		var m mirrorResponse
		if err := json.Unmarshal(resp, &m); code != http.StatusOK || err != nil {
			t.Fatalf("GET /api/mirror: %d %s %v", code, resp, err)
		}
		return m
	}
	if m := mirrorState(); m.Running || m.Address != "" {
		t.Fatalf("mirror runs before start: %+v", m)
	}

	body, k, v := apiForm("listen", "127.0.0.1:0")
	code, _, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
	if code != http.StatusOK {
		t.Fatalf("start: %d %s", code, resp)
	}
	m := mirrorState()
	if !m.Running || !strings.HasPrefix(m.Address, "http://127.0.0.1:") || strings.HasSuffix(m.Address, ":0") {
		t.Fatalf("after start: %+v", m)
	}
	host := strings.TrimPrefix(m.Address, "http://")
	if m.PullCommand != "ollama pull --insecure "+host+"/library/<model>:<tag>" {
		t.Errorf("pull_command = %q", m.PullCommand)
	}
	for _, p := range []string{"/v2/", "/v2/library/tiny/manifests/latest"} {
		resp, err := http.Get(m.Address + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("mirror GET %s = %d", p, resp.StatusCode)
		}
	}

	// A second start is a conflict; beyond loopback needs a token.
	body, k, v = apiForm("listen", "127.0.0.1:0")
	code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
	apiWantError(t, code, hdr, resp, http.StatusConflict)

	code, _, resp = a.do(t, "POST", "/api/mirror/stop", nil, "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusOK || strings.Contains(string(resp), "true") {
		t.Fatalf("stop: %d %s", code, resp)
	}
	if m := mirrorState(); m.Running || m.Address != "" {
		t.Errorf("after stop: %+v", m)
	}
	if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("mirror still answers after stop: %d", resp.StatusCode)
	}
}

func TestMirrorStartLANNeedsToken(t *testing.T) {
	a := newAPIServer(t)
	t.Cleanup(a.stopMirror)
	for _, listen := range []string{"0.0.0.0:0", ":0", "192.0.2.1:11435"} {
		body, k, v := apiForm("listen", listen)
		code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
		apiWantError(t, code, hdr, resp, http.StatusForbidden)
	}
	body, k, v := apiForm("listen", "no-port")
	code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
	apiWantError(t, code, hdr, resp, http.StatusBadRequest)
}

// The mirror belongs to the server: shutting the server down closes the
// mirror's listener too.
func TestMirrorStopsWithServer(t *testing.T) {
	a := newAPIServer(t)
	u, stop := a.listen(t)
	resp, err := http.PostForm(u+"api/mirror/start", url.Values{"listen": {"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	var m mirrorResponse
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || !m.Running {
		t.Fatalf("start: %d %+v %v", resp.StatusCode, m, err)
	}
	if resp, err := http.Get(m.Address + "/v2/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("mirror before shutdown: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := stop(); err != nil {
		t.Errorf("ListenAndServe = %v", err)
	}
	if resp, err := http.Get(m.Address + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("mirror still answers after the server stopped: %d", resp.StatusCode)
	}
}

// Only the default mirror address falls back to a free port when taken.
func TestMirrorDefaultPortTaken(t *testing.T) {
	a := newAPIServer(t)
	t.Cleanup(a.stopMirror)
	// Hold the default port (or find it held by someone else: taken either way).
	if ln, err := net.Listen("tcp", mirror.DefaultListen); err == nil {
		defer ln.Close()
	}
	body, k, v := apiForm("listen", mirror.DefaultListen)
	code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
	apiWantError(t, code, hdr, resp, http.StatusConflict)

	code, _, resp = a.do(t, "POST", "/api/mirror/start", nil, "Content-Type", "application/x-www-form-urlencoded")
	var m mirrorResponse
	if err := json.Unmarshal(resp, &m); code != http.StatusOK || err != nil {
		t.Fatalf("start with the default taken: %d %s", code, resp)
	}
	if !m.Running || strings.HasSuffix(m.Address, ":11435") || !strings.HasPrefix(m.Address, "http://127.0.0.1:") {
		t.Errorf("fallback address = %+v", m)
	}
}

func TestAPIPerDownloadSpeedLimit(t *testing.T) {
	a := newAPIServer(t)
	o := testkit.NewOrigin(t, testkit.WithSize(96<<10))
	start := time.Now()
	added := a.addDownloads(t, "url", o.FileURL(), "limit_rate", "128K")
	if added[0].LimitRate != 128<<10 {
		t.Errorf("limit_rate = %d, want %d", added[0].LimitRate, 128<<10)
	}
	a.waitState(t, added[0].ID, "completed")
	if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
		t.Errorf("96 KiB under a 128 KiB/s limit took %v, want ≥ 0.5 s", elapsed)
	}
	if got := testkit.ReadFile(t, filepath.Join(a.dir, "data.bin")); !bytes.Equal(got, o.Content()) {
		t.Error("bytes differ")
	}
}

// TestLibrarySymlinksInside: a symlink that stays inside the output folder
// still never reaches what the library hides (issue 18: out/link-in.json →
// .state/queue.json was served, DELETE statelink/queue.json deleted the
// queue), and hidden names are matched whatever their case.
func TestLibrarySymlinksInside(t *testing.T) {
	a := newAPIServer(t)
	// The manager owns .state/q.json and rewrites it: a file of our own
	// beside it stands for it.
	q := filepath.Join(a.dir, ".state", "probe.json")
	apiWriteFile(t, q, "QUEUE-SECRET")
	apiWriteFile(t, filepath.Join(a.dir, "sub", "ok.txt"), "ok")
	apiWriteFile(t, filepath.Join(a.dir, "big.iso.PART"), "partial")
	apiWriteFile(t, filepath.Join(a.dir, "big.iso.Part.Json"), "{}")
	for link, target := range map[string]string{
		"link-in.json":    filepath.Join(".state", "probe.json"),
		"statelink":       ".state",
		"sub/uplink":      "..",
		"sub/okalias.txt": "ok.txt",
	} {
		if err := os.Symlink(target, filepath.Join(a.dir, filepath.FromSlash(link))); err != nil {
			t.Skipf("symlinks: %v", err)
		}
	}
	for _, p := range []string{"link-in.json", "statelink/probe.json", "sub/uplink/.state/probe.json", "sub/uplink/sub/ok.txt", "sub/okalias.txt", "big.iso.PART", "big.iso.Part.Json", ".STATE/probe.json"} {
		for _, method := range []string{"GET", "DELETE"} {
			code, hdr, body := a.do(t, method, "/api/library/file/"+p, nil)
			apiWantError(t, code, hdr, body, http.StatusNotFound)
			if bytes.Contains(body, []byte("QUEUE-SECRET")) {
				t.Errorf("%s %s leaks the queue: %s", method, p, body)
			}
		}
	}
	if data, err := os.ReadFile(q); err != nil || string(data) != "QUEUE-SECRET" {
		t.Fatalf("queue after the refused requests: %q, %v", data, err)
	}
	code, _, body := a.do(t, "GET", "/api/library", nil)
	var lib struct{ Files []libraryFile }
	if err := json.Unmarshal(body, &lib); code != 200 || err != nil {
		t.Fatalf("GET /api/library = %d %s", code, body)
	}
	if len(lib.Files) != 1 || lib.Files[0].Path != "sub/ok.txt" {
		t.Errorf("library lists %+v, want only sub/ok.txt", lib.Files)
	}
	if code, _, body := a.do(t, "GET", "/api/library/file/sub/ok.txt", nil); code != 200 || string(body) != "ok" {
		t.Errorf("a real file in a real folder: %d %q", code, body)
	}
	if code, _, body := a.do(t, "DELETE", "/api/library/file/sub/ok.txt", nil); code != 200 {
		t.Errorf("deleting a real file: %d %s", code, body)
	}
}

// TestLibrarySymlinkSwap swaps a folder for a symlink to .state while
// requests for a file inside it run: the check and the open or delete
// must see one and the same folder (a bounded loop of tries).
func TestLibrarySymlinkSwap(t *testing.T) {
	a := newAPIServer(t)
	// The manager owns .state/q.json and rewrites it: a file of our own
	// beside it stands for it.
	q := filepath.Join(a.dir, ".state", "probe.json")
	apiWriteFile(t, q, "QUEUE-SECRET")
	real, link, sub := filepath.Join(a.dir, "real"), filepath.Join(a.dir, "link"), filepath.Join(a.dir, "sub")
	apiWriteFile(t, filepath.Join(real, "probe.json"), "decoy")
	if err := os.Symlink(".state", link); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	if err := os.Rename(real, sub); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	swapped := make(chan int)
	atomicSwap := testkit.ExchangePaths(sub, link) == nil // sub is the symlink now
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for ; n < 1000000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if atomicSwap {
				// sub: symlink to .state ⇄ real folder, never absent.
				testkit.ExchangePaths(sub, link)
				if n%2 == 0 { // sub is the real folder now
					os.WriteFile(filepath.Join(sub, "probe.json"), []byte("decoy"), 0o644)
				}
				continue
			}
			// sub: real folder → symlink to .state → real folder.
			os.Rename(sub, real)
			os.WriteFile(filepath.Join(real, "probe.json"), []byte("decoy"), 0o644)
			os.Rename(link, sub)
			os.Rename(sub, link)
			os.Rename(real, sub)
		}
	}()
	// Straight to the handler, no network in between, so that many tries
	// fit in a short time and one of them lands between a check and an open.
	h := a.Handler()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 50000 && time.Now().Before(deadline); i++ {
		method := "GET"
		if i%2 == 1 {
			method = "DELETE"
		}
		req := httptest.NewRequestWithContext(t.Context(), method, "/api/library/file/sub/probe.json", nil)
		req.Host = a.ts.Listener.Addr().String()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if bytes.Contains(rec.Body.Bytes(), []byte("QUEUE-SECRET")) {
			t.Fatalf("try %d: %s sub/probe.json reached .state: %s", i+1, method, rec.Body)
		}
		if _, err := os.Stat(q); err != nil {
			t.Fatalf("try %d: %s sub/probe.json removed the file in .state: %v", i+1, method, err)
		}
	}
	close(stop)
	if n := <-swapped; n == 0 {
		t.Error("the folder was never swapped")
	}
}

func TestLibraryLongPathIs400(t *testing.T) {
	a := newAPIServer(t)
	for _, p := range []string{strings.Repeat("a", 5000), strings.Repeat("abc/", 1250), strings.Repeat("b", 300) + "/x"} {
		for _, method := range []string{"GET", "DELETE"} {
			code, hdr, body := a.do(t, method, "/api/library/file/"+p, nil)
			apiWantError(t, code, hdr, body, http.StatusBadRequest)
		}
		code, hdr, body := a.do(t, "POST", "/api/library/install", strings.NewReader(url.Values{"path": {p}}.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		apiWantError(t, code, hdr, body, http.StatusBadRequest)
	}
}

// TestAddIsOneSave: one request with many URLs checks every line, queues
// the good ones with one save, and lists the refusals; more lines than
// maxAddURLs are refused as a whole with 413.
func TestAddIsOneSave(t *testing.T) {
	a := newAPIServer(t)
	closeWindow(t, a.cfg.Manager)
	var lines []string
	for i := range 300 {
		lines = append(lines, fmt.Sprintf("https://example.com/many-%d.bin", i))
	}
	lines = append(lines, "ftp://example.com/nope.bin")
	// Each change of the manager (and save of the queue) closes its
	// Changed channel once: one AddAll is one, one Add per line was 300.
	changes := make(chan int)
	stop := make(chan struct{})
	go func() {
		n := 0
		defer func() { changes <- n }()
		for {
			select {
			case <-a.cfg.Manager.Changed():
				n++
			case <-stop:
				return
			}
		}
	}()
	body, k, v := apiForm("url", strings.Join(lines, "\n"))
	code, _, resp := a.do(t, "POST", "/api/download/add", body, k, v)
	close(stop)
	if n := <-changes; n != 1 {
		t.Errorf("one add request of 300 lines changed the queue %d times, want once", n)
	}
	var got struct {
		Downloads []apiJob
		Errors    []addError
	}
	if err := json.Unmarshal(resp, &got); err != nil || code != http.StatusCreated {
		t.Fatalf("add = %d %s", code, resp)
	}
	if len(got.Downloads) != 300 || len(got.Errors) != 1 || got.Errors[0].Source != "ftp://example.com/nope.bin" {
		t.Errorf("added %d, refused %+v", len(got.Downloads), got.Errors)
	}
	if d := a.getDownloads(t, ""); len(d.Downloads) != 300 {
		t.Errorf("after one add of 300: %d downloads", len(d.Downloads))
	}

	lines = lines[:0]
	for i := range maxAddURLs + 1 {
		lines = append(lines, fmt.Sprintf("https://e.x/%d", i))
	}
	body, k, v = apiForm("url", strings.Join(lines, "\n"))
	code, hdr, resp := a.do(t, "POST", "/api/download/add", body, k, v)
	msg := apiWantError(t, code, hdr, resp, http.StatusRequestEntityTooLarge)
	if !strings.Contains(msg, strconv.Itoa(maxAddURLs)) {
		t.Errorf("413 message %q does not name the limit", msg)
	}
	if d := a.getDownloads(t, ""); len(d.Downloads) != 300 {
		t.Errorf("a refused request added downloads: %d now", len(d.Downloads))
	}
}

// TestAPIErrorCodes: an error fault.Code classifies carries error_code, in an
// error answer and in an add's list of refusals.
func TestAPIErrorCodes(t *testing.T) {
	a := newAPIServer(t)
	code, _, resp := a.do(t, "POST", "/api/download/add?url=ftp://example.com/x.bin", nil)
	var e struct {
		Error     string `json:"error"`
		ErrorCode string `json:"error_code"`
	}
	json.Unmarshal(resp, &e)
	if code != http.StatusBadRequest || e.ErrorCode != "bad_url" {
		t.Errorf("add ftp:// = %d %s, want 400 with error_code bad_url", code, resp)
	}
	body, k, v := apiForm("url", "https://example.com/ok.bin\nftp://example.com/x.bin")
	code, _, resp = a.do(t, "POST", "/api/download/add", body, k, v)
	var got struct{ Errors []addError }
	json.Unmarshal(resp, &got)
	if code != http.StatusCreated || len(got.Errors) != 1 || got.Errors[0].ErrorCode != "bad_url" {
		t.Errorf("partial add = %d %s, want the refusal with error_code bad_url", code, resp)
	}
}
