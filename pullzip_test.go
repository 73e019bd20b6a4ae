package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixedClock makes two pulls of one model write byte-identical zips.
func fixedClock(c *modelPuller) {
	at := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	c.now = func() time.Time { return at }
}

// noReuse keeps a test's pulls away from this machine's own models.
func noReuse(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{} }

// TestPullSplit: -split writes NAME.zip.001… each at most SIZE, whose
// concatenation is byte for byte the zip an unsplit pull writes; verify,
// install and openModelLayout take the first part or the base name.
func TestPullSplit(t *testing.T) {
	f := newFakeRegistry(t)
	m := f.addModel("library/big", "latest", testBytes(3<<20+12345, 4), []byte("template"), []byte(`{"p":1}`))
	c := newTestPuller(t, f.URL, noReuse)
	fixedClock(c)

	one, err := c.Pull(t.Context(), pullRequest{Ref: "big", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(one.Path)
	if err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	const part = 1 << 20
	res, err := c.Pull(t.Context(), pullRequest{Ref: "big", OutputDir: out, Split: part, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(out, "big-latest.zip")
	if res.Path != base+".001" || len(res.Parts) != 4 || res.Parts[3] != base+".004" || res.Size != int64(len(whole)) {
		t.Fatalf("result %+v, want 4 parts from %s.001", res, base)
	}
	var joined []byte
	for i, p := range res.Parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > part || i < len(res.Parts)-1 && len(b) != part {
			t.Errorf("part %s has %d bytes, want %d", p, len(b), part)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, whole) {
		t.Fatalf("the parts joined (%d bytes) differ from the unsplit zip (%d bytes)", len(joined), len(whole))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 4 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output folder holds %v, want only the 4 parts", names)
	}

	for _, name := range []string{base + ".001", base, base + ".003"} {
		l, err := openModelLayout(name)
		if err != nil {
			t.Fatalf("openModelLayout(%s): %v", filepath.Base(name), err)
		}
		if problems := l.Verify(t.Context(), nil); len(problems) > 0 || len(l.Parts) != 4 {
			t.Errorf("%s: problems %v, parts %v", filepath.Base(name), problems, l.Parts)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runVerifyCommand(t.Context(), []string{base}, &stdout, &stderr); code != 0 {
		t.Errorf("verify %s: exit %d\n%s%s", base, code, stdout.String(), stderr.String())
	}
	modelsDir := t.TempDir()
	if code := runInstallCommand(t.Context(), []string{base + ".001", "-models-dir", modelsDir}, &stdout, &stderr); code != 0 {
		t.Fatalf("install of the first part: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for d, b := range m.Blobs {
		if got, err := os.ReadFile(filepath.Join(modelsDir, "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:"))); err != nil || !bytes.Equal(got, b) {
			t.Errorf("installed blob %s: %v", d[:19], err)
		}
	}

	// A rerun finds the set complete and fetches nothing.
	before := f.count(func(f *fakeRegistry) int { return len(f.Ranges) })
	again, err := c.Pull(t.Context(), pullRequest{Ref: "big", OutputDir: out, Split: part, Retries: -1})
	if err != nil || again.Path != res.Path || len(again.Parts) != 4 {
		t.Fatalf("rerun: %+v, %v", again, err)
	}
	if n := f.count(func(f *fakeRegistry) int { return len(f.Ranges) }) - before; n != 0 {
		t.Errorf("rerun fetched %d blobs", n)
	}

	// A part missing in the middle is named, not a puzzling zip error.
	if err := os.Remove(base + ".002"); err != nil {
		t.Fatal(err)
	}
	if _, err := openModelLayout(base + ".001"); err == nil || !strings.Contains(err.Error(), "big-latest.zip.002 is missing") {
		t.Errorf("a gap in the set: err = %v, want the missing part named", err)
	}
}

// TestSplitSizes: -split 4G makes parts FAT32 can hold; the flag's value
// is checked.
func TestSplitSizes(t *testing.T) {
	if got := partSize(4 << 30); got != 1<<32-1 {
		t.Errorf("partSize(4G) = %d, want 4 GiB - 1", got)
	}
	for in, want := range map[string]int64{"4G": 4 << 30, "700M": 700 << 20, "0": 0} {
		if got, err := parseSplitSize(in); err != nil || got != want {
			t.Errorf("parseSplitSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1", "10K"} {
		if _, err := parseSplitSize(bad); !errors.Is(err, errBadInput) {
			t.Errorf("parseSplitSize(%q): err = %v, want bad input", bad, err)
		}
	}
	if _, err := parseOptions([]string{"-split", "4G", "llama3"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-split 4G: %v", err)
	}
}

// TestPullRefusesFAT32 is the check before anything is fetched: a zip
// over 4 GiB without -split into a FAT32 folder, or -split parts over 4 GiB.
func TestPullRefusesFAT32(t *testing.T) {
	f := newFakeRegistry(t)
	big := f.addBlob("application/vnd.ollama.image.model", []byte("never fetched"))
	big.Size = 5 << 30 // the manifest says 5 GiB
	cfg := f.addBlob("application/vnd.docker.container.image.v1+json", []byte("{}"))
	raw := []byte(`{"schemaVersion":2,"mediaType":"` + mediaDockerManifest + `","config":{"mediaType":"` + cfg.MediaType + `","digest":"` + cfg.Digest + `","size":2},"layers":[{"mediaType":"` + big.MediaType + `","digest":"` + big.Digest + `","size":5368709120}]}`)
	f.addManifest("library/huge", "latest", mediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, noReuse, func(cfg *pullTestConfig) { cfg.fsType = func(string) string { return "vfat" } })

	for _, split := range []int64{0, 5 << 30} {
		out := t.TempDir()
		_, err := c.Pull(t.Context(), pullRequest{Ref: "huge", OutputDir: out, Split: split, Retries: -1})
		if !errors.Is(err, errBadInput) || !strings.Contains(err.Error(), "FAT32") || !strings.Contains(err.Error(), "-split 4G") {
			t.Errorf("split %d: err = %v, want the FAT32 refusal suggesting -split 4G", split, err)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("split %d: the refused pull wrote %d entries", split, len(entries))
		}
	}
	if n := f.count(func(f *fakeRegistry) int { return len(f.CDNHits) + len(f.RegistryBlobHits) }); n != 0 {
		t.Errorf("a refused pull fetched %d blobs", n)
	}
}

// TestPullChecksFreeSpaceFirst: a model larger than the disk is refused
// before the first blob byte, for a zip and for an install.
func TestPullChecksFreeSpaceFirst(t *testing.T) {
	f := newFakeRegistry(t)
	big := f.addBlob("application/vnd.ollama.image.model", []byte("never fetched"))
	cfg := f.addBlob("application/vnd.docker.container.image.v1+json", []byte("{}"))
	raw := []byte(`{"schemaVersion":2,"mediaType":"` + mediaDockerManifest + `","config":{"mediaType":"` + cfg.MediaType + `","digest":"` + cfg.Digest + `","size":2},"layers":[{"mediaType":"` + big.MediaType + `","digest":"` + big.Digest + `","size":1125899906842624}]}`)
	f.addManifest("library/huge", "latest", mediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, noReuse)
	for _, req := range []pullRequest{
		{Ref: "huge", OutputDir: t.TempDir(), Retries: -1},
		{Ref: "huge", ModelsDir: t.TempDir(), Retries: -1},
	} {
		_, err := c.Pull(t.Context(), req)
		if !errors.Is(err, errNoSpace) {
			t.Errorf("%+v: err = %v, want not enough free space", req, err)
		}
	}
	if n := f.count(func(f *fakeRegistry) int { return len(f.CDNHits) + len(f.RegistryBlobHits) }); n != 0 {
		t.Errorf("a refused pull fetched %d blobs", n)
	}
}

// TestPullReusesBlobsOnDisk: blobs in a models folder, in another zip of
// the output folder or in a kept staging folder are not fetched; the CDN
// serves only what is new, and the result says how much came from disk.
func TestPullReusesBlobsOnDisk(t *testing.T) {
	f := newFakeRegistry(t)
	shared := testBytes(1<<20, 11)
	small := f.addModel("library/fam", "small", shared, []byte("template A"), []byte(`{"a":1}`))
	large := f.addModel("library/fam", "large", shared, []byte("template B"), []byte(`{"b":2}`), testBytes(200_000, 12))
	served := func() int64 {
		return int64(f.count(func(f *fakeRegistry) int {
			var n int64
			for _, b := range f.BytesServed {
				n += b
			}
			return int(n)
		}))
	}
	size := func(m fakeModel) (n int64) {
		for _, b := range m.Blobs {
			n += int64(len(b))
		}
		return n
	}

	t.Run("from a zip of the output folder", func(t *testing.T) {
		c := newTestPuller(t, f.URL, noReuse)
		out := t.TempDir()
		if _, err := c.Pull(t.Context(), pullRequest{Ref: "fam:small", OutputDir: out, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		before := served()
		res, err := c.Pull(t.Context(), pullRequest{Ref: "fam:large", OutputDir: out, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := served()-before, size(large)-int64(len(shared)); got != want {
			t.Errorf("the CDN served %d bytes, want %d (only what is new)", got, want)
		}
		if res.Reused != int64(len(shared)) {
			t.Errorf("Reused = %d, want %d", res.Reused, len(shared))
		}
		compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "fam", "large", large))
	})

	t.Run("install from a models folder and a zip", func(t *testing.T) {
		theirs := t.TempDir() // another Ollama models folder ($OLLAMA_MODELS)
		c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{theirs} })
		if _, err := c.Pull(t.Context(), pullRequest{Ref: "fam:small", ModelsDir: theirs, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		before := served()
		mine := t.TempDir()
		var last pullProgress
		res, err := c.Pull(t.Context(), pullRequest{Ref: "fam:large", ModelsDir: mine, Retries: -1, Progress: func(p pullProgress) { last = p }})
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
		checkInstalled(t, mine, f.Host, "fam", "large", large)

		// A zip pull now takes everything from the models folders.
		before = served()
		c2 := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.ReuseModelsDirs = []string{mine} })
		z, err := c2.Pull(t.Context(), pullRequest{Ref: "fam:large", OutputDir: t.TempDir(), Retries: -1})
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
		if _, err := c.Pull(t.Context(), pullRequest{Ref: "fam:small", ModelsDir: theirs, Retries: -1}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(theirs, "blobs", "sha256-"+strings.TrimPrefix(digestOf(shared), "sha256:"))
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), len(shared)), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := c.Pull(t.Context(), pullRequest{Ref: "fam:small", OutputDir: t.TempDir(), Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reused == int64(len(shared)) {
			t.Errorf("the damaged blob counted as reused")
		}
		compareZipTree(t, readZipTree(t, res.Path), expectedTree(f.Host, "library", "fam", "small", small))
	})
}

// checkInstalled compares a models folder with exactly one model.
func checkInstalled(t *testing.T, modelsDir, host, model, tag string, m fakeModel) {
	t.Helper()
	want := map[string][]byte{}
	for name, c := range expectedTree(host, "library", model, tag, m) {
		if !strings.HasSuffix(name, "/") {
			want[name] = []byte(c.Data)
		}
	}
	got := readTree(t, modelsDir)
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: %d bytes installed, want %d", name, len(got[name]), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && !strings.HasPrefix(name, "blobs/") && !strings.HasPrefix(name, "manifests/") {
			t.Errorf("stray file in the models folder: %s", name)
		}
	}
}

// TestRemoveStagingAfterCancel: what a cancelled pull leaves (the hidden
// temporary zip, the resume state, an install's staging folder) goes with
// removePullStaging / removeInstallStaging, and nothing else does.
func TestRemoveStagingAfterCancel(t *testing.T) {
	f := newFakeRegistry(t)
	big := testBytes(2<<20, 17)
	f.addModel("library/big", "latest", big, []byte("template"))
	f.set(func(f *fakeRegistry) { f.hold[digestOf(big)] = 1 << 20 })
	c := newTestPuller(t, f.URL, noReuse)
	name, err := parseModelName("big", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	out, modelsDir := t.TempDir(), t.TempDir()
	writeTestFile(t, filepath.Join(out, "mine.txt"), "keep me")
	for _, req := range []pullRequest{{Ref: "big", OutputDir: out, Retries: -1}, {Ref: "big", ModelsDir: modelsDir, Retries: -1}} {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { _, err := c.Pull(ctx, req); errc <- err }()
		select {
		case <-f.held:
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
	if err := removePullStaging(out, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != "mine.txt" {
		t.Errorf("after removePullStaging the output folder holds %v", entries)
	}
	if err := removeInstallStaging(modelsDir, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(modelsDir); len(entries) != 0 {
		t.Errorf("after removeInstallStaging the models folder holds %v", entries)
	}
}
