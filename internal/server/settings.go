package server

import (
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/queue"
	"path/filepath"
	"strings"
	"time"
)

// settingsResponse is GET and POST /api/settings.
type settingsResponse struct {
	Concurrency int    `json:"concurrency"`
	LimitRate   int64  `json:"limit_rate"` // bytes per second over all downloads, 0 = none
	OutputDir   string `json:"output_dir"`
	Version     string `json:"version"`

	// The daily time window, "HH:MM" local time; both "" = always.
	ScheduleStart string     `json:"schedule_start"`
	ScheduleEnd   string     `json:"schedule_end"`
	ScheduleOpen  bool       `json:"schedule_open"` // downloads may start now
	ScheduleNext  *time.Time `json:"schedule_next"` // while closed: when the window opens next; else null

	// The server's clock, in which the window's times are: a page in
	// another zone (or with a clock that is off) says them in this one.
	ServerTime time.Time `json:"server_time"` // now, with the server's offset
	TimeZone   string    `json:"time_zone"`   // "UTC", "CET", "+0330": as the server's clock names its zone
	UTCOffset  int       `json:"utc_offset"`  // seconds east of UTC, now
}

func (s *Server) settings() settingsResponse {
	dir := s.cfg.OutputDir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	var rate int64
	if s.cfg.Files != nil {
		rate = s.cfg.Files.RateLimit()
	}
	sched := s.cfg.Manager.Schedule()
	resp := settingsResponse{
		Concurrency: s.cfg.Manager.Concurrency(), LimitRate: rate, OutputDir: dir, Version: s.cfg.Version,
		ScheduleStart: sched.Start, ScheduleEnd: sched.End, ScheduleOpen: sched.Open,
		ServerTime: sched.Now.Truncate(time.Millisecond), TimeZone: sched.TimeZone, UTCOffset: sched.UTCOffset,
	}
	if !sched.NextStart.IsZero() {
		resp.ScheduleNext = &sched.NextStart
	}
	return resp
}

func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.settings())
}

func (s *Server) handleSetSettings(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	schedule := vals.Has("schedule_start") || vals.Has("schedule_end")
	if !vals.Has("concurrency") && !vals.Has("limit_rate") && !schedule {
		s.writeError(w, r, fault.BadInputf("nothing to change: send concurrency=<1–32>, limit_rate=<bytes per second, e.g. 2M; 0 = none>, or schedule_start=HH:MM and schedule_end=HH:MM (both empty = any time)"))
		return
	}
	// Validate everything before changing anything.
	start, end := strings.TrimSpace(vals.Get("schedule_start")), strings.TrimSpace(vals.Get("schedule_end"))
	if schedule {
		if _, err := queue.ParseWindow(start, end); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var rate int64 = -1
	if vals.Has("limit_rate") {
		if s.cfg.Files == nil {
			s.writeError(w, r, fault.BadInputf("the speed limit cannot be changed here"))
			return
		}
		v, err := engine.ParseRate(vals.Get("limit_rate"))
		if err != nil {
			s.writeError(w, r, fault.BadInputf("limit_rate: %v", err))
			return
		}
		rate = v
	}
	if vals.Has("concurrency") {
		n, err := intParam(vals, "concurrency", 0, 1, queue.MaxConcurrency)
		if err == nil {
			err = s.cfg.Manager.SetConcurrency(n)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if rate >= 0 {
		s.cfg.Files.SetRateLimit(rate)
	}
	if schedule {
		if err := s.cfg.Manager.SetSchedule(start, end); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.writeJSON(w, http.StatusOK, s.settings())
}
