package server

import (
	"encoding/json"
	"net/http"
	"ollama-model-downloader/internal/testkit"
	"strings"
	"testing"
	"time"
)

// TestAPIWaitingDownload (issue 22): a download that waits out an outage
// is "downloading" with a "waiting" object (its reason, the next try, the
// attempt), never "failed"; POST …/retry tries it at once, and it
// finishes once the server is back.
func TestAPIWaitingDownload(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(32<<10))
	restart := testkit.Stop(t, o.Server)
	a := newAPIServer(t)
	files := a.cfg.Files
	files.Retries, files.RetryFor = -1, time.Minute
	files.Backoff, files.MaxBackoff = time.Minute, time.Minute // only "retry" ends this wait in time
	added := a.addDownloads(t, "url", o.FileURL())
	id := added[0].ID
	type waitingJob struct {
		State   string `json:"state"`
		Error   string `json:"error"`
		Waiting *struct {
			Reason  string    `json:"reason"`
			Error   string    `json:"error"`
			Attempt int       `json:"attempt"`
			NextTry time.Time `json:"next_try"`
			Since   time.Time `json:"since"`
		} `json:"waiting"`
	}
	var got waitingJob
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code, _, body := a.do(t, "GET", "/api/download/"+id, nil)
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s", code, body)
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Waiting != nil || time.Now().After(deadline) {
			break
		}
	}
	if got.State != "downloading" || got.Error != "" || got.Waiting == nil {
		t.Fatalf("download during the outage = %+v, want downloading with a wait", got)
	}
	if w := got.Waiting; w.Reason != "refused" || w.Attempt < 2 || !w.NextTry.After(time.Now()) || !strings.Contains(w.Error, "refused") || w.Since.IsZero() {
		t.Errorf("waiting = %+v", *w)
	}
	restart()
	if code, _, body := a.do(t, "POST", "/api/download/"+id+"/retry", nil); code != http.StatusOK {
		t.Fatalf("retry (try now) = %d %s", code, body)
	}
	for deadline := time.Now().Add(15 * time.Second); got.State != "completed"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after try now: %+v", got)
		}
		_, _, body := a.do(t, "GET", "/api/download/"+id, nil)
		got = waitingJob{}
		json.Unmarshal(body, &got)
	}
	if got.Waiting != nil {
		t.Errorf("a completed download still shows a wait: %+v", got.Waiting)
	}
}
