package engine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each connection's first request with handle, which
// writes the raw response bytes itself: net/http's server refuses to send
// a body that disagrees with its Content-Length, a lying server does not.
// n counts requests from 1. The connection is closed afterwards.
func rawServer(t *testing.T, handle func(w *bufio.Writer, r *http.Request, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var count atomic.Int64
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				r, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				w := bufio.NewWriter(conn)
				handle(w, r, int(count.Add(1)))
				w.Flush()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// writeRaw writes a status line, headers and body, always with
// Connection: close.
func writeRaw(w *bufio.Writer, status string, header map[string]string, body []byte) {
	fmt.Fprintf(w, "HTTP/1.1 %s\r\nConnection: close\r\n", status)
	for k, v := range header {
		fmt.Fprintf(w, "%s: %s\r\n", k, v)
	}
	w.WriteString("\r\n")
	w.Write(body)
}

// serveRangeRaw answers r honestly from data: 206 for "bytes=k-", else 200.
func serveRangeRaw(w *bufio.Writer, r *http.Request, data []byte) {
	h := map[string]string{"ETag": `"r1"`, "Accept-Ranges": "bytes"}
	if rg := r.Header.Get("Range"); rg != "" {
		start := testkit.ParseRangeStart(rg)
		h["Content-Range"] = fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data))
		h["Content-Length"] = strconv.Itoa(len(data) - int(start))
		writeRaw(w, "206 Partial Content", h, data[start:])
		return
	}
	h["Content-Length"] = strconv.Itoa(len(data))
	writeRaw(w, "200 OK", h, data)
}

// TestReliabilityContentLengthLargerThanBody: the first answer announces
// the whole file but the connection ends early. The download resumes
// with a Range request and ends byte-exact.
func TestReliabilityContentLengthLargerThanBody(t *testing.T) {
	data := testkit.TestBytes(200<<10, 11)
	var mu sync.Mutex
	var ranges []string
	url := rawServer(t, func(w *bufio.Writer, r *http.Request, n int) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if n == 1 {
			writeRaw(w, "200 OK", map[string]string{"Content-Length": strconv.Itoa(len(data)), "ETag": `"r1"`, "Accept-Ranges": "bytes"}, data[:70<<10])
			return // closes cleanly: the body is simply shorter than announced
		}
		serveRangeRaw(w, r, data)
	})
	path := filepath.Join(t.TempDir(), "f.bin")
	res, err := testDownloader(t).Download(t.Context(), Request{URL: url + "/f.bin", Path: path, Retries: 1, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), data) {
		t.Fatal("file differs from the origin's bytes")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[1] != "bytes=71680-" {
		t.Errorf("requests had ranges %q, want a plain GET then bytes=71680-", ranges)
	}
}

// TestReliabilityContentLengthAlwaysTooLarge: a server that keeps
// announcing more than it has never gets a short file published.
func TestReliabilityContentLengthAlwaysTooLarge(t *testing.T) {
	data := testkit.TestBytes(50<<10, 12)
	url := rawServer(t, func(w *bufio.Writer, r *http.Request, n int) {
		start := testkit.ParseRangeStart(r.Header.Get("Range"))
		if start >= int64(len(data)) {
			writeRaw(w, "416 Range Not Satisfiable", map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(data)+1000), "Content-Length": "0"}, nil)
			return
		}
		h := map[string]string{"Content-Length": strconv.Itoa(len(data) + 1000 - int(start)), "ETag": `"r1"`}
		status := "200 OK"
		if start > 0 {
			status = "206 Partial Content"
			h["Content-Range"] = fmt.Sprintf("bytes %d-%d/%d", start, len(data)+999, len(data)+1000)
		}
		writeRaw(w, status, h, data[start:])
	})
	path := filepath.Join(t.TempDir(), "f.bin")
	_, err := testDownloader(t).Download(t.Context(), Request{URL: url + "/f.bin", Path: path, Retries: 2, Connections: 1})
	if err == nil {
		t.Fatal("a file shorter than announced was accepted")
	}
	if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a short file was published (err was %v)", err)
	}
}

// TestReliabilityContentLengthSmallerThanBody: the server announces fewer
// bytes than it sends. HTTP framing ends the body at Content-Length, so the
// file holds what was announced. With -sha256 that file fails verification
// and is never published; without a digest nothing can tell, and the
// announced bytes are published (documented behaviour, like curl and wget).
func TestReliabilityContentLengthSmallerThanBody(t *testing.T) {
	data := testkit.TestBytes(50<<10, 13)
	const short = 1000
	url := rawServer(t, func(w *bufio.Writer, r *http.Request, n int) {
		writeRaw(w, "200 OK", map[string]string{"Content-Length": strconv.Itoa(len(data) - short)}, data)
	})
	t.Run("with sha256", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f.bin")
		_, err := testDownloader(t).Download(t.Context(), Request{URL: url + "/f.bin", Path: path, SHA256: testkit.Sha256Of(data), Retries: 1})
		if !errors.Is(err, fault.ErrChecksumMismatch) {
			t.Fatalf("err = %v, want ErrChecksumMismatch", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Error("an unverified file was published")
		}
		testkit.AssertNoPartial(t, path)
	})
	t.Run("without digest", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f.bin")
		res, err := testDownloader(t).Download(t.Context(), Request{URL: url + "/f.bin", Path: path, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := testkit.ReadFile(t, res.Path); !bytes.Equal(got, data[:len(data)-short]) {
			t.Errorf("file is %d bytes, want exactly the %d announced", len(got), len(data)-short)
		}
	})
}

// TestReliabilityRangeIgnoredWhenGzipAccepted: a server that may compress
// (Accept-Encoding absent or with gzip — RFC 9110 §12.5.3: no header means
// any coding is acceptable) sends the whole file gzipped and ignores Range.
// We ask for identity, so it resumes, and the file is the plain bytes.
func TestReliabilityRangeIgnoredWhenGzipAccepted(t *testing.T) {
	data := testkit.TestBytes(300<<10, 14)
	var gets, partials atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		n := gets.Add(1)
		ae := r.Header.Get("Accept-Encoding")
		if ae == "" || strings.Contains(ae, "gzip") {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
			w.Write(buf.Bytes())
			return
		}
		w.Header().Set("ETag", `"g1"`)
		if n == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:100<<10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		if r.Header.Get("Range") != "" {
			partials.Add(1)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "f.bin")
	res, err := testDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/f.bin", Path: path, Retries: 1, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), data) {
		t.Fatal("file differs from the plain bytes")
	}
	if partials.Load() == 0 {
		t.Error("no Range request was answered: the transfer restarted instead of resuming")
	}
}

// TestReliabilityHeadDisagreesWithGet: HEAD names another file and size
// than the GET serves. The GET's bytes and length are what is kept.
func TestReliabilityHeadDisagreesWithGet(t *testing.T) {
	data := testkit.TestBytes(80<<10, 15)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Disposition", `attachment; filename="head.bin"`)
			w.Header().Set("Content-Length", "999999")
			w.Header().Set("ETag", `"head"`)
			return
		}
		w.Header().Set("Content-Disposition", `attachment; filename="get.bin"`)
		w.Header().Set("ETag", `"get"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	res, err := testDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/x", Dir: dir, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != int64(len(data)) || !bytes.Equal(testkit.ReadFile(t, res.Path), data) {
		t.Fatalf("result %d bytes, want the GET's %d exactly", res.Size, len(data))
	}
	if base := filepath.Base(res.Path); filepath.Dir(res.Path) != dir || (base != "head.bin" && base != "get.bin") {
		t.Errorf("path = %s, want head.bin or get.bin in %s", res.Path, dir)
	}
}

// TestReliabilityHugeResponseHeaders: a header block over the client's
// limit (net/http's 10 MiB default) is a clear error after bounded
// attempts, never a hang or a file.
func TestReliabilityHugeResponseHeaders(t *testing.T) {
	checkHugeHeaders(t, 11<<20)
}

// TestReliabilityResponseHeadersOverOneMiB: 2 MiB of headers is no real
// server's answer; curl refuses more than 300 KB.
func TestReliabilityResponseHeadersOverOneMiB(t *testing.T) {
	checkHugeHeaders(t, 2<<20)
}

// checkHugeHeaders serves size bytes of headers and expects an error that
// names them.
func checkHugeHeaders(t *testing.T, size int) {
	t.Helper()
	value := strings.Repeat("x", 60<<10)
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		for i := 0; i*len(value) <= size; i++ {
			w.Header().Set("X-Junk-"+strconv.Itoa(i), value)
		}
		w.Write([]byte("body"))
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "f.bin")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := testDownloader(t).Download(ctx, Request{URL: srv.URL + "/f.bin", Path: path, Retries: 1})
	if err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("err = %v, want one about the response headers", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the download hung until the test's deadline")
	}
	if n := gets.Load(); n > 2 {
		t.Errorf("%d GETs for Retries: 1", n)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was published")
	}
}

// TestReliabilityRetryAfterHTTPDate: a 429 whose Retry-After is an
// HTTP-date is honoured, and a date far away is capped by maxRetryAfter.
func TestReliabilityRetryAfterHTTPDate(t *testing.T) {
	t.Run("honoured", func(t *testing.T) {
		// HTTP-dates have whole seconds: 2 s ahead is a wait of 1 to 2 s.
		when := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		o := testkit.NewOrigin(t, testkit.WithSize(10<<10), testkit.FailFirst(1, http.StatusTooManyRequests, when))
		start := time.Now()
		res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "f"), Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
			t.Errorf("retried after %v: Retry-After %q was not honoured", elapsed, when)
		}
		if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
			t.Error("bytes differ")
		}
	})
	t.Run("capped", func(t *testing.T) {
		when := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
		o := testkit.NewOrigin(t, testkit.WithSize(10<<10), testkit.FailFirst(1, http.StatusTooManyRequests, when))
		d := testDownloader(t)
		d.MaxRetryAfter = 200 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := d.Download(ctx, Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "f"), Retries: 1}); err != nil {
			t.Fatalf("err = %v: a Retry-After an hour away was not capped", err)
		}
	})
}

// TestReliabilityChangedFileSameSize: the file is replaced upstream by one
// of the same size between two connections. Only If-Range can tell; the
// result must be the new file whole, never old and new spliced.
func TestReliabilityChangedFileSameSize(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(300<<10), testkit.DropAfter(100<<10, 1))
	changed := testkit.TestBytes(len(o.Content()), 16)
	var swapped atomic.Bool
	res, err := testDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "f"), Retries: 2, Connections: 1,
		Progress: func(done, total int64) {
			if done >= 100<<10 && swapped.CompareAndSwap(false, true) {
				o.Replace(changed, `"v2"`)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), changed) {
		t.Fatal("result is not the new file: old and new bytes were spliced")
	}
}

// TestReliabilityOutputIsAFile: the output folder cannot be created (a
// file is in the way; unlike chmod this holds for root too).
func TestReliabilityOutputIsAFile(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1000))
	blocker := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(blocker, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{URL: o.FileURL(), Dir: blocker},
		{URL: o.FileURL(), Path: filepath.Join(blocker, "sub", "f.bin")},
	} {
		_, err := testDownloader(t).Download(t.Context(), req)
		if err == nil || !strings.Contains(err.Error(), blocker) {
			t.Errorf("err = %v, want one naming %s", err, blocker)
		}
	}
	if got := testkit.ReadFile(t, blocker); string(got) != "not a folder" {
		t.Error("the file in the way was changed")
	}
}

// versionedServer serves one file. Its first GET is cut after cut bytes,
// and then the file is replaced by next (a new upload between two
// connections). honourIfRange false strips If-Range, as servers that never
// implemented it do.
type versionedServer struct {
	mu      sync.Mutex
	data    []byte
	etag    string
	modTime time.Time
	next    func() ([]byte, string, time.Time)
	gets    atomic.Int64
}

func (v *versionedServer) handler(cut int, honourIfRange bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		data, etag, modTime := v.data, v.etag, v.modTime
		v.mu.Unlock()
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		if r.Method == http.MethodGet && v.gets.Add(1) == 1 {
			w.Header().Set("Last-Modified", modTime.UTC().Format(http.TimeFormat))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:cut])
			w.(http.Flusher).Flush()
			v.mu.Lock()
			v.data, v.etag, v.modTime = v.next()
			v.mu.Unlock()
			panic(http.ErrAbortHandler)
		}
		if !honourIfRange {
			r.Header.Del("If-Range")
		}
		http.ServeContent(w, r, "", modTime, bytes.NewReader(data))
	}
}

// TestReliabilityLastModifiedChanges: without an ETag, Last-Modified is
// the If-Range validator; a same-size replacement comes back whole.
func TestReliabilityLastModifiedChanges(t *testing.T) {
	old, changed := testkit.TestBytes(200<<10, 17), testkit.TestBytes(200<<10, 18)
	v := &versionedServer{data: old, modTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		next: func() ([]byte, string, time.Time) { return changed, "", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) }}
	srv := httptest.NewServer(v.handler(80<<10, true))
	t.Cleanup(srv.Close)
	res, err := testDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/f", Path: filepath.Join(t.TempDir(), "f"), Retries: 2, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), changed) {
		t.Fatal("old and new bytes were spliced")
	}
}

// TestReliabilityServerIgnoresIfRange: a server that ignores If-Range
// answers a resume with a 206 of the new version; its ETag differs from
// the one saved, and that alone must stop the splice.
func TestReliabilityServerIgnoresIfRange(t *testing.T) {
	old, changed := testkit.TestBytes(200<<10, 19), testkit.TestBytes(200<<10, 20)
	v := &versionedServer{data: old, etag: `"v1"`, modTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		next: func() ([]byte, string, time.Time) {
			return changed, `"v2"`, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		}}
	srv := httptest.NewServer(v.handler(80<<10, false))
	t.Cleanup(srv.Close)
	res, err := testDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/f", Path: filepath.Join(t.TempDir(), "f"), Retries: 2, Connections: 1})
	if err == nil && !bytes.Equal(testkit.ReadFile(t, res.Path), changed) {
		t.Fatal("old and new bytes were spliced into one file")
	}
}
