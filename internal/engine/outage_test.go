package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// patientDownloader waits out failures as the product does (no count,
// a time budget), with short backoffs so a test's outage is seconds.
func patientDownloader(t *testing.T) *Downloader {
	t.Helper()
	d := testDownloader(t)
	d.Retries, d.RetryFor = -1, time.Minute
	d.Backoff, d.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	return d
}

// waitLog records what a transfer reported through Request.Waiting.
type waitLog struct {
	mu    sync.Mutex
	waits []Wait
	ended int
	start chan struct{} // closed at the first wait
	once  sync.Once
}

func newWaitLog() *waitLog { return &waitLog{start: make(chan struct{})} }

func (w *waitLog) hook(x Wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if x.Next.IsZero() {
		w.ended++
		return
	}
	w.waits = append(w.waits, x)
	w.once.Do(func() { close(w.start) })
}

func (w *waitLog) snapshot() ([]Wait, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Wait(nil), w.waits...), w.ended
}

// awaitFirst waits (bounded) for the first reported wait.
func (w *waitLog) awaitFirst(t *testing.T) {
	t.Helper()
	select {
	case <-w.start:
	case <-time.After(20 * time.Second):
		t.Fatal("no wait was reported")
	}
}

// TestDownloadWaitsOutAnOutage: the server goes away mid-file (stopped:
// connections refused) and comes back on the same port; the download
// waits, says so, and finishes from where it was, fetching no byte twice.
func TestDownloadWaitsOutAnOutage(t *testing.T) {
	for _, conns := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d connections", conns), func(t *testing.T) {
			o := testkit.NewOrigin(t, testkit.WithSize(1<<20), testkit.WithThrottle(5*time.Millisecond))
			d := patientDownloader(t)
			d.MinSegment, d.BufferSize, d.growEvery = 16<<10, 8<<10, 20*time.Millisecond
			waits := newWaitLog()
			var restart func()
			var once sync.Once
			stopped := make(chan struct{})
			done := make(chan struct{})
			var res Result
			var err error
			go func() {
				defer close(done)
				res, err = d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Connections: conns, Retries: -1,
					SHA256: testkit.Sha256Of(o.Content()), Waiting: waits.hook,
					Progress: func(done, total int64) {
						if done > 300<<10 {
							once.Do(func() { restart = testkit.Stop(t, o.Server); close(stopped) })
						}
					}})
			}()
			<-stopped
			waits.awaitFirst(t)
			time.Sleep(600 * time.Millisecond) // several attempts meet the closed port
			sentDuring := o.BytesSent.Load()
			restart()
			<-done
			if err != nil {
				t.Fatalf("download failed across the outage: %v", err)
			}
			if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
				t.Fatal("bytes differ after the outage")
			}
			got, ended := waits.snapshot()
			if len(got) < 2 || ended < 1 {
				t.Fatalf("waits reported: %d, ended %d; want several, then an end", len(got), ended)
			}
			if code := fault.Code(got[len(got)-1].Err); code != "refused" {
				t.Errorf("the wait's reason is %q (%v), want refused", code, got[len(got)-1].Err)
			}
			if got[len(got)-1].Attempt <= got[0].Attempt {
				t.Errorf("attempts did not count up: %+v", got)
			}
			// What went out before the stop and was lost in flight is all
			// that may be sent twice.
			if sent, size := o.BytesSent.Load(), int64(len(o.Content())); sent > size+sentDuring/4+256<<10 {
				t.Errorf("origin sent %d bytes for %d", sent, size)
			}
		})
	}
}

// TestDownloadInterruptedDuringWait: a cancel (Ctrl-C, pause) during a
// long wait ends the download at once, the .part kept for a resume.
func TestDownloadInterruptedDuringWait(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(512<<10), testkit.WithThrottle(5*time.Millisecond))
	d := patientDownloader(t)
	d.Backoff, d.MaxBackoff = time.Minute, time.Minute
	path := filepath.Join(t.TempDir(), "f.bin")
	waits := newWaitLog()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		_, err := d.Download(ctx, Request{URL: o.FileURL(), Path: path, Connections: 1, Retries: -1, Waiting: waits.hook,
			Progress: func(done, total int64) {
				if done > 100<<10 {
					once.Do(func() { testkit.Stop(t, o.Server) })
				}
			}})
		errc <- err
	}()
	waits.awaitFirst(t)
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want the cancel", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the cancel took %v during a wait", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancel during the wait did not end the download")
	}
	if st, err := ReadPartState(path); err != nil || st.Saved() < 100<<10 {
		t.Errorf("resume state after the cancel = %+v, %v; want the bytes before the outage kept", st, err)
	}
}

// TestDownloadPermanentFailureFailsAtOnce: a 404 (and the other refusals
// waiting cannot mend) fails on the first answer, with no wait, no retry
// and no file left behind, however patient the downloader.
func TestDownloadPermanentFailureFailsAtOnce(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 410} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Error(w, "no", code)
			}))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			waits := newWaitLog()
			start := time.Now()
			_, err := patientDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/f.bin", Dir: dir, Retries: -1, Waiting: waits.hook})
			if err == nil || fault.Transient(err) {
				t.Fatalf("err = %v, want a permanent failure", err)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if got, _ := waits.snapshot(); len(got) != 0 || time.Since(start) > 2*time.Second {
				t.Errorf("waited %d times (%v) before failing", len(got), time.Since(start))
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

// TestRetryBudgets: -retries counts failed attempts in a row, -retry-for
// the time without progress; either ends the wait with one line that
// names the cause once, in words.
func TestRetryBudgets(t *testing.T) {
	t.Run("retries", func(t *testing.T) {
		d := patientDownloader(t)
		d.Backoff, d.MaxBackoff = time.Millisecond, time.Millisecond
		addr := testkit.ClosedPort(t)
		_, err := d.Download(t.Context(), Request{URL: "http://" + addr + "/f.bin", Dir: t.TempDir(), Retries: 2})
		want := "connecting to " + addr + ": the connection was refused (no server listening there?); gave up after 3 attempts"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
		if detail := fault.Detail(err); !strings.Contains(detail, "connect: connection refused") {
			t.Errorf("Detail = %q, want the raw error in it", detail)
		}
		if fault.Code(err) != "refused" {
			t.Errorf("code %q", fault.Code(err))
		}
	})
	t.Run("retry-for", func(t *testing.T) {
		d := patientDownloader(t)
		d.RetryFor = 300 * time.Millisecond
		start := time.Now()
		_, err := d.Download(t.Context(), Request{URL: "http://" + testkit.ClosedPort(t) + "/f.bin", Dir: t.TempDir(), Retries: -1})
		if err == nil || !strings.Contains(err.Error(), "of failures") || strings.Contains(err.Error(), "dial tcp") {
			t.Errorf("err = %v, want the time budget named, without Go's dial text", err)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
			t.Errorf("gave up after %v with RetryFor 300ms", took)
		}
	})
}

// TestTryNowAndRecovery: "try now" ends one wait at once; a transfer that
// recovers wakes every other one that waits (the network is back for all).
func TestTryNowAndRecovery(t *testing.T) {
	a := testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithPath("/a.bin"))
	b := testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithPath("/b.bin"))
	restartA, restartB := testkit.Stop(t, a.Server), testkit.Stop(t, b.Server)
	d := patientDownloader(t)
	d.Backoff, d.MaxBackoff = time.Minute, time.Minute // only a wake-up ends these waits in time
	tryA := &Signal{}
	waitsA, waitsB := newWaitLog(), newWaitLog()
	errs := make(chan error, 2)
	dir := t.TempDir()
	go func() {
		_, err := d.Download(t.Context(), Request{URL: a.FileURL(), Dir: dir, Retries: -1, Waiting: waitsA.hook, TryNow: tryA})
		errs <- err
	}()
	go func() {
		_, err := d.Download(t.Context(), Request{URL: b.FileURL(), Dir: dir, Retries: -1, Waiting: waitsB.hook})
		errs <- err
	}()
	waitsA.awaitFirst(t)
	waitsB.awaitFirst(t)
	restartA()
	restartB()
	start := time.Now()
	tryA.Fire()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the waits did not end: try now did not wake a, or a's recovery did not wake b")
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v after try now", took)
	}
	if !bytes.Equal(testkit.ReadFile(t, filepath.Join(dir, "b.bin")), b.Content()) {
		t.Error("b.bin differs")
	}
}

// TestSegmentsAskEachByteOnce: a file split over several connections is
// asked for range by range, never a byte twice, so the server sends
// exactly the file (issue 22: takeovers used to cut running requests and
// throw away what was in flight).
func TestSegmentsAskEachByteOnce(t *testing.T) {
	const size = 1 << 20
	o := testkit.NewOrigin(t, testkit.WithSize(size), testkit.WithThrottle(2*time.Millisecond))
	d := splittingDownloader(t)
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Fatal("bytes differ")
	}
	ranges := o.SeenRanges()
	asked := make([]int, size)
	for _, r := range ranges {
		first, last, ok := strings.Cut(strings.TrimPrefix(r, "bytes="), "-")
		a, err1 := strconv.Atoi(first)
		b, err2 := strconv.Atoi(last)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("range %q is not a closed range: every request must say where it ends", r)
		}
		for i := a; i <= min(b, size-1); i++ {
			asked[i]++
		}
	}
	for i, n := range asked {
		if n != 1 {
			t.Fatalf("byte %d asked for %d times (ranges %q)", i, n, ranges)
		}
	}
	if len(ranges) < 4 {
		t.Errorf("%d requests: the file was not split (ranges %q)", len(ranges), ranges)
	}
	if sent := o.BytesSent.Load(); sent != size {
		t.Errorf("origin sent %d bytes for a %d-byte file", sent, size)
	}
}

// TestSmallFileOneRequest: a file named by its server costs one request,
// no HEAD before the GET (issue 22).
func TestSmallFileOneRequest(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10), testkit.WithDisposition(`attachment; filename="named.bin"`))
	d := testDownloader(t)
	d.headBelowFree = 0
	dir := t.TempDir()
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != filepath.Join(dir, "named.bin") || !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Errorf("got %s", res.Path)
	}
	if n, gets := o.Requests.Load(), o.Gets.Load(); n != 1 || gets != 1 {
		t.Errorf("%d requests (%d GETs), want one GET", n, gets)
	}
	if res.ETag == "" {
		t.Error("the validators of the one answer were not kept")
	}
}
