package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/queue"
	"strings"
	"testing"
	"time"
)

// TestScheduleSaysTheServersClock: the settings and the downloads
// envelope name the zone and offset of the server's clock, and the
// settings its time, so that a page in another zone (issue 25: Tehran
// beside a UTC server) says the window, its next start and "now" in the
// server's one clock.
func TestScheduleSaysTheServersClock(t *testing.T) {
	tehran := time.FixedZone("+0330", 3*3600+1800)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, tehran) // 08:30 UTC
	dir := t.TempDir()
	m, err := queue.New(queue.Config{OutputDir: dir, Concurrency: 1, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetSchedule("03:00", "07:00"); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(Config{Manager: m, OutputDir: dir, Version: "test"}).Handler())
	t.Cleanup(ts.Close)
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}

	var s struct {
		ServerTime   string `json:"server_time"`
		TimeZone     string `json:"time_zone"`
		UTCOffset    *int   `json:"utc_offset"`
		ScheduleNext string `json:"schedule_next"`
	}
	get("/api/settings", &s)
	if s.ServerTime != "2026-11-25T12:00:00+03:30" || s.TimeZone != "+0330" || s.UTCOffset == nil || *s.UTCOffset != 12600 {
		t.Errorf("settings: server_time %q, time_zone %q, utc_offset %v; want 2026-11-25T12:00:00+03:30, +0330, 12600", s.ServerTime, s.TimeZone, s.UTCOffset)
	}
	// The next start is an instant with the server's offset: 03:00 on its clock.
	if s.ScheduleNext != "2026-11-26T03:00:00+03:30" {
		t.Errorf("schedule_next = %q, want 2026-11-26T03:00:00+03:30", s.ScheduleNext)
	}

	var d struct {
		Schedule map[string]any `json:"schedule"`
	}
	get("/api/downloads", &d)
	if d.Schedule["time_zone"] != "+0330" || d.Schedule["utc_offset"] != float64(12600) {
		t.Errorf("downloads' schedule = %v, want time_zone +0330 and utc_offset 12600", d.Schedule)
	}
	if _, ok := d.Schedule["now"]; ok {
		t.Errorf("the envelope's schedule carries the time (it would change every event): %v", d.Schedule)
	}

	// A change of offset (daylight saving) is news to a client at the
	// previous envelope, even when nothing else changed.
	srv := New(Config{Manager: m, OutputDir: dir})
	prev := srv.downloads(0)
	next := srv.downloads(prev.Rev)
	if !next.sameAs(&prev) {
		t.Fatalf("two answers in a row differ: %+v %+v", prev.Schedule, next.Schedule)
	}
	next.Schedule.UTCOffset += 3600
	if next.sameAs(&prev) {
		t.Error("an update whose only change is the server's UTC offset was taken for no news")
	}
	if strings.Contains(s.ServerTime, "Z") {
		t.Errorf("server_time %q is in UTC, not in the server's own zone", s.ServerTime)
	}
}
