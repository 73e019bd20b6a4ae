package queue

import (
	"context"
	"fmt"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scheduleLocked starts queued jobs, in queue order, while fewer than
// Concurrency transfers run. A job whose previous transfer is still
// stopping waits for it, so two transfers never share a .part.
func (m *Manager) scheduleLocked() {
	if m.runCtx == nil || m.runCtx.Err() != nil {
		return
	}
	// Outside the time window only exports start: they copy from this
	// machine's disk and cost the network nothing.
	open := m.window.Open(m.now())
	busy := 0
	var working []*managerJob // jobs with a goroutine, for clashesLocked
	for _, j := range m.jobs {
		if j.run != nil {
			working = append(working, j)
			if j.run.cancel != nil {
				busy++
			}
		}
	}
	for _, j := range m.jobs {
		if busy >= m.concurrency {
			return
		}
		if j.State == jobQueued && j.run == nil && (open || j.Kind == KindExport) && (m.own == nil || m.own[j.ID]) && !clashes(j, working) {
			m.startLocked(j)
			working = append(working, j)
			busy++
		}
	}
}

// clashes reports whether another job's goroutine still works on the
// same source or file as j — a canceled one removing its partial data, say —
// so that j waits instead of writing the .part being deleted.
func clashes(j *managerJob, working []*managerJob) bool {
	for _, o := range working {
		if o == j || o.run == nil {
			continue
		}
		if o.Kind == j.Kind && o.sameSource(j) || j.Path != "" && o.run.path == j.Path {
			return true
		}
	}
	return false
}

func (m *Manager) startLocked(j *managerJob) {
	now := m.now()
	ctx, cancel := context.WithCancelCause(m.runCtx)
	run := &managerRun{
		cancel:  cancel,
		done:    make(chan struct{}),
		path:    j.Path,
		speed:   engine.NewSpeedTracker(10),
		last:    j.Done,
		started: now,
		tryNow:  &engine.Signal{},
	}
	j.run = run
	j.State = jobDownloading
	j.Phase = ""
	j.Error, j.ErrorCode, j.ErrorDetail = "", "", ""
	j.Outcome, j.Previous = "", ""
	if j.StartedAt.IsZero() {
		j.StartedAt = now.UTC()
	}
	m.markLocked(j)
	if j.Kind == jobKindFile {
		req := engine.Request{
			URL:      j.Source,
			Dir:      m.outputDir,
			Path:     j.Path,
			SHA256:   j.SHA256,
			Header:   j.header.Clone(),
			Retries:  j.Retries,
			Limiter:  m.limiterLocked(j),
			Progress: func(done, total int64) { m.progress(j, run, models.PullProgress{Done: done, Total: total}) },
			OnPath:   func(p string) { m.onPath(j, run, p) },
			Waiting:  func(w engine.Wait) { m.waiting(j, run, w) },
			TryNow:   run.tryNow,
		}
		force := j.Force || j.Output != ""
		go func() {
			res, err := m.fetchFile(ctx, req, force)
			m.finish(ctx, j, run, res, err)
			cancel(nil)
		}()
		return
	}
	if j.Kind == KindExport {
		req := models.ExportRequest{
			Refs:      strings.Fields(j.Source),
			ModelsDir: j.ModelsDir,
			OutputDir: m.outputDir,
			Output:    j.Output,
			Split:     j.Split,
			Limiter:   m.limiterLocked(j),
			Progress:  func(p models.PullProgress) { m.progress(j, run, p) },
		}
		go func() {
			res, err := m.export(ctx, req)
			m.finish(ctx, j, run, transferResult{Path: res.Path, Size: res.ModelSize}, err)
			cancel(nil)
		}()
		return
	}
	req := models.PullRequest{
		Ref:         j.Source,
		OutputDir:   m.outputDir,
		Output:      j.Output,
		KeepStaging: m.cfg.KeepStaging,
		Retries:     j.Retries,
		Limiter:     m.limiterLocked(j),
		ModelsDir:   j.ModelsDir,
		Split:       j.Split,
		Progress:    func(p models.PullProgress) { m.progress(j, run, p) },
		Waiting:     func(w engine.Wait) { m.waiting(j, run, w) },
		TryNow:      run.tryNow,
	}
	go func() {
		res, err := m.pull(ctx, req)
		// A model's size is its own bytes, as everywhere a model is shown
		// (its zip is a little larger: that is the Library's file's size).
		m.finish(ctx, j, run, transferResult{Path: res.Path, Size: res.ModelSize, Reused: res.Reused}, err)
		cancel(nil)
	}()
}

// transferResult is what a finished transfer hands to finish.
type transferResult struct {
	Path     string
	Size     int64
	Reused   int64             // models: bytes taken from disk
	Outcome  string            // files: "unchanged", "unchecked" or "updated" when the URL was downloaded before
	Previous string            // files: the earlier download of the same URL
	Remember engine.Validators // files: what the done index keeps; zero Size = nothing to remember
}

// fetchFile downloads a file job, unless this folder already has the URL
// complete (its file still there with its size) and the server says it is
// unchanged — then nothing is fetched (issue 14: a rerun of the same
// command fetched 5 GB again as "name (1).ext"). A changed file is fetched
// beside the old one, which is kept. force skips the check.
func (m *Manager) fetchFile(ctx context.Context, req engine.Request, force bool) (transferResult, error) {
	var res transferResult
	if prev, ok := m.done().lookup(req.URL); ok && !force {
		p := m.absPath(prev.Path)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == prev.Size {
			same, err := m.checkSame(ctx, req.URL, prev.validators())
			switch {
			case ctx.Err() != nil:
				return res, ctx.Err()
			case err != nil:
				// The file is here, the server cannot say whether it
				// changed: keep it rather than fetch it blind.
				m.log.Info("could not check the server for a newer version", "url", engine.RedactURL(req.URL), "err", err)
				return transferResult{Path: p, Size: prev.Size, Outcome: "unchecked", Previous: p}, nil
			case same:
				return transferResult{Path: p, Size: prev.Size, Outcome: "unchanged", Previous: p}, nil
			}
			res.Outcome, res.Previous = "updated", p
			if req.Path == p {
				req.Path = "" // a new name: the old file is kept
			}
		}
	}
	fr, err := m.download(ctx, req)
	res.Path, res.Size = fr.Path, fr.Size
	res.Remember = engine.Validators{Size: fr.Size, ETag: fr.ETag, LastModified: fr.LastModified}
	return res, err
}

// done is the folder's index of finished URLs.
func (m *Manager) done() *doneIndex { return m.doneIdx }

// progress records a transfer's figures. It is called often from the
// transfer goroutine, so it only updates memory: nothing is saved, and
// Run announces the change at most once per saveEvery.
func (m *Manager) progress(j *managerJob, run *managerRun, p models.PullProgress) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.run != run || run.stop != "" {
		return
	}
	done, total := p.Done, p.Total
	if done > run.last {
		j.Transferred += done - run.last
	}
	run.last = done
	if total < 0 {
		total = -1
	}
	j.Done, j.Total = done, total
	if p.Layers != nil {
		j.layers = p.Layers
	}
	j.Reused = max(j.Reused, p.Reused)
	if !run.sampled {
		// The first report of a resumed transfer carries the bytes already
		// on disk: they are not speed.
		run.speed.Reset(now, done)
		run.sampled = true
	} else {
		run.speed.Sample(now, done)
	}
	m.rev++
	j.rev = m.rev
	m.progressed = true
	if phase := p.Phase; j.Kind != jobKindFile && phase != "" && phase != j.Phase {
		j.Phase = phase
		switch phase {
		case jobVerifying, jobPackaging:
			j.State = phase
		default:
			j.State = jobDownloading
		}
		m.changedLocked()
	}
}

// waiting records that a transfer waits out a transient failure (the
// network is down, the server busy) or, with the zero Wait, that it tries
// again. The job stays running, not failed: the page and the CLI say
// "waiting for the network — next try in 20 s" (issue 22).
func (m *Manager) waiting(j *managerJob, run *managerRun, w engine.Wait) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.run != run || run.stop != "" {
		return
	}
	if w.Next.IsZero() {
		run.waiting = nil
	} else {
		run.waiting = &w
	}
	// A new rev for the views (ListSince), not a journal line: a wait is
	// not kept across a restart.
	m.rev++
	j.rev = m.rev
	m.changedLocked()
}

// onPath learns where a file transfer writes. It goes to the journal at
// once (one line) but is not waited for: until it is durable a restart
// finds the same .part anyway, by the URL its sidecar was claimed with
// (see choosePath).
func (m *Manager) onPath(j *managerJob, run *managerRun, p string) {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.run != run {
		return
	}
	run.path = p
	j.Path = p
	m.markLocked(j)
	m.changedLocked()
	m.writeLocked()
}

// finish settles a job once its goroutine's transfer returned: completed,
// failed, or (after a pause, cancel, shutdown or the end of the time
// window) what was asked for. A canceled job's partial data is removed and
// the history is written before the job is let go, so Cancel and Wait see
// the end result.
func (m *Manager) finish(ctx context.Context, j *managerJob, run *managerRun, res transferResult, err error) {
	now := m.now()
	m.mu.Lock()
	j.Active += now.Sub(run.started).Seconds()
	switch {
	case err == nil:
		// Success wins over a pause or cancel that came too late: the
		// file is complete and verified.
		if p := res.Path; p != "" {
			if abs, aerr := filepath.Abs(p); aerr == nil {
				p = abs
			}
			j.Path = p
		}
		j.State = JobCompleted
		j.Done, j.Total = res.Size, res.Size
		j.Error, j.ErrorCode = "", ""
		j.Outcome, j.Previous = res.Outcome, res.Previous
		j.Reused = max(j.Reused, res.Reused)
		j.FinishedAt = now.UTC()
		m.log.Info("download completed", "id", j.ID, "path", j.Path, "bytes", res.Size, "outcome", res.Outcome)
	case run.stop != "":
		// Pause, Cancel or the time window already set the state.
	case ctx.Err() != nil:
		// Run is shutting down: continue on the next start.
		if StateRunning(j.State) {
			j.State = jobQueued
		}
	default:
		j.State = JobFailed
		j.Error = SingleLine(err.Error())
		j.ErrorCode = fault.Code(err)
		j.ErrorDetail = SingleLine(fault.Detail(err))
		j.FinishedAt = now.UTC()
		m.log.Warn("download failed", "id", j.ID, "source", j.safeSource(), "err", err)
	}
	j.Phase = ""
	run.waiting = nil
	m.markLocked(j)
	if StateFinished(j.State) {
		m.dropHeaderLocked(j) // the download ended: its cookies go
	}
	// The transfer is over: its slot goes to the next download now, not
	// after the history write below (j.run stays set until then, so no
	// job for the same file starts early).
	run.cancel = nil
	m.scheduleLocked()
	cleaned, recorded, unrecorded := false, false, false
	for {
		clean := err != nil && run.stop == jobCanceled && !cleaned
		var rec *history.Record
		// An unchanged file was not downloaded again: nothing to record.
		if !clean && !recorded && StateFinished(j.State) && !(j.State == JobCompleted && (res.Outcome == "unchanged" || res.Outcome == "unchecked")) {
			r := m.recordLocked(j)
			rec = &r
			recorded = true
		}
		if !clean && rec == nil {
			break
		}
		data := j.partialData(run.path)
		m.mu.Unlock()
		if clean {
			m.removeData(data)
			cleaned = true
		}
		if rec != nil {
			if herr := m.addHistory(*rec); herr != nil {
				m.log.Warn("writing history", "id", rec.ID, "err", herr)
				unrecorded = true
			}
		}
		m.mu.Lock()
	}
	if unrecorded {
		// The history could not record the end (a full disk, say), so it
		// cannot stand in for the queue's journal below: the end is made
		// durable here, before anyone hears of it.
		m.mu.Unlock()
		m.save()
		m.mu.Lock()
	}
	if err == nil && j.Kind == jobKindFile && res.Outcome != "unchanged" && res.Outcome != "unchecked" {
		e := doneEntry{Path: m.viewPath(j.Path), Size: res.Size, ETag: res.Remember.ETag, LastModified: res.Remember.LastModified, FinishedAt: j.FinishedAt}
		src := j.Source
		m.mu.Unlock()
		if derr := m.done().remember(src, e); derr != nil {
			m.log.Warn("remembering a finished URL", "err", derr)
		}
		m.mu.Lock()
	}
	j.run = nil
	close(run.done)
	m.scheduleLocked()
	m.changedLocked()
	// The end goes to the journal now but is not waited for: the history
	// record written above is fsynced, and a restart settles a job whose
	// end only the history has (settleFromHistory). 2,000 small files
	// would otherwise pay a queue fsync each. When the record failed, the
	// end was saved above.
	m.writeLocked()
	m.mu.Unlock()
}

// SingleLine keeps a message on one line (some servers' texts have
// several), as the CLI and the API show it.
func SingleLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// recordID is the ID of the history record of the job's current attempt:
// each attempt is its own record, and history IDs stay unique.
func (j *managerJob) recordID() string {
	if j.Attempt > 1 {
		return fmt.Sprintf("%s-%d", j.ID, j.Attempt)
	}
	return j.ID
}

// recordLocked is the history record of a finished job.
func (m *Manager) recordLocked(j *managerJob) history.Record {
	rec := history.Record{
		ID:         j.ID,
		Kind:       j.Kind,
		Path:       m.viewPath(j.Path),
		Size:       j.Done,
		StartedAt:  j.StartedAt.UTC(),
		FinishedAt: j.FinishedAt.UTC(),
		Duration:   j.Active,
		Status:     j.State,
		Error:      j.Error,
		ErrorCode:  j.ErrorCode,
	}
	rec.ID = j.recordID()
	rec.Source = j.safeSource()
	if rec.StartedAt.IsZero() {
		rec.StartedAt = rec.FinishedAt
	}
	if j.Path != "" {
		rec.FileName = filepath.Base(j.Path)
	}
	if j.Active > 0 {
		rec.AverageSpeed = float64(j.Transferred) / j.Active
	}
	name := rec.FileName
	if name == "" {
		name = j.displayName()
	}
	rec.FileType = history.FileTypeOf(j.Kind, name)
	switch j.Kind {
	case jobKindModel:
		rec.Name = j.displayName()
		rec.Domain = j.name.Host
		if rec.FileName == "" {
			rec.FileName = name
		}
	case KindExport:
		// Nothing came over the network: the models came from this
		// machine's Ollama.
		rec.FileType, rec.Domain = "model", "local"
		rec.Name = j.displayName()
	default:
		rec.Domain = history.DomainOf(j.Source)
	}
	return rec
}

// safeSource is the source for logs and history: a URL loses its
// credentials and query string (a presigned query is a secret).
func (j *managerJob) safeSource() string {
	if j.Kind == jobKindFile {
		return engine.RedactURL(j.Source)
	}
	return j.Source
}

// waitStopped waits until the given runs are done, at most stopTimeout in all.
func (m *Manager) waitStopped(dones ...chan struct{}) {
	timer := time.NewTimer(m.stopTimeout)
	defer timer.Stop()
	for _, done := range dones {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-timer.C:
			m.log.Warn("a download did not stop in time; it will finish stopping in the background")
			return
		}
	}
}
