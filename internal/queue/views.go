package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// JobView is one download as the API and the UI see it (the "Download
// object" of docs/ARCHITECTURE.md).
type JobView struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Source     string    `json:"source"`
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	State      string    `json:"state"`
	Phase      string    `json:"phase"`
	BytesDone  int64     `json:"bytes_done"`
	BytesTotal int64     `json:"bytes_total"`
	Speed      float64   `json:"speed"`
	ETASeconds int64     `json:"eta_seconds"`
	Error      string    `json:"error"`
	Retries    int       `json:"retries"`
	LimitRate  int64     `json:"limit_rate"`
	Position   int       `json:"position"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`

	ErrorCode    string                 `json:"error_code"`
	ErrorDetail  string                 `json:"error_detail,omitempty"` // the raw error behind error, for details
	Waiting      *WaitView              `json:"waiting,omitempty"`      // set while a running download waits out a failure
	Layers       []models.LayerProgress `json:"layers,omitempty"`
	ReusedBytes  int64                  `json:"reused_bytes"`
	Outcome      string                 `json:"outcome"` // "", "unchanged" (already downloaded, nothing fetched), "updated" (a newer version beside the old)
	PreviousPath string                 `json:"previous_path,omitempty"`
	ModelsDir    string                 `json:"models_dir,omitempty"`
	PausedBy     string                 `json:"paused_by,omitempty"` // while paused: "cli" when an interrupted command paused it (PausedByCLI)
	// RequestHeaders names the extra headers the download sends (Cookie,
	// Referer, User-Agent from a browser); their values are never shown.
	RequestHeaders []string `json:"request_headers,omitempty"`
	Rev            uint64   `json:"rev"`
}

// WaitView is a running download that waits out a failure that may pass
// (the network is down, the server busy, a rate limit): it is not failed,
// and tries again by itself at NextTry, or at once on POST …/retry.
type WaitView struct {
	Reason  string    `json:"reason"`  // error code of the failure (refused, dns, timeout, server_error…)
	Error   string    `json:"error"`   // the failure in words
	Attempt int       `json:"attempt"` // the next attempt's number (2 = the first retry)
	NextTry time.Time `json:"next_try"`
	Since   time.Time `json:"since"` // when the failures began
}

// Get returns one download.
func (m *Manager) Get(id string) (JobView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.findLocked(id)
	if i < 0 {
		return JobView{}, fmt.Errorf("download %s: %w", id, fault.ErrNotFound)
	}
	return m.viewLocked(m.jobs[i], i), nil
}

// List returns every download in queue order.
func (m *Manager) List() []JobView {
	m.mu.Lock()
	defer m.mu.Unlock()
	views := make([]JobView, len(m.jobs))
	for i, j := range m.jobs {
		views[i] = m.viewLocked(j, i)
	}
	return views
}

func (m *Manager) viewLocked(j *managerJob, pos int) JobView {
	v := JobView{
		ID:         j.ID,
		Kind:       j.Kind,
		Source:     j.Source,
		Name:       j.displayName(),
		Path:       m.viewPath(j.Path),
		State:      j.State,
		BytesDone:  j.Done,
		BytesTotal: j.Total,
		ETASeconds: -1,
		Error:      j.Error,
		Retries:    j.Retries,
		LimitRate:  j.LimitRate,
		Position:   pos,
		CreatedAt:  j.CreatedAt.Truncate(time.Second),
		StartedAt:  j.StartedAt.Truncate(time.Second),
		FinishedAt: j.FinishedAt.Truncate(time.Second),

		ErrorCode:    j.ErrorCode,
		ErrorDetail:  j.ErrorDetail,
		Layers:       j.layers,
		ReusedBytes:  j.Reused,
		Outcome:      j.Outcome,
		PreviousPath: m.viewPath(j.Previous),
		ModelsDir:    j.ModelsDir,
		Rev:          j.rev,

		RequestHeaders: headerNames(j.header),
	}
	if StateRunning(j.State) {
		if j.Kind != jobKindFile {
			v.Phase = j.Phase
		}
		if w := j.waitLocked(); w != nil {
			v.Waiting = &WaitView{Reason: fault.Code(w.Err), Error: SingleLine(w.Err.Error()), Attempt: w.Attempt,
				NextTry: w.Next.UTC().Truncate(time.Millisecond), Since: w.Since.UTC().Truncate(time.Second)}
		}
		if j.run != nil && j.run.speed != nil {
			v.Speed = j.run.speed.Speed()
			if j.Total >= 0 {
				if eta := j.run.speed.ETA(j.Total - j.Done); eta >= 0 {
					v.ETASeconds = int64(math.Ceil(eta.Seconds()))
				}
			}
		}
	}
	if j.State == JobCompleted {
		v.ETASeconds = 0
	}
	if j.State == JobPaused {
		v.PausedBy = j.PausedBy
	}
	return v
}

// waitLocked is the failure the job's transfer waits out, if it does.
func (j *managerJob) waitLocked() *engine.Wait {
	if j.run == nil {
		return nil
	}
	return j.run.waiting
}

func (j *managerJob) displayName() string {
	if j.Kind == KindExport && len(j.names) > 0 {
		names := make([]string, len(j.names))
		for i, n := range j.names {
			names[i] = n.DisplayName()
		}
		return strings.Join(names, ", ")
	}
	if j.Kind == jobKindModel {
		if j.name.Model != "" {
			return j.name.DisplayName()
		}
		return j.Source
	}
	if j.Path != "" {
		return filepath.Base(j.Path)
	}
	if u, err := url.Parse(j.Source); err == nil {
		if base := path.Base(u.Path); base != "/" && base != "." {
			return base
		}
		return u.Hostname()
	}
	return j.Source
}

// viewPath is p relative to the output folder, with forward slashes, or p
// itself when it lies elsewhere (an explicit -o). The API shows paths so,
// and queue.json stores them so, that the folder can be moved or reached
// through another working directory; absPath turns them back.
func (m *Manager) viewPath(p string) string {
	if rel, ok := m.insideOutput(p); ok {
		return filepath.ToSlash(rel)
	}
	return p
}

// absPath is viewPath's inverse.
func (m *Manager) absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.outputDir, filepath.FromSlash(p))
}

// insideOutput is p relative to the output folder, and whether p lies inside it.
func (m *Manager) insideOutput(p string) (string, bool) {
	rel, err := filepath.Rel(m.outputDir, p)
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// StateRunning reports whether a job in this state has (or is about to have) a transfer.
func StateRunning(state string) bool {
	return state == jobDownloading || state == jobVerifying || state == jobPackaging
}

func StateFinished(state string) bool {
	return state == JobCompleted || state == JobFailed || state == jobCanceled
}

// stateWords says a state in words for a sentence: "x.iso is already
// finished".
func stateWords(state string) string {
	switch state {
	case jobQueued:
		return "waiting in the queue"
	case jobVerifying:
		return "being verified"
	case jobPackaging:
		return "being packed into its zip"
	case JobCompleted:
		return "already finished"
	case jobCanceled:
		return "canceled"
	default:
		return state // downloading, paused, failed
	}
}

// Changed returns a channel that is closed at the next change (state, order,
// or, at most once per save interval, progress).
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Wait returns when every listed download is finished, with an error naming
// those that failed, or ctx's error when ctx is done first.
func (m *Manager) Wait(ctx context.Context, ids ...string) error {
	// The jobs are looked up once: a CLI run waits for thousands and
	// wakes on every change, so a wake-up looks only at those still
	// pending. A job removed meanwhile keeps its last state.
	m.mu.Lock()
	byID := make(map[string]*managerJob, len(m.jobs))
	for _, j := range m.jobs {
		byID[j.ID] = j
	}
	pending := make([]*managerJob, 0, len(ids))
	for _, id := range ids {
		j := byID[id]
		if j == nil {
			m.mu.Unlock()
			return fmt.Errorf("download %s: %w", id, fault.ErrNotFound)
		}
		pending = append(pending, j)
	}
	var errs []error
	for {
		pending = slices.DeleteFunc(pending, func(j *managerJob) bool {
			if !StateFinished(j.State) || j.run != nil {
				return false
			}
			if j.State == JobFailed {
				errs = append(errs, fmt.Errorf("%s: %s", j.Source, j.Error))
			}
			return true
		})
		ch := m.changed
		m.mu.Unlock()
		if len(pending) == 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		m.mu.Lock()
	}
}

// Views returns the listed downloads (unknown IDs are left out), for a
// display that follows many: one pass over the queue, not one per ID.
func (m *Manager) Views(ids []string) []JobView {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := make(map[string]int, len(m.jobs))
	for i, j := range m.jobs {
		pos[j.ID] = i
	}
	out := make([]JobView, 0, len(ids))
	for _, id := range ids {
		if i, ok := pos[id]; ok {
			out = append(out, m.viewLocked(m.jobs[i], i))
		}
	}
	return out
}

// Delta is what changed in the queue since a rev: GET
// /api/downloads?since=N and each event of /api/events (issue 18: with
// 10,000 queued, sending every job every second cost 3 MB per poll).
type Delta struct {
	Rev       uint64    `json:"rev"`
	Full      bool      `json:"full"`      // Downloads is the whole queue
	Downloads []JobView `json:"downloads"` // in queue order
	Removed   []string  `json:"removed"`
	Order     []string  `json:"order"` // every ID in queue order, only when the order changed (a move or a removal); appends come with their position
}

// ListSince returns the jobs changed after rev since (and every running
// one: their speed changes without a report), the IDs removed since, and
// the order when it changed. since 0, or a rev older than the removals
// kept, gives everything.
func (m *Manager) ListSince(since uint64) Delta {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := Delta{Rev: m.rev, Downloads: []JobView{}, Removed: []string{}}
	if since == 0 || since < m.removedFrom || since > m.rev {
		d.Full = true
		d.Downloads = make([]JobView, len(m.jobs))
		for i, j := range m.jobs {
			d.Downloads[i] = m.viewLocked(j, i)
		}
		return d
	}
	for i, j := range m.jobs {
		if j.rev > since || StateRunning(j.State) {
			d.Downloads = append(d.Downloads, m.viewLocked(j, i))
		}
	}
	for _, r := range m.removed {
		if r.rev > since {
			d.Removed = append(d.Removed, r.id)
		}
	}
	if m.orderRev > since {
		d.Order = make([]string, len(m.jobs))
		for i, j := range m.jobs {
			d.Order[i] = j.ID
		}
	}
	return d
}

// Summary is the whole queue at a glance: the header's "2 running"
// and the overall progress of everything not finished.
type Summary struct {
	Running    int     `json:"running"`
	Waiting    int     `json:"waiting"` // of the running: waiting out an outage
	Queued     int     `json:"queued"`
	Paused     int     `json:"paused"`
	Failed     int     `json:"failed"`
	Completed  int     `json:"completed"`
	Canceled   int     `json:"canceled"`
	BytesDone  int64   `json:"bytes_done"`  // over queued, running and paused downloads
	BytesTotal int64   `json:"bytes_total"` // -1 when one of them has no known size
	Speed      float64 `json:"speed"`
	ETASeconds int64   `json:"eta_seconds"` // -1 when unknown
}

// Summary counts the queue by state and adds up what is left to fetch.
func (m *Manager) Summary() Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Summary
	known := true
	for _, j := range m.jobs {
		switch {
		case StateRunning(j.State):
			s.Running++
			if j.waitLocked() != nil {
				s.Waiting++
			}
			if j.run != nil && j.run.speed != nil {
				s.Speed += j.run.speed.Speed()
			}
		case j.State == jobQueued:
			s.Queued++
		case j.State == JobPaused:
			s.Paused++
		case j.State == JobFailed:
			s.Failed++
		case j.State == JobCompleted:
			s.Completed++
		case j.State == jobCanceled:
			s.Canceled++
		}
		if !StateFinished(j.State) {
			s.BytesDone += max(j.Done, 0)
			if j.Total < 0 {
				known = false
			} else {
				s.BytesTotal += j.Total
			}
		}
	}
	s.ETASeconds = -1
	if !known {
		s.BytesTotal = -1
	} else if s.Speed > 0 {
		s.ETASeconds = int64(math.Ceil(float64(s.BytesTotal-s.BytesDone) / s.Speed))
	}
	return s
}

// ScheduleView is the time window as the API shows it. Its times are the
// server's wall clock, so a client elsewhere needs the server's zone to
// say them in that one clock (issue 25: a page in Tehran showed a UTC
// server's window beside a next start in its own time).
type ScheduleView struct {
	Start     string    `json:"start"` // "HH:MM" local, "" = always
	End       string    `json:"end"`
	Open      bool      `json:"open"`                // downloads may run now
	NextStart time.Time `json:"next_start,omitzero"` // when they next may, while closed
	TimeZone  string    `json:"time_zone"`           // the server's zone now, as its clock names it: "UTC", "CET", "+0330"
	UTCOffset int       `json:"utc_offset"`          // seconds east of UTC, now (it changes with daylight saving)
	Now       time.Time `json:"-"`                   // the server's clock when the view was taken
}

// Schedule is the current time window.
func (m *Manager) Schedule() ScheduleView {
	now := m.now()
	m.mu.Lock()
	w := m.window
	m.mu.Unlock()
	zone, offset := now.Zone()
	v := ScheduleView{Start: w.Start(), End: w.End(), Open: w.Open(now), TimeZone: zone, UTCOffset: offset, Now: now}
	if !v.Open {
		v.NextStart = w.NextOpen(now)
	}
	return v
}
