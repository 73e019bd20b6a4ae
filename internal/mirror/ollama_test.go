package mirror

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
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lanHost is one machine of the LAN: a stock `ollama serve` with its own
// HOME, models folder and port, that keeps what it pulls (no pruning).
type lanHost struct{ *testkit.StockOllama }

// startOllamaHosts starts n hosts and waits (bounded) until each answers.
func startOllamaHosts(t *testing.T, bin string, n int) []*lanHost {
	t.Helper()
	hosts := make([]*lanHost, n)
	for i := range hosts {
		hosts[i] = &lanHost{testkit.StartStockOllama(t, bin, filepath.Join(t.TempDir(), "models"), "OLLAMA_NOPRUNE=1", "NO_PROXY=*")}
	}
	return hosts
}

// pull runs `ollama pull --insecure ref` on the host.
func (h *lanHost) pull(ctx context.Context, ref string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, "pull", "--insecure", ref)
	cmd.Env = h.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *lanHost) mustPull(t *testing.T, ref string) {
	t.Helper()
	if out, err := h.pull(t.Context(), ref); err != nil {
		t.Fatalf("ollama pull %s: %v\n%s\nserver log:\n%s", ref, err, out, tailLines(h.Out.String(), 20))
	}
}

// tree is the host's models folder: every file and its bytes, with the
// registry host folder of the manifests renamed to "HOST" so that pulls
// from two addresses compare.
func (h *lanHost) tree(t *testing.T) map[string]string {
	t.Helper()
	return folderTree(t, h.Models, true)
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
	*testkit.Distribution
	Upstream string // the proxy's URL
	cdnGets  sync.Map
	blobGets atomic.Int64 // blob requests that reached the registry through the proxy
	manGets  atomic.Int64 // manifest requests
	down     atomic.Bool  // the proxy refuses every request, as an unreachable upstream
	corrupt  sync.Map     // digest → true: the CDN flips a byte of it
	slow     sync.Map     // digest → time.Duration: the CDN waits this long before answering
}

func (c *cdnRegistry) cdnHits(digest string) int64 {
	v, _ := c.cdnGets.LoadOrStore(digest, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func startCDNRegistry(t *testing.T, bin string) *cdnRegistry {
	t.Helper()
	c := &cdnRegistry{}
	c.Distribution = testkit.StartDistributionWith(t, bin, func(d *testkit.Distribution) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := testkit.CDNBlobPath(r)
			if !ok {
				http.NotFound(w, r)
				return
			}
			digest := "sha256:" + filepath.Base(filepath.Dir(p))
			if r.Method == http.MethodGet {
				v, _ := c.cdnGets.LoadOrStore(digest, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
			data, err := os.ReadFile(filepath.Join(d.Root, p))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			if d, ok := c.slow.Load(digest); ok {
				select {
				case <-time.After(d.(time.Duration)):
				case <-r.Context().Done():
					return
				}
			}
			if _, bad := c.corrupt.Load(digest); bad {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 0xff
			}
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		})
	})
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
func startTestCache(t *testing.T, upstream string, max int64, tune func(*Cache)) (*Mirror, string, string) {
	t.Helper()
	out := t.TempDir()
	m, err := Start(Options{Sources: []string{out}, OutputDir: out, Upstream: upstream, CacheMax: max})
	if err != nil {
		t.Fatal(err)
	}
	m.Cache.Upstream.Files().Backoff = 10 * time.Millisecond
	if tune != nil {
		tune(m.Cache)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(m, m.Log)
	go srv.Serve(ln)
	t.Cleanup(func() {
		m.Close()
		srv.Close()
	})
	return m, ln.Addr().String(), m.Cache.Dir
}

// TestCacheWithStockOllama: stock Ollama hosts pull through the cache from
// Docker Distribution (blobs redirected to a CDN under another host name),
// as a LAN would from registry.ollama.ai.
func TestCacheWithStockOllama(t *testing.T) {
	ollama := testkit.FindStockOllama(t)
	reg := startCDNRegistry(t, testkit.FindRegistry(t))
	template, params := []byte("{{ .Prompt }}"), []byte(`{"temperature":0}`)
	tiny := testkit.NewFakeModel(t, "tiny:latest", testkit.TestBytes(256<<10, 7), template, params)
	reg.Push(t, "library/tiny", "latest", tiny)
	m, addr, cacheDir := startTestCache(t, reg.Upstream, 0, func(c *Cache) { c.failedTTL = time.Minute })
	hosts := startOllamaHosts(t, ollama, 5)
	direct, a, b, c1, c2 := hosts[0], hosts[1], hosts[2], hosts[3], hosts[4]
	pair := testkit.NewFakeModel(t, "pair:latest", testkit.TestBytes(1<<20, 9), template, params)

	t.Run("cold pull equals a direct pull", func(t *testing.T) {
		direct.mustPull(t, reg.Host+"/library/tiny:latest")
		a.mustPull(t, addr+"/library/tiny:latest")
		want, got := direct.tree(t), a.tree(t)
		compareTrees(t, got, want)
		if len(want) != len(tiny.Blobs)+1 {
			t.Errorf("direct pull has %d files, want %d", len(want), len(tiny.Blobs)+1)
		}
		if !models.VerifyAndReport(t.Context(), cacheDir, io.Discard) {
			t.Errorf("verify of the cache folder")
		}
	})

	t.Run("a second host's pull fetches no blob upstream", func(t *testing.T) {
		blobs, manifests := reg.blobGets.Load(), reg.manGets.Load()
		cdn := totalCDNHits(reg, tiny)
		b.mustPull(t, addr+"/library/tiny") // the short form: no tag
		compareTrees(t, b.tree(t), direct.tree(t))
		if n := reg.blobGets.Load() - blobs; n != 0 {
			t.Errorf("%d blob requests reached the registry", n)
		}
		if n := totalCDNHits(reg, tiny) - cdn; n != 0 {
			t.Errorf("%d blob requests reached the CDN", n)
		}
		if n := reg.manGets.Load() - manifests; n != 1 {
			t.Errorf("%d manifest requests upstream, want 1 (the tag revalidated)", n)
		}
	})

	t.Run("two hosts at once fetch each blob upstream once", func(t *testing.T) {
		reg.Push(t, "library/pair", "latest", pair)
		// Slow enough that both hosts ask while the fetch runs.
		reg.slow.Store(testkit.DigestOf(testkit.TestBytes(1<<20, 9)), 300*time.Millisecond)
		before := map[string]int64{}
		for d := range pair.Blobs {
			before[d] = reg.cdnHits(d)
		}
		blobs := reg.blobGets.Load()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		outs := make([]string, 2)
		for i, h := range []*lanHost{c1, c2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = h.pull(t.Context(), addr+"/library/pair:latest")
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("host %d: %v\n%s", i, err, outs[i])
			}
		}
		compareTrees(t, c1.tree(t), c2.tree(t))
		for d := range pair.Blobs {
			if _, shared := tiny.Blobs[d]; shared {
				continue // cached by the first pull
			}
			if n := reg.cdnHits(d) - before[d]; n != 1 {
				t.Errorf("blob %s fetched %d times from the CDN, want 1", d[:19], n)
			}
		}
		if n, want := reg.blobGets.Load()-blobs, int64(2); n != want { // the 1 MiB layer and the config
			t.Errorf("%d blob requests reached the registry, want %d", n, want)
		}
	})

	t.Run("upstream down: cached models still pull", func(t *testing.T) {
		reg.down.Store(true)
		defer reg.down.Store(false)
		c1.mustPull(t, addr+"/library/tiny:latest")
		got := c1.tree(t)
		for name, data := range direct.tree(t) {
			if got[name] != data {
				t.Errorf("%s differs or is missing after an offline pull", name)
			}
		}
		out, err := c1.pull(t.Context(), addr+"/library/never-cached:latest")
		t.Logf("offline, not cached: %v %s", err, tailLines(out, 1))
		if err == nil {
			t.Errorf("a model neither cached nor reachable pulled: %s", out)
		}
	})

	t.Run("a tag pushed anew upstream is seen", func(t *testing.T) {
		tiny2 := testkit.NewFakeModel(t, "tiny:latest", testkit.TestBytes(200<<10, 8), template, params)
		reg.Push(t, "library/tiny", "latest", tiny2)
		a.mustPull(t, addr+"/library/tiny:latest")
		if got := a.tree(t)["manifests/HOST/library/tiny/latest"]; got != string(tiny2.Manifest) {
			t.Errorf("after the tag moved, host A has manifest %.80q, want the new one", got)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			data, err := os.ReadFile(filepath.Join(cacheDir, "manifests", reg.Upstream[len("http://"):], "library", "tiny", "latest"))
			if err == nil && string(data) == string(tiny2.Manifest) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache still holds the old manifest: %v %.80q", err, data)
			}
			time.Sleep(10 * time.Millisecond)
		}
		old := "sha256-" + strings.TrimPrefix(testkit.DigestOf(testkit.TestBytes(256<<10, 7)), "sha256:")
		if _, err := os.Stat(filepath.Join(cacheDir, "blobs", old)); !os.IsNotExist(err) {
			t.Errorf("the old model layer, no longer listed, is still cached: %v", err)
		}
	})

	t.Run("a corrupt upstream blob fails the pull and is not kept", func(t *testing.T) {
		bad := testkit.NewFakeModel(t, "bad:latest", testkit.TestBytes(300<<10, 11), template, params)
		reg.Push(t, "library/bad", "latest", bad)
		layer := testkit.DigestOf(testkit.TestBytes(300<<10, 11))
		reg.corrupt.Store(layer, true)
		start := time.Now()
		out, err := c2.pull(t.Context(), addr+"/library/bad:latest")
		t.Logf("pull of a corrupt model took %v: %v\n%s", time.Since(start), err, out)
		if err == nil {
			t.Fatalf("the pull of a model with a corrupt blob succeeded")
		}
		if _, ok := c2.tree(t)["manifests/HOST/library/bad/latest"]; ok {
			t.Error("host has the model")
		}
		filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), strings.TrimPrefix(layer, "sha256:")) {
				t.Errorf("the corrupt blob left %s in the cache", p)
			}
			if err == nil && strings.Contains(p, "library/bad") {
				t.Errorf("the cache holds %s", p)
			}
			return nil
		})
	})

	t.Run("push, upload and delete are refused", func(t *testing.T) {
		out, err := runOllama(t, a, "push", "--insecure", addr+"/library/tiny:latest")
		t.Logf("push: %v %s", err, tailLines(out, 1))
		if err == nil {
			t.Errorf("ollama push to the cache succeeded: %s", out)
		}
		for _, tc := range []struct{ method, path string }{
			{"POST", "/v2/library/tiny/blobs/uploads/"},
			{"PATCH", "/v2/library/tiny/blobs/uploads/abc"},
			{"PUT", "/v2/library/tiny/blobs/uploads/abc?digest=" + testkit.DigestOf(template)},
			{"GET", "/v2/library/tiny/blobs/uploads/abc"},
			{"PUT", "/v2/library/tiny/manifests/latest"},
			{"DELETE", "/v2/library/tiny/manifests/latest"},
			{"DELETE", "/v2/library/tiny/blobs/" + testkit.DigestOf(template)},
		} {
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "UNSUPPORTED") {
				t.Errorf("%s %s = %d %s, want 405 UNSUPPORTED", tc.method, tc.path, resp.StatusCode, body)
			}
		}
	})

	t.Run("eviction under -cache-max", func(t *testing.T) {
		evA := testkit.NewFakeModel(t, "eva:latest", testkit.TestBytes(1<<20, 21), template, params)
		evB := testkit.NewFakeModel(t, "evb:latest", testkit.TestBytes(1<<20, 22), template, params)
		reg.Push(t, "library/eva", "latest", evA)
		reg.Push(t, "library/evb", "latest", evB)
		_, small, dir := startTestCache(t, reg.Upstream, 1536<<10, func(c *Cache) { c.servingGap = 0 })
		b.mustPull(t, small+"/library/eva:latest")
		c1.mustPull(t, small+"/library/evb:latest")
		files := folderTree(t, dir, false)
		prefix := "manifests/" + strings.TrimPrefix(reg.Upstream, "http://") + "/library/"
		if _, ok := files[prefix+"eva/latest"]; ok {
			t.Error("the least recently pulled model was not evicted")
		}
		if _, ok := files[prefix+"evb/latest"]; !ok {
			t.Error("the model just pulled is not cached")
		}
		for digest, data := range evA.Blobs {
			_, kept := files["blobs/sha256-"+strings.TrimPrefix(digest, "sha256:")]
			_, shared := evB.Blobs[digest]
			if kept != shared {
				t.Errorf("blob of %d bytes: kept=%v, shared with the kept model=%v", len(data), kept, shared)
			}
		}
		if !models.VerifyAndReport(t.Context(), dir, io.Discard) {
			t.Errorf("verify of the cache folder after eviction")
		}
		c2.mustPull(t, small+"/library/eva:latest") // fetched again
	})

	// docs/INSTALL.md's fleet set-up: Docker Distribution in proxy mode as
	// the shared cache, this cache's upstream pointing at it.
	t.Run("a Distribution proxy as the upstream", func(t *testing.T) {
		proxy := startProxyRegistry(t, testkit.FindRegistry(t), reg.Upstream)
		_, lan, _ := startTestCache(t, proxy, 0, nil)
		a.mustPull(t, lan+"/library/pair:latest")
		got := a.tree(t)
		if got["manifests/HOST/library/pair/latest"] != string(pair.Manifest) {
			t.Error("the manifest through the proxy differs")
		}
		for d, data := range pair.Blobs {
			if got["blobs/sha256-"+strings.TrimPrefix(d, "sha256:")] != string(data) {
				t.Errorf("blob %s differs or is missing", d[:19])
			}
		}
	})
	_ = m
}

// startProxyRegistry runs Docker Distribution as a pull-through cache of
// remote (proxy.remoteurl) and returns its URL.
func startProxyRegistry(t *testing.T, bin, remote string) string {
	t.Helper()
	dir := t.TempDir()
	addr := testkit.FreeLoopbackAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "storage"), remote, addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &testkit.LockedBuffer{}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("the proxy registry did not exit")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy registry did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runOllama(t *testing.T, h *lanHost, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = h.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func totalCDNHits(reg *cdnRegistry, m testkit.FakeModel) int64 {
	var n int64
	for d := range m.Blobs {
		n += reg.cdnHits(d)
	}
	return n
}

func compareTrees(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s is missing", name)
		} else if g != data {
			t.Errorf("%s differs (%d bytes, want %d)", name, len(g), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is extra", name)
		}
	}
}
