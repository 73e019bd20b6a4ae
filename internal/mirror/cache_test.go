package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newFakeCache is a pull-through cache of the in-process fake registry,
// served over loopback, with short delays.
func newFakeCache(t *testing.T, f *testkit.FakeRegistry, max int64, tune func(*Cache)) (*Mirror, *httptest.Server) {
	t.Helper()
	out := t.TempDir()
	return newFakeCacheIn(t, out, f.URL, max, tune)
}

func newFakeCacheIn(t *testing.T, out, upstream string, max int64, tune func(*Cache)) (*Mirror, *httptest.Server) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, CheckRedirect: engine.CheckRedirect}
	files := engine.NewDownloader(client, slog.New(slog.DiscardHandler))
	files.Backoff, files.MaxBackoff = time.Millisecond, 5*time.Millisecond
	m, err := Start(Options{Sources: []string{out}, OutputDir: out, Upstream: upstream, CacheMax: max, Client: client, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	m.Cache.Upstream.Backoff = time.Millisecond
	if tune != nil {
		tune(m.Cache)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { m.Close() })
	return m, srv
}

// cacheWait polls cond every few milliseconds, failing after 10 s.
func cacheWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cachedManifest(c *Cache, key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.manifests[key]; e != nil {
		return e.raw
	}
	return nil
}

// TestCacheServesBlobWhileItArrives: a client gets the first bytes of a
// blob while the upstream is still sending it, and the whole verified blob
// in the end.
func TestCacheServesBlobWhileItArrives(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	layer := testkit.TestBytes(3<<20, 5)
	m := f.AddModel("library/big", "latest", layer, []byte("{{ .Prompt }}"))
	d := testkit.DigestOf(layer)
	f.Set(func(f *testkit.FakeRegistry) { f.Hold[d] = 2 << 20 }) // the upstream pauses after 2 MiB
	mir, srv := newFakeCache(t, f, 0, func(c *Cache) {
		c.Upstream.Files().Connections = 1
		c.Upstream.Files().StallTimeout = 300 * time.Millisecond // then the engine resumes with a range
	})
	if resp, _, err := testkit.GetBody(t, srv.URL+"/v2/library/big/manifests/latest", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("manifest: %v %v", err, resp)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v2/library/big/blobs/"+d+"?direct=1", nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", len(layer)-1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("reading the first MiB: %v", err)
	}
	select {
	case <-f.Held: // the upstream has paused: what the client read was arriving
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never paused")
	}
	if _, err := os.Stat(mir.Cache.blobPath(d)); err == nil {
		t.Fatal("the blob was complete before the client read: nothing was streamed")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, layer) {
		t.Fatalf("client got %d bytes, not the blob", len(got))
	}
	cacheWait(t, "the model is cached", func() bool {
		return cachedManifest(mir.Cache, cacheKey(registry.Name{Host: f.Host, Namespace: "library", Model: "big", Tag: "latest"})) != nil
	})
	if got := testkit.ReadFile(t, mir.Cache.blobPath(d)); !bytes.Equal(got, layer) {
		t.Error("the cached blob differs")
	}
	_ = m
}

// TestCacheOneFetchForManyClients: clients pulling at once all follow one
// upstream fetch per blob; the statistics add up.
func TestCacheOneFetchForManyClients(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = 2 * time.Millisecond }) // slow enough to overlap
	m := f.AddModel("library/shared", "latest", testkit.TestBytes(1<<20, 6), []byte("{{ .Prompt }}"), []byte(`{"stop":[]}`))
	mir, srv := newFakeCache(t, f, 0, nil)
	var wg sync.WaitGroup
	trees := make([]map[string][]byte, 3)
	for i := range trees {
		wg.Add(1)
		go func() {
			defer wg.Done()
			trees[i] = testkit.PullLikeOllama(t, srv.URL, "library/shared", "latest")
		}()
	}
	wg.Wait()
	var total int64
	for d, data := range m.Blobs {
		total += int64(len(data))
		for i, tree := range trees {
			if !bytes.Equal(tree[testkit.BlobEntryName(d)], data) {
				t.Errorf("client %d: blob %s differs", i, d[:19])
			}
		}
		if n := f.Count(func(f *testkit.FakeRegistry) int { return f.RegistryBlobHits[d] }); n != 1 {
			t.Errorf("blob %s asked upstream %d times, want 1", d[:19], n)
		}
	}
	st := mir.StatsView()
	if st.BytesUpstream != total {
		t.Errorf("bytes_upstream = %d, want %d", st.BytesUpstream, total)
	}
	if want := 3*total + 3*int64(len(m.Manifest)); st.BytesServed != want {
		t.Errorf("bytes_served = %d, want %d", st.BytesServed, want)
	}
	if st.BytesSaved != st.BytesServed-st.BytesUpstream || st.CachedModels != 1 || st.Clients != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestCacheNeverServesACorruptBlob: a blob whose upstream bytes never
// match their digest reaches no client whole: clients following it are
// cut before its last bytes; nothing is kept; asking again soon after is
// a quick 502; once upstream is fixed it is fetched again.
func TestCacheNeverServesACorruptBlob(t *testing.T) {
	f := testkit.NewFakeRegistry(t, testkit.WithCorrupt(1000))
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = time.Millisecond })
	layer := testkit.TestBytes(1<<20, 8)
	f.AddModel("library/bad", "latest", layer, []byte("{{ .Prompt }}"))
	d := testkit.DigestOf(layer)
	now := time.Now()
	var clock sync.Mutex
	mir, srv := newFakeCache(t, f, 0, func(c *Cache) {
		c.headWaitBelow = 0
		c.retries = 2
		c.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	})
	if resp, _, err := testkit.GetBody(t, srv.URL+"/v2/library/bad/manifests/latest", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("manifest: %v %v", err, resp)
	}
	resp, body, err := testkit.GetBody(t, srv.URL+"/v2/library/bad/blobs/"+d+"?direct=1", "")
	switch {
	case err == nil && resp.StatusCode == http.StatusOK:
		t.Fatalf("a client got the whole corrupt blob (%d bytes)", len(body))
	case int64(len(body)) > int64(len(layer))-mir.Cache.holdback:
		t.Fatalf("a client got %d bytes of a corrupt blob, more than all but the held-back tail", len(body))
	}
	t.Logf("client: %v, %d bytes", err, len(body))
	cacheWait(t, "the fetch gives up", func() bool {
		req, _ := http.NewRequest("HEAD", srv.URL+"/v2/library/bad/blobs/"+d, nil)
		resp, err := http.DefaultClient.Do(req)
		return err == nil && resp.StatusCode == http.StatusBadGateway
	})
	if n := f.Count(func(f *testkit.FakeRegistry) int { return f.RegistryBlobHits[d] }); n != 3 {
		t.Errorf("the corrupt blob was fetched %d times, want 3 (retries bounded)", n)
	}
	filepath.WalkDir(mir.Cache.Dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.Contains(de.Name(), strings.TrimPrefix(d, "sha256:")) {
			t.Errorf("the corrupt blob left %s", p)
		}
		return nil
	})
	// Upstream fixed; after failedTTL the blob is fetched again.
	f.Set(func(f *testkit.FakeRegistry) { f.Corrupt = 0 })
	clock.Lock()
	now = now.Add(time.Hour)
	clock.Unlock()
	resp, body, err = testkit.GetBody(t, srv.URL+"/v2/library/bad/blobs/"+d+"?direct=1", "")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, layer) {
		t.Fatalf("after the upstream was fixed: %v %v, %d bytes", err, resp, len(body))
	}
}

// TestCacheCutsFollowersOfABadAttempt: the first attempt is corrupt, the
// second good. A client that followed the first is cut (its bytes were
// not the blob); the next request gets the verified blob.
func TestCacheCutsFollowersOfABadAttempt(t *testing.T) {
	f := testkit.NewFakeRegistry(t, testkit.WithCorrupt(1))
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = time.Millisecond })
	layer := testkit.TestBytes(1<<20, 9)
	f.AddModel("library/flaky", "latest", layer, []byte("{{ .Prompt }}"))
	d := testkit.DigestOf(layer)
	_, srv := newFakeCache(t, f, 0, func(c *Cache) { c.Upstream.Files().Connections = 1 })
	testkit.GetBody(t, srv.URL+"/v2/library/flaky/manifests/latest", "")
	resp, body, err := testkit.GetBody(t, srv.URL+"/v2/library/flaky/blobs/"+d+"?direct=1", "")
	if err == nil && resp.StatusCode == http.StatusOK && !bytes.Equal(body, layer) {
		t.Fatal("a client got a complete blob that is not the blob")
	}
	resp, body, err = testkit.GetBody(t, srv.URL+"/v2/library/flaky/blobs/"+d+"?direct=1", "")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, layer) {
		t.Fatalf("after the good attempt: %v %v, %d bytes", err, resp, len(body))
	}
}

// TestCacheManifests: a tag is revalidated upstream on every pull (a
// moved tag is seen), the cached manifest is served when upstream fails,
// a digest is served from the cache without asking, and upstream's "not
// found" is passed on.
func TestCacheManifests(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m1 := f.AddModel("library/tiny", "latest", testkit.TestBytes(100<<10, 1), []byte("{{ .Prompt }}"))
	mir, srv := newFakeCache(t, f, 0, nil)
	key := cacheKey(registry.Name{Host: f.Host, Namespace: "library", Model: "tiny", Tag: "latest"})
	manifest := func(path string) (int, string) {
		t.Helper()
		resp, body, err := testkit.GetBody(t, srv.URL+path, "")
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := manifest("/v2/library/tiny/manifests/latest"); code != 200 || body != string(m1.Manifest) {
		t.Fatalf("cold manifest: %d %.100s", code, body)
	}
	cacheWait(t, "the model is cached", func() bool { return cachedManifest(mir.Cache, key) != nil })

	m2 := f.AddModel("library/tiny", "latest", testkit.TestBytes(120<<10, 2), []byte("{{ .Prompt }}"))
	if code, body := manifest("/v2/tiny/manifests/latest"); code != 200 || body != string(m2.Manifest) {
		t.Fatalf("after the tag moved: %d %.100s", code, body)
	}
	cacheWait(t, "the new manifest is cached", func() bool { return bytes.Equal(cachedManifest(mir.Cache, key), m2.Manifest) })
	if _, err := os.Stat(mir.Cache.blobPath(testkit.DigestOf(testkit.TestBytes(100<<10, 1)))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the moved tag's old layer is still cached: %v", err)
	}

	hits := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Accepts) })
	if code, body := manifest("/v2/library/tiny/manifests/" + m2.Digest); code != 200 || body != string(m2.Manifest) {
		t.Errorf("by digest: %d %.100s", code, body)
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Accepts) }) - hits; n != 0 {
		t.Errorf("a cached digest was asked upstream %d times", n)
	}

	if code, body := manifest("/v2/library/nope/manifests/latest"); code != 404 || !strings.Contains(body, "MANIFEST_UNKNOWN") {
		t.Errorf("unknown upstream: %d %s", code, body)
	}
	if code, body := manifest("/v2/a/b/c/manifests/latest"); code != 400 || !strings.Contains(body, "NAME_INVALID") {
		t.Errorf("three-part name: %d %s", code, body)
	}

	f.Set(func(f *testkit.FakeRegistry) { f.ManifestFail = 100 })
	if code, body := manifest("/v2/library/tiny/manifests/latest"); code != 200 || body != string(m2.Manifest) {
		t.Errorf("upstream failing: %d %.100s, want the cached manifest", code, body)
	}
	if code, body := manifest("/v2/library/other/manifests/latest"); code != http.StatusBadGateway || !strings.Contains(body, "not cached") {
		t.Errorf("upstream failing, not cached: %d %s", code, body)
	}
	f.Set(func(f *testkit.FakeRegistry) { f.ManifestFail = 0 })

	idx := f.AddIndex("library/multi", "latest", map[string]testkit.FakeModel{"linux/amd64": m1})
	_ = idx
	if code, body := manifest("/v2/library/multi/manifests/latest"); code != http.StatusBadGateway || !strings.Contains(body, "index") {
		t.Errorf("an index: %d %s", code, body)
	}

	// The cache restarts with upstream gone: the models still pull.
	mir.Close()
	f.Srv.Close()
	_, srv2 := newFakeCacheIn(t, filepath.Dir(mir.Cache.Dir), f.URL, 0, func(c *Cache) { c.revalidateTimeout = time.Second })
	got := testkit.PullLikeOllama(t, srv2.URL, "library/tiny", "latest")
	if !bytes.Equal(got["manifest"], m2.Manifest) || len(got) != len(m2.Blobs)+1 {
		t.Errorf("offline after a restart: %d files", len(got))
	}
}

// TestCacheEviction: past the bound the least recently pulled model goes,
// whole, but never one being served, and blobs a kept model lists stay.
func TestCacheEviction(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	shared := []byte("{{ .Prompt }}")
	a := f.AddModel("library/a", "latest", testkit.TestBytes(1<<20, 1), shared)
	b := f.AddModel("library/b", "latest", testkit.TestBytes(1<<20, 2), shared)
	c := f.AddModel("library/c", "latest", testkit.TestBytes(1<<20, 3), shared)
	now := time.Now()
	var clock sync.Mutex
	tick := func() time.Time { clock.Lock(); defer clock.Unlock(); now = now.Add(time.Second); return now }
	mir, srv := newFakeCache(t, f, 2<<20+(256<<10), func(c *Cache) {
		c.activeGrace = 500 * time.Millisecond
		c.now = tick
	})
	cache := mir.Cache
	testkit.PullLikeOllama(t, srv.URL, "library/a", "latest")
	testkit.PullLikeOllama(t, srv.URL, "library/b", "latest")
	keyOf := func(name string) string {
		return cacheKey(registry.Name{Host: f.Host, Namespace: "library", Model: name, Tag: "latest"})
	}
	cacheWait(t, "a and b are cached", func() bool {
		return cachedManifest(cache, keyOf("a")) != nil && cachedManifest(cache, keyOf("b")) != nil
	})
	// a is served to a client now: b goes although a is older.
	release := cache.hold(testkit.DigestOf(testkit.TestBytes(1<<20, 1)), registry.Name{Host: f.Host, Namespace: "library", Model: "a"})
	testkit.PullLikeOllama(t, srv.URL, "library/c", "latest")
	cacheWait(t, "c is cached", func() bool { return cachedManifest(cache, keyOf("c")) != nil })
	if cachedManifest(cache, keyOf("a")) == nil {
		t.Error("the model being served was evicted")
	}
	if cachedManifest(cache, keyOf("b")) != nil {
		t.Error("the least recently pulled model not in use was kept")
	}
	for d := range b.Blobs {
		_, err := os.Stat(cache.blobPath(d))
		if _, kept := c.Blobs[d]; kept != (err == nil) {
			t.Errorf("blob %s of the evicted model: on disk %v, shared with a kept model %v", d[:19], err == nil, kept)
		}
	}
	release()
	cache.sweep()
	if used := func() int64 { cache.mu.Lock(); defer cache.mu.Unlock(); return cache.usedLocked() }(); used > cache.Max {
		t.Errorf("cache holds %d bytes, bound %d", used, cache.Max)
	}
	_ = a
}

// TestCacheOneWriterPerFolder: a second cache on the same folder is
// refused with a clear message; after the first closes it opens, with
// the models it left.
func TestCacheOneWriterPerFolder(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	testkit.TinyModel(f, "tiny", "latest")
	out := t.TempDir()
	mir, srv := newFakeCacheIn(t, out, f.URL, 0, nil)
	testkit.PullLikeOllama(t, srv.URL, "library/tiny", "latest")
	cacheWait(t, "the model is cached", func() bool { return len(mir.Cache.Entries()) == 1 })
	_, err := Start(Options{OutputDir: out, Upstream: f.URL})
	if !errors.Is(err, fault.ErrConflict) || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second cache on one folder: %v", err)
	}
	mir.Close()
	again, err := Start(Options{OutputDir: out, Upstream: f.URL})
	if err != nil {
		t.Fatalf("reopening after close: %v", err)
	}
	defer again.Close()
	if n := len(again.Cache.Entries()); n != 1 {
		t.Errorf("reopened cache lists %d models, want 1", n)
	}
}

func TestParseCacheSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"500M", 500 << 20, false}, {"50G", 50 << 30, false},
		{"1.5T", 3 << 39, false}, {"2g", 2 << 30, false}, {"10GB", 10 << 30, false}, {"64GiB", 64 << 30, false},
		{"4096", 4096, false}, {"-1G", 0, true}, {"lots", 0, true}, {"5X", 0, true}, {"1e30", 0, true},
	} {
		got, err := ParseCacheSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseCacheSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("parseCacheSize(%q): error %v does not match ErrBadInput", tc.in, err)
		}
	}
}
