package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Job states (SPEC §6). A model job is "verifying" or "packaging" during
// those last phases of its pull; otherwise a running job is "downloading".
const (
	jobQueued      = "queued"
	jobDownloading = "downloading"
	jobVerifying   = "verifying"
	jobPackaging   = "packaging"
	jobPaused      = "paused"
	jobCompleted   = "completed"
	jobFailed      = "failed"
	jobCanceled    = "canceled"
)

const (
	jobKindFile  = "file"
	jobKindModel = "model"

	queueFileVersion = 1
)

// manager runs one queue of file and model downloads through a pool of at
// most Concurrency workers, and keeps the queue in
// <output-dir>/.state/queue.json so that a restart continues where it left.
//
// Every field below mu is guarded by it. Transfers, history writes and file
// removals happen outside the lock; a job's goroutine reports back through
// progress, onPath and finish.
type manager struct {
	cfg       managerConfig
	log       *slog.Logger
	outputDir string // absolute
	statePath string

	// Fields tests change: the engines, the clock and the timings.
	download    func(context.Context, fileRequest) (fileResult, error)
	pull        func(context.Context, pullRequest) (pullResult, error)
	now         func() time.Time
	saveEvery   time.Duration // how often progress is saved while bytes flow
	stopTimeout time.Duration // how long Pause, Cancel and Run's shutdown wait for a transfer to stop

	mu          sync.Mutex
	jobs        []*managerJob // queue order
	concurrency int
	runCtx      context.Context // non-nil while Run runs
	changed     chan struct{}
	dirty       bool          // progress not yet saved
	seq         uint64        // for job IDs
	snapSeq     uint64        // snapshots taken, so an older one never overwrites a newer one
	latest      stateSnapshot // the newest snapshot, which any save writes
	recovered   string

	saveMu   sync.Mutex
	savedSeq uint64
}

type managerConfig struct {
	OutputDir   string
	Concurrency int // 1–32
	Retries     int // default per job
	Files       *rangeDownloader
	Models      *registryClient
	History     *historyStore
	Log         *slog.Logger
	KeepStaging bool // models: keep the staging folder after zipping (-keep-staging)
	// QueueFile names the state file under <output-dir>/.state; "" is
	// queue.json. The CLI keeps its own (cli-queue.json) so that a command
	// runs only its arguments and never races a web UI over one file.
	QueueFile string
}

type addRequest struct {
	Source    string // URL or model reference
	Retries   int    // < 0 = default
	SHA256    string // optional, files only
	Output    string // optional explicit path (CLI -o)
	LimitRate int64  // optional speed limit for this download, bytes/s; 0 = none
}

// jobView is one download as the API and the UI see it (the "Download
// object" of docs/ARCHITECTURE.md).
type jobView struct {
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
}

// managerJob is one download in the queue. The exported fields are what
// queue.json keeps; run is the live transfer, if any.
type managerJob struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Source      string    `json:"source"`
	Retries     int       `json:"retries"`
	SHA256      string    `json:"sha256,omitempty"`
	Output      string    `json:"output,omitempty"`
	LimitRate   int64     `json:"limit_rate,omitempty"` // bytes/s for this download, 0 = none
	State       string    `json:"state"`
	Phase       string    `json:"phase,omitempty"`
	Path        string    `json:"path,omitempty"` // in memory absolute; on disk relative to the output dir when inside it
	Done        int64     `json:"bytes_done"`
	Total       int64     `json:"bytes_total"`
	Error       string    `json:"error,omitempty"`
	Attempt     int       `json:"attempt,omitempty"`
	Transferred int64     `json:"bytes_transferred,omitempty"` // fetched during this attempt, for the average speed
	Active      float64   `json:"active_seconds,omitempty"`    // time spent transferring during this attempt
	CreatedAt   time.Time `json:"created_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`

	name    modelName    // parsed reference (models only)
	run     *managerRun  // non-nil while a goroutine transfers or cleans up this job
	limiter *rateLimiter // this download's own speed limit, changeable while it runs
}

// managerRun is one goroutine working on a job: a transfer, or the removal
// of a canceled job's partial data.
type managerRun struct {
	cancel  context.CancelCauseFunc // nil for a cleanup-only run
	done    chan struct{}           // closed when the goroutine has let go of the job
	stop    string                  // jobPaused or jobCanceled once the person stopped it
	path    string                  // where the transfer writes, for cleanup
	speed   *speedTracker
	sampled bool
	last    int64 // bytes done at the previous progress report
	started time.Time
}

// queueFile is the content of queue.json.
type queueFile struct {
	Version int           `json:"version"`
	Jobs    []*managerJob `json:"jobs"`
}

// stateSnapshot is queue.json's content at one moment.
type stateSnapshot struct {
	seq   uint64
	queue *queueFile // copies of the jobs, encoded outside the lock by save
}

// newManager loads <output-dir>/.state/queue.json. What was running or queued
// is queued again, paused stays paused, finished stays finished. A file that
// cannot be read as a queue is moved aside (see Recovered) and the manager
// starts empty.
func newManager(cfg managerConfig) (*manager, error) {
	if cfg.OutputDir == "" {
		return nil, errors.New("download manager: no output folder")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if err := checkConcurrency(cfg.Concurrency); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.OutputDir)
	if err != nil {
		return nil, fmt.Errorf("output folder %s: %w", cfg.OutputDir, err)
	}
	queueFile := cfg.QueueFile
	if queueFile == "" {
		queueFile = "queue.json"
	}
	m := &manager{
		cfg:         cfg,
		log:         cfg.Log,
		outputDir:   dir,
		statePath:   filepath.Join(dir, ".state", filepath.Base(queueFile)),
		now:         time.Now,
		saveEvery:   time.Second,
		stopTimeout: 5 * time.Second,
		concurrency: cfg.Concurrency,
		changed:     make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.download = func(ctx context.Context, req fileRequest) (fileResult, error) {
		if cfg.Files == nil {
			return fileResult{}, errors.New("file downloads are not configured")
		}
		return cfg.Files.Download(ctx, req)
	}
	m.pull = func(ctx context.Context, req pullRequest) (pullResult, error) {
		if cfg.Models == nil {
			return pullResult{}, errors.New("model downloads are not configured")
		}
		return cfg.Models.Pull(ctx, req)
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// Recovered is the path a corrupt queue.json was moved to when the manager
// started, or "" if none was.
func (m *manager) Recovered() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recovered
}

func (m *manager) load() error {
	// A crash between writing a temporary file and renaming it leaves
	// the temporary file; the rename never happened, so it is garbage.
	if stale, err := filepath.Glob(filepath.Join(filepath.Dir(m.statePath), m.tempPattern())); err == nil {
		for _, p := range stale {
			os.Remove(p)
		}
	}
	data, err := os.ReadFile(m.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading download queue: %w", err)
	}
	jobs, err := m.parseQueue(data)
	if err != nil {
		aside := m.statePath + ".corrupt-" + m.now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(m.statePath, aside); rerr != nil {
			return fmt.Errorf("moving aside corrupt download queue %s: %w", m.statePath, rerr)
		}
		m.log.Warn("download queue was corrupt; moved aside, starting with an empty queue",
			"path", m.statePath, "moved_to", aside, "err", err)
		m.recovered = aside
		return nil
	}
	m.jobs = jobs
	m.settleFromHistory()
	return nil
}

// settleFromHistory finishes the jobs whose end the history recorded but
// the queue file did not: the queue is saved after the history (at most
// saveEvery later), so a kill in between leaves a job that looks
// unfinished, maybe without its path. Running it again would fetch the
// file a second time, as "name (1).ext".
func (m *manager) settleFromHistory() {
	if m.cfg.History == nil {
		return
	}
	for _, j := range m.jobs {
		if stateFinished(j.State) {
			continue
		}
		rec, ok := m.cfg.History.Get(j.recordID())
		if !ok || rec.Status != jobCompleted && rec.Status != jobFailed {
			continue
		}
		j.State, j.Error = rec.Status, rec.Error
		j.FinishedAt = rec.FinishedAt
		if rec.Status == jobCompleted {
			j.Done, j.Total = rec.Size, rec.Size
		}
		if j.Path == "" {
			j.Path = m.absPath(rec.Path)
		}
	}
}

// parseQueue reads queue.json and turns interrupted transfers back into
// queued jobs.
func (m *manager) parseQueue(data []byte) ([]*managerJob, error) {
	var qf queueFile
	if err := json.Unmarshal(data, &qf); err != nil {
		return nil, err
	}
	if qf.Version != queueFileVersion {
		return nil, fmt.Errorf("unknown queue file version %d", qf.Version)
	}
	seen := make(map[string]bool)
	for i, j := range qf.Jobs {
		switch {
		case j == nil || j.ID == "" || j.Source == "":
			return nil, fmt.Errorf("job %d: missing id or source", i)
		case seen[j.ID]:
			return nil, fmt.Errorf("job %d: duplicate id %s", i, j.ID)
		case j.Kind != jobKindFile && j.Kind != jobKindModel:
			return nil, fmt.Errorf("job %s: unknown kind %q", j.ID, j.Kind)
		}
		seen[j.ID] = true
		switch j.State {
		case jobDownloading, jobVerifying, jobPackaging:
			j.State = jobQueued
		case jobQueued, jobPaused, jobCompleted, jobFailed, jobCanceled:
		default:
			return nil, fmt.Errorf("job %s: unknown state %q", j.ID, j.State)
		}
		j.Phase = ""
		j.Attempt = max(j.Attempt, 1)
		j.Path, j.Output = m.absPath(j.Path), m.absPath(j.Output)
		if j.Kind == jobKindModel {
			// A failure here (the registry flag changed, say) is reported
			// when the pull runs; cleanup then has no staging to remove.
			j.name, _ = parseModelName(j.Source, m.defaultHost())
		}
	}
	return qf.Jobs, nil
}

func (m *manager) defaultHost() string {
	if m.cfg.Models == nil {
		return "registry.ollama.ai"
	}
	return m.cfg.Models.DefaultHost()
}

// Run starts queued jobs, at most Concurrency at a time, until ctx is done.
// Then it stops the running transfers (their .part files stay, and they are
// queued again so that the next start continues them), saves the queue and
// returns.
func (m *manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("download manager is already running")
	}
	m.runCtx = ctx
	m.scheduleLocked()
	snap := m.commitLocked()
	m.mu.Unlock()
	m.save(snap)

	ticker := time.NewTicker(m.saveEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return m.shutdown()
		case <-ticker.C:
			m.mu.Lock()
			var snap stateSnapshot
			if m.dirty {
				snap = m.commitLocked()
			}
			m.mu.Unlock()
			m.save(snap)
		}
	}
}

func (m *manager) shutdown() error {
	m.mu.Lock()
	var dones []chan struct{}
	for _, j := range m.jobs {
		if j.run != nil {
			dones = append(dones, j.run.done)
		}
	}
	m.mu.Unlock()
	// Transfer contexts derive from Run's, so they are already cancelled.
	m.waitStopped(dones...)

	m.mu.Lock()
	m.runCtx = nil
	snap := m.commitLocked()
	m.mu.Unlock()
	m.save(snap)
	return nil
}

// Add validates a download and puts it at the end of the queue. Adding a
// source that is already queued, running or paused (with the same output)
// returns that job instead, resuming it if it was paused: running the same
// CLI command twice continues the first download.
func (m *manager) Add(req addRequest) (jobView, error) {
	views, err := m.AddAll([]addRequest{req})
	if err != nil {
		return jobView{}, err
	}
	return views[0], nil
}

// AddAll is Add for many downloads at once: all are validated before any is
// queued, and the queue is saved once, not once per download (a CLI run
// with 200 URLs would otherwise rewrite the queue file 200 times).
func (m *manager) AddAll(reqs []addRequest) ([]jobView, error) {
	jobs := make([]*managerJob, len(reqs))
	for i, req := range reqs {
		j, err := m.newJob(req)
		if err != nil {
			return nil, err
		}
		jobs[i] = j
	}
	views := make([]jobView, len(jobs))
	m.update(func() ([]chan struct{}, error) {
		for i, j := range jobs {
			jobs[i] = m.addLocked(j)
		}
		m.scheduleLocked()
		for i, j := range jobs {
			views[i] = m.viewLocked(j, slices.Index(m.jobs, j))
		}
		return nil, nil
	})
	return views, nil
}

// addLocked queues j, or returns the unfinished job for the same source.
func (m *manager) addLocked(j *managerJob) *managerJob {
	for _, o := range m.jobs {
		if !stateFinished(o.State) && o.Kind == j.Kind && o.Output == j.Output && o.sameSource(j) {
			if o.State == jobPaused {
				o.State = jobQueued
			}
			return o
		}
	}
	j.ID = m.newIDLocked()
	j.CreatedAt = m.now().UTC()
	m.jobs = append(m.jobs, j)
	return j
}

func (j *managerJob) sameSource(o *managerJob) bool {
	if j.Kind == jobKindModel && j.name.Model != "" && o.name.Model != "" {
		return strings.EqualFold(j.name.String(), o.name.String())
	}
	return j.Source == o.Source
}

// newJob checks what a person typed before anything is queued, so that the
// API can answer 400 with a message.
func (m *manager) newJob(req addRequest) (*managerJob, error) {
	src := strings.TrimSpace(req.Source)
	if src == "" {
		return nil, badInputf("enter a URL (http:// or https://) or a model name")
	}
	retries := req.Retries
	if retries < 0 {
		retries = m.cfg.Retries
	}
	if retries > 100 {
		return nil, badInputf("retries must be between 0 and 100, got %d", retries)
	}
	sum := strings.ToLower(strings.TrimSpace(req.SHA256))
	if sum != "" && (len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "") {
		return nil, badInputf("sha256 must be 64 hexadecimal characters, got %q", req.SHA256)
	}
	if req.LimitRate < 0 {
		return nil, badInputf("limit_rate must be 0 (none) or a positive number of bytes per second")
	}
	j := &managerJob{Source: src, Retries: retries, SHA256: sum, LimitRate: req.LimitRate, State: jobQueued, Total: -1, Attempt: 1}
	if req.Output != "" {
		out, err := filepath.Abs(req.Output)
		if err != nil {
			return nil, badInputf("output path %q: %v", req.Output, err)
		}
		j.Output = out
	}
	switch {
	case isURLArg(src):
		if err := checkDownloadURL(src); err != nil {
			return nil, err
		}
		j.Kind = jobKindFile
		j.Path = j.Output
	case strings.Contains(src, "://"):
		scheme, _, _ := strings.Cut(src, "://")
		return nil, badInputf("%s:// links are not supported: use an http:// or https:// URL, or a model name", scheme)
	default:
		name, err := parseModelName(src, m.defaultHost())
		if err != nil {
			if errors.Is(err, errBadInput) {
				return nil, err
			}
			return nil, badInputf("%q is not a valid model name: %v", src, err)
		}
		if sum != "" {
			return nil, badInputf("sha256 applies to file downloads only: every blob of a model is verified anyway")
		}
		j.Kind = jobKindModel
		j.name = name
		j.Path = j.Output
		if j.Path == "" {
			j.Path = filepath.Join(m.outputDir, name.ZipName())
		}
	}
	return j, nil
}

// newIDLocked names a new job: its creation second for a person, then
// random digits, so that IDs made by two processes in the same second
// (ten CLI runs in a loop) never meet — the history keeps one record per
// ID, and a second-derived counter lost records that way (issue 18).
func (m *manager) newIDLocked() string {
	now := m.now().Unix()
	for {
		id := fmt.Sprintf("d-%d-%s", now, newRandomID())
		if m.findLocked(id) < 0 {
			return id
		}
	}
}

// newRandomID is 12 hex digits from the system's random source.
func newRandomID() string {
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func (m *manager) findLocked(id string) int {
	return slices.IndexFunc(m.jobs, func(j *managerJob) bool { return j.ID == id })
}

func (m *manager) lookupLocked(id string) (*managerJob, error) {
	i := m.findLocked(id)
	if i < 0 {
		return nil, fmt.Errorf("download %s: %w", id, errNotFound)
	}
	return m.jobs[i], nil
}

// Get returns one download.
func (m *manager) Get(id string) (jobView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.findLocked(id)
	if i < 0 {
		return jobView{}, fmt.Errorf("download %s: %w", id, errNotFound)
	}
	return m.viewLocked(m.jobs[i], i), nil
}

// List returns every download in queue order.
func (m *manager) List() []jobView {
	m.mu.Lock()
	defer m.mu.Unlock()
	views := make([]jobView, len(m.jobs))
	for i, j := range m.jobs {
		views[i] = m.viewLocked(j, i)
	}
	return views
}

func (m *manager) viewLocked(j *managerJob, pos int) jobView {
	v := jobView{
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
	}
	if stateRunning(j.State) {
		if j.Kind == jobKindModel {
			v.Phase = j.Phase
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
	if j.State == jobCompleted {
		v.ETASeconds = 0
	}
	return v
}

func (j *managerJob) displayName() string {
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
func (m *manager) viewPath(p string) string {
	if rel, ok := m.insideOutput(p); ok {
		return filepath.ToSlash(rel)
	}
	return p
}

// absPath is viewPath's inverse.
func (m *manager) absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.outputDir, filepath.FromSlash(p))
}

// insideOutput is p relative to the output folder, and whether p lies inside it.
func (m *manager) insideOutput(p string) (string, bool) {
	rel, err := filepath.Rel(m.outputDir, p)
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// stateRunning reports whether a job in this state has (or is about to have) a transfer.
func stateRunning(state string) bool {
	return state == jobDownloading || state == jobVerifying || state == jobPackaging
}

func stateFinished(state string) bool {
	return state == jobCompleted || state == jobFailed || state == jobCanceled
}

// jobStateError refuses an action the download's state does not allow. It
// matches errConflict (HTTP 409) and its text is only the reason, for the
// person who clicked.
type jobStateError struct{ msg string }

func (e *jobStateError) Error() string        { return e.msg }
func (e *jobStateError) Is(target error) bool { return target == errConflict }

func jobConflict(format string, args ...any) error {
	return &jobStateError{msg: fmt.Sprintf(format, args...)}
}

// Pause stops a queued or running download and keeps its partial data. It
// returns once the transfer has let go of its files (or after a few seconds).
func (m *manager) Pause(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobQueued && !stateRunning(j.State) {
			return nil, jobConflict("cannot pause a %s download", j.State)
		}
		return m.pauseLocked(j), nil
	})
}

func (m *manager) pauseLocked(j *managerJob) chan struct{} {
	j.State = jobPaused
	j.Phase = ""
	if j.run == nil {
		return nil
	}
	if j.run.stop == "" && j.run.cancel != nil {
		j.run.stop = jobPaused
		j.run.cancel(errors.New("download paused"))
	}
	return j.run.done
}

// update runs fn under the lock; when it succeeds the queue is saved and
// the transfers fn stopped (their done channels) are waited for. It is how
// every change a person makes is applied.
func (m *manager) update(fn func() (stopped []chan struct{}, err error)) error {
	m.mu.Lock()
	stopped, err := fn()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	snap := m.commitLocked()
	m.mu.Unlock()
	m.save(snap)
	m.waitStopped(stopped...)
	return nil
}

// change is update for one job, found by id.
func (m *manager) change(id string, fn func(j *managerJob) (stopped chan struct{}, err error)) error {
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
func (m *manager) limiterLocked(j *managerJob) *rateLimiter {
	if j.limiter == nil {
		j.limiter = newRateLimiter(j.LimitRate)
	}
	return j.limiter
}

// SetLimit changes one download's speed limit (bytes/s, 0 = none), also
// while it runs.
func (m *manager) SetLimit(id string, bytesPerSecond int64) error {
	if bytesPerSecond < 0 {
		return badInputf("limit_rate must be 0 (none) or a positive number of bytes per second")
	}
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		j.LimitRate = bytesPerSecond
		m.limiterLocked(j).SetRate(bytesPerSecond)
		return nil, nil
	})
}

// Resume queues a paused download again; the transfer continues from its
// partial data.
func (m *manager) Resume(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobPaused {
			return nil, jobConflict("cannot resume a %s download", j.State)
		}
		j.State = jobQueued
		m.scheduleLocked()
		return nil, nil
	})
}

// Cancel stops a download that is not finished and removes its partial data.
// It returns once the data is gone (or after a few seconds).
func (m *manager) Cancel(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if stateFinished(j.State) {
			return nil, jobConflict("cannot cancel a %s download", j.State)
		}
		return m.cancelLocked(j), nil
	})
}

// cancelLocked marks j canceled and makes sure a goroutine removes its
// partial data and records it in the history once no transfer uses it.
func (m *manager) cancelLocked(j *managerJob) chan struct{} {
	j.State = jobCanceled
	j.Phase = ""
	j.Error = ""
	j.FinishedAt = m.now().UTC()
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
	go m.finish(context.Background(), j, run, "", 0, errors.New("download canceled"))
	return run.done
}

// Retry queues a failed or canceled download again. A failed one continues
// from its partial data; a canceled one starts over.
func (m *manager) Retry(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobFailed && j.State != jobCanceled {
			return nil, jobConflict("cannot retry a %s download: only failed or canceled ones", j.State)
		}
		if j.State == jobCanceled {
			j.Done, j.Total = 0, -1
			if j.Kind == jobKindFile && j.Output == "" {
				j.Path = "" // the server may name it differently now
			}
		}
		j.State = jobQueued
		j.Error = ""
		j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}
		j.Attempt++
		j.Transferred, j.Active = 0, 0
		m.scheduleLocked()
		return nil, nil
	})
}

// Remove forgets a finished download. With deleteFile it also deletes the
// downloaded file (or a failed job's partial data), but only inside the
// output folder.
func (m *manager) Remove(id string, deleteFile bool) error {
	var rel, state, kind, p string
	var name modelName
	err := m.change(id, func(j *managerJob) (chan struct{}, error) {
		if !stateFinished(j.State) {
			return nil, jobConflict("cannot remove a %s download: cancel it first", j.State)
		}
		if j.run != nil {
			return nil, jobConflict("download %s is still stopping: try again in a moment", id)
		}
		if deleteFile && j.Path != "" {
			var ok bool
			if rel, ok = m.insideOutput(j.Path); !ok {
				return nil, jobConflict("refusing to delete %s: it is outside the output folder %s", j.Path, m.outputDir)
			}
		}
		kind, state, name, p = j.Kind, j.State, j.name, j.Path
		m.jobs = slices.DeleteFunc(m.jobs, func(o *managerJob) bool { return o == j })
		return nil, nil
	})
	if err != nil {
		return err
	}
	if rel == "" {
		return nil
	}
	if state == jobFailed {
		m.removeData(kind, p, name)
	}
	if err := m.removeInsideOutput(rel); err != nil {
		return fmt.Errorf("download removed from the list, but deleting its file: %w", err)
	}
	return nil
}

// removeInsideOutput deletes rel through an os.Root, so that a symbolic
// link cannot lead the deletion outside the output folder (SPEC §10).
func (m *manager) removeInsideOutput(rel string) error {
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

// removeData deletes a stopped transfer's partial data.
func (m *manager) removeData(kind, p string, name modelName) {
	var err error
	switch {
	case kind == jobKindFile && p != "":
		err = removePartial(p)
	case kind == jobKindModel && name.Model != "":
		err = removePullStaging(m.outputDir, name)
	}
	if err != nil {
		m.log.Warn("removing partial data", "path", p, "err", err)
	}
}

// Move reorders a queued download: "top", "up", "down" or "bottom". Up and
// down swap it with the nearest queued neighbour: only the order of queued
// downloads decides what starts next, and it is what the Queue tab shows.
func (m *manager) Move(id, where string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobQueued {
			return nil, jobConflict("cannot move a %s download: only queued ones", j.State)
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
			return nil, badInputf("move where? %q: use top, up, down or bottom", where)
		}
		m.jobs = slices.Delete(m.jobs, i, i+1)
		m.jobs = slices.Insert(m.jobs, to, j)
		return nil, nil
	})
}

// PauseAll pauses every queued or running download and returns how many.
func (m *manager) PauseAll() int {
	n := 0
	m.update(func() (dones []chan struct{}, _ error) {
		for _, j := range m.jobs {
			if j.State == jobQueued || stateRunning(j.State) {
				dones = append(dones, m.pauseLocked(j))
				n++
			}
		}
		return dones, nil
	})
	return n
}

// ResumeAll queues every paused download again and returns how many.
func (m *manager) ResumeAll() int {
	n := 0
	m.update(func() ([]chan struct{}, error) {
		for _, j := range m.jobs {
			if j.State == jobPaused {
				j.State = jobQueued
				n++
			}
		}
		m.scheduleLocked()
		return nil, nil
	})
	return n
}

// CancelAll cancels every download that is not finished and returns how many.
func (m *manager) CancelAll() int {
	n := 0
	m.update(func() (dones []chan struct{}, _ error) {
		for _, j := range m.jobs {
			if !stateFinished(j.State) {
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
func (m *manager) ClearFinished() int {
	n := 0
	m.update(func() ([]chan struct{}, error) {
		before := len(m.jobs)
		m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool { return stateFinished(j.State) && j.run == nil })
		n = before - len(m.jobs)
		return nil, nil
	})
	return n
}

// maxConcurrency is the most downloads that may run at once (SPEC: 1–32).
const maxConcurrency = 32

func checkConcurrency(n int) error {
	if n < 1 || n > maxConcurrency {
		return badInputf("concurrency must be between 1 and %d, got %d", maxConcurrency, n)
	}
	return nil
}

// SetConcurrency changes how many downloads run at once. Raising it starts
// queued downloads at once. Lowering it stops nothing: running downloads
// finish and no new one starts until fewer than n run — killing a transfer
// would throw away its connection's progress for no gain.
func (m *manager) SetConcurrency(n int) error {
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
func (m *manager) Concurrency() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.concurrency
}

// Changed returns a channel that is closed at the next change (state, order,
// or, at most once per save interval, progress).
func (m *manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Wait returns when every listed download is finished, with an error naming
// those that failed, or ctx's error when ctx is done first.
func (m *manager) Wait(ctx context.Context, ids ...string) error {
	seen := make(map[string]bool)
	for {
		m.mu.Lock()
		var errs []error
		pending := false
		// One pass over the queue, not one per id: a CLI run waits for
		// hundreds of downloads and wakes on every change.
		byID := make(map[string]*managerJob, len(m.jobs))
		for _, j := range m.jobs {
			byID[j.ID] = j
		}
		for _, id := range ids {
			j := byID[id]
			if j == nil {
				if !seen[id] {
					m.mu.Unlock()
					return fmt.Errorf("download %s: %w", id, errNotFound)
				}
				continue // removed, so it was finished
			}
			seen[id] = true
			if !stateFinished(j.State) || j.run != nil {
				pending = true
			} else if j.State == jobFailed {
				errs = append(errs, fmt.Errorf("%s: %s", j.Source, j.Error))
			}
		}
		ch := m.changed
		m.mu.Unlock()
		if !pending {
			return errors.Join(errs...)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scheduleLocked starts queued jobs, in queue order, while fewer than
// Concurrency transfers run. A job whose previous transfer is still
// stopping waits for it, so two transfers never share a .part.
func (m *manager) scheduleLocked() {
	if m.runCtx == nil || m.runCtx.Err() != nil {
		return
	}
	busy := 0
	for _, j := range m.jobs {
		if j.run != nil && j.run.cancel != nil {
			busy++
		}
	}
	for _, j := range m.jobs {
		if busy >= m.concurrency {
			return
		}
		if j.State == jobQueued && j.run == nil && !m.clashesLocked(j) {
			m.startLocked(j)
			busy++
		}
	}
}

// clashesLocked reports whether another job's goroutine still works on the
// same source or file as j — a canceled one removing its partial data, say —
// so that j waits instead of writing the .part being deleted.
func (m *manager) clashesLocked(j *managerJob) bool {
	for _, o := range m.jobs {
		if o == j || o.run == nil {
			continue
		}
		if o.Kind == j.Kind && o.sameSource(j) || j.Path != "" && o.run.path == j.Path {
			return true
		}
	}
	return false
}

func (m *manager) startLocked(j *managerJob) {
	now := m.now()
	ctx, cancel := context.WithCancelCause(m.runCtx)
	run := &managerRun{
		cancel:  cancel,
		done:    make(chan struct{}),
		path:    j.Path,
		speed:   newSpeedTracker(10),
		last:    j.Done,
		started: now,
	}
	j.run = run
	j.State = jobDownloading
	j.Phase = ""
	j.Error = ""
	if j.StartedAt.IsZero() {
		j.StartedAt = now.UTC()
	}
	m.changedLocked()
	if j.Kind == jobKindFile {
		req := fileRequest{
			URL:      j.Source,
			Dir:      m.outputDir,
			Path:     j.Path,
			SHA256:   j.SHA256,
			Retries:  j.Retries,
			Limiter:  m.limiterLocked(j),
			Progress: func(done, total int64) { m.progress(j, run, "", done, total) },
			OnPath:   func(p string) { m.onPath(j, run, p) },
		}
		go func() {
			res, err := m.download(ctx, req)
			m.finish(ctx, j, run, res.Path, res.Size, err)
			cancel(nil)
		}()
		return
	}
	req := pullRequest{
		Ref:         j.Source,
		OutputDir:   m.outputDir,
		Output:      j.Output,
		KeepStaging: m.cfg.KeepStaging,
		Retries:     j.Retries,
		Limiter:     m.limiterLocked(j),
		Progress:    func(p pullProgress) { m.progress(j, run, p.Phase, p.Done, p.Total) },
	}
	go func() {
		res, err := m.pull(ctx, req)
		m.finish(ctx, j, run, res.Path, res.Size, err)
		cancel(nil)
	}()
}

// progress records a transfer's figures. It is called often from the
// transfer goroutine, so it only updates memory; Run's ticker saves.
func (m *manager) progress(j *managerJob, run *managerRun, phase string, done, total int64) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.run != run || run.stop != "" {
		return
	}
	if done > run.last {
		j.Transferred += done - run.last
	}
	run.last = done
	if total < 0 {
		total = -1
	}
	j.Done, j.Total = done, total
	if !run.sampled {
		// The first report of a resumed transfer carries the bytes already
		// on disk: they are not speed.
		run.speed.Reset(now, done)
		run.sampled = true
	} else {
		run.speed.Sample(now, done)
	}
	if j.Kind == jobKindModel && phase != "" && phase != j.Phase {
		j.Phase = phase
		switch phase {
		case jobVerifying, jobPackaging:
			j.State = phase
		default:
			j.State = jobDownloading
		}
		m.changedLocked()
	}
	m.dirty = true
}

// onPath learns where a file transfer writes. It is saved with the next
// progress save, not at once: until then a restart finds the same .part
// anyway, by the URL its sidecar was claimed with (see choosePath).
func (m *manager) onPath(j *managerJob, run *managerRun, p string) {
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
	m.changedLocked()
	m.dirty = true
}

// finish settles a job once its goroutine's transfer returned: completed,
// failed, or (after a pause, cancel or shutdown) what the person asked for.
// A canceled job's partial data is removed and the history is written
// before the job is let go, so Cancel and Wait see the end result.
func (m *manager) finish(ctx context.Context, j *managerJob, run *managerRun, p string, size int64, err error) {
	now := m.now()
	m.mu.Lock()
	j.Active += now.Sub(run.started).Seconds()
	switch {
	case err == nil:
		// Success wins over a pause or cancel that came too late: the
		// file is complete and verified.
		if p != "" {
			if abs, aerr := filepath.Abs(p); aerr == nil {
				p = abs
			}
			j.Path = p
		}
		j.State = jobCompleted
		j.Done, j.Total = size, size
		j.Error = ""
		j.FinishedAt = now.UTC()
		m.log.Info("download completed", "id", j.ID, "path", j.Path, "bytes", size)
	case run.stop != "":
		// Pause or Cancel already set the state.
	case ctx.Err() != nil:
		// Run is shutting down: continue on the next start.
		if stateRunning(j.State) {
			j.State = jobQueued
		}
	default:
		j.State = jobFailed
		j.Error = err.Error()
		j.FinishedAt = now.UTC()
		m.log.Warn("download failed", "id", j.ID, "source", j.safeSource(), "err", err)
	}
	j.Phase = ""
	// The transfer is over: its slot goes to the next download now, not
	// after the history write below (j.run stays set until then, so no
	// job for the same file starts early).
	run.cancel = nil
	m.scheduleLocked()
	cleaned, recorded := false, false
	for {
		clean := err != nil && run.stop == jobCanceled && !cleaned
		var rec *historyRecord
		if !clean && !recorded && stateFinished(j.State) {
			r := m.recordLocked(j)
			rec = &r
			recorded = true
		}
		if !clean && rec == nil {
			break
		}
		kind, path, name := j.Kind, run.path, j.name
		m.mu.Unlock()
		if clean {
			m.removeData(kind, path, name)
			cleaned = true
		}
		if rec != nil && m.cfg.History != nil {
			if herr := m.cfg.History.AddOnce(*rec); herr != nil {
				m.log.Warn("writing history", "id", rec.ID, "err", herr)
			}
		}
		m.mu.Lock()
	}
	j.run = nil
	close(run.done)
	m.scheduleLocked()
	// Saved with the next progress save (within saveEvery) or at shutdown,
	// not at once: 200 small files finishing would otherwise cost a queue
	// write each. A kill before that save only runs the job once more: it
	// finds its file (or zip) complete, and the history keeps one record
	// per attempt (AddOnce).
	m.changedLocked()
	m.dirty = true
	m.mu.Unlock()
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
func (m *manager) recordLocked(j *managerJob) historyRecord {
	rec := historyRecord{
		ID:         j.ID,
		Kind:       j.Kind,
		Path:       m.viewPath(j.Path),
		Size:       j.Done,
		StartedAt:  j.StartedAt.UTC(),
		FinishedAt: j.FinishedAt.UTC(),
		Duration:   j.Active,
		Status:     j.State,
		Error:      j.Error,
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
	rec.FileType = fileTypeOf(j.Kind, name)
	if j.Kind == jobKindModel {
		rec.Domain = j.name.Host
		if rec.FileName == "" {
			rec.FileName = name
		}
	} else {
		rec.Domain = domainOf(j.Source)
	}
	return rec
}

// safeSource is the source for logs and history: a URL loses its
// credentials and query string (a presigned query is a secret).
func (j *managerJob) safeSource() string {
	if j.Kind == jobKindFile {
		return redactURL(j.Source)
	}
	return j.Source
}

// waitStopped waits until the given runs are done, at most stopTimeout in all.
func (m *manager) waitStopped(dones ...chan struct{}) {
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

// changedLocked wakes everyone waiting on Changed.
func (m *manager) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// commitLocked announces a change and takes a snapshot of the queue to save.
// Only shallow copies are made under the lock; encoding happens in save.
func (m *manager) commitLocked() stateSnapshot {
	m.changedLocked()
	m.dirty = false
	m.snapSeq++
	qf := &queueFile{Version: queueFileVersion, Jobs: make([]*managerJob, len(m.jobs))}
	for i, j := range m.jobs {
		c := *j
		c.Path = m.viewPath(j.Path)
		c.Output = m.viewPath(j.Output)
		c.run = nil
		qf.Jobs[i] = &c
	}
	m.latest = stateSnapshot{seq: m.snapSeq, queue: qf}
	return m.latest
}

// save returns once queue.json holds snap or a newer snapshot. It writes
// atomically (temp file in the same folder, fsync, rename) and always the
// newest snapshot, so callers that queued up behind one write share the
// next: a group commit. 200 files finishing cost a few writes, not 200.
func (m *manager) save(snap stateSnapshot) {
	if snap.queue == nil {
		return
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	if snap.seq <= m.savedSeq {
		return // a write that began after snap was taken covered it
	}
	m.mu.Lock()
	latest := m.latest
	m.mu.Unlock()
	data, err := json.Marshal(latest.queue)
	if err != nil {
		m.log.Error("encoding download queue", "err", err)
		return
	}
	if err := m.writeState(data); err != nil {
		m.log.Error("saving download queue", "path", m.statePath, "err", err)
		return
	}
	m.savedSeq = latest.seq
}

// tempPattern names the temp files of this queue's saves after its own
// file, so that load's cleanup of crash leftovers finds this queue's and
// never another's: the CLI keeps its queue file next to the web UI's, and
// must not lose a save in flight to the other's cleanup.
func (m *manager) tempPattern() string { return filepath.Base(m.statePath) + ".tmp-*" }

func (m *manager) writeState(data []byte) error {
	dir := filepath.Dir(m.statePath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, m.tempPattern())
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, m.statePath)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// The rename itself must reach the disk too; not every system can
	// sync a folder, so a failure here is not an error.
	_ = syncFolder(dir)
	return nil
}
