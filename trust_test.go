package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/owner"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// forgedOwner is what anyone who can write .state could set up: owner.json
// naming a listener of theirs, while the folder's lock is held (here by
// the test). The listener records every Authorization it is sent and
// answers like an owner that knows the key.
type forgedOwner struct {
	dir   string // the output folder
	srv   *httptest.Server
	mu    sync.Mutex
	auths []string
	paths []string
}

func newForgedOwner(t *testing.T, kind, key string) *forgedOwner {
	t.Helper()
	f := &forgedOwner{dir: filepath.Join(t.TempDir(), "out")}
	own, err := owner.Claim(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Release() })
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		switch r.URL.Path {
		case "/api/owner":
			json.NewEncoder(w).Encode(map[string]any{"pid": os.Getpid(), "kind": kind})
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(f.srv.Close)
	data, _ := json.Marshal(owner.Info{PID: os.Getpid(), Kind: kind, URL: f.srv.URL + "/", Key: key})
	if err := os.WriteFile(filepath.Join(f.dir, ".state", owner.InfoName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *forgedOwner) sent() (paths, auths []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...), append([]string(nil), f.auths...)
}

// TestFollowerNeverSendsTheToken: a command beside a forged owner.json
// never sends the person's token (issue 25: OMD_TOKEN went out as Bearer
// to the URL the file named); without a key in the file, nothing at all
// is sent, and the command says why in one line.
func TestFollowerNeverSendsTheToken(t *testing.T) {
	for _, key := range []string{"", "a-key-the-forger-chose"} {
		f := newForgedOwner(t, owner.KindCLI, key)
		cmd := command(t, t.Context(), t.TempDir(), "-output-dir", f.dir, "https://example.com/secret.bin?X-Amz-Signature=s3cr3t")
		cmd.Env = append(cmd.Env, "OMD_TOKEN="+testToken)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("key %q: the command succeeded beside a forged owner: %s", key, out)
		}
		paths, auths := f.sent()
		for _, a := range auths {
			if strings.Contains(a, testToken) {
				t.Errorf("key %q: the person's token was sent: %q", key, a)
			}
		}
		if key == "" {
			if len(paths) != 0 {
				t.Errorf("no key in owner.json, yet requests were sent: %v", paths)
			}
			if !strings.Contains(string(out), "gives no key") {
				t.Errorf("output %q does not say why", out)
			}
		}
	}
}

// TestWebUINeverSendsItsTokenToYield: a web UI starting beside a forged
// "cli" owner.json asks it to yield with the file's key only, never with
// its own -token-file token; without a key it asks nothing and says why.
func TestWebUINeverSendsItsTokenToYield(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "a-key-the-forger-chose"} {
		f := newForgedOwner(t, owner.KindCLI, key)
		cmd := command(t, t.Context(), t.TempDir(), "-no-browser", "-port", "0", "-output-dir", f.dir, "-token-file", tokenFile)
		cmd.Env = append(cmd.Env, "OMD_TOKEN=")
		var output testkit.LockedBuffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		if key != "" {
			// It asked the forger to yield and now waits for a folder that
			// will not come free: the test's own lock.
			waitFor(t, "the yield", func() bool { p, _ := f.sent(); return len(p) >= 2 })
			cmd.Process.Kill()
		}
		<-done // without a key it refuses at once
		out := []byte(output.String())
		paths, auths := f.sent()
		for _, a := range auths {
			if strings.Contains(a, testToken) {
				t.Errorf("key %q: the web UI's token was sent: %q", key, a)
			}
		}
		switch key {
		case "":
			if len(paths) != 0 {
				t.Errorf("no key in owner.json, yet requests were sent: %v", paths)
			}
			if !strings.Contains(string(out), "gives no key") {
				t.Errorf("output %q does not say why", out)
			}
		default:
			if len(paths) < 2 || paths[1] != "POST /api/owner/yield" || auths[1] != "Bearer "+key {
				t.Errorf("requests %v with %v, want the yield with the file's key", paths, auths)
			}
		}
	}
}

// waitFor polls cond (every 10 ms, at most 15 s) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestWebUIDoesNotOpenAForgedAddress: a web UI starting beside an
// owner.json that says another web UI serves the folder at an address off
// this machine neither prints nor opens it.
func TestWebUIDoesNotOpenAForgedAddress(t *testing.T) {
	f := newForgedOwner(t, owner.KindWeb, "k")
	data, _ := json.Marshal(owner.Info{PID: os.Getpid(), Kind: owner.KindWeb, URL: "http://203.0.113.7:8080/", Key: "k"})
	if err := os.WriteFile(filepath.Join(f.dir, ".state", owner.InfoName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := command(t, t.Context(), t.TempDir(), "-no-browser", "-port", "0", "-output-dir", f.dir).CombinedOutput()
	if err == nil || strings.Contains(string(out), "already serves") || !strings.Contains(string(out), "not on this machine") {
		t.Errorf("err %v, output %q: want a refusal saying the address is not on this machine", err, out)
	}
}
