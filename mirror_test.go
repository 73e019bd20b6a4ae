package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestMirror(t *testing.T, sources ...string) (*modelMirror, *httptest.Server) {
	t.Helper()
	m := newModelMirror(sources, nil)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

// pullLikeOllama speaks the registry protocol the way stock Ollama does
// (server/images.go, server/download.go): the manifest with a Docker v2
// Accept header, then per blob a HEAD for the size, a GET whose redirect
// policy stops at the first redirect to another host name, and ranged GETs
// against that Location. It returns the files it would write.
func pullLikeOllama(t *testing.T, base, repo, tag string) map[string][]byte {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, manifest)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != layoutTestDigest(manifest) {
		t.Errorf("Docker-Content-Digest = %q, want %q", got, layoutTestDigest(manifest))
	}
	if got := resp.Header.Get("Content-Type"); got != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest Content-Type = %q", got)
	}
	var doc struct {
		Config fakeDescriptor
		Layers []fakeDescriptor
	}
	if err := json.Unmarshal(manifest, &doc); err != nil {
		t.Fatal(err)
	}
	baseURL, _ := url.Parse(base)
	files := map[string][]byte{}
	for _, ref := range append([]fakeDescriptor{doc.Config}, doc.Layers...) {
		blobURL := base + "/v2/" + repo + "/blobs/" + ref.Digest
		head, err := client.Head(blobURL)
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != 200 || head.ContentLength != ref.Size {
			t.Fatalf("HEAD %s: %d, Content-Length %d, want 200, %d", ref.Digest, head.StatusCode, head.ContentLength, ref.Size)
		}

		stopAtOtherHost := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > 10 {
				return fmt.Errorf("too many redirects")
			}
			if r.URL.Hostname() == baseURL.Hostname() {
				return nil
			}
			return http.ErrUseLastResponse
		}}
		get, err := stopAtOtherHost.Get(blobURL)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		if get.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("GET %s: %d, want 307 to another host name", ref.Digest, get.StatusCode)
		}
		direct, err := get.Location()
		if err != nil {
			t.Fatal(err)
		}
		if direct.Hostname() == baseURL.Hostname() {
			t.Fatalf("redirect stays on host %s", direct.Hostname())
		}

		// Ollama cuts a blob into parts; three ranges here.
		var blob []byte
		for _, r := range splitRanges(ref.Size, 3) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", direct.String(), nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", r[0], r[1]-1))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("ranged GET %s: %v", direct, err)
			}
			part, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusPartialContent || int64(len(part)) != r[1]-r[0] {
				t.Fatalf("range %v: %d with %d bytes", r, resp.StatusCode, len(part))
			}
			blob = append(blob, part...)
		}
		if layoutTestDigest(blob) != ref.Digest {
			t.Fatalf("blob %s came back with digest %s", ref.Digest, layoutTestDigest(blob))
		}
		files[blobEntryName(ref.Digest)] = blob
	}
	files["manifest"] = manifest
	return files
}

func splitRanges(size int64, n int64) [][2]int64 {
	var out [][2]int64
	step := max(size/n, 1)
	for off := int64(0); off < size; off += step {
		out = append(out, [2]int64{off, min(off+step, size)})
	}
	return out
}

func TestMirrorServesOllamaPulls(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 150_000, 333)
	want := m.files()
	want["manifest"] = m.manifest.data
	delete(want, m.manifest.name)

	zipDir := t.TempDir() // like <output-dir>: zips, history, state
	writeTestZip(t, filepath.Join(zipDir, "tiny-latest.zip"), m.entries())
	os.MkdirAll(filepath.Join(zipDir, ".history"), 0o755)
	ollamaDir := t.TempDir() // an Ollama models folder
	writeTestFolder(t, ollamaDir, m.entries())

	tests := []struct{ name, source string }{
		{"one zip", filepath.Join(zipDir, "tiny-latest.zip")},
		{"output folder of zips", zipDir},
		{"ollama models folder", ollamaDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newTestMirror(t, tc.source)
			got := pullLikeOllama(t, srv.URL, "library/tiny", "latest")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("pulled %d files, want %d byte-exact", len(got), len(want))
			}
		})
	}
}

func TestMirrorEndpoints(t *testing.T) {
	m1 := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 1000)
	m2 := newTestModel(t, "registry.ollama.ai", "library", "tiny", "Q8", 2, 500)
	m3 := newTestModel(t, "hf.co", "someone", "Other-Model", "gguf", 3, 200)
	dir := t.TempDir()
	writeTestZip(t, filepath.Join(dir, "a.zip"), m1.entries())
	writeTestZip(t, filepath.Join(dir, "b.zip"), m2.entries())
	writeTestZip(t, filepath.Join(dir, "c.zip"), m3.entries())
	writeTestZip(t, filepath.Join(dir, "broken.zip"), m1.entries()[1:]) // left out
	deflated := newTestModel(t, "registry.ollama.ai", "library", "deflated", "latest", 5, 100).entries()
	for i := range deflated {
		deflated[i].method = zip.Deflate
	}
	writeTestZip(t, filepath.Join(dir, "d.zip"), deflated) // left out: no Range on compressed data
	mir, srv := newTestMirror(t, dir)

	layer := m1.blobs[m1.order[1]]
	tests := []struct {
		name    string
		method  string
		path    string
		host    string
		header  map[string]string
		code    int
		body    string // exact body, "" = not checked
		contain string // piece of the body
		hdr     map[string]string
	}{
		{name: "base", method: "GET", path: "/v2/", code: 200, body: "{}", hdr: map[string]string{"Docker-Distribution-API-Version": "registry/2.0"}},
		{name: "base without slash", method: "GET", path: "/v2", code: 200, body: "{}"},
		{name: "catalog", method: "GET", path: "/v2/_catalog", code: 200, body: `{"repositories":["library/tiny","someone/Other-Model"]}`},
		{name: "tags", method: "GET", path: "/v2/library/tiny/tags/list", code: 200, body: `{"name":"library/tiny","tags":["Q8","latest"]}`},
		{name: "tags unknown", method: "GET", path: "/v2/library/nope/tags/list", code: 404, contain: "NAME_UNKNOWN"},
		{name: "manifest ignores case", method: "GET", path: "/v2/SOMEONE/other-model/manifests/GGUF", code: 200, body: string(m3.manifest.data)},
		{name: "manifest without namespace", method: "GET", path: "/v2/tiny/manifests/q8", code: 200, body: string(m2.manifest.data)},
		{name: "manifest by digest", method: "GET", path: "/v2/library/tiny/manifests/" + m1.digest, code: 200, body: string(m1.manifest.data),
			hdr: map[string]string{"Docker-Content-Digest": m1.digest}},
		{name: "manifest HEAD", method: "HEAD", path: "/v2/library/tiny/manifests/latest", code: 200, body: "",
			hdr: map[string]string{"Content-Length": fmt.Sprint(len(m1.manifest.data)), "Docker-Content-Digest": m1.digest}},
		{name: "manifest unknown tag", method: "GET", path: "/v2/library/tiny/manifests/nope", code: 404, contain: "MANIFEST_UNKNOWN"},
		{name: "blob direct", method: "GET", path: "/v2/library/tiny/blobs/" + m1.order[1] + "?direct=1", code: 200, body: string(layer)},
		{name: "blob direct range", method: "GET", path: "/v2/library/tiny/blobs/" + m1.order[1] + "?direct=1", header: map[string]string{"Range": "bytes=10-19"},
			code: 206, body: string(layer[10:20]), hdr: map[string]string{"Content-Range": "bytes 10-19/1000"}},
		{name: "blob HEAD", method: "HEAD", path: "/v2/library/tiny/blobs/" + m1.order[1], code: 200, hdr: map[string]string{"Content-Length": "1000", "Docker-Content-Digest": m1.order[1]}},
		{name: "blob redirect", method: "GET", path: "/v2/library/tiny/blobs/" + m1.order[1], code: 307},
		{name: "blob unknown", method: "GET", path: "/v2/library/tiny/blobs/" + layoutTestDigest([]byte("x")), code: 404, contain: "BLOB_UNKNOWN"},
		{name: "blob bad digest", method: "GET", path: "/v2/library/tiny/blobs/sha256:..%2f..%2fetc", code: 400, contain: "DIGEST_INVALID"},
		{name: "push refused", method: "POST", path: "/v2/library/tiny/blobs/uploads/", code: 405, contain: "read-only"},
		{name: "delete refused", method: "DELETE", path: "/v2/library/tiny/manifests/latest", code: 405},
		{name: "not registry", method: "GET", path: "/", code: 404},
		{name: "rebinding name refused", method: "GET", path: "/v2/", host: "evil.example:80", code: 403},
		{name: "localhost accepted", method: "GET", path: "/v2/", host: "localhost", code: 200},
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.code)
			}
			if (tc.body != "" || tc.method == "HEAD") && string(body) != tc.body {
				t.Errorf("body = %.200q, want %.200q", body, tc.body)
			}
			if !strings.Contains(string(body), tc.contain) {
				t.Errorf("body %q lacks %q", body, tc.contain)
			}
			for k, v := range tc.hdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}

	// A zip added while the mirror runs is served after the next rescan.
	mir.RescanAfter = 0
	m4 := newTestModel(t, "registry.ollama.ai", "library", "late", "latest", 4, 100)
	writeTestZip(t, filepath.Join(dir, "late.zip"), m4.entries())
	got := pullLikeOllama(t, srv.URL, "library/late", "latest")
	if !bytes.Equal(got["manifest"], m4.manifest.data) {
		t.Errorf("late zip not served")
	}
}

func TestAlternateHost(t *testing.T) {
	local := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 11435}
	tests := []struct{ host, want string }{
		{"127.0.0.1:11435", "[::ffff:127.0.0.1]:11435"},
		{"[::ffff:127.0.0.1]:11435", "127.0.0.1:11435"},
		{"192.168.1.5:8000", "[::ffff:192.168.1.5]:8000"},
		{"mybox.lan:11435", "192.168.1.5:11435"},
		{"localhost:11435", "192.168.1.5:11435"},
		{"mybox.lan", "192.168.1.5:11435"},
		{"[::1]:11435", "[0000:0000:0000:0000:0000:0000:0000:0001]:11435"},
		{"[0000:0000:0000:0000:0000:0000:0000:0001]:11435", "[::1]:11435"},
		{"[fe80::1]:9", "[fe80:0000:0000:0000:0000:0000:0000:0001]:9"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.Host = tc.host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		if got := alternateHost(r); got != tc.want {
			t.Errorf("alternateHost(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

func TestRunServeModelsCommand(t *testing.T) {
	m := newTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 100)
	dir := t.TempDir()
	writeTestZip(t, filepath.Join(dir, "tiny-latest.zip"), m.entries())

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown flag", []string{"-nope"}, 2},
		{"missing source", []string{filepath.Join(dir, "missing")}, 2},
		{"bad listen address", []string{"-listen", "127.0.0.1:99999", dir}, 1},
		{"listen without port", []string{"-listen", "0.0.0.0", dir}, 2},
		{"cache size without upstream", []string{"-cache-max", "5G", dir}, 2},
		{"bad cache size", []string{"-upstream", "http://127.0.0.1:1", "-cache-max", "lots", "-output-dir", dir}, 2},
		{"bad allow", []string{"-allow", "the lan", dir}, 2},
		{"bad upstream", []string{"-upstream", "ftp://registry", "-output-dir", t.TempDir()}, 2},
		{"upstream with a path", []string{"-upstream", "https://registry.ollama.ai/v2", "-output-dir", t.TempDir()}, 2},
		{"bad proxy", []string{"-upstream", "https://registry.ollama.ai", "-proxy", "gopher://x", "-output-dir", t.TempDir()}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runServeModelsCommand(t.Context(), tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit code = %d, want %d: %s", code, tc.code, stderr.String())
			}
		})
	}

	t.Run("serves until canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stdout := &mirrorOutput{}
		done := make(chan int, 1)
		go func() {
			done <- runServeModelsCommand(ctx, []string{"-output-dir", dir, "-listen", "127.0.0.1:0"}, stdout, io.Discard)
		}()
		var addr string
		deadline := time.After(10 * time.Second)
		for addr == "" {
			select {
			case <-deadline:
				t.Fatalf("no banner: %q", stdout.String())
			case <-time.After(10 * time.Millisecond):
			}
			if _, rest, ok := strings.Cut(stdout.String(), "http://"); ok {
				if a, _, ok := strings.Cut(rest, "/v2/"); ok {
					addr = a
				}
			}
		}
		if want := "ollama pull --insecure " + addr + "/library/tiny:latest"; !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
		got := pullLikeOllama(t, "http://"+addr, "library/tiny", "latest")
		if !bytes.Equal(got["manifest"], m.manifest.data) {
			t.Errorf("manifest differs")
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit code = %d, want 0", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve-models did not stop after cancel")
		}
	})
}

// TestServeModelsCache: serve-models -upstream caches into the output
// folder, says so in its banner, and a second one on the same folder is
// refused with a clear message.
func TestServeModelsCache(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr := &mirrorOutput{}, &mirrorOutput{}
	done := make(chan int, 1)
	go func() {
		done <- runServeModelsCommand(ctx, []string{"-output-dir", out, "-listen", "127.0.0.1:0", "-upstream", f.URL, "-cache-max", "1G"}, stdout, stderr)
	}()
	addr := waitBanner(t, stdout)
	for _, want := range []string{"Caching models from " + f.URL, ".ollama-cache", "at most 1.0 GiB", "ollama pull --insecure " + addr + "/library/<model>:<tag>"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	got := pullLikeOllama(t, "http://"+addr, "library/tiny", "latest")
	if !bytes.Equal(got["manifest"], m.Manifest) {
		t.Error("manifest differs")
	}
	var second, secondErr bytes.Buffer
	if code := runServeModelsCommand(t.Context(), []string{"-output-dir", out, "-listen", "127.0.0.1:0", "-upstream", f.URL}, &second, &secondErr); code != 1 ||
		!strings.Contains(secondErr.String(), "in use by another process") {
		t.Errorf("second cache on the folder: exit %d, %s", code, secondErr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code = %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-models did not stop")
	}
	if code := runVerifyCommand(t.Context(), []string{filepath.Join(out, cacheFolderName)}, io.Discard, io.Discard); code != 0 {
		t.Errorf("verify of the cache folder: exit %d", code)
	}
}

// waitBanner waits for serve-models' first line and returns its address.
func waitBanner(t *testing.T, stdout *mirrorOutput) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, rest, ok := strings.Cut(stdout.String(), "http://"); ok {
			if a, _, ok := strings.Cut(rest, "/v2/"); ok {
				return a
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no banner: %q", stdout.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestMirrorServerLimits: the mirror's server has the web UI server's
// limits (issue 18): a header block over 64 KiB is refused, a keep-alive
// connection left idle is closed, and so is one that never finishes its
// headers.
func TestMirrorServerLimits(t *testing.T) {
	srv := newMirrorServer(newModelMirror([]string{t.TempDir()}, nil), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != 10*time.Second || srv.IdleTimeout != 2*time.Minute || srv.MaxHeaderBytes != 64<<10 {
		t.Errorf("limits = %v, %v, %d; want 10s, 2m, 64 KiB", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("ReadTimeout %v, WriteTimeout %v: a long blob would be cut", srv.ReadTimeout, srv.WriteTimeout)
	}
	srv.IdleTimeout, srv.ReadHeaderTimeout = 200*time.Millisecond, 200*time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	req, _ := http.NewRequest("GET", base+"/v2/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers = %d, want 431", resp.StatusCode)
	}

	closedAfter := func(request string) (time.Duration, error) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, conn) // a response, if any, then the close
		return time.Since(start), err
	}
	if took, err := closedAfter("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Errorf("an idle keep-alive connection was not closed: %v after %v", err, took)
	}
	if took, err := closedAfter("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
		t.Errorf("a connection that never finished its headers was not closed: %v after %v", err, took)
	}
}

// mirrorOutput is a bytes.Buffer safe to read while another goroutine writes.
type mirrorOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *mirrorOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *mirrorOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestMirrorRoundTripWithRegistryClient: a model pulled from a registry
// into a zip, served by the mirror, and pulled again by this tool's own
// registry client gives the same files; only the host folder of the
// manifest names the mirror instead, as Ollama's would.
func TestMirrorRoundTripWithRegistryClient(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	first, err := newTestPuller(t, f.URL).Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatalf("pull from the registry: %v", err)
	}
	if !verifyOne(t.Context(), first.Path, io.Discard) {
		t.Fatal("verify of the pulled zip failed")
	}

	mir := newModelMirror([]string{filepath.Dir(first.Path)}, nil)
	var direct atomic.Int64 // blob requests that arrived under the second host name
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "[::ffff:127.0.0.1]:") && strings.Contains(r.URL.Path, "/blobs/") {
			direct.Add(1)
		}
		mir.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	mirrorHost := strings.TrimPrefix(srv.URL, "http://")
	c := newTestPuller(t, srv.URL)
	for _, tc := range []struct{ ref, file string }{
		{"tiny", "latest"},
		{"tiny@" + m.Digest, "sha256-" + strings.TrimPrefix(m.Digest, "sha256:")},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			again, err := c.Pull(t.Context(), pullRequest{Ref: tc.ref, OutputDir: t.TempDir(), Retries: -1})
			if err != nil {
				t.Fatalf("pull from the mirror: %v", err)
			}
			compareZipTree(t, readZipTree(t, again.Path), expectedTree(mirrorHost, "library", "tiny", tc.file, m))
			if direct.Load() < int64(len(m.Blobs)) {
				t.Errorf("%d blob requests followed the redirect to the second host name, want at least %d", direct.Load(), len(m.Blobs))
			}
			if tc.file != "latest" {
				return
			}
			// The same zip as the first pull, entry for entry, apart from the host folder.
			want := map[string]zipContent{}
			for name, c := range readZipTree(t, first.Path) {
				want[strings.Replace(name, "manifests/"+f.Host, "manifests/"+mirrorHost, 1)] = c
			}
			compareZipTree(t, readZipTree(t, again.Path), want)
		})
	}
}

// TestMirrorServesKeptStaging: with -keep-staging the output folder holds
// the staged layout too; it is served even without the zip.
func TestMirrorServesKeptStaging(t *testing.T) {
	f := newFakeRegistry(t)
	m := tinyModel(f, "tiny", "latest")
	out := t.TempDir()
	res, err := newTestPuller(t, f.URL).Pull(t.Context(), pullRequest{Ref: "tiny", OutputDir: out, KeepStaging: true, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(res.Path); err != nil {
		t.Fatal(err)
	}
	_, srv := newTestMirror(t, out)
	got := pullLikeOllama(t, srv.URL, "library/tiny", "latest")
	if !bytes.Equal(got["manifest"], m.Manifest) || len(got) != len(m.Blobs)+1 {
		t.Errorf("kept staging not served: %d files", len(got))
	}
}
