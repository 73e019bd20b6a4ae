package queue

import (
	"fmt"
	"ollama-model-downloader/internal/engine/enginetest"
	"ollama-model-downloader/internal/testkit"
	"testing"
	"time"
)

// TestQueueWaitsOutAnOutage (issue 22): with the server down, downloads
// wait in their slots — running, with the failure's reason and the next
// try in their view — none is marked failed and the rest stay queued;
// Retry on a waiting one tries at once, its recovery wakes the other one,
// and when the server is back every download finishes.
func TestQueueWaitsOutAnOutage(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	restart := testkit.Stop(t, o.Server)
	files := enginetest.NewDownloader(t)
	files.Retries, files.RetryFor = -1, time.Minute
	files.Backoff, files.MaxBackoff = time.Minute, time.Minute // only try now and the recovery end these waits in time
	m, err := New(Config{OutputDir: t.TempDir(), Concurrency: 2, Retries: -1, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	m.saveEvery = 20 * time.Millisecond
	runManager(t, m)
	var ids []string
	for i := range 4 {
		v, err := m.Add(AddRequest{Source: fmt.Sprintf("%s?copy=%d", o.FileURL(), i), Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	waitUntil(t, m, "two downloads wait, two are queued", func() bool {
		waiting, queued := 0, 0
		for _, v := range m.List() {
			switch {
			case v.State == JobFailed:
				t.Fatalf("%s failed during the outage: %s", v.ID, v.Error)
			case v.Waiting != nil && v.State == jobDownloading:
				waiting++
			case v.State == jobQueued:
				queued++
			}
		}
		return waiting == 2 && queued == 2
	})
	v, _ := m.Get(ids[0])
	if w := v.Waiting; w.Reason != "refused" || w.Attempt != 2 || !w.NextTry.After(time.Now()) || w.Error == "" {
		t.Errorf("waiting = %+v, want refused, attempt 2, a next try ahead", w)
	}
	if s := m.Summary(); s.Failed != 0 || s.Running != 2 {
		t.Errorf("summary during the outage = %+v", s)
	}
	restart()
	if err := m.Retry(ids[0]); err != nil {
		t.Fatalf("retry (try now) on a waiting download: %v", err)
	}
	for _, id := range ids {
		if v := waitState(t, m, id, JobCompleted); v.Waiting != nil {
			t.Errorf("%s completed with a wait in its view", id)
		}
	}
}

// TestQueuePauseAndCancelDuringWait: pause and cancel act at once on a
// download that waits out an outage (its wait is a minute long here).
func TestQueuePauseAndCancelDuringWait(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(64<<10))
	testkit.Stop(t, o.Server)
	files := enginetest.NewDownloader(t)
	files.Retries, files.RetryFor = -1, time.Minute
	files.Backoff, files.MaxBackoff = time.Minute, time.Minute
	m, err := New(Config{OutputDir: t.TempDir(), Concurrency: 2, Retries: -1, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	m.saveEvery = 20 * time.Millisecond
	runManager(t, m)
	var ids []string
	for i := range 2 {
		v, err := m.Add(AddRequest{Source: fmt.Sprintf("%s?copy=%d", o.FileURL(), i), Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	waitUntil(t, m, "both wait", func() bool {
		for _, id := range ids {
			if v, _ := m.Get(id); v.Waiting == nil {
				return false
			}
		}
		return true
	})
	for i, act := range []func(string) error{m.Pause, m.Cancel} {
		start := time.Now()
		if err := act(ids[i]); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the action took %v during a wait", took)
		}
	}
	if v, _ := m.Get(ids[0]); v.State != JobPaused || v.Waiting != nil {
		t.Errorf("paused during the wait: %+v", v)
	}
	if v, _ := m.Get(ids[1]); v.State != jobCanceled || v.Waiting != nil {
		t.Errorf("canceled during the wait: %+v", v)
	}
}
