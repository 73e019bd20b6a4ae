package mirror

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRangeSet(t *testing.T) {
	tests := []struct {
		name string
		add  [][2]int64
		want rangeSet
	}{
		{"empty", nil, nil},
		{"one", [][2]int64{{0, 10}}, rangeSet{{0, 10}}},
		{"contiguous writes merge", [][2]int64{{0, 10}, {10, 20}, {20, 25}}, rangeSet{{0, 25}}},
		{"apart, sorted", [][2]int64{{50, 60}, {0, 10}, {20, 30}}, rangeSet{{0, 10}, {20, 30}, {50, 60}}},
		{"a gap filled", [][2]int64{{0, 10}, {20, 30}, {10, 20}}, rangeSet{{0, 30}}},
		{"overlaps", [][2]int64{{5, 15}, {0, 10}, {12, 40}, {35, 50}}, rangeSet{{0, 50}}},
		{"inside", [][2]int64{{0, 100}, {10, 20}}, rangeSet{{0, 100}}},
		{"empty range ignored", [][2]int64{{5, 5}, {7, 3}}, nil},
		{"spanning several", [][2]int64{{0, 1}, {2, 3}, {4, 5}, {0, 5}}, rangeSet{{0, 5}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s rangeSet
			for _, r := range tc.add {
				s.add(r[0], r[1])
			}
			if !reflect.DeepEqual(s, tc.want) {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
	s := rangeSet{{0, 10}, {20, 30}}
	for _, tc := range []struct{ pos, want int64 }{{0, 10}, {9, 10}, {10, 10}, {15, 15}, {20, 30}, {29, 30}, {30, 30}} {
		if got := s.reach(tc.pos); got != tc.want {
			t.Errorf("reach(%d) = %d, want %d", tc.pos, got, tc.want)
		}
	}
}

func TestParseSingleRange(t *testing.T) {
	tests := []struct {
		header            string
		start, end        int64
		ok, unsatisfiable bool
	}{
		{"", 0, 0, false, false},
		{"bytes=0-99", 0, 100, true, false},
		{"bytes=10-", 10, 1000, true, false},
		{"bytes=990-2000", 990, 1000, true, false},
		{"bytes=-100", 900, 1000, true, false},
		{"bytes=-5000", 0, 1000, true, false},
		{"bytes=1000-", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"bytes=0-1,5-6", 0, 0, false, false},
		{"bytes=5-1", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=x-1", 0, 0, false, false},
	}
	for _, tc := range tests {
		start, end, ok, unsat := parseSingleRange(tc.header, 1000)
		if start != tc.start || end != tc.end || ok != tc.ok || unsat != tc.unsatisfiable {
			t.Errorf("parseSingleRange(%q) = %d, %d, %v, %v; want %d, %d, %v, %v", tc.header, start, end, ok, unsat, tc.start, tc.end, tc.ok, tc.unsatisfiable)
		}
	}
}

// fetchFile is a blobFetch over a real .part file that the test writes
// itself, as the engine would.
func fetchFile(t *testing.T, data []byte) (*blobFetch, *os.File) {
	t.Helper()
	part := filepath.Join(t.TempDir(), "sha256-x.part")
	f, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return newBlobFetch(testkit.DigestOf(data), int64(len(data)), part), f
}

func (f *blobFetch) writeForTest(t *testing.T, file *os.File, data []byte, start, end int64) {
	t.Helper()
	if _, err := file.WriteAt(data[start:end], start); err != nil {
		t.Fatal(err)
	}
	f.written(start, end)
}

// TestCopyRangeHoldsBackUntilVerified: a reader gets every written byte
// but the last holdback ones, and those only once the fetch is verified.
func TestCopyRangeHoldsBackUntilVerified(t *testing.T) {
	data := testkit.TestBytes(1000, 3)
	f, file := fetchFile(t, data)
	const holdback = 100
	got := &testkit.LockedBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := f.copyRange(t.Context(), got, 0, 1000, holdback, make([]byte, 64), nil)
		done <- err
	}()
	waitLen := func(n int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for len(got.String()) != n {
			select {
			case <-deadline:
				t.Fatalf("reader has %d bytes, want %d", len(got.String()), n)
			case <-time.After(time.Millisecond):
			}
		}
	}
	f.writeForTest(t, file, data, 0, 400)
	waitLen(400)
	f.writeForTest(t, file, data, 600, 1000) // a later range first: not contiguous
	f.writeForTest(t, file, data, 400, 600)
	waitLen(1000 - holdback) // everything written, the tail held back
	waitWaiting(t, f, 1)     // and the reader waits for the verdict
	select {
	case err := <-done:
		t.Fatalf("reader ended before the verdict: %v", err)
	default:
	}
	f.finish(f.part, nil, time.Now())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(got.String()), data) {
		t.Error("reader got other bytes")
	}
}

// TestCopyRangeCutOnFailure: when the fetch fails or starts over after
// bytes were sent, the reader stops with errFetchFailed, short of the end.
func TestCopyRangeCutOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(f *blobFetch)
	}{
		{"digest mismatch", func(f *blobFetch) { f.finish("", fault.ErrChecksumMismatch, time.Now()) }},
		{"engine starts over", func(f *blobFetch) { f.written(-1, -1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testkit.TestBytes(1000, 4)
			f, file := fetchFile(t, data)
			var got bytes.Buffer
			var mu sync.Mutex
			w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return got.Write(p) })
			done := make(chan error, 1)
			go func() {
				_, err := f.copyRange(t.Context(), w, 0, 1000, 100, make([]byte, 1000), nil)
				done <- err
			}()
			f.writeForTest(t, file, data, 0, 1000)
			deadline := time.After(10 * time.Second)
			for {
				mu.Lock()
				n := got.Len()
				mu.Unlock()
				if n == 900 {
					break
				}
				select {
				case <-deadline:
					t.Fatalf("reader has %d bytes", n)
				case <-time.After(time.Millisecond):
				}
			}
			tc.end(f)
			select {
			case err := <-done:
				if !errors.Is(err, errFetchFailed) {
					t.Errorf("err = %v, want errFetchFailed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("reader did not stop")
			}
			if got.Len() != 900 {
				t.Errorf("reader got %d bytes, want the 900 sent before the failure", got.Len())
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// TestServeFetch: the HTTP side — a ranged request gets 206 and its bytes;
// a failure before anything was sent is an error to answer, after that a
// cut connection.
func TestServeFetch(t *testing.T) {
	data := testkit.TestBytes(5000, 5)
	f, file := fetchFile(t, data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := serveFetch(w, r, f, 1000, make([]byte, 512)); err != nil {
			registryError(w, http.StatusBadGateway, "BLOB_UNKNOWN", err.Error())
		}
	}))
	t.Cleanup(srv.Close)
	get := func(rng string) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	f.writeForTest(t, file, data, 0, 3000)
	resp, body, err := get("bytes=100-2099")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:2100]) ||
		resp.Header.Get("Content-Range") != "bytes 100-2099/5000" {
		t.Fatalf("range while arriving: %v %v %q", err, resp.Status, resp.Header.Get("Content-Range"))
	}
	if resp, _, _ := get("bytes=6000-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end = %d", resp.StatusCode)
	}

	whole := make(chan error, 1)
	var wholeBody []byte
	go func() {
		var resp *http.Response
		var err error
		resp, wholeBody, err = get("")
		if err == nil && resp.StatusCode != http.StatusOK {
			err = errors.New(resp.Status)
		}
		whole <- err
	}()
	tail := make(chan *http.Response, 1)
	go func() { resp, _, _ := get("bytes=4500-"); tail <- resp }() // nothing of it can be sent yet
	waitWaiting(t, f, 2)                                           // both wait for bytes to come
	f.finish("", fault.ErrChecksumMismatch, time.Now())
	if err := <-whole; err == nil {
		t.Errorf("a client got the whole blob (%d bytes) of a failed fetch", len(wholeBody))
	} else if len(wholeBody) >= len(data) {
		t.Errorf("%d bytes sent of a failed fetch", len(wholeBody))
	}
	if resp := <-tail; resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a request with nothing sent yet: %v, want 502", resp)
	}
}

// TestWrittenHook: the engine tells every written range, so that a reader
// can follow: on one connection, on several, and on a resume.
func TestWrittenHook(t *testing.T) {
	const size = 3 << 20
	for _, tc := range []struct {
		name   string
		resume bool
		conns  int
	}{
		{"one connection", false, 1},
		{"several connections", false, 8},
		{"resumed", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.WithSize(size), testkit.WithThrottle(time.Millisecond))
			d := engine.NewDownloader(http.DefaultClient, slog.New(slog.DiscardHandler))
			d.Retries = 3 // tests fail fast
			d.MinSegment = 256 << 10
			d.FastLink = 1 << 50 // any link is slow: split at once
			dest := filepath.Join(t.TempDir(), "file.bin")
			var mu sync.Mutex
			var told rangeSet
			written := func(start, end int64) {
				mu.Lock()
				defer mu.Unlock()
				if start < 0 {
					told = nil
					return
				}
				told.add(start, end)
			}
			if tc.resume {
				ctx, cancel := context.WithCancel(t.Context())
				_, err := d.Download(ctx, engine.Request{URL: o.FileURL(), Path: dest, Connections: 1, Progress: func(done, _ int64) {
					if done > size/3 {
						cancel()
					}
				}})
				if err == nil {
					t.Fatal("the first run was not interrupted")
				}
				side, _ := os.ReadFile(engine.SidecarPath(dest))
				t.Logf("first run: %v; sidecar %s", err, side)
			}
			verified := 0
			sum := strings.TrimPrefix(testkit.DigestOf(o.Content()), "sha256:")
			res, err := d.Download(t.Context(), engine.Request{URL: o.FileURL(), Path: dest, Connections: tc.conns, SHA256: sum,
				Written: written, Verified: func() { verified++ }})
			if err != nil {
				t.Fatal(err)
			}
			if verified != 1 {
				t.Errorf("Verified called %d times, want 1", verified)
			}
			if tc.resume && res.Resumed == 0 {
				t.Error("nothing was resumed")
			}
			if tc.conns > 1 && o.Gets.Load() < 2 {
				t.Errorf("%d GET requests: the download did not use several connections", o.Gets.Load())
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(told, rangeSet{{0, size}}) {
				t.Errorf("told %v, want [0, %d)", told, size)
			}
		})
	}
}

// TestVerifiedHookNotOnMismatch: a file that does not match its digest is
// never announced as verified.
func TestVerifiedHookNotOnMismatch(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(100<<10))
	d := engine.NewDownloader(http.DefaultClient, slog.New(slog.DiscardHandler))
	d.Retries = 3 // tests fail fast
	_, err := d.Download(t.Context(), engine.Request{URL: o.FileURL(), Path: filepath.Join(t.TempDir(), "f"), SHA256: strings.Repeat("0", 64),
		Verified: func() { t.Error("Verified called for a file that does not match") }})
	if !errors.Is(err, fault.ErrChecksumMismatch) {
		t.Errorf("err = %v, want a checksum mismatch", err)
	}
}

// waitWaiting waits (at most 10 s) until n readers of f wait for bytes.
func waitWaiting(t *testing.T, f *blobFetch, n int32) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for f.waiting.Load() != n {
		select {
		case <-deadline:
			t.Fatalf("%d readers wait, want %d", f.waiting.Load(), n)
		case <-time.After(time.Millisecond):
		}
	}
}
