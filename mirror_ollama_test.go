package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ollamaBinary finds the stock Ollama the fidelity tests run: $OLLAMA_BIN,
// then ../shared/tools/ollama, then ollama on PATH. Without it the test is
// skipped, except under CI, where it must be there.
func ollamaBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("OLLAMA_BIN"), filepath.Join("..", "shared", "tools", "ollama"), "/work/shared/tools/ollama"} {
		if p == "" {
			continue
		}
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	if p, err := exec.LookPath("ollama"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the stock Ollama is missing: set OLLAMA_BIN or put it at ../shared/tools/ollama")
	}
	t.Skip("the stock Ollama is missing (set OLLAMA_BIN): skipping the fidelity test")
	return ""
}

// registryBinaryOrSkip finds Debian's docker-registry.
func registryBinaryOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath(registryBinary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (apt-get install docker-registry): %v", registryBinary, err)
		}
		t.Skipf("%s not installed; apt-get install docker-registry to run this test", registryBinary)
	}
	return bin
}

// lanHost is one machine of the LAN: its own `ollama serve` with its
// own HOME, models folder and port.
type lanHost struct {
	bin, home, models, addr string
	out                     *lockedBuffer
}

func (h *lanHost) env() []string {
	return []string{"HOME=" + h.home, "OLLAMA_MODELS=" + h.models, "OLLAMA_HOST=" + h.addr, "OLLAMA_NO_CLOUD=1",
		"OLLAMA_NOPRUNE=1", "PATH=/usr/bin:/bin", "NO_PROXY=*"}
}

// startOllamaHosts starts n hosts at once and waits (bounded) until each
// answers.
func startOllamaHosts(t *testing.T, bin string, n int) []*lanHost {
	t.Helper()
	hosts := make([]*lanHost, n)
	for i := range hosts {
		dir := t.TempDir()
		h := &lanHost{bin: bin, home: filepath.Join(dir, "home"), models: filepath.Join(dir, "models"), addr: freeLoopbackAddr(t), out: &lockedBuffer{}}
		os.MkdirAll(h.home, 0o755)
		cmd := exec.Command(bin, "serve")
		cmd.Env = h.env()
		cmd.Stdout, cmd.Stderr = h.out, h.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting ollama serve: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("ollama serve did not exit")
			}
		})
		hosts[i] = h
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, h := range hosts {
		for {
			resp, err := http.Get("http://" + h.addr + "/api/version")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ollama serve at %s did not answer: %v\n%s", h.addr, err, h.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return hosts
}

// pull runs `ollama pull --insecure ref` on the host.
func (h *lanHost) pull(ctx context.Context, ref string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, "pull", "--insecure", ref)
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *lanHost) mustPull(t *testing.T, ref string) {
	t.Helper()
	if out, err := h.pull(t.Context(), ref); err != nil {
		t.Fatalf("ollama pull %s: %v\n%s\nserver log:\n%s", ref, err, out, tailLines(h.out.String(), 20))
	}
}

// tree is the host's models folder: every file and its bytes, with the
// registry host folder of the manifests renamed to "HOST" so that pulls
// from two addresses compare.
func (h *lanHost) tree(t *testing.T) map[string]string {
	t.Helper()
	return folderTree(t, h.models, true)
}

func folderTree(t *testing.T, dir string, hostless bool) map[string]string {
	t.Helper()
	tree := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if parts := strings.Split(rel, "/"); hostless && parts[0] == "manifests" && len(parts) > 2 {
			parts[1] = "HOST"
			rel = strings.Join(parts, "/")
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		tree[rel] = string(data)
		return nil
	})
	return tree
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// cdnRegistry is Docker Distribution with the redirect storage middleware
// sending blob GETs to a local "CDN" under another host name (localhost,
// as registry.ollama.ai sends them to its CDN), behind a counting proxy
// that plays the upstream the cache talks to and can be stopped.
type cdnRegistry struct {
	*distribution
	Upstream string // the proxy's URL
	cdnGets  sync.Map
	blobGets atomic.Int64 // blob requests that reached the registry through the proxy
	manGets  atomic.Int64 // manifest requests
	down     atomic.Bool  // the proxy refuses every request, as an unreachable upstream
	corrupt  sync.Map     // digest → true: the CDN flips a byte of it
}

func (c *cdnRegistry) cdnHits(digest string) int64 {
	v, _ := c.cdnGets.LoadOrStore(digest, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func startCDNRegistry(t *testing.T, bin string) *cdnRegistry {
	t.Helper()
	dir := t.TempDir()
	c := &cdnRegistry{distribution: &distribution{root: filepath.Join(dir, "storage"), out: &lockedBuffer{}}}
	c.Host = freeLoopbackAddr(t)
	c.URL = "http://" + c.Host
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		if !strings.HasPrefix(p, "/docker/registry/v2/blobs/") {
			http.NotFound(w, r)
			return
		}
		digest := "sha256:" + path.Base(path.Dir(p))
		if r.Method == http.MethodGet {
			v, _ := c.cdnGets.LoadOrStore(digest, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}
		data, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(p)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if _, bad := c.corrupt.Load(digest); bad {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0xff
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(cdn.Close)
	cdnURL := strings.Replace(cdn.URL, "127.0.0.1", "localhost", 1)
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
middleware:
  storage:
    - name: redirect
      options:
        baseurl: %s
`, c.root, c.Host, cdnURL)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("docker-registry did not exit")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(c.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("docker-registry exited: %v\n%s", err, c.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer /v2/\n%s", c.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	target, _ := url.Parse(c.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.down.Load() {
			hj, _ := w.(http.Hijacker)
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close() // as a host that went away
			}
			return
		}
		switch {
		case strings.Contains(r.URL.Path, "/blobs/"):
			c.blobGets.Add(1)
		case strings.Contains(r.URL.Path, "/manifests/"):
			c.manGets.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	c.Upstream = proxy.URL
	return c
}

// startTestCache runs a pull-through cache of upstream on a loopback port,
// as serve-models -upstream does.
func startTestCache(t *testing.T, upstream string, max int64, tune func(*modelCache)) (*modelMirror, string, string) {
	t.Helper()
	out := t.TempDir()
	m, err := startModelMirror(mirrorOptions{Sources: []string{out}, OutputDir: out, Upstream: upstream, CacheMax: max})
	if err != nil {
		t.Fatal(err)
	}
	m.Cache.upstream.backoff = 10 * time.Millisecond
	m.Cache.upstream.cfg.Files.backoff = 10 * time.Millisecond
	if tune != nil {
		tune(m.Cache)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newMirrorServer(m, m.Log)
	go srv.Serve(ln)
	t.Cleanup(func() {
		m.Close()
		srv.Close()
	})
	return m, ln.Addr().String(), m.Cache.dir
}

func TestCacheOllamaSmoke(t *testing.T) {
	ollama := ollamaBinary(t)
	reg := startCDNRegistry(t, registryBinaryOrSkip(t))
	model := newFakeModel(t, "tiny:latest", testBytes(256<<10, 7), []byte("{{ .Prompt }}"), []byte(`{"temperature":0}`))
	reg.push(t, "library/tiny", "latest", model)
	_, addr, _ := startTestCache(t, reg.Upstream, 0, nil)
	hosts := startOllamaHosts(t, ollama, 2)
	hosts[0].mustPull(t, reg.Host+"/library/tiny:latest")
	hosts[1].mustPull(t, addr+"/library/tiny:latest")
	if a, b := hosts[0].tree(t), hosts[1].tree(t); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("trees differ")
	}
	_ = io.Discard
}
