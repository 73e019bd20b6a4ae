package disk

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSyncShares: requests made while a sync runs share the next one,
// and every caller returns only after a sync that began after its request.
func TestGroupSyncShares(t *testing.T) {
	var g groupSync
	var calls atomic.Int64
	var requestedBefore atomic.Int64 // requests made before the running sync began
	var made atomic.Int64
	release := make(chan struct{})
	syncFile := func() error {
		calls.Add(1)
		requestedBefore.Store(made.Load())
		<-release
		return nil
	}
	var wg sync.WaitGroup
	covered := make([]bool, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := made.Add(1)
			if err := g.do(syncFile); err != nil {
				t.Error(err)
			}
			covered[i] = requestedBefore.Load() >= mine
		}()
	}
	// Hold the first sync until every request is made (otherwise the
	// scheduler may run the callers one after another, and each needs a
	// sync of its own), then let the syncs through one by one.
	deadline := time.After(10 * time.Second)
	for made.Load() < 20 {
		select {
		case <-deadline:
			t.Fatal("the callers did not all start")
		case <-time.After(time.Millisecond):
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case release <- struct{}{}:
		case <-done:
			finished = true
		case <-deadline:
			t.Fatal("callers did not return")
		}
	}
	if n := calls.Load(); n >= 20 || n < 1 {
		t.Errorf("%d syncs for 20 concurrent requests, want fewer than 20", n)
	}
	for i, ok := range covered {
		if !ok {
			t.Errorf("caller %d returned after a sync that began before its request", i)
		}
	}
}

// TestGroupSyncError: the callers a failed sync covered get its error; the
// next request gets a new sync.
func TestGroupSyncError(t *testing.T) {
	var g groupSync
	boom := errors.New("disk on fire")
	if err := g.do(func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the sync's error", err)
	}
	if err := g.do(func() error { return nil }); err != nil {
		t.Fatalf("a later sync: err = %v", err)
	}
}

func TestFolderSyncs(t *testing.T) {
	var f FolderSyncs
	if err := f.Sync(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(t.TempDir() + "/missing"); err == nil {
		t.Error("syncing a missing folder succeeded")
	}
}
