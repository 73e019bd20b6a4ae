package models

import (
	"bytes"
	"context"
	"errors"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noReuse keeps a test's pulls away from this machine's own models.
func noReuse(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{} }

// TestPullRefusesFAT32 is the check before anything is fetched: a zip
// over 4 GiB without -split into a FAT32 folder, or -split parts over 4 GiB.
func TestPullRefusesFAT32(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := f.AddBlob("application/vnd.ollama.image.model", []byte("never fetched"))
	big.Size = 5 << 30 // the manifest says 5 GiB
	cfg := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte("{}"))
	raw := []byte(`{"schemaVersion":2,"mediaType":"` + registry.MediaDockerManifest + `","config":{"mediaType":"` + cfg.MediaType + `","digest":"` + cfg.Digest + `","size":2},"layers":[{"mediaType":"` + big.MediaType + `","digest":"` + big.Digest + `","size":5368709120}]}`)
	f.AddManifest("library/huge", "latest", registry.MediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, noReuse, func(cfg *pullTestConfig) { cfg.fsType = func(string) string { return "vfat" } })

	for _, split := range []int64{0, 5 << 30} {
		out := t.TempDir()
		_, err := c.Pull(t.Context(), PullRequest{Ref: "huge", OutputDir: out, Split: split, Retries: -1})
		if !errors.Is(err, fault.ErrBadInput) || !strings.Contains(err.Error(), "FAT32") || !strings.Contains(err.Error(), "-split 4G") {
			t.Errorf("split %d: err = %v, want the FAT32 refusal suggesting -split 4G", split, err)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("split %d: the refused pull wrote %d entries", split, len(entries))
		}
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.CDNHits) + len(f.RegistryBlobHits) }); n != 0 {
		t.Errorf("a refused pull fetched %d blobs", n)
	}
}

// TestPullChecksFreeSpaceFirst: a model larger than the disk is refused
// before the first blob byte, for a zip and for an install.
func TestPullChecksFreeSpaceFirst(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := f.AddBlob("application/vnd.ollama.image.model", []byte("never fetched"))
	cfg := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte("{}"))
	raw := []byte(`{"schemaVersion":2,"mediaType":"` + registry.MediaDockerManifest + `","config":{"mediaType":"` + cfg.MediaType + `","digest":"` + cfg.Digest + `","size":2},"layers":[{"mediaType":"` + big.MediaType + `","digest":"` + big.Digest + `","size":1125899906842624}]}`)
	f.AddManifest("library/huge", "latest", registry.MediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, noReuse)
	for _, req := range []PullRequest{
		{Ref: "huge", OutputDir: t.TempDir(), Retries: -1},
		{Ref: "huge", ModelsDir: t.TempDir(), Retries: -1},
	} {
		_, err := c.Pull(t.Context(), req)
		if !errors.Is(err, disk.ErrNoSpace) {
			t.Errorf("%+v: err = %v, want not enough free space", req, err)
		}
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.CDNHits) + len(f.RegistryBlobHits) }); n != 0 {
		t.Errorf("a refused pull fetched %d blobs", n)
	}
}

// TestPullReusesBlobsOnDisk: blobs in a models folder, in another zip of
// the output folder or in a kept staging folder are not fetched; the CDN
// serves only what is new, and the result says how much came from disk.
func TestPullReusesBlobsOnDisk(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	shared := testkit.TestBytes(1<<20, 11)
	small := f.AddModel("library/fam", "small", shared, []byte("template A"), []byte(`{"a":1}`))
	large := f.AddModel("library/fam", "large", shared, []byte("template B"), []byte(`{"b":2}`), testkit.TestBytes(200_000, 12))
	served := func() int64 {
		return int64(f.Count(func(f *testkit.FakeRegistry) int {
			var n int64
			for _, b := range f.BytesServed {
				n += b
			}
			return int(n)
		}))
	}
	size := func(m testkit.FakeModel) (n int64) {
		for _, b := range m.Blobs {
			n += int64(len(b))
		}
		return n
	}

	t.Run("from a zip of the output folder", func(t *testing.T) {
		c := newTestPuller(t, f.URL, noReuse)
		out := t.TempDir()
		if _, err := c.Pull(t.Context(), PullRequest{Ref: "fam:small", OutputDir: out, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		before := served()
		res, err := c.Pull(t.Context(), PullRequest{Ref: "fam:large", OutputDir: out, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := served()-before, size(large)-int64(len(shared)); got != want {
			t.Errorf("the CDN served %d bytes, want %d (only what is new)", got, want)
		}
		if res.Reused != int64(len(shared)) {
			t.Errorf("Reused = %d, want %d", res.Reused, len(shared))
		}
		testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "fam", "large", large))
	})

	t.Run("install from a models folder and a zip", func(t *testing.T) {
		theirs := t.TempDir() // another Ollama models folder ($OLLAMA_MODELS)
		c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{theirs} })
		if _, err := c.Pull(t.Context(), PullRequest{Ref: "fam:small", ModelsDir: theirs, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		before := served()
		mine := t.TempDir()
		var last PullProgress
		res, err := c.Pull(t.Context(), PullRequest{Ref: "fam:large", ModelsDir: mine, Retries: -1, Progress: func(p PullProgress) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := served()-before, size(large)-int64(len(shared)); got != want {
			t.Errorf("the CDN served %d bytes, want %d", got, want)
		}
		if res.Reused != int64(len(shared)) || last.Reused != res.Reused {
			t.Errorf("Reused = %d (progress %d), want %d", res.Reused, last.Reused, len(shared))
		}
		reusedLayers := 0
		for _, l := range last.Layers {
			if l.Reused {
				reusedLayers++
				if l.Type != "model" || l.Done != l.Size {
					t.Errorf("reused layer %+v", l)
				}
			}
		}
		if reusedLayers != 1 {
			t.Errorf("%d layers reported reused, want 1: %+v", reusedLayers, last.Layers)
		}
		testkit.CheckInstalled(t, mine, f.Host, "fam", "large", large)

		// A zip pull now takes everything from the models folders.
		before = served()
		c2 := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{mine} })
		z, err := c2.Pull(t.Context(), PullRequest{Ref: "fam:large", OutputDir: t.TempDir(), Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got := served() - before; got != 0 {
			t.Errorf("the CDN served %d bytes for a model already installed, want 0", got)
		}
		if z.Reused != size(large) {
			t.Errorf("Reused = %d, want %d", z.Reused, size(large))
		}
	})

	t.Run("a damaged copy is fetched instead", func(t *testing.T) {
		theirs := t.TempDir()
		c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{theirs} })
		if _, err := c.Pull(t.Context(), PullRequest{Ref: "fam:small", ModelsDir: theirs, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(theirs, "blobs", "sha256-"+strings.TrimPrefix(testkit.DigestOf(shared), "sha256:"))
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), len(shared)), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := c.Pull(t.Context(), PullRequest{Ref: "fam:small", OutputDir: t.TempDir(), Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reused == int64(len(shared)) {
			t.Errorf("the damaged blob counted as reused")
		}
		testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "fam", "small", small))
	})
}

// TestRemoveStagingAfterCancel: what a cancelled pull leaves (the hidden
// temporary zip, the resume state, an install's staging folder) goes with
// removePullStaging / removeInstallStaging, and nothing else does.
func TestRemoveStagingAfterCancel(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := testkit.TestBytes(2<<20, 17)
	f.AddModel("library/big", "latest", big, []byte("template"))
	f.Set(func(f *testkit.FakeRegistry) { f.Hold[testkit.DigestOf(big)] = 1 << 20 })
	c := newTestPuller(t, f.URL, noReuse)
	name, err := registry.ParseName("big", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	out, modelsDir := t.TempDir(), t.TempDir()
	testkit.WriteTestFile(t, filepath.Join(out, "mine.txt"), "keep me")
	for _, req := range []PullRequest{{Ref: "big", OutputDir: out, Retries: -1}, {Ref: "big", ModelsDir: modelsDir, Retries: -1}} {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { _, err := c.Pull(ctx, req); errc <- err }()
		select {
		case <-f.Held:
		case err := <-errc:
			t.Fatalf("pull ended before the blob was held: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the blob was not requested within 10s")
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled pull: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, ".big-latest.zip.tmp")); err != nil {
		t.Fatalf("no temporary zip after a cancel: %v", err)
	}
	if err := RemovePullStaging(out, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != "mine.txt" {
		t.Errorf("after removePullStaging the output folder holds %v", entries)
	}
	if err := RemoveInstallStaging(modelsDir, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(modelsDir); len(entries) != 0 {
		t.Errorf("after removeInstallStaging the models folder holds %v", entries)
	}
}
