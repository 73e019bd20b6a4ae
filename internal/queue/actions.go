package queue

import (
	"context"
	"errors"
	"fmt"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Add validates a download and puts it at the end of the queue. Adding a
// source that is already queued, running or paused (with the same output)
// returns that job instead, resuming it if it was paused: running the same
// CLI command twice continues the first download.
func (m *Manager) Add(req AddRequest) (JobView, error) {
	views, err := m.AddAll([]AddRequest{req})
	if err != nil {
		return JobView{}, err
	}
	return views[0], nil
}

// AddAll is Add for many downloads at once: all are validated before any is
// queued, and the queue is saved once, not once per download (a CLI run
// with 200 URLs would otherwise rewrite the queue file 200 times).
func (m *Manager) AddAll(reqs []AddRequest) ([]JobView, error) {
	jobs := make([]*managerJob, len(reqs))
	for i, req := range reqs {
		j, err := m.newJob(req)
		if err != nil {
			return nil, err
		}
		jobs[i] = j
	}
	views := make([]JobView, len(jobs))
	err := m.update(func() ([]chan struct{}, error) {
		if len(m.jobs)+len(jobs) > maxQueueJobs {
			return nil, fault.Conflictf("the queue is full: it holds %d downloads and takes at most %d; clear finished ones (or remove some) and add again", len(m.jobs), maxQueueJobs)
		}
		// One look at the queue for the whole batch: adding N to a queue
		// of Q costs N+Q, not N×Q.
		idx := m.addIndexLocked()
		for i, j := range jobs {
			h := j.header
			jobs[i] = m.addLocked(j, idx)
			m.setHeaderLocked(jobs[i], h)
			if m.own != nil {
				m.own[jobs[i].ID] = true
			}
		}
		m.scheduleLocked()
		for i, j := range jobs {
			views[i] = m.viewLocked(j, slices.Index(m.jobs, j))
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return views, nil
}

// addIndex is what addLocked needs to know of the queue: the IDs in use
// and the unfinished jobs by what they download.
type addIndex struct {
	ids        map[string]bool
	unfinished map[string]*managerJob
}

func (m *Manager) addIndexLocked() addIndex {
	idx := addIndex{ids: make(map[string]bool, len(m.jobs)), unfinished: make(map[string]*managerJob)}
	for _, o := range m.jobs {
		idx.ids[o.ID] = true
		if !StateFinished(o.State) {
			idx.unfinished[o.addKey()] = o
		}
	}
	return idx
}

// addKey says what a job downloads, and where to: two adds with the same
// key are one download.
func (j *managerJob) addKey() string {
	src := j.Source
	if j.Kind == jobKindModel && j.name.Model != "" {
		src = strings.ToLower(j.name.String())
	}
	if j.Kind == KindExport {
		src = exportKey(j.names)
	}
	return j.Kind + "\x00" + j.Output + "\x00" + j.ModelsDir + "\x00" + src
}

// addLocked queues j, or returns the unfinished job for the same source.
func (m *Manager) addLocked(j *managerJob, idx addIndex) *managerJob {
	if o := idx.unfinished[j.addKey()]; o != nil {
		if o.State == JobPaused {
			o.State, o.PausedBy = jobQueued, ""
			m.markLocked(o)
		}
		return o
	}
	j.ID = m.newIDLocked(idx.ids)
	idx.ids[j.ID] = true
	idx.unfinished[j.addKey()] = j
	j.CreatedAt = m.now().UTC()
	j.Rank = 0
	if n := len(m.jobs); n > 0 {
		j.Rank = m.jobs[n-1].Rank + 1
	}
	m.jobs = append(m.jobs, j)
	m.markLocked(j)
	return j
}

func (j *managerJob) sameSource(o *managerJob) bool {
	if j.Kind == jobKindModel && j.name.Model != "" && o.name.Model != "" {
		return strings.EqualFold(j.name.String(), o.name.String())
	}
	if j.Kind == KindExport {
		return exportKey(j.names) == exportKey(o.names) && j.ModelsDir == o.ModelsDir
	}
	return j.Source == o.Source
}

// Check refuses a request Add would refuse (a bad URL or model name, a
// checksum that is not 64 hex digits…), before anything is queued: the API
// answers each line of a batch with its own message.
func (m *Manager) Check(req AddRequest) error {
	_, err := m.newJob(req)
	return err
}

// newJob checks what a person typed before anything is queued, so that the
// API can answer 400 with a message.
func (m *Manager) newJob(req AddRequest) (*managerJob, error) {
	src := strings.TrimSpace(req.Source)
	if src == "" {
		return nil, fault.BadInputf("enter a URL (http:// or https://) or a model name")
	}
	retries := req.Retries
	if retries < 0 {
		retries = m.cfg.Retries
	}
	if retries > 100 {
		return nil, fault.BadInputf("retries must be between 0 and 100, got %d", retries)
	}
	sum := strings.ToLower(strings.TrimSpace(req.SHA256))
	if sum != "" && (len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "") {
		return nil, fault.BadInputf("sha256 must be 64 hexadecimal characters, got %q", req.SHA256)
	}
	if req.LimitRate < 0 {
		return nil, fault.BadInputf("limit_rate must be 0 (none) or a positive number of bytes per second")
	}
	if req.Split < 0 {
		return nil, fault.BadInputf("split must be a positive size, like 4G")
	}
	j := &managerJob{Source: src, Retries: retries, SHA256: sum, LimitRate: req.LimitRate, State: jobQueued, Total: -1, Attempt: 1, Force: req.Force}
	if req.Output != "" {
		out, err := filepath.Abs(req.Output)
		if err != nil {
			return nil, fault.BadInputf("output path %q: %v", req.Output, err)
		}
		j.Output = out
	}
	switch {
	case req.Export:
		if err := m.newExport(j, req); err != nil {
			return nil, err
		}
	case engine.IsURL(src):
		if err := engine.CheckDownloadURL(src); err != nil {
			return nil, err
		}
		j.Kind = jobKindFile
		j.Path = j.Output
	case strings.Contains(src, "://"):
		scheme, _, _ := strings.Cut(src, "://")
		return nil, fault.BadInputf("%s:// links are not supported: use an http:// or https:// URL, or a model name", scheme)
	default:
		name, err := registry.ParseName(src, m.defaultHost())
		if err != nil {
			if errors.Is(err, fault.ErrBadInput) {
				return nil, err
			}
			return nil, fault.BadInputf("%q is not a valid model name: %v", src, err)
		}
		if sum != "" {
			return nil, fault.BadInputf("sha256 applies to file downloads only: every blob of a model is verified anyway")
		}
		j.Kind = jobKindModel
		j.name = name
		j.Split = req.Split
		if req.ModelsDir != "" {
			if !filepath.IsAbs(req.ModelsDir) {
				return nil, fault.BadInputf("models_dir must be an absolute path, got %q", req.ModelsDir)
			}
			if req.Output != "" || req.Split > 0 {
				return nil, fault.BadInputf("an install into Ollama's models folder writes no zip: leave out the output path and split")
			}
			j.ModelsDir = filepath.Clean(req.ModelsDir)
		}
		j.Path = j.Output
		if j.Path == "" && j.ModelsDir == "" {
			j.Path = filepath.Join(m.outputDir, name.ZipName())
		}
	}
	if j.Kind == jobKindFile && (req.ModelsDir != "" || req.Split != 0 || req.Export) {
		return nil, fault.BadInputf("models_dir and split apply to model names only")
	}
	h, err := CheckHeader(req.Header)
	if err != nil {
		return nil, err
	}
	if h != nil && j.Kind != jobKindFile {
		return nil, fault.BadInputf("cookies, referrer and user-agent go with file downloads only: a model comes from its registry")
	}
	j.header = h
	return j, nil
}

// newIDLocked names a new job: its creation second for a person, then
// random digits, so that IDs made by two processes in the same second
// (ten CLI runs in a loop) never meet — the history keeps one record per
// ID, and a second-derived counter lost records that way (issue 18).
func (m *Manager) newIDLocked(inUse map[string]bool) string {
	now := m.now().Unix()
	for {
		id := fmt.Sprintf("d-%d-%s", now, history.NewID())
		if !inUse[id] {
			return id
		}
	}
}

func (m *Manager) findLocked(id string) int {
	return slices.IndexFunc(m.jobs, func(j *managerJob) bool { return j.ID == id })
}

func (m *Manager) lookupLocked(id string) (*managerJob, error) {
	i := m.findLocked(id)
	if i < 0 {
		return nil, fmt.Errorf("download %s: %w", id, fault.ErrNotFound)
	}
	return m.jobs[i], nil
}

// Pause stops a queued or running download and keeps its partial data. It
// returns once the transfer has let go of its files (or after a few seconds).
func (m *Manager) Pause(id string) error {
	return m.PauseFor(id, "")
}

// PauseFor is Pause on behalf of another process: by (PausedByCLI, or ""
// for a person here) is kept with the paused download and shown with it.
func (m *Manager) PauseFor(id, by string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobQueued && !StateRunning(j.State) {
			return nil, fault.Conflictf("%s is %s: only a queued or running download can be paused", j.displayName(), stateWords(j.State))
		}
		done := m.pauseLocked(j)
		j.PausedBy = by
		return done, nil
	})
}

func (m *Manager) pauseLocked(j *managerJob) chan struct{} {
	j.State = JobPaused
	j.PausedBy = ""
	j.Phase = ""
	m.markLocked(j)
	if j.run == nil {
		return nil
	}
	if j.run.stop == "" && j.run.cancel != nil {
		j.run.stop = JobPaused
		j.run.cancel(errors.New("download paused"))
	}
	return j.run.done
}

// update runs fn under the lock; when it succeeds the changes fn marked
// are saved and the transfers fn stopped (their done channels) are waited
// for. It is how every change a person makes is applied.
func (m *Manager) update(fn func() (stopped []chan struct{}, err error)) error {
	m.mu.Lock()
	stopped, err := fn()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.changedLocked()
	m.mu.Unlock()
	m.save()
	m.waitStopped(stopped...)
	return nil
}

// change is update for one job, found by id.
func (m *Manager) change(id string, fn func(j *managerJob) (stopped chan struct{}, err error)) error {
	return m.update(func() ([]chan struct{}, error) {
		j, err := m.lookupLocked(id)
		if err != nil {
			return nil, err
		}
		stopped, err := fn(j)
		return []chan struct{}{stopped}, err
	})
}

// limiterLocked is the job's own speed limiter, made on first use so that
// a running transfer sees later changes.
func (m *Manager) limiterLocked(j *managerJob) *engine.RateLimiter {
	if j.limiter == nil {
		j.limiter = engine.NewRateLimiter(j.LimitRate)
	}
	return j.limiter
}

// SetLimit changes one download's speed limit (bytes/s, 0 = none), also
// while it runs.
func (m *Manager) SetLimit(id string, bytesPerSecond int64) error {
	if bytesPerSecond < 0 {
		return fault.BadInputf("limit_rate must be 0 (none) or a positive number of bytes per second")
	}
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		j.LimitRate = bytesPerSecond
		m.limiterLocked(j).SetRate(bytesPerSecond)
		m.markLocked(j)
		return nil, nil
	})
}

// Resume queues a paused download again; the transfer continues from its
// partial data.
func (m *Manager) Resume(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != JobPaused {
			return nil, fault.Conflictf("%s is %s: only a paused download can be resumed", j.displayName(), stateWords(j.State))
		}
		j.State, j.PausedBy = jobQueued, ""
		m.markLocked(j)
		m.scheduleLocked()
		return nil, nil
	})
}

// Cancel stops a download that is not finished and removes its partial data.
// It returns once the data is gone (or after a few seconds).
func (m *Manager) Cancel(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if StateFinished(j.State) {
			return nil, fault.Conflictf("%s is %s: there is nothing to cancel (remove it from the list instead)", j.displayName(), stateWords(j.State))
		}
		return m.cancelLocked(j), nil
	})
}

// cancelLocked marks j canceled and makes sure a goroutine removes its
// partial data and records it in the history once no transfer uses it.
func (m *Manager) cancelLocked(j *managerJob) chan struct{} {
	j.State = jobCanceled
	j.Phase = ""
	j.Error, j.ErrorCode = "", ""
	j.FinishedAt = m.now().UTC()
	m.markLocked(j)
	if j.run != nil {
		if j.run.stop != jobCanceled {
			j.run.stop = jobCanceled
			if j.run.cancel != nil {
				j.run.cancel(errors.New("download canceled"))
			}
		}
		return j.run.done
	}
	run := &managerRun{done: make(chan struct{}), stop: jobCanceled, path: j.Path, started: m.now()}
	j.run = run
	go m.finish(context.Background(), j, run, transferResult{}, errors.New("download canceled"))
	return run.done
}

// Retry queues a failed or canceled download again. A failed one continues
// from its partial data; a canceled one starts over.
func (m *Manager) Retry(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.run != nil && j.run.waiting != nil {
			j.run.tryNow.Fire() // "try now": the wait ends, the transfer goes on
			return nil, nil
		}
		if j.State != JobFailed && j.State != jobCanceled {
			return nil, fault.Conflictf("%s is %s: only a failed or canceled download can be retried", j.displayName(), stateWords(j.State))
		}
		if j.State == jobCanceled {
			j.Done, j.Total = 0, -1
			if j.Kind == jobKindFile && j.Output == "" {
				j.Path = "" // the server may name it differently now
			}
		}
		j.State = jobQueued
		j.Error, j.ErrorCode, j.ErrorDetail = "", "", ""
		j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}
		j.Attempt++
		j.Transferred, j.Active = 0, 0
		j.Outcome, j.Previous = "", ""
		m.markLocked(j)
		m.scheduleLocked()
		return nil, nil
	})
}

// Remove forgets a finished download. With deleteFile it also deletes the
// downloaded file (or a failed job's partial data), but only inside the
// output folder.
func (m *Manager) Remove(id string, deleteFile bool) error {
	// A download that has just finished may still be writing its history
	// record: wait for that (briefly) rather than refuse.
	m.mu.Lock()
	if j, err := m.lookupLocked(id); err == nil && StateFinished(j.State) && j.run != nil {
		done := j.run.done
		m.mu.Unlock()
		m.waitStopped(done)
	} else {
		m.mu.Unlock()
	}
	var rel, state string
	var data partialData
	err := m.change(id, func(j *managerJob) (chan struct{}, error) {
		if !StateFinished(j.State) {
			return nil, fault.Conflictf("%s is %s: cancel it first, then remove it", j.displayName(), stateWords(j.State))
		}
		if j.run != nil {
			return nil, fault.Conflictf("%s is still stopping: try again in a moment", j.displayName())
		}
		if deleteFile && j.Path != "" {
			var ok bool
			if rel, ok = m.insideOutput(j.Path); !ok {
				return nil, fault.Conflictf("refusing to delete %s: it is outside the output folder %s", j.Path, m.outputDir)
			}
		}
		state, data = j.State, j.partialData(j.Path)
		m.jobs = slices.DeleteFunc(m.jobs, func(o *managerJob) bool { return o == j })
		m.removedLocked(j)
		return nil, nil
	})
	if err != nil {
		return err
	}
	if rel == "" {
		return nil
	}
	if state == JobFailed {
		m.removeData(data)
	}
	if err := m.removeInsideOutput(rel); err != nil {
		return fmt.Errorf("download removed from the list, but deleting its file: %w", err)
	}
	return nil
}

// removeInsideOutput deletes rel through an os.Root, so that a symbolic
// link cannot lead the deletion outside the output folder (SPEC §10).
func (m *Manager) removeInsideOutput(rel string) error {
	root, err := os.OpenRoot(m.outputDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// partialData is what a stopped transfer may have left, taken from its
// job under the lock and removed without it.
type partialData struct {
	kind, path, modelsDir string
	name                  registry.Name
	names                 []registry.Name
}

func (j *managerJob) partialData(path string) partialData {
	return partialData{kind: j.Kind, path: path, modelsDir: j.ModelsDir, name: j.name, names: j.names}
}

// removeData deletes a stopped transfer's partial data.
func (m *Manager) removeData(d partialData) {
	var err error
	switch {
	case d.kind == jobKindFile && d.path != "":
		err = engine.RemovePartial(d.path)
	case d.kind == jobKindModel && d.name.Model != "" && d.modelsDir != "":
		err = models.RemoveInstallStaging(d.modelsDir, d.name)
	case d.kind == jobKindModel && d.name.Model != "":
		err = models.RemovePullStaging(m.outputDir, d.name)
	case d.kind == KindExport:
		err = models.RemoveExportStaging(m.outputDir, d.names, d.modelsDir)
	}
	if err != nil {
		m.log.Warn("removing partial data", "path", d.path, "err", err)
	}
}

// Move reorders a queued download: "top", "up", "down" or "bottom". Up and
// down swap it with the nearest queued neighbour: only the order of queued
// downloads decides what starts next, and it is what the Queue tab shows.
func (m *Manager) Move(id, where string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobQueued {
			return nil, fault.Conflictf("%s is %s: only a queued download can be moved in the queue", j.displayName(), stateWords(j.State))
		}
		i := slices.Index(m.jobs, j)
		to := i
		switch where {
		case "top":
			to = 0
		case "bottom":
			to = len(m.jobs) - 1
		case "up":
			for k := i - 1; k >= 0; k-- {
				if m.jobs[k].State == jobQueued {
					to = k
					break
				}
			}
		case "down":
			for k := i + 1; k < len(m.jobs); k++ {
				if m.jobs[k].State == jobQueued {
					to = k
					break
				}
			}
		default:
			return nil, fault.BadInputf("move where? %q: use top, up, down or bottom", where)
		}
		if to == i {
			return nil, nil
		}
		// Ranks keep the order on disk. A move to an end takes a rank past
		// that end: one line. A step up or down hands the ranks of the
		// stretch it crosses round among its jobs: a few lines. Never a
		// rewrite of the whole queue.
		ranks := make([]int64, 0, max(to, i)-min(to, i)+1)
		for _, o := range m.jobs[min(to, i) : max(to, i)+1] {
			ranks = append(ranks, o.Rank)
		}
		m.jobs = slices.Delete(m.jobs, i, i+1)
		m.jobs = slices.Insert(m.jobs, to, j)
		switch where {
		case "top":
			j.Rank = m.jobs[1].Rank - 1
			m.markLocked(j)
		case "bottom":
			j.Rank = m.jobs[len(m.jobs)-2].Rank + 1
			m.markLocked(j)
		default:
			for k, o := range m.jobs[min(to, i) : max(to, i)+1] {
				o.Rank = ranks[k]
				m.markLocked(o)
			}
		}
		m.orderRev = m.rev
		return nil, nil
	})
}

// PauseAll pauses every queued or running download and returns how many.
func (m *Manager) PauseAll() int {
	n := 0
	m.update(func() (dones []chan struct{}, _ error) {
		for _, j := range m.jobs {
			if j.State == jobQueued || StateRunning(j.State) {
				dones = append(dones, m.pauseLocked(j))
				n++
			}
		}
		return dones, nil
	})
	return n
}

// ResumeAll queues every paused download again and returns how many.
func (m *Manager) ResumeAll() int {
	n := 0
	m.update(func() ([]chan struct{}, error) {
		for _, j := range m.jobs {
			if j.State == JobPaused {
				j.State, j.PausedBy = jobQueued, ""
				m.markLocked(j)
				n++
			}
		}
		m.scheduleLocked()
		return nil, nil
	})
	return n
}

// CancelAll cancels every download that is not finished and returns how many.
func (m *Manager) CancelAll() int {
	n := 0
	m.update(func() (dones []chan struct{}, _ error) {
		for _, j := range m.jobs {
			if !StateFinished(j.State) {
				dones = append(dones, m.cancelLocked(j))
			}
		}
		n = len(dones)
		return dones, nil
	})
	return n
}

// ClearFinished forgets every completed, failed or canceled download (their
// files stay) and returns how many.
func (m *Manager) ClearFinished() int {
	n := 0
	m.update(func() ([]chan struct{}, error) {
		before := len(m.jobs)
		m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool {
			if StateFinished(j.State) && j.run == nil {
				m.removedLocked(j)
				return true
			}
			return false
		})
		n = before - len(m.jobs)
		return nil, nil
	})
	return n
}

// MaxConcurrency is the most downloads that may run at once (SPEC: 1–32).
const MaxConcurrency = 32

func checkConcurrency(n int) error {
	if n < 1 || n > MaxConcurrency {
		return fault.BadInputf("concurrency must be between 1 and %d, got %d", MaxConcurrency, n)
	}
	return nil
}

// SetConcurrency changes how many downloads run at once. Raising it starts
// queued downloads at once. Lowering it stops nothing: running downloads
// finish and no new one starts until fewer than n run — killing a transfer
// would throw away its connection's progress for no gain.
func (m *Manager) SetConcurrency(n int) error {
	if err := checkConcurrency(n); err != nil {
		return err
	}
	return m.update(func() ([]chan struct{}, error) {
		m.concurrency = n
		m.scheduleLocked()
		return nil, nil
	})
}

// Concurrency is how many downloads may run at once.
func (m *Manager) Concurrency() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.concurrency
}

// SetSchedule sets the daily window ("HH:MM" local; both "" = always).
// Outside it running downloads stop and wait as queued; they continue at
// its start.
func (m *Manager) SetSchedule(start, end string) error {
	w, err := ParseWindow(start, end)
	if err != nil {
		return err
	}
	if m.cfg.WindowFile != "" {
		if err := saveWindow(m.cfg.WindowFile, w); err != nil {
			return fmt.Errorf("saving the time window: %w", err)
		}
	}
	m.mu.Lock()
	m.window = w
	m.changedLocked()
	m.mu.Unlock()
	select {
	case m.windowWake <- struct{}{}:
	default:
	}
	return nil
}

// RemoveFinished forgets the listed downloads that are finished (a CLI
// run's own, once their outcome is in the history) and returns how many.
func (m *Manager) RemoveFinished(ids []string) int {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	m.update(func() ([]chan struct{}, error) {
		m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool {
			if want[j.ID] && StateFinished(j.State) && j.run == nil {
				m.removedLocked(j)
				n++
				return true
			}
			return false
		})
		return nil, nil
	})
	return n
}
