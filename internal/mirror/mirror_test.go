package mirror

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestMirror(t *testing.T, sources ...string) (*Mirror, *httptest.Server) {
	t.Helper()
	m := newModelMirror(sources, nil)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func TestMirrorServesOllamaPulls(t *testing.T) {
	m := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 150_000, 333)
	want := m.Files()
	want["manifest"] = m.Manifest.Data
	delete(want, m.Manifest.Name)

	zipDir := t.TempDir() // like <output-dir>: zips, history, state
	testkit.WriteTestZip(t, filepath.Join(zipDir, "tiny-latest.zip"), m.Entries())
	os.MkdirAll(filepath.Join(zipDir, ".history"), 0o755)
	ollamaDir := t.TempDir() // an Ollama models folder
	testkit.WriteTestFolder(t, ollamaDir, m.Entries())

	tests := []struct{ name, source string }{
		{"one zip", filepath.Join(zipDir, "tiny-latest.zip")},
		{"output folder of zips", zipDir},
		{"ollama models folder", ollamaDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newTestMirror(t, tc.source)
			got := testkit.PullLikeOllama(t, srv.URL, "library/tiny", "latest")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("pulled %d files, want %d byte-exact", len(got), len(want))
			}
		})
	}
}

func TestMirrorEndpoints(t *testing.T) {
	m1 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "latest", 1, 1000)
	m2 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "tiny", "Q8", 2, 500)
	m3 := testkit.NewTestModel(t, "hf.co", "someone", "Other-Model", "gguf", 3, 200)
	dir := t.TempDir()
	testkit.WriteTestZip(t, filepath.Join(dir, "a.zip"), m1.Entries())
	testkit.WriteTestZip(t, filepath.Join(dir, "b.zip"), m2.Entries())
	testkit.WriteTestZip(t, filepath.Join(dir, "c.zip"), m3.Entries())
	testkit.WriteTestZip(t, filepath.Join(dir, "broken.zip"), m1.Entries()[1:]) // left out
	deflated := testkit.NewTestModel(t, "registry.ollama.ai", "library", "deflated", "latest", 5, 100).Entries()
	for i := range deflated {
		deflated[i].Method = zip.Deflate
	}
	testkit.WriteTestZip(t, filepath.Join(dir, "d.zip"), deflated) // left out: no Range on compressed data
	mir, srv := newTestMirror(t, dir)

	layer := m1.Blobs[m1.Order[1]]
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
		{name: "manifest ignores case", method: "GET", path: "/v2/SOMEONE/other-model/manifests/GGUF", code: 200, body: string(m3.Manifest.Data)},
		{name: "manifest without namespace", method: "GET", path: "/v2/tiny/manifests/q8", code: 200, body: string(m2.Manifest.Data)},
		{name: "manifest by digest", method: "GET", path: "/v2/library/tiny/manifests/" + m1.Digest, code: 200, body: string(m1.Manifest.Data),
			hdr: map[string]string{"Docker-Content-Digest": m1.Digest}},
		{name: "manifest HEAD", method: "HEAD", path: "/v2/library/tiny/manifests/latest", code: 200, body: "",
			hdr: map[string]string{"Content-Length": fmt.Sprint(len(m1.Manifest.Data)), "Docker-Content-Digest": m1.Digest}},
		{name: "manifest unknown tag", method: "GET", path: "/v2/library/tiny/manifests/nope", code: 404, contain: "MANIFEST_UNKNOWN"},
		{name: "blob direct", method: "GET", path: "/v2/library/tiny/blobs/" + m1.Order[1] + "?direct=1", code: 200, body: string(layer)},
		{name: "blob direct range", method: "GET", path: "/v2/library/tiny/blobs/" + m1.Order[1] + "?direct=1", header: map[string]string{"Range": "bytes=10-19"},
			code: 206, body: string(layer[10:20]), hdr: map[string]string{"Content-Range": "bytes 10-19/1000"}},
		{name: "blob HEAD", method: "HEAD", path: "/v2/library/tiny/blobs/" + m1.Order[1], code: 200, hdr: map[string]string{"Content-Length": "1000", "Docker-Content-Digest": m1.Order[1]}},
		{name: "blob redirect", method: "GET", path: "/v2/library/tiny/blobs/" + m1.Order[1], code: 307},
		{name: "blob unknown", method: "GET", path: "/v2/library/tiny/blobs/" + testkit.LayoutTestDigest([]byte("x")), code: 404, contain: "BLOB_UNKNOWN"},
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
	m4 := testkit.NewTestModel(t, "registry.ollama.ai", "library", "late", "latest", 4, 100)
	testkit.WriteTestZip(t, filepath.Join(dir, "late.zip"), m4.Entries())
	got := testkit.PullLikeOllama(t, srv.URL, "library/late", "latest")
	if !bytes.Equal(got["manifest"], m4.Manifest.Data) {
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

// TestMirrorServerLimits: the mirror's server has the web UI server's
// limits (issue 18): a header block over 64 KiB is refused, a keep-alive
// connection left idle is closed, and so is one that never finishes its
// headers.
func TestMirrorServerLimits(t *testing.T) {
	srv := NewServer(newModelMirror([]string{t.TempDir()}, nil), slog.New(slog.DiscardHandler))
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

// TestMirrorRoundTripWithRegistryClient: a model pulled from a registry
// into a zip, served by the mirror, and pulled again by this tool's own
// registry client gives the same files; only the host folder of the
// manifest names the mirror instead, as Ollama's would.
func TestMirrorRoundTripWithRegistryClient(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	first, err := modelstest.NewPuller(t, f.URL).Pull(t.Context(), models.PullRequest{Ref: "tiny", OutputDir: t.TempDir(), Retries: -1})
	if err != nil {
		t.Fatalf("pull from the registry: %v", err)
	}
	if !models.VerifyAndReport(t.Context(), first.Path, io.Discard) {
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
	c := modelstest.NewPuller(t, srv.URL)
	for _, tc := range []struct{ ref, file string }{
		{"tiny", "latest"},
		{"tiny@" + m.Digest, "sha256-" + strings.TrimPrefix(m.Digest, "sha256:")},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			again, err := c.Pull(t.Context(), models.PullRequest{Ref: tc.ref, OutputDir: t.TempDir(), Retries: -1})
			if err != nil {
				t.Fatalf("pull from the mirror: %v", err)
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, again.Path), testkit.ExpectedTree(mirrorHost, "library", "tiny", tc.file, m))
			if direct.Load() < int64(len(m.Blobs)) {
				t.Errorf("%d blob requests followed the redirect to the second host name, want at least %d", direct.Load(), len(m.Blobs))
			}
			if tc.file != "latest" {
				return
			}
			// The same zip as the first pull, entry for entry, apart from the host folder.
			want := map[string]testkit.ZipContent{}
			for name, c := range testkit.ReadZipTree(t, first.Path) {
				want[strings.Replace(name, "manifests/"+f.Host, "manifests/"+mirrorHost, 1)] = c
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, again.Path), want)
		})
	}
}

// TestMirrorServesKeptStaging: with -keep-staging the output folder holds
// the staged layout too; it is served even without the zip.
func TestMirrorServesKeptStaging(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	out := t.TempDir()
	res, err := modelstest.NewPuller(t, f.URL).Pull(t.Context(), models.PullRequest{Ref: "tiny", OutputDir: out, KeepStaging: true, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(res.Path); err != nil {
		t.Fatal(err)
	}
	_, srv := newTestMirror(t, out)
	got := testkit.PullLikeOllama(t, srv.URL, "library/tiny", "latest")
	if !bytes.Equal(got["manifest"], m.Manifest) || len(got) != len(m.Blobs)+1 {
		t.Errorf("kept staging not served: %d files", len(got))
	}
}
