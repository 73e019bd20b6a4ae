package engine

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// headerLog records the browser headers of every request a server saw.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) note(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, http.Header{
		"Cookie":     r.Header.Values("Cookie"),
		"Referer":    r.Header.Values("Referer"),
		"User-Agent": r.Header.Values("User-Agent"),
	})
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.seen...)
}

// A browser's cookies go to the site that set them and nowhere else: the
// download is redirected to another host (a CDN, as most big files are),
// the connection drops once so that the transfer resumes there with a
// range, and the other host never sees the cookie; the referrer and the
// user-agent go everywhere, as a browser sends them. With -v the log line
// names the headers without the cookie's value (issue 24).
func TestBrowserHeadersStayWithTheirSite(t *testing.T) {
	const cookie = "session=s3cret-value; theme=dark"
	const referer = "https://site.example/files?page=2"
	const agent = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"
	o := testkit.NewOrigin(t, testkit.WithSize(256<<10), testkit.DropAfter(64<<10, 1))
	var siteSeen, cdnSeen headerLog
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnSeen.note(r)
		o.Serve(w, r)
	}))
	defer cdn.Close()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		siteSeen.note(r)
		if r.Header.Get("Cookie") != cookie {
			http.Error(w, "log in first", http.StatusForbidden)
			return
		}
		http.Redirect(w, r, cdn.URL+o.FileURL()[len(o.URL):], http.StatusFound)
	}))
	defer site.Close()

	var logs bytes.Buffer
	d := testDownloader(t)
	d.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d.Connections = 1 // the resume goes to the CDN's URL directly
	res, err := d.Download(t.Context(), Request{
		URL: site.URL + "/download/7", Path: filepath.Join(t.TempDir(), "file.bin"),
		SHA256: testkit.Sha256Of(o.Content()), Retries: 3,
		Header: http.Header{"Cookie": {cookie}, "Referer": {referer}, "User-Agent": {agent}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
	if len(siteSeen.all()) == 0 || len(cdnSeen.all()) < 2 {
		t.Fatalf("site saw %d requests and the CDN %d: want the redirect and a resume", len(siteSeen.all()), len(cdnSeen.all()))
	}
	for i, h := range siteSeen.all() {
		if h.Get("Cookie") != cookie || h.Get("Referer") != referer || h.Get("User-Agent") != agent {
			t.Errorf("site request %d had %v: want the browser's cookie, referrer and user-agent", i, h)
		}
	}
	for i, h := range cdnSeen.all() {
		if len(h["Cookie"]) > 0 {
			t.Errorf("CDN request %d carried the site's cookie %q", i, h["Cookie"])
		}
		if h.Get("User-Agent") != agent {
			t.Errorf("CDN request %d had User-Agent %q, want the browser's", i, h.Get("User-Agent"))
		}
	}
	log := logs.String()
	if strings.Contains(log, "s3cret") {
		t.Errorf("the -v log holds the cookie's value:\n%s", log)
	}
	if strings.Contains(log, "page=2") {
		t.Errorf("the -v log holds the referrer's query:\n%s", log)
	}
	if !strings.Contains(log, "Cookie: [redacted") {
		t.Errorf("the -v log does not say a cookie was sent:\n%s", log)
	}
}

func TestRedactHeaders(t *testing.T) {
	got := redactHeaders(http.Header{
		"Cookie":        {"a=1; b=2"},
		"Authorization": {"Bearer x"},
		"Referer":       {"https://u:p@site.example/a?token=1#f"},
		"User-Agent":    {"UA/1"},
	})
	want := "Authorization: [redacted, 8 bytes]; Cookie: [redacted, 8 bytes]; Referer: https://redacted@site.example/a?…; User-Agent: UA/1"
	if got != want {
		t.Errorf("redactHeaders = %q\nwant %q", got, want)
	}
}
