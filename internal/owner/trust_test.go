package owner

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ollama-model-downloader/internal/queue"
)

func TestCheckOwnerURL(t *testing.T) {
	own := []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("fd00::5")}
	for _, ok := range []string{
		"http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://127.9.9.9:1/", "http://[::1]:8080/",
		"http://localhost:8080/", "http://192.168.1.5:8080/", "http://[fd00::5]:8080/", "http://[::ffff:127.0.0.1]:80/",
	} {
		if _, err := checkOwnerURL(ok, own); err != nil {
			t.Errorf("%s: %v, want it accepted", ok, err)
		}
	}
	for _, bad := range []string{
		"http://192.0.2.2:18009/", "http://192.168.1.6:8080/", "http://evil.example:8080/", "http://0.0.0.0:8080/",
		"https://127.0.0.1:8080/", "http://user:pw@127.0.0.1:8080/", "http://127.0.0.1:8080/api/", "http://127.0.0.1/",
		"http://127.0.0.1:8080/?x=1", "file:///etc/passwd", "", "http://127.0.0.1:0/", "http://127.0.0.1:99999/",
	} {
		if _, err := checkOwnerURL(bad, own); err == nil {
			t.Errorf("%q accepted, want it refused", bad)
		}
	}
}

// fakeOwnerServer answers GET /api/owner as an owner with key does, and
// records the Authorization of every request.
type fakeOwnerServer struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
	paths []string
	pid   int
	kind  string
}

func newFakeOwnerServer(t *testing.T, key string) *fakeOwnerServer {
	f := &fakeOwnerServer{pid: os.Getpid(), kind: KindCLI}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		pid, kind := f.pid, f.kind
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"not the key"}`))
			return
		}
		switch r.URL.Path {
		case "/api/owner":
			json.NewEncoder(w).Encode(map[string]any{"pid": pid, "kind": kind})
		case "/api/download/add":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"downloads":[{"id":"d-1","source":"https://example.com/x","state":"queued"}]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOwnerServer) requests() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...), append([]string(nil), f.auths...)
}

// forge writes owner.json as anyone who can write .state could.
func forge(t *testing.T, dir string, info Info) {
	t.Helper()
	data, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, ".state", InfoName)
	os.Remove(p)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// notThisMachine is an address of no interface here (192.0.2.2 is one on
// some test machines).
func notThisMachine(t *testing.T) string {
	for _, c := range []string{"203.0.113.7", "198.51.100.7", "192.0.2.2"} {
		if !containsAddr(localAddrs(), netip.MustParseAddr(c)) {
			return c
		}
	}
	t.Skip("every test address is this machine's")
	return ""
}

// TestReachRefusesForgedOwner: a follower talks only to an owner that
// passes the trust rules, and to it only with the key of owner.json; a
// forged or stale owner.json gets no request at all, or only the key-proof
// GET /api/owner, and never a download (issue 25: a forged file collected
// the person's token and URLs).
func TestReachRefusesForgedOwner(t *testing.T) {
	dir := t.TempDir()
	own, err := Claim(dir) // the folder is held, as by a real owner
	if err != nil {
		t.Fatal(err)
	}
	defer own.Release()
	const key = "the-key-of-owner-json"
	srv := newFakeOwnerServer(t, key)
	good := Info{PID: os.Getpid(), Kind: KindCLI, URL: srv.URL + "/", Key: key}

	tests := []struct {
		name    string
		prepare func(t *testing.T) Info
		proof   bool // the refusal comes after GET /api/owner, not before
	}{
		{"not on this machine", func(t *testing.T) Info { i := good; i.URL = "http://" + notThisMachine(t) + ":18009/"; return i }, false},
		{"no key", func(t *testing.T) Info { i := good; i.Key = ""; return i }, false},
		{"https elsewhere", func(t *testing.T) Info { i := good; i.URL = "https://evil.example/"; return i }, false},
		{"the wrong key", func(t *testing.T) Info { i := good; i.Key = "a-key-the-server-does-not-know"; return i }, true},
		{"another pid answers", func(t *testing.T) Info {
			srv.mu.Lock()
			srv.pid = os.Getpid() + 1
			srv.mu.Unlock()
			t.Cleanup(func() { srv.mu.Lock(); srv.pid = os.Getpid(); srv.mu.Unlock() })
			return good
		}, true},
		{"another kind answers", func(t *testing.T) Info { i := good; i.Kind = KindWeb; return i }, true},
		{"a file others may change", func(t *testing.T) Info {
			if runtime.GOOS == "windows" {
				t.Skip("modes")
			}
			forge(t, dir, good)
			os.Chmod(filepath.Join(dir, ".state", InfoName), 0o666)
			return good
		}, false},
		{"a symbolic link", func(t *testing.T) Info {
			if runtime.GOOS == "windows" {
				t.Skip("links")
			}
			real := filepath.Join(t.TempDir(), "owner.json")
			os.WriteFile(real, []byte("{}"), 0o600)
			p := filepath.Join(dir, ".state", InfoName)
			os.Remove(p)
			if err := os.Symlink(real, p); err != nil {
				t.Skip(err)
			}
			return good
		}, false},
	}
	if runtime.GOOS == "linux" {
		tests = append(tests, struct {
			name    string
			prepare func(t *testing.T) Info
			proof   bool
		}{"a pid that does not hold the folder", func(t *testing.T) Info { i := good; i.PID = 1; return i }, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forge(t, dir, good)
			info := tc.prepare(t)
			before, _ := srv.requests()
			start := time.Now()
			_, err := Reach(t.Context(), dir, info)
			if !errors.Is(err, ErrUntrusted) {
				t.Fatalf("Reach = %v, want ErrUntrusted", err)
			}
			if !strings.Contains(err.Error(), InfoName) || strings.Contains(err.Error(), "\n") {
				t.Errorf("refusal %q: want one line naming %s", err, InfoName)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the refusal took %v", d)
			}
			paths, _ := srv.requests()
			sent := paths[len(before):]
			switch {
			case !tc.proof && len(sent) != 0:
				t.Errorf("requests sent before the refusal: %v", sent)
			case tc.proof && (len(sent) != 1 || sent[0] != "GET /api/owner"):
				t.Errorf("requests sent: %v, want only the key proof GET /api/owner", sent)
			}
		})
	}

	// The real thing: reached, and every request carries the key only.
	forge(t, dir, good)
	c, err := Reach(t.Context(), dir, good)
	if err != nil {
		t.Fatalf("Reach of a good owner: %v", err)
	}
	if _, err := c.Add(t.Context(), []queue.AddRequest{{Source: "https://example.com/x", Retries: -1}}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	paths, auths := srv.requests()
	n := len(paths)
	if n < 2 || paths[n-2] != "GET /api/owner" || paths[n-1] != "POST /api/download/add" {
		t.Errorf("requests %v, want the proof, then the add", paths)
	}
	for _, a := range auths[n-2:] {
		if a != "Bearer "+key {
			t.Errorf("Authorization %q, want the key of owner.json", a)
		}
	}
}

// TestReachGone: an owner that stopped is ErrGone (the caller takes the
// folder over), not a refusal.
func TestReachGone(t *testing.T) {
	dir := t.TempDir()
	own, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Release()
	srv := newFakeOwnerServer(t, "k")
	info := Info{PID: os.Getpid(), Kind: KindCLI, URL: srv.URL + "/", Key: "k"}
	forge(t, dir, info)
	srv.Close()
	if _, err := Reach(t.Context(), dir, info); !errors.Is(err, ErrGone) {
		t.Errorf("Reach of a stopped owner = %v, want ErrGone", err)
	}
}
