package queue

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const testCookie = "session=s3cret-cookie; lang=fa"

func browserHeader() http.Header {
	return http.Header{
		"Cookie":     {testCookie},
		"Referer":    {"https://site.example/page#part"},
		"User-Agent": {"Mozilla/5.0 TestBrowser/1.0"},
	}
}

// headerCapture wraps the fake engine and keeps the headers each URL's
// latest transfer was given.
type headerCapture struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func captureHeaders(m *Manager, f *fakeEngine) *headerCapture {
	c := &headerCapture{seen: map[string]http.Header{}}
	m.download = func(ctx context.Context, req engine.Request) (engine.Result, error) {
		c.mu.Lock()
		c.seen[req.URL] = req.Header.Clone()
		c.mu.Unlock()
		return f.download(ctx, req)
	}
	return c
}

func (c *headerCapture) get(u string) http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[u]
}

// secretsOnDisk lists the files under dir that hold the test cookie.
func secretsOnDisk(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if data, rerr := os.ReadFile(p); rerr == nil && strings.Contains(string(data), "s3cret") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func headerFile(dir, id string) string {
	return filepath.Join(dir, ".state", "queue.headers", id+".json")
}

// The cookies, referrer and user-agent a browser hands over go with that
// download's requests, sit in one 0600 file in a 0700 folder while the
// download needs them, appear nowhere else (queue.json, its journal, the
// history), and are gone once the download ends, however it ends.
func TestBrowserHeadersKeptWhileNeeded(t *testing.T) {
	for _, end := range []string{JobCompleted, JobFailed, jobCanceled} {
		t.Run(end, func(t *testing.T) {
			dir := t.TempDir()
			f := newFakeEngine(t)
			m, err := New(Config{OutputDir: dir, Concurrency: 1, Retries: 0, History: mustOpenHistory(t, dir)})
			if err != nil {
				t.Fatal(err)
			}
			m.saveEvery = 20 * time.Millisecond
			c := captureHeaders(m, f)
			runManager(t, m)
			const u = "https://files.example/big.iso"
			v, err := m.Add(AddRequest{Source: u, Retries: -1, Header: browserHeader()})
			if err != nil {
				t.Fatal(err)
			}
			f.waitStarted(u)

			want := http.Header{"Cookie": {testCookie}, "Referer": {"https://site.example/page"}, "User-Agent": {"Mozilla/5.0 TestBrowser/1.0"}}
			if got := c.get(u); !reflect.DeepEqual(got, want) {
				t.Errorf("the transfer got headers %v, want %v (the referrer without its fragment)", got, want)
			}
			got, _ := m.Get(v.ID)
			if names := []string{"Cookie", "Referer", "User-Agent"}; !reflect.DeepEqual(got.RequestHeaders, names) {
				t.Errorf("view's request_headers = %v, want %v", got.RequestHeaders, names)
			}
			p := headerFile(dir, v.ID)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("headers are not kept for a restart: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
			if di, err := os.Stat(filepath.Dir(p)); err != nil || di.Mode().Perm() != 0o700 {
				t.Errorf("folder of the headers: %v %v, want mode 0700", di, err)
			}
			m.save()
			if found := secretsOnDisk(t, dir); len(found) != 1 || found[0] != p {
				t.Errorf("the cookie is in %v; want it only in %s", found, p)
			}

			switch end {
			case JobCompleted:
				f.finishTransfer(u, nil)
			case JobFailed:
				f.finishTransfer(u, errors.New("server answered 403 Forbidden"))
			case jobCanceled:
				if err := m.Cancel(v.ID); err != nil {
					t.Fatal(err)
				}
			}
			done := waitState(t, m, v.ID, end)
			if done.RequestHeaders != nil {
				t.Errorf("a finished download still names headers %v", done.RequestHeaders)
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("headers of a %s download are still on disk (%v)", end, err)
			}
			m.save()
			if found := secretsOnDisk(t, dir); len(found) > 0 {
				t.Errorf("the cookie is still in %v", found)
			}
		})
	}
}

// A restart continues a download with the headers it was added with, and
// removes whatever a crash left of downloads that are gone.
func TestBrowserHeadersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	m1 := newTestManager(t, dir, 1, nil)
	const u = "https://files.example/private.zip"
	v, err := m1.Add(AddRequest{Source: u, Retries: -1, Header: browserHeader()})
	if err != nil {
		t.Fatal(err)
	}
	done, err := m1.Add(AddRequest{Source: "https://files.example/other.bin", Retries: -1, Header: browserHeader()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m1.Cancel(done.ID); err != nil {
		t.Fatal(err)
	}
	m1.save()
	m1.Close()
	stale := headerFile(dir, "d-1-gone")
	if err := os.WriteFile(stale, []byte(`{"Cookie":["s3cret"]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newFakeEngine(t)
	m2 := newTestManager(t, dir, 1, f)
	c := captureHeaders(m2, f)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("headers of a download that is not in the queue were kept (%v)", err)
	}
	runManager(t, m2)
	f.waitStarted(u)
	if got := c.get(u).Get("Cookie"); got != testCookie {
		t.Errorf("after a restart the transfer sent Cookie %q, want %q", got, testCookie)
	}
	f.finishTransfer(u, nil)
	waitState(t, m2, v.ID, JobCompleted)
	if found := secretsOnDisk(t, dir); len(found) > 0 {
		t.Errorf("the cookie is still in %v", found)
	}
	if _, err := os.Stat(filepath.Dir(stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty folder of headers stays (%v)", err)
	}
}

// The same link sent again from the browser brings fresh cookies to the
// download already in the queue.
func TestBrowserHeadersRefreshedByTheSameLink(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, dir, 1, nil)
	const u = "https://files.example/a.bin"
	v1, err := m.Add(AddRequest{Source: u, Retries: -1, Header: http.Header{"Cookie": {"session=old"}}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := m.Add(AddRequest{Source: u, Retries: -1, Header: http.Header{"Cookie": {"session=new"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v1.ID != v2.ID {
		t.Fatalf("the same link became two downloads: %s and %s", v1.ID, v2.ID)
	}
	h, err := m.headers.load(v1.ID)
	if err != nil || h.Get("Cookie") != "session=new" {
		t.Errorf("kept headers %v (%v), want the newer cookie", h, err)
	}
	// Added again without headers (from the page): the browser's stay.
	if _, err := m.Add(AddRequest{Source: u, Retries: -1}); err != nil {
		t.Fatal(err)
	}
	if h, _ := m.headers.load(v1.ID); h.Get("Cookie") != "session=new" {
		t.Errorf("an add without headers dropped the browser's: %v", h)
	}
}

func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header // nil with wantErr
		err  string
	}{
		{"none", nil, nil, ""},
		{"empty values", http.Header{"Cookie": {" "}}, nil, ""},
		{"canonical names", http.Header{"cookie": {"a=1"}, "user-agent": {"UA"}}, http.Header{"Cookie": {"a=1"}, "User-Agent": {"UA"}}, ""},
		{"referrer loses fragment and user", http.Header{"Referer": {"https://u:p@x.example/p?q=1#f"}}, http.Header{"Referer": {"https://x.example/p?q=1"}}, ""},
		{"another header", http.Header{"Authorization": {"Bearer x"}}, nil, "cannot be sent"},
		{"host header", http.Header{"Host": {"evil.example"}}, nil, "cannot be sent"},
		{"twice", http.Header{"Cookie": {"a=1", "b=2"}}, nil, "cookie was given 2 times"},
		{"line break", http.Header{"Cookie": {"a=1\r\nX-Evil: 1"}}, nil, "line break"},
		{"nul", http.Header{"User-Agent": {"UA\x00"}}, nil, "control character"},
		{"too long", http.Header{"Cookie": {strings.Repeat("a", maxCookieBytes+1)}}, nil, "at most"},
		{"referrer scheme", http.Header{"Referer": {"javascript:alert(1)"}}, nil, "http:// or https://"},
		{"referrer relative", http.Header{"Referer": {"/page"}}, nil, "http:// or https://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckHeader(tc.in)
			if tc.err != "" {
				if err == nil || !errors.Is(err, fault.ErrBadInput) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("CheckHeader(%v) = %v, %v; want a bad-input error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CheckHeader(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestBrowserHeadersOnlyForFiles(t *testing.T) {
	m := newTestManager(t, t.TempDir(), 1, nil)
	_, err := m.Add(AddRequest{Source: "llama3:8b", Retries: -1, Header: http.Header{"Cookie": {"a=1"}}})
	if !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("a model with cookies: err = %v, want bad input", err)
	}
}
