package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/testkit"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// splittingDownloader splits files of a few hundred KiB so tests stay small.
func splittingDownloader(t *testing.T) *Downloader {
	t.Helper()
	d := testDownloader(t)
	d.MinSegment = 16 << 10
	d.BufferSize = 8 << 10
	d.progressBytes = 16 << 10
	d.growEvery = 20 * time.Millisecond
	d.Connections = 8
	return d
}

func TestSegmentsThrottledUsesSeveralConnections(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(5*time.Millisecond))
	d := splittingDownloader(t)
	d.growEvery = 50 * time.Millisecond
	dir := t.TempDir()
	peak := peakConnections(t, d, Request{URL: o.FileURL(), Dir: dir, SHA256: testkit.Sha256Of(o.Content())}, o.Content())
	if peak < 4 {
		t.Errorf("at most %d connections at once on a throttled server, want connections added", peak)
	}
	if peak > 8 {
		t.Errorf("%d connections at once, above the cap of 8", peak)
	}
	testkit.AssertNoPartial(t, filepath.Join(dir, "data.bin"))
}

func TestSegmentsSingleConnectionWhenAsked(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithThrottle(time.Millisecond))
	_, err := splittingDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	if peak := o.MaxInflight.Load(); peak != 1 {
		t.Errorf("%d connections at once, want 1", peak)
	}
}

// countingTransport counts the requests a client has open at once: from
// RoundTrip until the body is closed. The server side sees a close late.
type countingTransport struct {
	base           http.RoundTripper
	inflight, peak atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	now := c.inflight.Add(1)
	for peak := c.peak.Load(); now > peak && !c.peak.CompareAndSwap(peak, now); peak = c.peak.Load() {
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		c.inflight.Add(-1)
		return nil, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	c    *countingTransport
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.c.inflight.Add(-1) })
	return b.ReadCloser.Close()
}

// peakConnections downloads req with d, checks the bytes against want, and
// returns the most requests d had open at once (counted on the client: the
// server notices a closed connection late).
func peakConnections(t *testing.T, d *Downloader, req Request, want []byte) int64 {
	t.Helper()
	counter := &countingTransport{base: BuildHTTPClient(nil).Transport}
	d.Client = &http.Client{Transport: counter, CheckRedirect: CheckRedirect}
	res, err := d.Download(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), want) {
		t.Fatal("bytes differ")
	}
	return counter.peak.Load()
}

func TestSegmentsHostCap(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(2*time.Millisecond))
	d := splittingDownloader(t)
	d.hosts.SetLimit(2)
	peak := peakConnections(t, d, Request{URL: o.FileURL(), Dir: t.TempDir()}, o.Content())
	if peak > 2 {
		t.Errorf("%d connections open at once to one host, cap is 2", peak)
	}
	if peak < 2 {
		t.Errorf("only %d connection on a throttled server with a cap of 2", peak)
	}
}

func TestSegmentsServerThatLiesAboutRanges(t *testing.T) {
	tests := []struct {
		name string
		opt  testkit.OriginOption
	}{
		{"accept-ranges but sends 200", testkit.WithFalseAcceptRanges()},
		{"wrong content-range", testkit.WithLyingRanges()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithThrottle(time.Millisecond), tc.opt)
			res, err := splittingDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 2})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
				t.Fatal("bytes differ: a bad range answer was written into the file")
			}
		})
	}
}

func TestSegmentsDroppedConnections(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(time.Millisecond), testkit.DropAfter(40<<10, 6))
	res, err := splittingDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ")
	}
}

func TestSegmentsPauseAndResume(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(2<<20), testkit.WithThrottle(2*time.Millisecond))
	path := filepath.Join(t.TempDir(), "big.bin")
	d := splittingDownloader(t)
	ctx, cancel := context.WithCancel(t.Context())
	_, err := d.Download(ctx, Request{URL: o.FileURL(), Path: path, Progress: func(done, total int64) {
		if done > 700<<10 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("want an interruption")
	}
	st, err := ReadPartState(path)
	if err != nil || len(st.Segments) == 0 {
		t.Fatalf("resume state = %+v, %v; want the missing ranges", st, err)
	}
	var missing int64
	for _, r := range st.Segments {
		missing += r[1] - r[0]
	}
	// The server notices the cancelled connections late (it writes into
	// closed sockets until one fails); count from when it has.
	for i := 0; i < 250 && o.Inflight.Load() > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	sentBefore := o.BytesSent.Load()
	o.SetThrottle(0)
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Path: path, SHA256: testkit.Sha256Of(o.Content())})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, path), o.Content()) {
		t.Fatal("bytes differ after a multi-connection resume")
	}
	if res.Resumed != int64(len(o.Content()))-missing {
		t.Errorf("resumed %d, want %d", res.Resumed, int64(len(o.Content()))-missing)
	}
	// Splitting a range cuts a connection short, so a little more than the
	// missing bytes may be sent; a full re-download is what must not happen.
	if resent := o.BytesSent.Load() - sentBefore; resent >= int64(len(o.Content())) {
		t.Errorf("resume fetched %d bytes, but only %d were missing", resent, missing)
	}
}

func TestSegmentsFileChangesMidway(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(time.Millisecond))
	original := o.Content()
	changed := testkit.TestBytes(1<<20, 42)
	var swapped atomic.Bool
	res, err := splittingDownloader(t).Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Retries: 2,
		Progress: func(done, total int64) {
			if done > 200<<10 && swapped.CompareAndSwap(false, true) {
				o.Replace(changed, `"v2"`)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Connections opened before the change may finish the old version
	// consistently; any opened after it must force a restart on the new
	// one. A mix of both is the one wrong answer.
	got := testkit.ReadFile(t, res.Path)
	if !bytes.Equal(got, changed) && !bytes.Equal(got, original) {
		t.Fatal("result mixes the old and the new version of the file")
	}
}

func TestSegmentsThroughExpiringCDN(t *testing.T) {
	// Connections drop now and then, so some must reconnect after expiry.
	o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(time.Millisecond), testkit.DropAfter(100<<10, 8))
	var issued, expiredUpTo atomic.Int64 // URLs signed up to expiredUpTo no longer work
	var refused, servedAfterRefusal atomic.Int64
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "credentials for another host", http.StatusBadRequest)
			return
		}
		sig, err := strconv.ParseInt(r.URL.Query().Get("sig"), 10, 64)
		if err != nil || sig <= expiredUpTo.Load() {
			refused.Add(1)
			http.Error(w, "expired", http.StatusForbidden)
			return
		}
		if refused.Load() > 0 {
			servedAfterRefusal.Add(1)
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = ""
		o.Serve(w, r2)
	}))
	defer cdn.Close()
	var resolves atomic.Int64
	registryURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resolves.Add(1)
		http.Redirect(w, r, fmt.Sprintf("%s/files/data.bin?sig=%d", cdn.URL, issued.Add(1)), http.StatusTemporaryRedirect)
	}))
	defer registryURL.Close()
	var expired atomic.Bool
	res, err := splittingDownloader(t).Download(t.Context(), Request{
		URL: registryURL.URL + "/v2/x/blobs/y", Path: filepath.Join(t.TempDir(), "blob"),
		Header: http.Header{"Authorization": {"Bearer registry-only"}}, SHA256: testkit.Sha256Of(o.Content()), Retries: 3,
		Progress: func(done, total int64) {
			if done > 300<<10 && expired.CompareAndSwap(false, true) {
				expiredUpTo.Store(issued.Load()) // every URL handed out so far stops working
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ")
	}
	// A request served after a refusal carries a fresh signature, which
	// only a new resolve gives. (A refused request whose range another
	// connection took over at the end needs none.)
	if servedAfterRefusal.Load() > 0 && resolves.Load() < 2 {
		t.Errorf("the registry URL was resolved %d times, yet %d requests were served after an expired one", resolves.Load(), servedAfterRefusal.Load())
	}
	t.Logf("%d requests refused as expired, %d resolves", refused.Load(), resolves.Load())
}

func TestSegmentTakeSplitsLargest(t *testing.T) {
	s := &segmentedTransfer{t: &transfer{}, minSplit: 10}
	a := &segment{pos: 0, end: 100, owned: true}
	b := &segment{pos: 100, end: 140, owned: true}
	s.segs = []*segment{a, b}
	half := s.take(nil)
	if half == nil || half.pos != 50 || half.end != 100 || a.end != 50 {
		t.Fatalf("take split into %+v and %+v, want [0,50) and [50,100)", a, half)
	}
	b.pos = 140 // b finished: its connection takes the next largest half
	next := s.take(b)
	if next == nil || next.pos != 25 || next.end != 50 || len(s.segs) != 3 {
		t.Fatalf("after b finished got %+v, segs %d", next, len(s.segs))
	}
	small := &segment{pos: 0, end: 15, owned: true}
	s.segs = []*segment{small}
	if got := s.take(nil); got != nil {
		t.Errorf("split a range below 2×minSplit: %+v", got)
	}
}

// TestSegmentsGrowWhenAFastStartSlowsDown: a server that sends the first
// bytes at full speed and then caps the connection (nginx limit_rate_after,
// a shaper's burst) must not be judged by its start alone.
func TestSegmentsGrowWhenAFastStartSlowsDown(t *testing.T) {
	content := testkit.TestBytes(2<<20, 7)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, end := int64(0), int64(len(content))
		if rg := r.Header.Get("Range"); rg != "" {
			var last int64 = -1
			if n, _ := fmt.Sscanf(rg, "bytes=%d-%d", &start, &last); n < 1 || start >= end {
				http.Error(w, "bad range "+rg, http.StatusRequestedRangeNotSatisfiable)
				return
			}
			if last >= 0 {
				end = min(end, last+1)
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, len(content)))
		}
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", strconv.FormatInt(end-start, 10))
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusPartialContent)
		}
		if r.Method == http.MethodHead {
			return
		}
		burst := int64(0)
		if r.Header.Get("Range") == "" {
			burst = 256 << 10 // only the first request starts fast
		}
		for pos := start; pos < end; {
			n := min(end-pos, 8<<10)
			if pos-start >= burst {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(4 * time.Millisecond):
				}
			}
			if _, err := w.Write(content[pos : pos+n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			pos += n
		}
	}))
	t.Cleanup(srv.Close)
	d := splittingDownloader(t)
	d.FastLink = 4 << 20 // the burst is faster, the capped rate (2 MB/s) slower
	d.growEvery = 30 * time.Millisecond
	req := Request{URL: srv.URL + "/f.bin", Dir: t.TempDir(), SHA256: testkit.Sha256Of(content)}
	if p := peakConnections(t, d, req, content); p < 4 {
		t.Errorf("at most %d connections at once after the server slowed down, want more opened", p)
	}
}

// TestSegmentShareOut: when more connections open, the first keeps only
// what is left of its equal share, and the rest is cut into equal ranges.
func TestSegmentShareOut(t *testing.T) {
	s := &segmentedTransfer{t: &transfer{}, size: 1600, minSplit: 10}
	first := &segment{pos: 40, end: 1600, owned: true}
	s.segs = []*segment{first}
	s.shareOut(16, 0, 40) // 16 shares of 100; the first has 40 of its 100
	if first.end != 100 {
		t.Fatalf("first range ends at %d, want 100 (its share less what it has)", first.end)
	}
	if len(s.segs) != 16 {
		t.Fatalf("%d ranges, want 16", len(s.segs))
	}
	next := int64(100)
	for _, seg := range s.segs[1:] {
		if seg.pos != next || seg.end-seg.pos != 100 || seg.owned {
			t.Fatalf("range %+v, want unowned [%d,%d)", seg, next, next+100)
		}
		next = seg.end
	}
	if next != 1600 {
		t.Fatalf("ranges end at %d, want 1600", next)
	}

	// Ahead of its share, the first still keeps one split size: its
	// connection may have a read in flight right at its position.
	s.segs = []*segment{{pos: 900, end: 1600, owned: true}}
	s.shareOut(16, 0, 900)
	if got := s.segs[0]; got.end != 910 {
		t.Errorf("first range ends at %d, want 910", got.end)
	}
	if len(s.segs) != 16 || s.segs[len(s.segs)-1].end != 1600 {
		t.Errorf("got %d ranges ending at %d", len(s.segs), s.segs[len(s.segs)-1].end)
	}

	// Too little left to cut: nothing changes.
	s.segs = []*segment{{pos: 1590, end: 1600, owned: true}}
	s.shareOut(16, 0, 1590)
	if len(s.segs) != 1 || s.segs[0].end != 1600 {
		t.Errorf("cut a range below the split size: %+v", s.segs)
	}
}

// TestSegmentsSpeedLimitIsNotASlowLink: under a speed limit the connection
// is slow because we hold it back; more connections would not help.
func TestSegmentsSpeedLimitIsNotASlowLink(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(384<<10))
	d := splittingDownloader(t)
	d.SetRateLimit(512 << 10)
	if p := peakConnections(t, d, Request{URL: o.FileURL(), Dir: t.TempDir()}, o.Content()); p != 1 {
		t.Errorf("%d connections at once under a speed limit, want 1", p)
	}
}

// TestSegmentsEndgameReplacesAStalledTail: when the other connections are
// done, a request still owing the last bytes of its range (here it stalls)
// is replaced by a fresh one at once, not after the stall timeout.
func TestSegmentsEndgameReplacesAStalledTail(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(256<<10), testkit.WithThrottle(2*time.Millisecond), testkit.StallAfter(8<<10, 1))
	d := splittingDownloader(t)
	d.StallTimeout = time.Minute // the stalled request would hold the file this long
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	res, err := d.Download(ctx, Request{URL: o.FileURL(), Dir: t.TempDir(), SHA256: testkit.Sha256Of(o.Content())})
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ")
	}
}

// TestSegmentTakeTail: an idle connection takes a small range whose request
// has delivered nothing for a while, whole, and stops that request (never a
// streaming one); a range taken over once is not taken again, and a large
// one is split instead.
func TestSegmentTakeTail(t *testing.T) {
	s := &segmentedTransfer{t: &transfer{}, minSplit: 10}
	var canceled error
	busy := &segment{pos: 100, end: 130, owned: true, cancel: func(err error) { canceled = err }, lastWrite: time.Now().Add(-time.Second)}
	streaming := &segment{pos: 200, end: 240, owned: true, cancel: func(error) { t.Error("a streaming request was dropped") }, lastWrite: time.Now()}
	s.segs = []*segment{busy, streaming}
	got := s.take(nil)
	if got == nil || got.pos != 100 || got.end != 130 || !got.takenOver {
		t.Fatalf("took %+v, want the whole of [100,130)", got)
	}
	if busy.end != 100 || !errors.Is(canceled, errRangeTaken) {
		t.Fatalf("old range %+v, cancel cause %v: want it emptied and its request stopped", busy, canceled)
	}
	got.cancel = func(error) { t.Error("a range taken over was taken again") }
	if again := s.take(nil); again != nil && again.pos == 100 && again.end == 130 {
		t.Fatalf("took the taken-over range again: %+v", again)
	}

	big := &segment{pos: 0, end: 100, owned: true, cancel: func(error) { t.Error("a large range was taken whole") }}
	s.segs = []*segment{big}
	if half := s.take(nil); half == nil || half.pos != 50 || big.end != 50 {
		t.Fatalf("got %+v (old %+v), want the upper half of a large range", half, big)
	}
}
