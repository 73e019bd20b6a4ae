package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// registryBinary is Debian's docker-registry package (Docker Distribution
// 2.8), which .ci/run installs.
const registryBinary = "docker-registry"

// TestRegistryIntegration pushes a small model to a real Docker
// Distribution registry through its push API and pulls it back: once with
// blobs served by the registry, once with the redirect storage middleware
// sending blob GETs (307) to a second local server, as registry.ollama.ai
// sends them to its CDN.
func TestRegistryIntegration(t *testing.T) {
	bin := findRegistry(t)
	for _, redirect := range []bool{false, true} {
		name := "direct"
		if redirect {
			name = "redirect"
		}
		t.Run(name, func(t *testing.T) {
			reg := startDistribution(t, bin, redirect)
			m := newFakeModel(t, "tiny:latest", testBytes(256<<10, 7), []byte("{{ .Prompt }}"), []byte(`{"temperature":0}`))
			reg.push(t, "library/tiny", "latest", m)

			c := newTestPuller(t, reg.URL)
			for _, ref := range []string{reg.Host + "/library/tiny", "tiny@" + m.Digest} {
				res, err := c.Pull(t.Context(), pullRequest{Ref: ref, OutputDir: t.TempDir(), Retries: -1})
				if err != nil {
					t.Fatalf("Pull %s: %v\nregistry log:\n%s", ref, err, reg.log())
				}
				file := "latest"
				if strings.Contains(ref, "@") {
					file = "sha256-" + strings.TrimPrefix(m.Digest, "sha256:")
				}
				compareZipTree(t, readZipTree(t, res.Path), expectedTree(reg.Host, "library", "tiny", file, m))
			}
			if redirect {
				if got, want := reg.cdnHits.Load(), int64(2*len(m.Blobs)); got != want {
					t.Errorf("the blob server got %d requests, want %d (every blob through the redirect)", got, want)
				}
				if n := reg.cdnAuth.Load(); n != 0 {
					t.Errorf("the blob server saw an Authorization header %d times", n)
				}
			}
		})
	}
}

// distribution is a running docker-registry process.
type distribution struct {
	URL, Host string
	root      string // filesystem storage root
	out       *lockedBuffer
	cdnHits   atomic.Int64
	cdnAuth   atomic.Int64
}

func (d *distribution) log() string { return d.out.String() }

// startDistribution writes a config, starts the registry on a free
// loopback port and waits (bounded) until /v2/ answers. With redirect, a
// second local server plays the CDN, serving the registry's own files.
func startDistribution(t *testing.T, bin string, redirect bool) *distribution {
	t.Helper()
	dir := t.TempDir()
	d := &distribution{root: filepath.Join(dir, "storage"), out: &lockedBuffer{}}
	d.Host = freeLoopbackAddr(t)
	d.URL = "http://" + d.Host

	middleware := ""
	if redirect {
		cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.cdnHits.Add(1)
			if r.Header.Get("Authorization") != "" {
				d.cdnAuth.Add(1)
				http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
				return
			}
			// The middleware's URL is baseurl + the storage driver's path,
			// e.g. /docker/registry/v2/blobs/sha256/ab/ab…/data.
			p := path.Clean(r.URL.Path)
			if !strings.HasPrefix(p, "/docker/registry/v2/blobs/") {
				http.NotFound(w, r)
				return
			}
			f, err := os.Open(filepath.Join(d.root, filepath.FromSlash(p)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "", time.Time{}, f)
		}))
		t.Cleanup(cdn.Close)
		// Another host name for the CDN, as registry.ollama.ai's: the stock
		// Ollama follows a blob redirect only to another host.
		cdnURL := strings.Replace(cdn.URL, "127.0.0.1", "localhost", 1)
		middleware = redirectMiddleware(cdnURL)
	}
	config := distributionConfig(d.root, d.Host, middleware)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no REGISTRY_* overrides from the caller
	cmd.Stdout, cmd.Stderr = d.out, d.out
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
			t.Errorf("docker-registry did not exit within 10s of being killed")
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for attempt := 0; attempt < 300; attempt++ {
		select {
		case err := <-exited:
			t.Fatalf("docker-registry exited: %v\n%s", err, d.log())
		default:
		}
		resp, err := http.Get(d.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not answer /v2/ within 15s\n%s", d.log())
	return nil
}

// push uploads every blob (monolithic: POST, then PUT ?digest=) and the
// manifest, as `docker push` and `ollama push` do.
func (d *distribution) push(t *testing.T, repo, tag string, m fakeModel) {
	t.Helper()
	for digest, data := range m.Blobs {
		resp, err := http.Post(d.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("starting upload: %s\n%s", resp.Status, d.log())
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("upload location: %v", err)
		}
		q := loc.Query()
		q.Set("digest", digest)
		loc.RawQuery = q.Encode()
		d.put(t, loc.String(), "application/octet-stream", data)
	}
	d.put(t, d.URL+"/v2/"+repo+"/manifests/"+tag, fakeMediaManifest, m.Manifest)
}

func (d *distribution) put(t *testing.T, u, contentType string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s: %s\n%s", u, resp.Status, msg, d.log())
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago (the registry binds it itself).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a child process's output safely.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// distributionConfig is a Docker Distribution config: filesystem storage
// under root (deletes allowed, no upload purging), listening on addr, with
// the middleware section given ("" for none).
func distributionConfig(root, addr, middleware string) string {
	return fmt.Sprintf(`version: 0.1
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
%s`, root, addr, middleware)
}

// redirectMiddleware sends blob GETs to cdnURL with a 307, as
// registry.ollama.ai sends them to its CDN.
func redirectMiddleware(cdnURL string) string {
	return fmt.Sprintf("middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: %s\n", cdnURL)
}
