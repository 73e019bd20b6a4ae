package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Window is the daily window in which downloads may run, in local
// time: Persepolis' and IDM's scheduler, for links that are cheap (or free)
// at night. The zero window is "always". A window whose end is earlier
// than its start crosses midnight (23:00–07:00); equal start and end
// would be an empty window, so they are refused.
type Window struct {
	start, end int // minutes after midnight
	set        bool
}

// ParseWindow reads "HH:MM" start and end; both empty is always.
func ParseWindow(start, end string) (Window, error) {
	start, end = strings.TrimSpace(start), strings.TrimSpace(end)
	if start == "" && end == "" {
		return Window{}, nil
	}
	if start == "" || end == "" {
		return Window{}, fault.BadInputf("give both the start and the end of the time window (HH:MM), or neither for always")
	}
	s, err := parseClock(start)
	if err != nil {
		return Window{}, fault.BadInputf("time window start: %v", err)
	}
	e, err := parseClock(end)
	if err != nil {
		return Window{}, fault.BadInputf("time window end: %v", err)
	}
	if s == e {
		return Window{}, fault.BadInputf("the time window starts and ends at %s: leave both empty to download at any time", start)
	}
	return Window{start: s, end: e, set: true}, nil
}

// ParseScheduleFlag reads the CLI's -schedule 02:00-07:00.
func ParseScheduleFlag(s string) (Window, error) {
	if strings.TrimSpace(s) == "" {
		return Window{}, nil
	}
	start, end, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, fault.BadInputf("-schedule takes START-END in 24-hour local time, like 02:00-07:00; got %q", s)
	}
	w, err := ParseWindow(start, end)
	if err != nil {
		return Window{}, fault.BadInputf("-schedule: %v", err)
	}
	return w, nil
}

// parseClock reads "HH:MM" (24-hour) as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, herr := strconv.Atoi(h)
	mm, merr := strconv.Atoi(m)
	if !ok || herr != nil || merr != nil || len(m) != 2 || len(h) < 1 || len(h) > 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day: use HH:MM, 24-hour, like 02:00 or 23:30", s)
	}
	return hh*60 + mm, nil
}

func (w Window) Always() bool { return !w.set }

// Start and End are "HH:MM", or "" for always.
func (w Window) Start() string { return w.clock(w.start) }

func (w Window) End() string { return w.clock(w.end) }

func (w Window) clock(min int) string {
	if !w.set {
		return ""
	}
	return fmt.Sprintf("%02d:%02d", min/60, min%60)
}

func (w Window) String() string {
	if !w.set {
		return "always"
	}
	return w.Start() + "–" + w.End()
}

// Open reports whether downloads may run at t.
func (w Window) Open(t time.Time) bool {
	if !w.set {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if w.start < w.end {
		return m >= w.start && m < w.end
	}
	return m >= w.start || m < w.end
}

// NextChange is the first moment after t at which Open changes, or the
// zero time for always. It is found by walking whole minutes of local
// wall-clock time, so a daylight-saving jump is taken as the clock shows it.
func (w Window) NextChange(t time.Time) time.Time {
	if !w.set {
		return time.Time{}
	}
	open := w.Open(t)
	next := t.Truncate(time.Minute)
	// Two days of minutes cover any window, with a DST day in between.
	for range 2 * 24 * 60 {
		next = next.Add(time.Minute)
		if w.Open(next) != open {
			return next
		}
	}
	return time.Time{}
}

// NextOpen is when downloads may next start: t when the window is open,
// else its next start.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	return w.NextChange(t)
}

// windowSetting is the time window as .state/schedule.json keeps it, so
// that the web UI's window survives a restart.
type windowSetting struct {
	Start string `json:"schedule_start"`
	End   string `json:"schedule_end"`
}

// WindowFile is where the web UI keeps its time window.
func WindowFile(outputDir string) string {
	return filepath.Join(outputDir, ".state", "schedule.json")
}

// LoadWindow reads the saved window; none saved is always.
func LoadWindow(outputDir string) (Window, error) {
	data, err := os.ReadFile(WindowFile(outputDir))
	if errors.Is(err, fs.ErrNotExist) {
		return Window{}, nil
	}
	var ws windowSetting
	if err == nil {
		err = json.Unmarshal(data, &ws)
	}
	if err != nil {
		return Window{}, fmt.Errorf("reading the saved time window %s: %w", WindowFile(outputDir), err)
	}
	w, err := ParseWindow(ws.Start, ws.End)
	if err != nil {
		return Window{}, fmt.Errorf("the saved time window %s: %w", WindowFile(outputDir), err)
	}
	return w, nil
}

// saveWindow keeps w for the next start.
func saveWindow(path string, w Window) error {
	data, err := json.Marshal(windowSetting{Start: w.Start(), End: w.End()})
	if err != nil {
		return err
	}
	return disk.WriteFileAtomic(path, 0o644, disk.WriteBytes(data))
}
