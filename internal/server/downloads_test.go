package server

import (
	"encoding/json"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/testkit"
	"testing"
	"time"
)

// TestPauseFromAFollowerSaysSo: a pause sent with the local key (a
// command that handed its downloads here, interrupted with Ctrl-C) marks
// the download paused_by "cli"; a pause from the page does not, and a
// resume clears it (issue 25: the row said nothing of where it came from).
func TestPauseFromAFollowerSaysSo(t *testing.T) {
	key := history.NewID() + history.NewID()
	a := newAPIServer(t, func(c *Config) { c.LocalKey = key })
	o := testkit.NewOrigin(t, testkit.WithSize(4<<20), testkit.WithThrottle(50*time.Millisecond))
	id := a.addDownloads(t, "url", o.FileURL())[0].ID
	a.waitState(t, id, "downloading")
	pausedBy := func(action string, hdr ...string) string {
		t.Helper()
		code, _, body := a.do(t, "POST", "/api/download/"+id+"/"+action, nil, hdr...)
		var v queue.JobView
		if code != 200 || json.Unmarshal(body, &v) != nil {
			t.Fatalf("%s: %d %s", action, code, body)
		}
		return v.PausedBy
	}
	if got := pausedBy("pause", "Authorization", "Bearer "+key); got != queue.PausedByCLI {
		t.Errorf("paused with the local key: paused_by %q, want %q", got, queue.PausedByCLI)
	}
	if got := pausedBy("resume"); got != "" {
		t.Errorf("resumed: paused_by %q, want none", got)
	}
	a.waitState(t, id, "downloading")
	if got := pausedBy("pause"); got != "" {
		t.Errorf("paused from the page: paused_by %q, want none", got)
	}
}
