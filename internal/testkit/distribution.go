package testkit

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// registryBinary is Debian's docker-registry package (Docker Distribution
// 2.8), which .ci/run installs.
const registryBinary = "docker-registry"

// Distribution is a running docker-registry process.
type Distribution struct {
	URL, Host string
	Root      string // filesystem storage root
	Out       *LockedBuffer
	CdnHits   atomic.Int64
	CdnAuth   atomic.Int64
}

func (d *Distribution) Log() string { return d.Out.String() }

// StartDistribution writes a config, starts the registry on a free
// loopback port and waits (bounded) until /v2/ answers. With redirect, a
// second local server plays the CDN, serving the registry's own files.
func StartDistribution(t *testing.T, bin string, redirect bool) *Distribution {
	t.Helper()
	if !redirect {
		return StartDistributionWith(t, bin, nil)
	}
	return StartDistributionWith(t, bin, func(d *Distribution) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.CdnHits.Add(1)
			if r.Header.Get("Authorization") != "" {
				d.CdnAuth.Add(1)
				http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
				return
			}
			p, ok := CDNBlobPath(r)
			if !ok {
				http.NotFound(w, r)
				return
			}
			f, err := os.Open(filepath.Join(d.Root, p))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "", time.Time{}, f)
		})
	})
}

// CDNBlobPath is the storage file a CDN request names: the redirect
// middleware's URL is the base URL + the storage driver's path, e.g.
// /docker/registry/v2/blobs/sha256/ab/ab…/data. ok is false for anything else.
func CDNBlobPath(r *http.Request) (p string, ok bool) {
	clean := path.Clean(r.URL.Path)
	if !strings.HasPrefix(clean, "/docker/registry/v2/blobs/") {
		return "", false
	}
	return filepath.FromSlash(clean), true
}

// StartDistributionWith is StartDistribution with the CDN's handler made by
// cdn (nil: blobs come from the registry itself). The CDN gets another
// host name, as registry.ollama.ai's: the stock Ollama follows a blob
// redirect only to another host.
func StartDistributionWith(t *testing.T, bin string, cdn func(d *Distribution) http.Handler) *Distribution {
	t.Helper()
	dir := t.TempDir()
	d := &Distribution{Root: filepath.Join(dir, "storage"), Out: &LockedBuffer{}}
	d.Host = FreeLoopbackAddr(t)
	d.URL = "http://" + d.Host

	middleware := ""
	if cdn != nil {
		srv := httptest.NewServer(cdn(d))
		t.Cleanup(srv.Close)
		middleware = RedirectMiddleware(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	}
	config := DistributionConfig(d.Root, d.Host, middleware)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no REGISTRY_* overrides from the caller
	cmd.Stdout, cmd.Stderr = d.Out, d.Out
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
			t.Fatalf("docker-registry exited: %v\n%s", err, d.Log())
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
	t.Fatalf("docker-registry did not answer /v2/ within 15s\n%s", d.Log())
	return nil
}

// Push uploads every blob (monolithic: POST, then PUT ?digest=) and the
// manifest, as `docker push` and `ollama push` do.
func (d *Distribution) Push(t *testing.T, repo, tag string, m FakeModel) {
	t.Helper()
	for digest, data := range m.Blobs {
		resp, err := http.Post(d.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("starting upload: %s\n%s", resp.Status, d.Log())
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

func (d *Distribution) put(t *testing.T, u, contentType string, body []byte) {
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
		t.Fatalf("PUT %s: %s: %s\n%s", u, resp.Status, msg, d.Log())
	}
}

// DistributionConfig is a Docker Distribution config: filesystem storage
// under root (deletes allowed, no upload purging), listening on addr, with
// the middleware section given ("" for none).
func DistributionConfig(root, addr, middleware string) string {
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

// RedirectMiddleware sends blob GETs to cdnURL with a 307, as
// registry.ollama.ai sends them to its CDN.
func RedirectMiddleware(cdnURL string) string {
	return fmt.Sprintf("middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: %s\n", cdnURL)
}

// FindRegistry finds Debian's docker-registry, with the same rules.
func FindRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath(registryBinary)
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (apt-get install docker-registry): %v", registryBinary, err)
	}
	t.Skipf("%s not installed; apt-get install docker-registry to run this test", registryBinary)
	return ""
}
