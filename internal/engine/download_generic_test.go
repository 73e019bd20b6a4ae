package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDownloadFresh(t *testing.T) {
	o := testkit.NewOrigin(t)
	dir := t.TempDir()
	var lastDone, lastTotal int64
	res, err := testDownloader(t).Download(t.Context(), Request{
		URL: o.FileURL(), Dir: dir, Retries: -1,
		Progress: func(done, total int64) { lastDone, lastTotal = done, total },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data.bin"); res.Path != want {
		t.Errorf("path = %s, want %s", res.Path, want)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("downloaded bytes differ from the origin's")
	}
	// No checksum was asked for, so none was computed (it costs a core).
	if res.SHA256 != "" || res.Size != int64(len(o.Content())) {
		t.Errorf("result = %+v", res)
	}
	if lastDone != res.Size || lastTotal != res.Size {
		t.Errorf("last progress = %d/%d, want %d/%d", lastDone, lastTotal, res.Size, res.Size)
	}
	testkit.AssertNoPartial(t, res.Path)
}

func TestDownloadResumesAfterDroppedConnections(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.DropAfter(100<<10, 3))
	dir := t.TempDir()
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: dir, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ after resume")
	}
	ranges := o.SeenRanges()
	if len(ranges) != 4 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Errorf("GET ranges = %q, want a plain GET then three Range requests", ranges)
	}
	// Each connection moved the file forward, so Retries: 1 was enough.
	if sent, size := o.BytesSent.Load(), int64(len(o.Content())); sent > size+3*(64<<10) {
		t.Errorf("origin sent %d bytes for a %d-byte file: resume re-fetched too much", sent, size)
	}
	if got := o.IfRanges[1]; got != `"v1"` {
		t.Errorf("If-Range = %q, want the ETag", got)
	}
}

func TestDownloadServerIgnoringRangeNeverAppends(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithRanges(false), testkit.DropAfter(100<<10, 1))
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, res.Path); !bytes.Equal(got, o.Content()) {
		t.Fatalf("file is %d bytes, want the origin's %d exactly", len(got), len(o.Content()))
	}
}

func TestDownloadWrongContentRangeNeverCorrupts(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithLyingRanges(), testkit.DropAfter(50<<10, 1))
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ: a wrong 206 was spliced in")
	}
}

func TestDownloadFileChangedDuringResume(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.DropAfter(100<<10, 1))
	d := testDownloader(t)
	// After the first connection drops, the file is replaced upstream; the
	// If-Range then fails and the server sends the new file whole.
	changed := testkit.TestBytes(len(o.Content())+1000, 9)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var swapped atomic.Bool
	res, err := d.Download(ctx, Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 2,
		Progress: func(done, total int64) {
			if done >= 100<<10 && swapped.CompareAndSwap(false, true) {
				o.Replace(changed, `"v2"`)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), changed) {
		t.Fatal("result is not the new file: old and new bytes were mixed")
	}
}

func TestDownloadRetriesHonourRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.FailFirst(2, status, "1"))
			d := testDownloader(t)
			start := time.Now()
			res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "x"), Retries: 3})
			if err != nil {
				t.Fatal(err)
			}
			if elapsed := time.Since(start); elapsed < 2*time.Second {
				t.Errorf("finished after %v: Retry-After: 1 was not honoured twice", elapsed)
			}
			if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
				t.Error("bytes differ")
			}
		})
	}
}

func TestDownloadGivesUpWithLastError(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.FailFirst(1000, http.StatusInternalServerError, ""))
	path := filepath.Join(t.TempDir(), "x")
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, Retries: 2})
	if err == nil {
		t.Fatal("want an error")
	}
	if !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "try again later") {
		t.Errorf("error %q does not show the last status and body", err)
	}
	if got := o.Gets.Load(); got != 3 {
		t.Errorf("GETs = %d, want 3 (1 + 2 retries)", got)
	}
}

func TestDownloadNotFoundIsNotRetried(t *testing.T) {
	o := testkit.NewOrigin(t)
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.URL + "/missing", Dir: t.TempDir(), Retries: 5})
	var se *fault.StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("err = %v, want a 404 statusError", err)
	}
	if got := o.Requests.Load(); got > 2 {
		t.Errorf("requests = %d: a 404 was retried", got)
	}
}

func TestDownloadStallIsDroppedAndRetried(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.StallAfter(64<<10, 1))
	d := testDownloader(t)
	d.StallTimeout = 200 * time.Millisecond
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
}

func TestDownloadStallGivesUpWithErrStalled(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.StallAfter(0, 100))
	d := testDownloader(t)
	d.StallTimeout = 100 * time.Millisecond
	_, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 1})
	if !errors.Is(err, fault.ErrStalled) {
		t.Fatalf("err = %v, want errStalled", err)
	}
}

func TestDownloadTrickleIsAStall(t *testing.T) {
	// One byte every 5 ms is alive but useless: below 1 KiB per 300 ms.
	o := testkit.NewOrigin(t, testkit.WithSize(100<<10), testkit.WithTrickle(1, 5*time.Millisecond))
	d := testDownloader(t)
	d.StallTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 1})
	if !errors.Is(err, fault.ErrStalled) {
		t.Fatalf("err = %v, want errStalled for a trickle", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("gave up after %v", elapsed)
	}
}

func TestDownloadSlowButSteadyIsNotAStall(t *testing.T) {
	// 2 KiB every 50 ms is slow, but above the low-speed floor.
	o := testkit.NewOrigin(t, testkit.WithSize(40<<10), testkit.WithTrickle(2<<10, 50*time.Millisecond))
	d := testDownloader(t)
	d.StallTimeout = 300 * time.Millisecond
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 0})
	if err != nil {
		t.Fatalf("a slow, steady server was dropped: %v", err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
}

func TestDownloadChunkedWithoutLength(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithChunked())
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
}

func TestDownloadHeadRefused(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithoutHead(), testkit.WithDisposition(`attachment; filename="report.pdf"`))
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(res.Path) != "report.pdf" {
		t.Errorf("name = %s, want report.pdf from the GET fallback", filepath.Base(res.Path))
	}
}

func TestDownloadFileNames(t *testing.T) {
	tests := []struct {
		name        string
		disposition string
		path        string
		want        string
	}{
		{"persian filename*", `attachment; filename="model.bin"; filename*=UTF-8''%D9%85%D8%AF%D9%84%20%D9%81%D8%A7%D8%B1%D8%B3%DB%8C.bin`, "/x", "مدل فارسی.bin"},
		{"traversal in disposition", `attachment; filename="../../x.txt"`, "/y", "x.txt"},
		{"url path escaped", "", "/dl/%D9%81%D8%A7%DB%8C%D9%84.iso", "فایل.iso"},
		{"no name at all", "", "/", "download"},
		{"windows reserved", `attachment; filename="CON.txt"`, "/z", "_CON.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.WithPath(tc.path), testkit.WithDisposition(tc.disposition), testkit.WithSize(1000))
			dir := t.TempDir()
			res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != filepath.Join(dir, tc.want) {
				t.Errorf("path = %q, want %q", res.Path, filepath.Join(dir, tc.want))
			}
		})
	}
}

func TestDownloadNeverOverwritesAnotherFile(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1000))
	dir := t.TempDir()
	mine := []byte("my own notes")
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data (1).bin"); res.Path != want {
		t.Errorf("path = %s, want %s", res.Path, want)
	}
	if !bytes.Equal(testkit.ReadFile(t, filepath.Join(dir, "data.bin")), mine) {
		t.Error("the existing file was changed")
	}
}

func TestDownloadExplicitPathExisting(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1000))
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")

	// The same bytes already there: done without a transfer.
	if err := os.WriteFile(path, o.Content(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, SHA256: testkit.Sha256Of(o.Content())}); err != nil {
		t.Fatal(err)
	}
	if o.Gets.Load() != 0 {
		t.Errorf("GETs = %d, want 0 for a file already complete", o.Gets.Load())
	}

	// A different file there: refused, kept.
	other := testkit.TestBytes(1000, 7)
	if err := os.WriteFile(path, other, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, SHA256: testkit.Sha256Of(o.Content())})
	if !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if !bytes.Equal(testkit.ReadFile(t, path), other) {
		t.Error("the existing different file was overwritten")
	}
}

func TestDownloadChecksum(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(5000))
	dir := t.TempDir()
	path := filepath.Join(dir, "x.bin")
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, SHA256: strings.Repeat("ab", 32)})
	if !errors.Is(err, fault.ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("unverified file was published")
	}
	testkit.AssertNoPartial(t, path)

	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, SHA256: strings.ToUpper(testkit.Sha256Of(o.Content()))})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != testkit.Sha256Of(o.Content()) {
		t.Errorf("sha = %s", res.SHA256)
	}
}

func TestDownloadSizeMismatchWithExpected(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(5000))
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "b"), Size: 4000, Retries: 5})
	if !errors.Is(err, fault.ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch for a size the caller did not expect", err)
	}
}

func TestDownloadCancelKeepsPartAndResumes(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(2<<20), testkit.WithThrottle(time.Millisecond))
	dir := t.TempDir()
	path := filepath.Join(dir, "big.bin")
	ctx, cancel := context.WithCancel(t.Context())
	d := testDownloader(t)
	_, err := d.Download(ctx, Request{URL: o.FileURL(), Path: path, Progress: func(done, total int64) {
		if done > 256<<10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	st, err := ReadPartState(path)
	if err != nil || st.Saved() < 256<<10 {
		t.Fatalf("resume state = %+v, %v: progress was not saved on cancel", st, err)
	}
	o.SetThrottle(0)
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed < 256<<10 {
		t.Errorf("resumed %d bytes, want at least %d", res.Resumed, 256<<10)
	}
	if !bytes.Equal(testkit.ReadFile(t, path), o.Content()) {
		t.Error("bytes differ after resume")
	}
}

func TestDownloadTrimsUnsyncedTail(t *testing.T) {
	// A power cut can leave bytes past the last checkpoint that never
	// reached the disk intact: they must be fetched again, not trusted.
	o := testkit.NewOrigin(t, testkit.WithSize(100<<10))
	path := filepath.Join(t.TempDir(), "x.bin")
	corrupt := append(append([]byte(nil), o.Content()[:40<<10]...), bytes.Repeat([]byte{0}, 30<<10)...)
	if err := os.WriteFile(PartPath(path), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePartState(path, PartState{URL: o.FileURL(), ETag: `"v1"`, Size: int64(len(o.Content())), Committed: 40 << 10}); err != nil {
		t.Fatal(err)
	}
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 40<<10 {
		t.Errorf("resumed %d, want %d", res.Resumed, 40<<10)
	}
	if !bytes.Equal(testkit.ReadFile(t, path), o.Content()) {
		t.Error("unsynced zeros survived into the file")
	}
}

func TestDownload416MeansComplete(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(10<<10))
	path := filepath.Join(t.TempDir(), "x.bin")
	if err := os.WriteFile(PartPath(path), o.Content(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePartState(path, PartState{URL: o.FileURL(), ETag: `"v1"`, Size: int64(len(o.Content())), Committed: int64(len(o.Content()))}); err != nil {
		t.Fatal(err)
	}
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
	if got, want := o.SeenRanges(), []string{"bytes=10240-"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("GETs with ranges %q, want only %q", got, want)
	}
}

func TestDownloadFollowsRedirectAndReResolvesExpiredURL(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(300<<10), testkit.DropAfter(64<<10, 1))
	var issued atomic.Int64 // the signature currently valid at the "CDN"
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "credentials for another host", http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("sig") != fmt.Sprint(issued.Load()) {
			http.Error(w, "Request has expired", http.StatusForbidden)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = ""
		o.Serve(w, r2)
	}))
	defer cdn.Close()
	registryURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sig := issued.Add(1) // every resolve invalidates the previous URL
		http.Redirect(w, r, fmt.Sprintf("%s/files/data.bin?sig=%d", cdn.URL, sig), http.StatusTemporaryRedirect)
	}))
	defer registryURL.Close()

	// Expire the first URL as soon as the first connection drops.
	path := filepath.Join(t.TempDir(), "blob")
	d := testDownloader(t)
	var expired atomic.Bool
	res, err := d.Download(t.Context(), Request{
		URL: registryURL.URL + "/v2/m/blobs/x", Path: path, Size: int64(len(o.Content())),
		SHA256: testkit.Sha256Of(o.Content()), Header: http.Header{"Authorization": {"Bearer secret"}}, Retries: 2,
		Progress: func(done, total int64) {
			if done >= 64<<10 && expired.CompareAndSwap(false, true) {
				issued.Add(100)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
	if issued.Load() < 102 {
		t.Errorf("registry resolved %d times: the expired URL was not re-resolved", issued.Load()-100)
	}
}

func TestDownloadThroughProxyFlag(t *testing.T) {
	content := testkit.TestBytes(5000, 3)
	var sawHost atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets the absolute URL of the real target.
		sawHost.Store(r.URL.Host)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	}))
	defer proxy.Close()
	client, err := NewHTTPClient(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := testDownloader(t)
	d.Client = client
	res, err := d.Download(t.Context(), Request{URL: "http://files.example.invalid/pkg.tar.gz", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if sawHost.Load() != "files.example.invalid" {
		t.Errorf("proxy saw host %v", sawHost.Load())
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), content) || filepath.Base(res.Path) != "pkg.tar.gz" {
		t.Errorf("got %s", res.Path)
	}
}

func TestDownloadBadInput(t *testing.T) {
	tests := []struct{ name, url, sha string }{
		{"ftp", "ftp://host/x", ""},
		{"no host", "http:///x", ""},
		{"not a url", "http://[::1", ""},
		{"bad sha", "http://127.0.0.1:1/x", "xyz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := testDownloader(t).Download(t.Context(), Request{URL: tc.url, Dir: dir, SHA256: tc.sha})
			if !errors.Is(err, fault.ErrBadInput) {
				t.Fatalf("err = %v, want ErrBadInput", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("bad input wrote %d files", len(entries))
			}
		})
	}
}

func TestDownloadUnwritableFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write anywhere")
	}
	o := testkit.NewOrigin(t, testkit.WithSize(1000))
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want one naming the folder", err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in      string
		want    contentRange
		wantErr bool
	}{
		{"bytes 0-99/100", contentRange{0, 99, 100}, false},
		{"bytes 100-199/*", contentRange{100, 199, -1}, false},
		{"bytes */500", contentRange{-1, -1, 500}, false},
		{"bytes 5-4/10", contentRange{}, true},
		{"bytes 0-10/10", contentRange{}, true},
		{"bytes */*", contentRange{}, true},
		{"items 0-1/2", contentRange{}, true},
		{"bytes -1-5/10", contentRange{}, true},
		{"bytes 0-5", contentRange{}, true},
		{"", contentRange{}, true},
	}
	for _, tc := range tests {
		got, err := parseContentRange(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseContentRange(%q) = %+v, %v; want %+v, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{"Wed, 25 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Wed, 25 Nov 2026 09:00:00 GMT", 0, true},
		{"-5", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryDelayBackoffBounds(t *testing.T) {
	d := testDownloader(t)
	d.Backoff, d.MaxBackoff = 100*time.Millisecond, time.Second
	for attempt := 1; attempt <= 30; attempt++ {
		got := d.retryDelay(attempt, errors.New("boom"))
		ceiling := min(d.Backoff<<min(attempt-1, 20), d.MaxBackoff)
		if got < ceiling/2 || got > ceiling {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", attempt, got, ceiling/2, ceiling)
		}
	}
}

func TestRedactURL(t *testing.T) {
	got := RedactURL("https://user:pw@cdn.example/blob?X-Amz-Signature=abc#frag")
	if strings.Contains(got, "abc") || strings.Contains(got, "pw") {
		t.Errorf("redactURL leaked a secret: %s", got)
	}
	if _, err := url.Parse(got); err != nil {
		t.Errorf("redacted URL does not parse: %v", err)
	}
}

// FuzzParseContentRange: any header parses to a consistent range or an error.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes */5", "bytes 1-0/2", "bytes 0-9/*", "bytes 9223372036854775807-9223372036854775807/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cr, err := parseContentRange(in)
		if err != nil {
			return
		}
		if cr.start == -1 {
			if cr.total < 0 || cr.end != -1 {
				t.Fatalf("%q: unsatisfied form gave %+v", in, cr)
			}
			return
		}
		if cr.start < 0 || cr.end < cr.start || (cr.total >= 0 && cr.end >= cr.total) {
			t.Fatalf("%q parsed to an impossible range %+v", in, cr)
		}
	})
}

// TestDownloadDiskFull: a disk that fills while writing ends the download
// with one line and a .part that resumes once there is room; a file known
// to be larger than the free space is refused before any body byte.
func TestDownloadDiskFull(t *testing.T) {
	for _, conns := range []int{1, 4} {
		t.Run(fmt.Sprintf("fills while writing, %d connections", conns), func(t *testing.T) {
			dir := testkit.MountTmpfs(t, "256k")
			o := testkit.NewOrigin(t, testkit.WithSize(200<<10), testkit.WithThrottle(40*time.Millisecond))
			path := filepath.Join(dir, "big.bin")
			d := testDownloader(t)
			d.MinSegment = 16 << 10
			var logs testkit.LockedBuffer
			d.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			// Someone else fills the disk once a checkpoint is on disk.
			filled, fillErr := false, error(nil)
			req := Request{URL: o.FileURL(), Path: path, Connections: conns, Retries: 3,
				Progress: func(done, total int64) {
					if st, err := ReadPartState(path); !filled && err == nil && st.Saved() > 0 {
						filled, fillErr = true, testkit.FillDisk(dir)
					}
				}}
			_, err := d.Download(t.Context(), req)
			if fillErr != nil || !filled {
				t.Fatalf("filling the disk: filled=%v, %v (download: %v)", filled, fillErr, err)
			}
			want := "the disk is full: no space left on " + dir + "; free some space and run the same command again to resume"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
			if code := fault.Code(err); code != "disk_full" {
				t.Errorf("fault.Code = %q, want disk_full", code)
			}
			if conns == 1 {
				if n := o.Gets.Load(); n != 1 {
					t.Errorf("GETs = %d: a full disk was retried", n)
				}
			}
			if l := logs.String(); l != "" {
				t.Errorf("follow-on warnings after the one error:\n%s", l)
			}
			st, err := ReadPartState(path)
			if err != nil || st.Saved() <= 0 {
				t.Fatalf("resume state after a full disk = %+v, %v; want progress kept", st, err)
			}

			testkit.RemountTmpfs(t, dir, "2m")
			req.Progress = nil
			res, err := d.Download(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Resumed <= 0 || !bytes.Equal(testkit.ReadFile(t, path), o.Content()) {
				t.Errorf("resumed %d bytes; file equal: %v", res.Resumed, bytes.Equal(testkit.ReadFile(t, path), o.Content()))
			}
			testkit.AssertNoPartial(t, path)
		})
	}

	t.Run("size given in advance is refused before the body", func(t *testing.T) {
		dir := testkit.MountTmpfs(t, "256k")
		o := testkit.NewOrigin(t, testkit.WithSize(600<<10))
		path := filepath.Join(dir, "big.bin")
		_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, Size: 600 << 10})
		assertRefusedForSpace(t, err, dir)
		if n, b := o.Requests.Load(), o.BytesSent.Load(); n != 0 || b != 0 {
			t.Errorf("origin saw %d requests and sent %d body bytes, want none", n, b)
		}
		testkit.AssertNoTempFiles(t, dir)
	})

	t.Run("size from the HEAD is refused before the body", func(t *testing.T) {
		dir := testkit.MountTmpfs(t, "256k")
		o := testkit.NewOrigin(t, testkit.WithSize(600<<10))
		d := testDownloader(t)
		_, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
		assertRefusedForSpace(t, err, dir)
		if n, b := o.Gets.Load(), o.BytesSent.Load(); n != 0 || b != 0 {
			t.Errorf("origin answered %d GETs and sent %d body bytes, want none", n, b)
		}
		testkit.AssertNoTempFiles(t, dir) // not even the claim of the name
		testkit.RemountTmpfs(t, dir, "2m")
		res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if res.Path != filepath.Join(dir, "data.bin") || !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
			t.Errorf("after freeing space got %s, want the whole data.bin", res.Path)
		}
	})

	t.Run("size from the GET's headers is refused before the body", func(t *testing.T) {
		dir := testkit.MountTmpfs(t, "256k")
		o := testkit.NewOrigin(t, testkit.WithSize(600<<10), testkit.WithThrottle(time.Millisecond))
		path := filepath.Join(dir, "big.bin")
		_, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, Connections: 4})
		assertRefusedForSpace(t, err, dir)
		if n := o.Gets.Load(); n != 1 {
			t.Errorf("GETs = %d: the refusal was retried", n)
		}
		if fi, err := os.Stat(PartPath(path)); err == nil && fi.Size() != 0 {
			t.Errorf(".part holds %d bytes, want none read", fi.Size())
		}
	})

	t.Run("a resume needs only the rest", func(t *testing.T) {
		dir := testkit.MountTmpfs(t, "640k")
		o := testkit.NewOrigin(t, testkit.WithSize(600<<10))
		path := filepath.Join(dir, "big.bin")
		// An earlier run left 400 KiB for good: 600 KiB do not fit in what
		// is free, the missing 200 KiB do.
		have := int64(400 << 10)
		if err := os.WriteFile(PartPath(path), o.Content()[:have], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := writePartState(path, PartState{URL: o.FileURL(), ETag: `"v1"`, Size: 600 << 10, Committed: have}); err != nil {
			t.Fatal(err)
		}
		if free, _ := disk.FreeSpace(dir); free >= 600<<10 || free < 200<<10 {
			t.Fatalf("free space %d: the test needs between 200 and 600 KiB", free)
		}
		res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path, Size: 600 << 10, Connections: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Resumed != have || !bytes.Equal(testkit.ReadFile(t, path), o.Content()) {
			t.Errorf("resumed %d bytes, want %d; content equal: %v", res.Resumed, have, bytes.Equal(testkit.ReadFile(t, path), o.Content()))
		}
	})

	t.Run("an atomic write on a full disk", func(t *testing.T) {
		dir := testkit.MountTmpfs(t, "64k")
		if err := testkit.FillDisk(dir); err != nil {
			t.Fatal(err)
		}
		err := disk.WriteFileAtomic(filepath.Join(dir, "state.json"), 0o644, disk.WriteBytes(make([]byte, 8<<10)))
		if !errors.Is(err, disk.ErrNoSpace) || !strings.HasPrefix(err.Error(), "the disk is full: no space left on "+dir) {
			t.Fatalf("err = %v, want the disk-full error", err)
		}
		testkit.AssertNoTempFiles(t, dir, "filler")
	})
}

// assertRefusedForSpace checks the one-line "not enough free space" refusal.
func assertRefusedForSpace(t *testing.T, err error, dir string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), "not enough free space on "+dir+": need 614.4 kB, ") {
		t.Fatalf("err = %v, want \"not enough free space on %s: need 614.4 kB, … free\"", err, dir)
	}
	if code := fault.Code(err); code != "no_space" {
		t.Errorf("fault.Code = %q, want no_space", code)
	}
}

func TestDownloadSameNameFromTwoURLsAtOnce(t *testing.T) {
	// Two different files that the server names alike, started together,
	// must end as two files, never one shared .part.
	a := testkit.NewOrigin(t, testkit.WithSize(400<<10), testkit.WithThrottle(time.Millisecond), testkit.WithDisposition(`attachment; filename="same.bin"`))
	b := testkit.NewOrigin(t, testkit.WithSize(300<<10), testkit.WithThrottle(time.Millisecond), testkit.WithDisposition(`attachment; filename="same.bin"`))
	dir := t.TempDir()
	d := testDownloader(t)
	results := make(chan Result, 2)
	errs := make(chan error, 2)
	for _, o := range []*testkit.Origin{a, b} {
		go func() {
			res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
			results <- res
			errs <- err
		}()
	}
	got := map[string][]byte{}
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
			res := <-results
			got[res.Path] = testkit.ReadFile(t, res.Path)
		case <-time.After(30 * time.Second):
			t.Fatal("downloads did not finish")
		}
	}
	if len(got) != 2 {
		t.Fatalf("two downloads produced %d files", len(got))
	}
	for path, data := range got {
		if !bytes.Equal(data, a.Content()) && !bytes.Equal(data, b.Content()) {
			t.Errorf("%s matches neither origin", path)
		}
	}
}

// TestDownloadHeadRetryAfter: a HEAD answered 503/429 with Retry-After
// makes the next request wait that long (issue 14: it came 1 ms later).
func TestDownloadHeadRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			o := testkit.NewOrigin(t, testkit.WithSize(10<<10), testkit.FailFirstHead(1, status, "2"))
			res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 3})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
				t.Error("bytes differ")
			}
			log := o.RequestLog()
			if len(log) < 2 || log[0].Method != http.MethodHead || log[0].Status != status {
				t.Fatalf("requests = %+v, want a refused HEAD first", log)
			}
			if gap := log[1].At.Sub(log[0].At); gap < 2*time.Second {
				t.Errorf("next request (%s) %v after the HEAD's Retry-After: 2", log[1].Method, gap)
			}
		})
	}
}

func TestCheckUnchanged(t *testing.T) {
	const (
		monday  = "Mon, 02 Nov 2026 10:00:00 GMT"
		tuesday = "Tue, 03 Nov 2026 10:00:00 GMT"
	)
	// download fetches the origin's file and returns what a history record
	// keeps of it.
	download := func(t *testing.T, o *testkit.Origin) Validators {
		t.Helper()
		// An explicit path: no HEAD, so the check's requests come first.
		res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "data.bin")})
		if err != nil {
			t.Fatal(err)
		}
		return Validators{Size: res.Size, ETag: res.ETag, LastModified: res.LastModified}
	}
	// check asks, and asserts that no byte of the body was fetched.
	check := func(t *testing.T, o *testkit.Origin, prev Validators) bool {
		t.Helper()
		sent := o.BytesSent.Load()
		unchanged, err := testDownloader(t).CheckUnchanged(t.Context(), o.FileURL(), prev)
		if err != nil {
			t.Fatal(err)
		}
		if n := o.BytesSent.Load() - sent; n > 1 {
			t.Errorf("checking fetched %d body bytes", n)
		}
		return unchanged
	}
	for _, conditional := range []bool{true, false} {
		opts := func(more ...testkit.OriginOption) []testkit.OriginOption {
			if !conditional {
				more = append(more, testkit.WithoutConditional()) // the validators are compared here
			}
			return more
		}
		t.Run(fmt.Sprintf("ETag changes, server answers 304: %v", conditional), func(t *testing.T) {
			o := testkit.NewOrigin(t, opts(testkit.WithSize(20<<10))...)
			prev := download(t, o)
			if prev.ETag != `"v1"` {
				t.Fatalf("result ETag = %q, want the server's", prev.ETag)
			}
			if !check(t, o, prev) {
				t.Error("same ETag: reported changed")
			}
			last := o.RequestLog()[len(o.RequestLog())-1]
			if last.Method != http.MethodHead || last.IfNoneMatch != `"v1"` {
				t.Errorf("check sent %+v, want a HEAD with If-None-Match", last)
			}
			if conditional && last.Status != http.StatusNotModified {
				t.Errorf("status = %d, want 304", last.Status)
			}
			o.Replace(testkit.TestBytes(20<<10, 2), `"v2"`) // same size, new content
			if check(t, o, prev) {
				t.Error("new ETag: reported unchanged")
			}
			if !check(t, o, Validators{Size: prev.Size, ETag: `W/"v2"`}) {
				t.Error("weak and strong forms of one ETag: reported changed")
			}
		})
		t.Run(fmt.Sprintf("only Last-Modified, server answers 304: %v", conditional), func(t *testing.T) {
			o := testkit.NewOrigin(t, opts(testkit.WithSize(20<<10), testkit.WithoutETag(), testkit.WithLastModified(monday))...)
			prev := download(t, o)
			if prev.ETag != "" || prev.LastModified != monday {
				t.Fatalf("result validators = %+v, want only Last-Modified", prev)
			}
			if !check(t, o, prev) {
				t.Error("same Last-Modified and size: reported changed")
			}
			if last := o.RequestLog()[len(o.RequestLog())-1]; last.IfMod != monday {
				t.Errorf("check sent %+v, want If-Modified-Since", last)
			}
			o.Replace(testkit.TestBytes(30<<10, 2), "")
			o.SetLastModified(tuesday)
			if check(t, o, prev) {
				t.Error("new Last-Modified: reported unchanged")
			}
		})
	}
	t.Run("same Last-Modified, other size", func(t *testing.T) {
		o := testkit.NewOrigin(t, testkit.WithSize(20<<10), testkit.WithoutETag(), testkit.WithLastModified(monday), testkit.WithoutConditional())
		prev := download(t, o)
		o.Replace(testkit.TestBytes(21<<10, 2), "")
		if check(t, o, prev) {
			t.Error("size changed under the same Last-Modified: reported unchanged")
		}
	})
	t.Run("no validators: the size decides", func(t *testing.T) {
		o := testkit.NewOrigin(t, testkit.WithSize(20<<10), testkit.WithoutValidators())
		prev := download(t, o)
		if prev.ETag != "" || prev.LastModified != "" {
			t.Fatalf("validators = %+v, want none", prev)
		}
		if !check(t, o, prev) {
			t.Error("same size, no validators: reported changed")
		}
		o.Replace(testkit.TestBytes(25<<10, 2), "")
		if check(t, o, prev) {
			t.Error("other size: reported unchanged")
		}
	})
	t.Run("HEAD refused: a GET of byte 0", func(t *testing.T) {
		o := testkit.NewOrigin(t, testkit.WithSize(20<<10), testkit.WithoutHead())
		prev := download(t, o)
		if !check(t, o, prev) {
			t.Error("unchanged file: reported changed")
		}
		last := o.RequestLog()[len(o.RequestLog())-1]
		if last.Method != http.MethodGet || last.Range != "bytes=0-0" || last.IfNoneMatch != `"v1"` || last.Status != http.StatusNotModified {
			t.Errorf("check sent %+v, want a conditional GET of byte 0 answered 304", last)
		}
		o.Replace(testkit.TestBytes(20<<10, 2), `"v2"`)
		if check(t, o, prev) {
			t.Error("changed file: reported unchanged")
		}
	})
	t.Run("503 with Retry-After first", func(t *testing.T) {
		o := testkit.NewOrigin(t, testkit.WithSize(20<<10), testkit.FailFirstHead(1, http.StatusServiceUnavailable, "1"))
		prev := download(t, o)
		if !check(t, o, prev) {
			t.Error("unchanged file: reported changed")
		}
		log := o.RequestLog()
		var refused, next time.Time
		for _, r := range log {
			if r.Status == http.StatusServiceUnavailable {
				refused = r.At
			} else if !refused.IsZero() && next.IsZero() {
				next = r.At
			}
		}
		if refused.IsZero() || next.Sub(refused) < time.Second {
			t.Errorf("requests %+v: the answer after the 503 did not wait Retry-After: 1", log)
		}
	})
	t.Run("errors are returned", func(t *testing.T) {
		o := testkit.NewOrigin(t, testkit.WithSize(1<<10))
		d := testDownloader(t)
		if _, err := d.CheckUnchanged(t.Context(), o.URL+"/gone", Validators{Size: 1}); fault.Code(err) != "not_found" {
			t.Errorf("404: err = %v (%s)", err, fault.Code(err))
		}
		d.Retries = 0
		if _, err := d.CheckUnchanged(t.Context(), "http://"+testkit.ClosedPort(t)+"/x", Validators{Size: 1}); fault.Code(err) != "refused" {
			t.Errorf("closed port: err = %v (%s)", err, fault.Code(err))
		}
	})
}

// TestDownloadRemovesStaleSidecarTemps: a process killed while replacing
// the sidecar leaves its temp file; the resume removes it, and nothing else.
func TestDownloadRemovesStaleSidecarTemps(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	dir := t.TempDir()
	path := filepath.Join(dir, "x.bin")
	have := int64(16 << 10)
	if err := os.WriteFile(PartPath(path), o.Content()[:have], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePartState(path, PartState{URL: o.FileURL(), ETag: `"v1"`, Size: 64 << 10, Committed: have}); err != nil {
		t.Fatal(err)
	}
	stale, other := SidecarPath(path)+".tmp-3032268718", SidecarPath(path)+".tmp-notes.txt"
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != have {
		t.Errorf("resumed %d bytes, want %d", res.Resumed, have)
	}
	testkit.AssertNoTempFiles(t, dir, "x.bin", filepath.Base(other))
}

// testDownloader is a downloader with short timeouts and no proxy.
func testDownloader(t *testing.T) *Downloader {
	t.Helper()
	d := NewDownloader(BuildHTTPClient(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.Backoff = 5 * time.Millisecond
	d.MaxBackoff = 20 * time.Millisecond
	d.MaxRetryAfter = 2 * time.Second
	d.StallTimeout = 2 * time.Second
	d.CheckpointEvery = 10 * time.Millisecond
	d.BufferSize = 16 << 10
	return d
}
