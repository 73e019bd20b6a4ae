package mirror

import (
	"bytes"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"testing"
	"time"
)

// TestCacheFillWaitsOutAnOutage: the upstream registry and its CDN go
// away in the middle of a cache fill (stopped: connections refused) and
// come back on the same ports; the fill waits and finishes, resuming the
// blob instead of fetching it again.
func TestCacheFillWaitsOutAnOutage(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	layer := testkit.TestBytes(2<<20, 7)
	f.AddModel("library/big", "latest", layer, []byte("{{ .Prompt }}"))
	d := testkit.DigestOf(layer)
	f.Set(func(f *testkit.FakeRegistry) { f.Pace = 20 * time.Millisecond }) // 32 KiB per pause: about 1.3 s for the blob
	mir, srv := newFakeCache(t, f, 0, func(c *Cache) {
		c.retries = -1
		files := c.Upstream.Files()
		files.Retries, files.RetryFor = -1, time.Minute
		files.Connections = 1
		files.Backoff, files.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	})
	if resp, _, err := testkit.GetBody(t, srv.URL+"/v2/library/big/manifests/latest", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("manifest: %v %v", err, resp)
	}
	served := func() int64 {
		return int64(f.Count(func(f *testkit.FakeRegistry) int { return int(f.BytesServed[d]) }))
	}
	cacheWait(t, "half a MiB of the blob arrived", func() bool { return mir.Cache.stats.upstream.Load() > 512<<10 })
	restore := f.Outage(t)
	time.Sleep(700 * time.Millisecond) // several attempts meet the closed ports
	if file, _, _, _ := mir.Cache.lookupBlob(d, registry.Name{}); file != "" {
		t.Fatal("the blob was complete before the outage")
	}
	restore()
	cacheWait(t, "the model is cached after the outage", func() bool {
		return cachedManifest(mir.Cache, cacheKey(registry.Name{Host: f.Host, Namespace: "library", Model: "big", Tag: "latest"})) != nil
	})
	if got := testkit.ReadFile(t, mir.Cache.blobPath(d)); !bytes.Equal(got, layer) {
		t.Error("the cached blob differs")
	}
	if sent := served(); sent > int64(len(layer))+(512<<10) {
		t.Errorf("upstream sent %d bytes for a %d-byte blob: the fill was not resumed", sent, len(layer))
	}
}
