package models

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestRegistryClient returns a client for f with short delays; mods
// change its configuration before it is built.
func newTestRegistryClient(t *testing.T, registryURL string, mods ...func(*registry.Config)) *registry.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	log := slog.New(slog.DiscardHandler)
	files := engine.NewDownloader(&http.Client{Transport: tr}, log)
	files.Backoff, files.MaxBackoff = time.Millisecond, 5*time.Millisecond
	files.StallTimeout = 10 * time.Second
	cfg := registry.Config{Registry: registryURL, Concurrency: 2, Files: files, Client: &http.Client{Transport: tr}, Log: log}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	return c
}

// pullTestConfig is what a test may change before newTestPuller builds a
// puller: the registry client's configuration and the puller's knobs.
type pullTestConfig struct {
	registry.Config
	ReuseModelsDirs []string
	fsType          func(dir string) string
}

// newTestPuller is newTestRegistryClient's client inside a model puller.
func newTestPuller(t *testing.T, registryURL string, mods ...func(*pullTestConfig)) *Puller {
	t.Helper()
	var cfg pullTestConfig
	c := newTestRegistryClient(t, registryURL, func(rc *registry.Config) {
		cfg.Config = *rc
		for _, m := range mods {
			m(&cfg)
		}
		*rc = cfg.Config
	})
	p := NewPuller(c)
	p.ReuseModelsDirs = cfg.ReuseModelsDirs
	if cfg.fsType != nil {
		p.FSType = cfg.fsType
	}
	return p
}

func TestPull(t *testing.T) {
	tests := []struct {
		name     string
		opts     []testkit.FakeOption
		withUser bool
	}{
		{"redirect to CDN", nil, false},
		{"bearer token", []testkit.FakeOption{testkit.WithTokenAuth("token")}, false},
		{"bearer access_token", []testkit.FakeOption{testkit.WithTokenAuth("access_token")}, false},
		{"direct blobs", []testkit.FakeOption{testkit.WithDirectBlobs()}, false},
		{"basic auth", []testkit.FakeOption{testkit.WithBasicAuth()}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t, tc.opts...)
			m := testkit.TinyModel(f, "tiny", "latest")
			registryURL := f.URL
			if tc.withUser {
				registryURL = "http://" + testkit.FakeUser + ":" + testkit.FakePassword + "@" + f.Host
			}
			c := newTestPuller(t, registryURL)
			out := t.TempDir()
			var phases []string
			var last PullProgress
			res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Retries: -1, Progress: func(p PullProgress) {
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
				}
				last = p
			}})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if want := filepath.Join(out, "tiny-latest.zip"); res.Path != want {
				t.Errorf("Path = %q, want %q", res.Path, want)
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))
			if _, err := os.Stat(filepath.Join(out, ".staging")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("staging folder left behind: %v", err)
			}
			if want := []string{"resolving", "downloading", "verifying", "packaging"}; !slices.Equal(phases, want) {
				t.Errorf("phases = %v, want %v", phases, want)
			}
			var total int64
			for _, b := range m.Blobs {
				total += int64(len(b))
			}
			if last.Done != total || last.Total != total {
				t.Errorf("last progress = %+v, want Done = Total = %d", last, total)
			}

			f.Mu.Lock()
			defer f.Mu.Unlock()
			if f.CDNAuthRejected != 0 {
				t.Errorf("the CDN received the registry's Authorization %d times", f.CDNAuthRejected)
			}
			for d := range m.Blobs {
				hits := f.RegistryBlobHits[d]
				if !f.Direct {
					hits = f.CDNHits[d]
				}
				if hits != 1 {
					t.Errorf("blob %s fetched %d times, want once", d[:19], hits)
				}
			}
			if strings.Contains(tc.name, "token") && f.TokenHits != 1 {
				t.Errorf("token requested %d times, want once (cached per scope)", f.TokenHits)
			}
			ua := regexp.MustCompile(`^ollama/0\.13\.0 \([a-z0-9]+ [a-z0-9]+\) Go/go1\.`)
			for _, got := range f.UserAgents {
				if !ua.MatchString(got) {
					t.Errorf("User-Agent %q is not Ollama's form", got)
					break
				}
			}
			for _, got := range f.Accepts {
				if !strings.HasPrefix(got, registry.MediaDockerManifest+",") || !strings.Contains(got, registry.MediaOCIIndex) || !strings.Contains(got, registry.MediaDockerList) || !strings.Contains(got, registry.MediaOCIManifest) {
					t.Errorf("Accept = %q, want Docker v2 first and the OCI and list types", got)
				}
			}
		})
	}
}

func TestPullKeepStaging(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "v1")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	name, err := registry.ParseName("tiny:v1", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny:v1", OutputDir: out, KeepStaging: true, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := testkit.ExpectedTree(f.Host, "library", "tiny", "v1", m)
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), want)
	staging := PullStagingDir(out, name)
	if rel, err := filepath.Rel(filepath.Join(out, ".staging"), staging); err != nil || strings.Contains(rel, string(filepath.Separator)) {
		t.Errorf("staging %s is not one folder under .staging", staging)
	}
	testkit.CompareZipTree(t, testkit.StagingTree(t, staging), want)

	if err := RemovePullStaging(out, name); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != "tiny-v1.zip" {
		t.Errorf("after removePullStaging the output folder holds %v, want only the zip", entries)
	}
}

// TestPullReplacesForeignStagedBlob: a file in staging under a blob's name
// that is not that blob is replaced, not trusted and not fatal.
func TestPullReplacesForeignStagedBlob(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	name, err := registry.ParseName("tiny", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range m.Blobs {
		// Same size, other bytes: only the digest can tell.
		testkit.WriteTestFile(t, filepath.Join(PullStagingDir(out, name), "blobs", "sha256-"+strings.TrimPrefix(d, "sha256:")), strings.Repeat("x", len(b)))
	}
	res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))
}

func TestPullOutputAndRerun(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	out := t.TempDir()
	dest := filepath.Join(t.TempDir(), "sub", "my model.zip")
	res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != dest {
		t.Errorf("Path = %q, want %q", res.Path, dest)
	}
	// The same pull again finds the zip complete: no blob is fetched, and
	// the zip is the same one, not "my model (1).zip".
	cdnBefore := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Ranges) })
	res, err = c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Count(func(f *testkit.FakeRegistry) int { return len(f.Ranges) }) - cdnBefore; n != 0 {
		t.Errorf("rerun fetched %d blobs, want none", n)
	}
	if res.Path != dest {
		t.Errorf("rerun Path = %q, want %q", res.Path, dest)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, dest), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))

	// The tag moved: the new model goes beside the old zip, never over it.
	m2 := f.AddModel("library/tiny", "latest", []byte("new weights"))
	res, err = c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: out, Output: dest, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(dest), "my model (1).zip"); res.Path != want {
		t.Errorf("moved tag Path = %q, want %q", res.Path, want)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m2))
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, dest), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))
}

func TestPullDigest(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	hexDigest := strings.TrimPrefix(m.Digest, "sha256:")

	res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny@" + m.Digest, OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := "tiny-sha256-" + hexDigest[:12] + ".zip"; filepath.Base(res.Path) != want {
		t.Errorf("zip name = %q, want %q", filepath.Base(res.Path), want)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "sha256-"+hexDigest, m))

	// A registry that serves other bytes for a digest is caught.
	f.Set(func(f *testkit.FakeRegistry) { f.ServeManifest[m.Digest] = append(bytes.Clone(m.Manifest), ' ') })
	out := t.TempDir()
	_, err = c.Pull(t.Context(), PullRequest{Ref: "tiny@" + m.Digest, OutputDir: out, Retries: -1})
	if !errors.Is(err, fault.ErrChecksumMismatch) {
		t.Fatalf("tampered manifest: err = %v, want ErrChecksumMismatch", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("files written despite the bad manifest: %v", entries)
	}
}

func TestPullIndex(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	amd := f.AddModel("library/multi", "", testkit.TestBytes(10<<10, 2), []byte("amd64 template"))
	arm := f.AddModel("library/multi", "", testkit.TestBytes(10<<10, 3), []byte("arm64 template"))
	f.AddIndex("library/multi", "latest", map[string]testkit.FakeModel{"linux/amd64": amd, "linux/arm64": arm})

	for _, tc := range []struct {
		platform string
		want     testkit.FakeModel
	}{{"linux/arm64", arm}, {"linux/amd64", amd}} {
		t.Run(tc.platform, func(t *testing.T) {
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Platform = tc.platform })
			res, err := c.Pull(t.Context(), PullRequest{Ref: "multi", OutputDir: t.TempDir(), Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "multi", "latest", tc.want))
		})
	}
	t.Run("no match", func(t *testing.T) {
		c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Platform = "windows/amd64" })
		_, err := c.Pull(t.Context(), PullRequest{Ref: "multi", OutputDir: t.TempDir(), Retries: -1})
		if !errors.Is(err, fault.ErrNotFound) || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64") {
			t.Fatalf("err = %v, want ErrNotFound listing linux/amd64, linux/arm64", err)
		}
	})
}

func TestPullErrors(t *testing.T) {
	const upgrade = "The model you are attempting to pull requires a newer version of Ollama. Please download the latest version at: https://ollama.com/download"
	tests := []struct {
		name     string
		opts     []testkit.FakeOption
		ref      string
		manifest string // raw manifest stored as library/bad:latest
		wantIs   error
		wantMsg  string
	}{
		{name: "unknown tag", ref: "tiny:nosuch", wantIs: fault.ErrNotFound, wantMsg: "unknown model or tag"},
		{name: "unknown model", ref: "nosuch", wantIs: fault.ErrNotFound, wantMsg: "library/nosuch:latest: not found"},
		{name: "412 upgrade", opts: []testkit.FakeOption{testkit.WithManifestStatus(412, upgrade)}, ref: "tiny", wantMsg: upgrade},
		{name: "403 blocked", opts: []testkit.FakeOption{testkit.WithManifestStatus(403, "Forbidden")}, ref: "tiny", wantMsg: "try a proxy"},
		{name: "401 no challenge", opts: []testkit.FakeOption{testkit.WithTokenAuth("nochallenge")}, ref: "tiny", wantMsg: registry.EnvRegistryUser},
		{name: "basic without credentials", opts: []testkit.FakeOption{testkit.WithBasicAuth()}, ref: "tiny", wantMsg: "requires credentials"},
		{name: "bad name", ref: "../etc/passwd", wantIs: fault.ErrBadInput, wantMsg: "host \"..\": must start"},
		{name: "digest escapes", ref: "bad", wantMsg: "invalid blob digest",
			manifest: `{"schemaVersion":2,"config":{"digest":"sha256:../../../../etc/passwd","size":1},"layers":[]}`},
		{name: "upper-case digest", ref: "bad", wantMsg: "invalid blob digest",
			manifest: `{"schemaVersion":2,"config":{"digest":"sha256:` + strings.Repeat("A", 64) + `","size":1},"layers":[]}`},
		{name: "two sizes", ref: "bad", wantMsg: "two sizes",
			manifest: `{"schemaVersion":2,"config":{"digest":"` + testkit.TestDigest + `","size":1},"layers":[{"digest":"` + testkit.TestDigest + `","size":2}]}`},
		{name: "schema 1", ref: "bad", wantMsg: "schemaVersion 1", manifest: `{"schemaVersion":1}`},
		{name: "not json", ref: "bad", wantMsg: "not a registry manifest", manifest: `<html>`},
		{name: "too large", ref: "bad", wantMsg: "larger than",
			manifest: `{"schemaVersion":2,"x":"` + strings.Repeat("x", registry.MaxManifestBytes) + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t, tc.opts...)
			testkit.TinyModel(f, "tiny", "latest")
			if tc.manifest != "" {
				f.AddManifest("library/bad", "latest", registry.MediaDockerManifest, []byte(tc.manifest))
			}
			c := newTestPuller(t, f.URL)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			_, err := c.Pull(t.Context(), PullRequest{Ref: tc.ref, OutputDir: out, Retries: 1})
			if err == nil {
				t.Fatal("Pull succeeded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want it to match %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantMsg)
			}
			// Nothing may be written outside the output folder, and nothing
			// at all before the manifest is accepted.
			if entries, _ := os.ReadDir(parent); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != "out" {
				t.Errorf("written beside the output folder: %v", entries)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("output folder not empty: %v", entries)
			}
			if tc.wantIs == fault.ErrBadInput && f.Count(func(f *testkit.FakeRegistry) int { return len(f.UserAgents) }) != 0 {
				t.Errorf("a request was made for an invalid name")
			}
		})
	}
}

func TestPullManifestRetry(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	c := newTestPuller(t, f.URL)
	f.Set(func(f *testkit.FakeRegistry) { f.ManifestFail = 2 })
	res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 2})
	if err != nil {
		t.Fatalf("Pull after two 503s with 2 retries: %v", err)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))

	f.Set(func(f *testkit.FakeRegistry) { f.ManifestFail = 3 })
	_, err = c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 2})
	var se *fault.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("Pull after three 503s with 2 retries: err = %v, want the 503", err)
	}
}

// TestPullOtherHostGetsNoCredentials pulls a name whose host is not the
// -registry host: the -registry credentials must not be sent there.
func TestPullOtherHostGetsNoCredentials(t *testing.T) {
	home := testkit.NewFakeRegistry(t, testkit.WithBasicAuth())
	other := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(other, "tiny", "latest")
	c := newTestPuller(t, "http://"+testkit.FakeUser+":"+testkit.FakePassword+"@"+home.Host)
	res, err := c.Pull(t.Context(), PullRequest{Ref: other.Host + "/library/tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(other.Host, "library", "tiny", "latest", m))
	if auths := other.Count(func(f *testkit.FakeRegistry) int { return len(f.Auths) }); auths != 0 {
		t.Errorf("the other registry received Authorization %d times", auths)
	}
}

func TestPullFailures(t *testing.T) {
	tests := []struct {
		name   string
		opts   []testkit.FakeOption
		ranged bool // a resume with Range must have happened
	}{
		{name: "503 then OK", opts: []testkit.FakeOption{testkit.WithFail503(2)}},
		{name: "connection dropped mid-blob", opts: []testkit.FakeOption{testkit.WithDrop(1)}, ranged: true},
		{name: "dropped, CDN URL expired", opts: []testkit.FakeOption{testkit.WithDrop(1), testkit.WithExpiringCDN()}, ranged: true},
		{name: "dropped, direct", opts: []testkit.FakeOption{testkit.WithDrop(1), testkit.WithDirectBlobs()}, ranged: true},
		{name: "corrupt once", opts: []testkit.FakeOption{testkit.WithCorrupt(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t, tc.opts...)
			m := testkit.TinyModel(f, "tiny", "latest")
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 1 })
			res, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 3})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "tiny", "latest", m))
			f.Mu.Lock()
			defer f.Mu.Unlock()
			if tc.ranged && !slices.ContainsFunc(f.Ranges, func(r string) bool { return strings.HasPrefix(r, "bytes=") && r != "bytes=0-" }) {
				t.Errorf("no resume with Range after the drop; ranges = %q", f.Ranges)
			}
			if f.ExpireCDN {
				resolved := 0
				for _, n := range f.RegistryBlobHits {
					resolved += n
				}
				if resolved != len(m.Blobs)+1 {
					t.Errorf("registry resolved blobs %d times, want %d (once more after the CDN URL expired)", resolved, len(m.Blobs)+1)
				}
			}
		})
	}
}

func TestPullBadBlobs(t *testing.T) {
	layer := testkit.TestBytes(50<<10, 4)
	tests := []struct {
		name      string
		opts      []testkit.FakeOption
		sizeDelta int64 // added to the layer's size in the manifest
		wantMsg   string
	}{
		{name: "always corrupt", opts: []testkit.FakeOption{testkit.WithCorrupt(100)}, wantMsg: "checksum mismatch"},
		{name: "size too large", sizeDelta: 10, wantMsg: "the manifest says"},
		{name: "size too small", sizeDelta: -10, wantMsg: "the manifest says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t, tc.opts...)
			cfg := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte(`{}`))
			d := f.AddBlob("application/vnd.ollama.image.model", layer)
			d.Size += tc.sizeDelta
			raw, _ := json.Marshal(testkit.FakeManifestDoc{SchemaVersion: 2, MediaType: registry.MediaDockerManifest, Config: &cfg, Layers: []testkit.FakeDescriptor{d}})
			f.AddManifest("library/bad", "latest", registry.MediaDockerManifest, raw)
			c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 1 })
			out := t.TempDir()
			const retries = 2
			_, err := c.Pull(t.Context(), PullRequest{Ref: "bad", OutputDir: out, Retries: retries})
			if !errors.Is(err, fault.ErrChecksumMismatch) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want a checksum mismatch saying %q", err, tc.wantMsg)
			}
			most := f.Count(func(f *testkit.FakeRegistry) int { return slices.Max(slices.Collect(maps.Values(f.RegistryBlobHits))) })
			if most < 1 || most > retries+1 {
				t.Errorf("a blob was requested %d times, want 1 to %d (bounded retries)", most, retries+1)
			}
			if _, err := os.Stat(filepath.Join(out, "bad-latest.zip")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a zip was written despite the bad blob")
			}
		})
	}
}

func TestPullDuplicateBlob(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	cfg := f.AddBlob("application/vnd.docker.container.image.v1+json", []byte(`{"a":1}`))
	l := f.AddBlob("application/vnd.ollama.image.model", testkit.TestBytes(20<<10, 5))
	raw, _ := json.Marshal(testkit.FakeManifestDoc{SchemaVersion: 2, MediaType: registry.MediaDockerManifest, Config: &cfg, Layers: []testkit.FakeDescriptor{l, cfg, l}})
	f.AddManifest("library/dup", "latest", registry.MediaDockerManifest, raw)
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 4 })
	var last PullProgress
	res, err := c.Pull(t.Context(), PullRequest{Ref: "dup", OutputDir: t.TempDir(), Retries: -1, Progress: func(p PullProgress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	m := testkit.FakeModel{Manifest: raw, Blobs: map[string][]byte{cfg.Digest: []byte(`{"a":1}`), l.Digest: testkit.TestBytes(20<<10, 5)}}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "dup", "latest", m))
	for _, d := range []string{cfg.Digest, l.Digest} {
		if hits := f.Count(func(f *testkit.FakeRegistry) int { return f.RegistryBlobHits[d] }); hits != 1 {
			t.Errorf("blob %s requested %d times, want once", d[:19], hits)
		}
	}
	if want := cfg.Size + l.Size; last.Total != want || last.Done != want {
		t.Errorf("progress = %+v, want Done = Total = %d (each blob counted once)", last, want)
	}
}

// TestPullResume cancels a pull while the large blob is half-way and pulls
// again: what was verified is not fetched again, the large blob continues
// from where it stopped, and the zip is complete.
func TestPullResume(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	big := testkit.TestBytes(2<<20, 6)
	m := f.AddModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
	bigDigest := testkit.DigestOf(big)
	const holdAt = 1 << 20
	f.Set(func(f *testkit.FakeRegistry) { f.Hold[bigDigest] = holdAt })
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) { cfg.Concurrency = 4 })
	out := t.TempDir()

	var smallBytes int64
	for d, b := range m.Blobs {
		if d != bigDigest {
			smallBytes += int64(len(b))
		}
	}
	name, err := registry.ParseName("big", c.DefaultHost())
	if err != nil {
		t.Fatal(err)
	}
	// The small blobs are staged as files before they are copied in.
	var small []string
	for d := range m.Blobs {
		if d != bigDigest {
			small = append(small, filepath.Join(PullStagingDir(out, name), "small", "sha256-"+strings.TrimPrefix(d, "sha256:")))
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reached := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		_, err := c.Pull(ctx, PullRequest{Ref: "big", OutputDir: out, Retries: -1, Progress: func(p PullProgress) {
			// Progress counts bytes before the engine publishes a blob:
			// wait until the small ones are recorded as verified too.
			if p.Done >= smallBytes+holdAt && testkit.AllExist(small) {
				once.Do(func() { close(reached) })
			}
		}})
		errc <- err
	}()
	select {
	case <-reached:
	case err := <-errc:
		t.Fatalf("Pull ended before the large blob was half-way: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the pull did not reach the large blob's midpoint within 10s")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Pull: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pull did not return within 10s of the cancel")
	}

	f.Set(func(f *testkit.FakeRegistry) { delete(f.Hold, bigDigest); f.Ranges = nil })
	res, err := c.Pull(t.Context(), PullRequest{Ref: "big", OutputDir: out, Retries: -1})
	if err != nil {
		t.Fatalf("resumed Pull: %v", err)
	}
	testkit.CompareZipTree(t, testkit.ReadZipTree(t, res.Path), testkit.ExpectedTree(f.Host, "library", "big", "latest", m))

	f.Mu.Lock()
	defer f.Mu.Unlock()
	for d := range m.Blobs {
		want := 1
		if d == bigDigest {
			want = 2
		}
		if got := f.CDNHits[d]; got != want {
			t.Errorf("blob %s fetched %d times, want %d", d[:19], got, want)
		}
	}
	if got := f.BytesServed[bigDigest]; got != int64(len(big)) {
		t.Errorf("large blob: %d bytes served over both runs, want %d (resumed, not restarted)", got, len(big))
	}
	if want := fmt.Sprintf("bytes=%d-", holdAt); !slices.Contains(f.Ranges, want) {
		t.Errorf("ranges on resume = %q, want %q", f.Ranges, want)
	}
}

func TestPullCDNNotResolvable(t *testing.T) {
	const cdnName = "cdn.fake-registry.test"
	f := testkit.NewFakeRegistry(t)
	f.Set(func(f *testkit.FakeRegistry) { f.CdnHost = cdnName + ":80" })
	testkit.TinyModel(f, "tiny", "latest")
	// A resolver that knows no CDN: only loopback is ever dialled.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, cdnName) {
			return nil, &net.DNSError{Err: "no such host", Name: cdnName, IsNotFound: true}
		}
		return dial(ctx, network, addr)
	}
	c := newTestPuller(t, f.URL, func(cfg *pullTestConfig) {
		cfg.Client = &http.Client{Transport: tr}
		cfg.Files.Client = cfg.Client
	})
	_, err := c.Pull(t.Context(), PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: 1})
	if err == nil || !strings.Contains(err.Error(), "cannot resolve "+cdnName+", the download host the registry redirects blobs to") {
		t.Fatalf("err = %v, want it to name the CDN host %s", err, cdnName)

	}
}
