package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/engine/enginetest"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestErrorCodes produces each failure for real where it can (httptest
// origins and proxies, a closed port, an untrusted certificate, the fake
// registry) and checks its code and that its message is one line. The
// disk ones come from a full tmpfs in TestDownloadDiskFull; bad_zip is
// the model zip reader's.
func TestErrorCodes(t *testing.T) {
	// download runs one Download of rawURL through d (testDownloader when
	// nil), without retries unless the case sets them.
	download := func(t *testing.T, d *engine.Downloader, req engine.Request) error {
		t.Helper()
		if d == nil {
			d = enginetest.NewDownloader(t)
		}
		if req.Path == "" && req.Dir == "" {
			req.Path = filepath.Join(t.TempDir(), "file.bin")
		}
		_, err := d.Download(t.Context(), req)
		return err
	}
	status := func(code int, body string) func(t *testing.T) error {
		return func(t *testing.T) error {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, body, code)
			}))
			t.Cleanup(srv.Close)
			return download(t, nil, engine.Request{URL: srv.URL + "/file.bin", Retries: 1})
		}
	}
	throughProxy := func(t *testing.T, proxy http.Handler, target string) error {
		p := httptest.NewServer(proxy)
		t.Cleanup(p.Close)
		u, _ := url.Parse(p.URL)
		d := enginetest.NewDownloader(t)
		d.Client = engine.BuildHTTPClient(http.ProxyURL(u))
		return download(t, d, engine.Request{URL: target, Retries: 0})
	}
	pull := func(t *testing.T, ref string, setup func(f *testkit.FakeRegistry), mods ...func(*modelstest.Config)) error {
		f := testkit.NewFakeRegistry(t)
		testkit.TinyModel(f, "tiny", "latest")
		if setup != nil {
			setup(f)
		}
		_, err := modelstest.NewPuller(t, f.URL, mods...).Pull(t.Context(), models.PullRequest{Ref: ref, OutputDir: t.TempDir(), Retries: 0})
		return err
	}

	tests := []struct {
		name, code string
		produce    func(t *testing.T) error
	}{
		{"404", "not_found", status(404, "no such file")},
		{"410", "not_found", status(410, "gone")},
		{"403", "forbidden", status(403, "Forbidden")},
		{"401", "unauthorized", status(401, "log in first")},
		{"429 after retries", "rate_limited", status(429, "slow down")},
		{"500 after retries, a body of several lines", "server_error", status(500, "line one\nline two\r\nline three")},
		{"418", "http_error", status(418, "teapot")},
		{"proxy answers 407", "proxy_auth", func(t *testing.T) error {
			return throughProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
				http.Error(w, "credentials please", http.StatusProxyAuthRequired)
			}), "http://"+testkit.ClosedPort(t)+"/file.bin")
		}},
		{"proxy refuses CONNECT with 407", "proxy_auth", func(t *testing.T) error {
			return throughProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusProxyAuthRequired)
			}), "https://"+testkit.ClosedPort(t)+"/file.bin")
		}},
		{"proxy refuses CONNECT with 502", "proxy", func(t *testing.T) error {
			return throughProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodConnect {
					t.Errorf("proxy got %s, want CONNECT", r.Method)
				}
				w.WriteHeader(http.StatusBadGateway)
			}), "https://"+testkit.ClosedPort(t)+"/file.bin")
		}},
		{"proxy on a dead port", "proxy", func(t *testing.T) error {
			d := enginetest.NewDownloader(t)
			d.Client = engine.BuildHTTPClient(http.ProxyURL(&url.URL{Scheme: "http", Host: testkit.ClosedPort(t)}))
			return download(t, d, engine.Request{URL: "http://" + testkit.ClosedPort(t) + "/file.bin"})
		}},
		{"host does not resolve", "dns", func(t *testing.T) error {
			// The client's own transport, with a resolver that knows no
			// names: nothing leaves loopback.
			client := engine.BuildHTTPClient(nil)
			tr := client.Transport.(*http.Transport)
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, _ := net.SplitHostPort(addr)
				return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
			}
			d := enginetest.NewDownloader(t)
			d.Client = client
			return download(t, d, engine.Request{URL: "http://cdn.nowhere.test/file.bin", Retries: 2})
		}},
		{"connection refused", "refused", func(t *testing.T) error {
			return download(t, nil, engine.Request{URL: "http://" + testkit.ClosedPort(t) + "/file.bin"})
		}},
		{"no answer in time", "timeout", func(t *testing.T) error {
			addr := testkit.SilentServer(t)
			d := enginetest.NewDownloader(t)
			d.Client.(*http.Client).Transport.(*http.Transport).ResponseHeaderTimeout = 200 * time.Millisecond
			return download(t, d, engine.Request{URL: "http://" + addr + "/file.bin"})
		}},
		{"connection closed mid-body", "network", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(100<<10), testkit.DropAfter(10<<10, 10))
			return download(t, nil, engine.Request{URL: o.FileURL(), Connections: 1})
		}},
		{"connection closed before an answer", "network", func(t *testing.T) error {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				panic(http.ErrAbortHandler)
			}))
			t.Cleanup(srv.Close)
			return download(t, nil, engine.Request{URL: srv.URL + "/file.bin"})
		}},
		{"no data for the stall timeout", "stalled", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(100<<10), testkit.StallAfter(10<<10, 10))
			d := enginetest.NewDownloader(t)
			d.StallTimeout = 200 * time.Millisecond
			return download(t, d, engine.Request{URL: o.FileURL(), Connections: 1})
		}},
		{"untrusted certificate", "tls", func(t *testing.T) error {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			t.Cleanup(srv.Close)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			return download(t, nil, engine.Request{URL: srv.URL + "/file.bin"})
		}},
		{"redirect loop", "redirect_loop", func(t *testing.T) error {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.Path, http.StatusFound)
			}))
			t.Cleanup(srv.Close)
			return download(t, nil, engine.Request{URL: srv.URL + "/file.bin", Retries: 3})
		}},
		{"checksum mismatch", "checksum", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(10<<10))
			return download(t, nil, engine.Request{URL: o.FileURL(), SHA256: strings.Repeat("0", 64)})
		}},
		{"larger than the free space", "no_space", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(10<<10))
			err := download(t, nil, engine.Request{URL: o.FileURL(), Size: 1 << 60})
			if n := o.Requests.Load(); n != 0 {
				t.Errorf("origin got %d requests before the refusal", n)
			}
			return err
		}},
		{"disk full (constructed; a real one in TestDownloadDiskFull)", "disk_full", func(t *testing.T) error {
			return disk.FullError(&os.PathError{Op: "write", Path: "x.part", Err: syscall.ENOSPC}, filepath.Join(t.TempDir(), "x"))
		}},
		{"a file where the folder must be", "permission", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(10<<10))
			inTheWay := filepath.Join(t.TempDir(), "downloads")
			if err := os.WriteFile(inTheWay, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			return download(t, nil, engine.Request{URL: o.FileURL(), Path: filepath.Join(inTheWay, "file.bin")})
		}},
		{"a read-only folder", "permission", func(t *testing.T) error {
			if os.Geteuid() == 0 {
				t.Skip("root writes anywhere; the file-in-the-way case covers permission")
			}
			o := testkit.NewOrigin(t, testkit.WithSize(10<<10))
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o755) })
			return download(t, nil, engine.Request{URL: o.FileURL(), Dir: dir})
		}},
		{"not http", "bad_url", func(t *testing.T) error {
			return download(t, nil, engine.Request{URL: "ftp://example.com/file.bin"})
		}},
		{"canceled", "canceled", func(t *testing.T) error {
			o := testkit.NewOrigin(t, testkit.WithSize(200<<10), testkit.WithThrottle(10*time.Millisecond))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			_, err := enginetest.NewDownloader(t).Download(ctx, engine.Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "x"),
				Progress: func(done, total int64) { cancel() }})
			return err
		}},
		{"unknown model", "model_not_found", func(t *testing.T) error { return pull(t, "nosuch", nil) }},
		{"registry blocks (403)", "registry_refused", func(t *testing.T) error {
			return pull(t, "tiny", func(f *testkit.FakeRegistry) {
				f.Set(func(f *testkit.FakeRegistry) { f.ManifestCode, f.ManifestBody = 403, "Forbidden" })
			})
		}},
		{"registry wants a newer client (412)", "registry_refused", func(t *testing.T) error {
			return pull(t, "tiny", func(f *testkit.FakeRegistry) {
				f.Set(func(f *testkit.FakeRegistry) { f.ManifestCode, f.ManifestBody = 412, "upgrade" })
			})
		}},
		{"registry needs credentials", "registry_auth", func(t *testing.T) error {
			return pull(t, "tiny", func(f *testkit.FakeRegistry) { f.Set(func(f *testkit.FakeRegistry) { f.Auth = "nochallenge" }) })
		}},
		{"manifest is not JSON", "bad_manifest", func(t *testing.T) error {
			return pull(t, "bad", func(f *testkit.FakeRegistry) {
				f.AddManifest("library/bad", "latest", registry.MediaDockerManifest, []byte("<html>"))
			})
		}},
		{"manifest with a bad digest", "bad_manifest", func(t *testing.T) error {
			return pull(t, "bad", func(f *testkit.FakeRegistry) {
				f.AddManifest("library/bad", "latest", registry.MediaDockerManifest, []byte(`{"schemaVersion":2,"config":{"digest":"sha256:../x","size":1},"layers":[]}`))
			})
		}},
		{"no manifest for this platform", "platform", func(t *testing.T) error {
			return pull(t, "multi", func(f *testkit.FakeRegistry) {
				f.AddIndex("library/multi", "latest", map[string]testkit.FakeModel{"linux/amd64": testkit.TinyModel(f, "tiny2", "latest")})
			}, func(cfg *modelstest.Config) { cfg.Platform = "plan9/mips" })
		}},
		{"corrupt model zip (the zip reader's sentinel)", "bad_zip", func(t *testing.T) error {
			return fmt.Errorf("reading model.zip: %w", fault.WithKind(fault.ErrBadZip, errors.New("zip: not a valid zip file")))
		}},
		{"anything else", "unknown", func(t *testing.T) error { return errors.New("something odd") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.produce(t)
			if err == nil {
				t.Fatal("no error")
			}
			if got := fault.Code(err); got != tc.code {
				t.Errorf("fault.Code(%q) = %q, want %q", err, got, tc.code)
			}
			t.Logf("%s: %v", fault.Code(err), err)
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
	if fault.Code(nil) != "" {
		t.Error("fault.Code(nil) is not empty")
	}
}
