package models

import (
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"sync"
	"testing"
	"time"
)

// patientPuller waits out failures as the product does (no count, a time
// budget), with short backoffs so a test's outage is seconds.
func patientPuller(t *testing.T, url string) *Puller {
	t.Helper()
	p := NewPuller(newTestRegistryClient(t, url))
	files := p.Registry().Files()
	files.Retries, files.RetryFor = -1, time.Minute
	files.Backoff, files.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	return p
}

// pullWaitLog records what a pull reported through PullRequest.Waiting.
type pullWaitLog struct {
	mu    sync.Mutex
	waits []engine.Wait
	ended bool
	first chan struct{}
	once  sync.Once
}

func (w *pullWaitLog) hook(x engine.Wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if x.Next.IsZero() {
		w.ended = true
		return
	}
	w.waits = append(w.waits, x)
	w.once.Do(func() { close(w.first) })
}

// TestPullWaitsOutAnOutage: the registry and its CDN go away (stopped:
// connections refused) and come back on the same ports, before the
// manifest or in the middle of the large blob; the pull waits, says so,
// and finishes. No blob already verified is fetched again, and the large
// one resumes where it was.
func TestPullWaitsOutAnOutage(t *testing.T) {
	for _, when := range []string{"before the manifest", "mid-blob"} {
		t.Run(when, func(t *testing.T) {
			f := testkit.NewFakeRegistry(t)
			big := testkit.TestBytes(2<<20, 9)
			m := f.AddModel("library/big", "latest", big, []byte("template"), []byte(`{"p":1}`))
			bigDigest := testkit.DigestOf(big)
			f.Set(func(f *testkit.FakeRegistry) { f.Pace = 5 * time.Millisecond })
			p := patientPuller(t, f.URL)
			waits := &pullWaitLog{first: make(chan struct{})}
			var restore func()
			stopped := make(chan struct{})
			var once sync.Once
			stop := func() { once.Do(func() { restore = f.Outage(t); close(stopped) }) }
			if when == "before the manifest" {
				stop()
			}
			req := PullRequest{Ref: "big", OutputDir: t.TempDir(), Retries: -1, Waiting: waits.hook,
				Progress: func(pp PullProgress) {
					if when == "mid-blob" && pp.Done > 1<<20 {
						stop()
					}
				}}
			type result struct {
				res PullResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := p.Pull(t.Context(), req)
				done <- result{res, err}
			}()
			<-stopped
			select {
			case <-waits.first:
			case <-time.After(20 * time.Second):
				t.Fatal("the pull reported no wait during the outage")
			}
			time.Sleep(500 * time.Millisecond)
			restore()
			var r result
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("the pull did not finish after the outage")
			}
			if r.err != nil {
				t.Fatalf("pull failed across the outage: %v", r.err)
			}
			testkit.CompareZipTree(t, testkit.ReadZipTree(t, r.res.Path), testkit.ExpectedTree(f.Host, "library", "big", "latest", m))
			waits.mu.Lock()
			last, ended := waits.waits[len(waits.waits)-1], waits.ended
			waits.mu.Unlock()
			if !ended || fault.Transient(last.Err) == false {
				t.Errorf("waits: last %+v, ended %v", last, ended)
			}
			f.Mu.Lock()
			defer f.Mu.Unlock()
			for d := range m.Blobs {
				if d != bigDigest && f.CDNHits[d] != 1 {
					t.Errorf("blob %s fetched %d times: a verified blob was fetched again", d[:19], f.CDNHits[d])
				}
			}
			if sent := f.BytesServed[bigDigest]; sent > int64(len(big))+(512<<10) {
				t.Errorf("large blob: %d bytes served for %d: it was not resumed", sent, len(big))
			}
		})
	}
}
