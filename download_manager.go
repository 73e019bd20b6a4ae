package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
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

	// maxQueueJobs bounds the queue (issue 18): past it an add is refused
	// with a message, instead of every change costing more and more.
	maxQueueJobs = 20_000
	// maxRemovals is how many removals ListSince can report; a client
	// further behind gets the whole list.
	maxRemovals = 4096
)

// manager runs one queue of file and model downloads through a pool of at
// most Concurrency workers, and keeps the queue in <output-dir>/.state
// (queueStore) so that a restart continues where it left.
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
	checkSame   func(context.Context, string, fileValidators) (bool, error) // the same URL again: unchanged upstream?
	now         func() time.Time
	saveEvery   time.Duration // how often running downloads' progress is announced
	stopTimeout time.Duration // how long Pause, Cancel and Run's shutdown wait for a transfer to stop

	store   *queueStore
	doneIdx *doneIndex // finished URLs, for the same URL again

	mu          sync.Mutex
	jobs        []*managerJob // queue order (ascending Rank)
	concurrency int
	runCtx      context.Context // non-nil while Run runs
	changed     chan struct{}
	progressed  bool                   // bytes moved since the last announcement
	pending     map[string]*managerJob // changed since the last write to the store
	pendingDel  []string               // removed since then
	rev         uint64                 // counts every change, for ListSince
	orderRev    uint64                 // rev of the last reordering or removal
	removed     []removal              // the latest removals, oldest first
	removedFrom uint64                 // a client at or past this rev can be told the removals
	window      timeWindow             // when downloads may run
	windowWake  chan struct{}          // tells Run the window changed
	own         map[string]bool        // with OwnJobsOnly: the jobs this process runs
	saveErr     string                 // last save error, logged once
	recovered   string
}

// removal is one job removed, at rev.
type removal struct {
	id  string
	rev uint64
}

type managerConfig struct {
	OutputDir   string
	Concurrency int // 1–32
	Retries     int // default per job
	Files       *rangeDownloader
	Models      *modelPuller
	History     *historyStore
	Log         *slog.Logger
	KeepStaging bool // models: keep the staging folder after zipping (-keep-staging)
	// QueueFile names the state file under <output-dir>/.state; "" is
	// queue.json.
	QueueFile string
	// OwnJobsOnly makes the manager run only the jobs added (or added
	// again) while it runs: a CLI run owning the folder runs its own
	// arguments and those handed to it, and leaves the web UI's queue as
	// it found it.
	OwnJobsOnly bool
	Window      timeWindow       // daily window in which downloads may start; zero = always
	WindowFile  string           // where SetSchedule keeps the window for the next start; "" = not kept
	Now         func() time.Time // the clock; nil = time.Now
	// ProgressEvery is how often running downloads' progress is announced
	// and saved; 0 = every second. Tests make it shorter.
	ProgressEvery time.Duration
}

type addRequest struct {
	Source    string // URL or model reference
	Retries   int    // < 0 = default
	SHA256    string // optional, files only
	Output    string // optional explicit path (CLI -o)
	LimitRate int64  // optional speed limit for this download, bytes/s; 0 = none
	ModelsDir string // models only: install into this Ollama models folder instead of a zip
	Split     int64  // models only: zip parts of at most this many bytes
	Force     bool   // files only: fetch again even when this folder has the URL complete and unchanged
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

	ErrorCode    string          `json:"error_code"`
	Layers       []layerProgress `json:"layers,omitempty"`
	ReusedBytes  int64           `json:"reused_bytes"`
	Outcome      string          `json:"outcome"` // "", "unchanged" (already downloaded, nothing fetched), "updated" (a newer version beside the old)
	PreviousPath string          `json:"previous_path,omitempty"`
	ModelsDir    string          `json:"models_dir,omitempty"`
	Rev          uint64          `json:"rev"`
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
	Rank        int64     `json:"rank"` // queue order: ascending
	ErrorCode   string    `json:"error_code,omitempty"`
	ModelsDir   string    `json:"models_dir,omitempty"`
	Split       int64     `json:"split,omitempty"`
	Force       bool      `json:"force,omitempty"`
	Outcome     string    `json:"outcome,omitempty"`
	Previous    string    `json:"previous_path,omitempty"`
	Reused      int64     `json:"reused_bytes,omitempty"`

	name    modelName       // parsed reference (models only)
	run     *managerRun     // non-nil while a goroutine transfers or cleans up this job
	limiter *rateLimiter    // this download's own speed limit, changeable while it runs
	rev     uint64          // manager rev of its last change
	layers  []layerProgress // models: the blobs, once the manifest is known
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
	saved   int64 // bytes done when last written to the store
	started time.Time
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
		now:         cfg.Now,
		saveEvery:   cmp.Or(cfg.ProgressEvery, time.Second),
		stopTimeout: 5 * time.Second,
		concurrency: cfg.Concurrency,
		changed:     make(chan struct{}),
		pending:     make(map[string]*managerJob),
		window:      cfg.Window,
		windowWake:  make(chan struct{}, 1),
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.doneIdx = newDoneIndex(filepath.Join(filepath.Dir(m.statePath), "done"))
	// Revisions start from the clock, so that one a client kept from an
	// earlier run is older than any of this run (and gets the full list).
	m.rev = uint64(time.Now().UnixMicro())
	m.removedFrom = m.rev
	if cfg.OwnJobsOnly {
		m.own = make(map[string]bool)
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.checkSame = func(ctx context.Context, u string, prev fileValidators) (bool, error) {
		if cfg.Files == nil {
			return false, errors.New("file downloads are not configured")
		}
		return cfg.Files.CheckUnchanged(ctx, u, prev)
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

// Models is the puller model jobs go through (nil: files only).
func (m *manager) Models() *modelPuller { return m.cfg.Models }

// Recovered is the path a corrupt queue.json was moved to when the manager
// started, or "" if none was.
func (m *manager) Recovered() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recovered
}

func (m *manager) load() error {
	store, jobs, recovered, err := openQueueStore(m.statePath, m.log, m.now())
	if err != nil {
		return fmt.Errorf("reading download queue: %w", err)
	}
	m.store, m.recovered = store, recovered
	if err := m.checkJobs(jobs); err != nil {
		// Each line parsed, but together they are no queue (a hand edit,
		// a bug): keep them aside and start empty, never drop silently.
		store.Close()
		aside, merr := moveAsideFile(m.statePath, m.now())
		if merr != nil && !errors.Is(merr, os.ErrNotExist) {
			return fmt.Errorf("moving aside corrupt download queue %s: %w", m.statePath, merr)
		}
		if _, jerr := moveAsideFile(journalPath(m.statePath), m.now()); jerr != nil && !errors.Is(jerr, os.ErrNotExist) {
			return fmt.Errorf("moving aside corrupt queue journal: %w", jerr)
		}
		m.log.Warn("download queue was corrupt; moved aside, starting with an empty queue",
			"path", m.statePath, "moved_to", aside, "err", err)
		m.recovered = aside
		if m.store, _, _, err = openQueueStore(m.statePath, m.log, m.now()); err != nil {
			return fmt.Errorf("reading download queue: %w", err)
		}
		return nil
	}
	m.jobs = jobs
	m.settleFromHistory()
	return nil
}

// Close releases the queue's files. Run calls it on its way out; a manager
// that never ran (a test, a failed start) is closed by its maker.
func (m *manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.store.Close()
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
		m.markLocked(j)
	}
}

// checkJobs validates the jobs read from the store and turns interrupted
// transfers back into queued jobs.
func (m *manager) checkJobs(jobs []*managerJob) error {
	seen := make(map[string]bool)
	for i, j := range jobs {
		switch {
		case j == nil || j.ID == "" || j.Source == "":
			return fmt.Errorf("job %d: missing id or source", i)
		case seen[j.ID]:
			return fmt.Errorf("job %d: duplicate id %s", i, j.ID)
		case j.Kind != jobKindFile && j.Kind != jobKindModel:
			return fmt.Errorf("job %s: unknown kind %q", j.ID, j.Kind)
		}
		seen[j.ID] = true
		switch j.State {
		case jobDownloading, jobVerifying, jobPackaging:
			j.State = jobQueued
		case jobQueued, jobPaused, jobCompleted, jobFailed, jobCanceled:
		default:
			return fmt.Errorf("job %s: unknown state %q", j.ID, j.State)
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
	return nil
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
	m.mu.Unlock()
	m.save()

	ticker := time.NewTicker(m.saveEvery)
	defer ticker.Stop()
	edge := time.NewTimer(0)
	defer edge.Stop()
	for {
		select {
		case <-ctx.Done():
			return m.shutdown()
		case <-ticker.C:
			// Progress is announced at most once per tick, for the UI's
			// live figures, and written as a line per running download
			// without waiting for the disk: each .part's sidecar holds the
			// durable truth, this only keeps the list's figures close after
			// a kill.
			m.mu.Lock()
			if m.progressed {
				m.progressed = false
				m.changedLocked()
				for _, j := range m.jobs {
					if j.run != nil && j.run.cancel != nil && j.run.saved != j.Done {
						j.run.saved = j.Done
						m.markLocked(j)
					}
				}
				m.writeLocked()
			}
			m.mu.Unlock()
		case <-m.windowWake:
			m.windowEdge(edge)
		case <-edge.C:
			m.windowEdge(edge)
		}
	}
}

// windowEdge applies the time window now: outside it running downloads
// stop and wait as queued (they continue from their .part when it opens);
// inside it queued downloads start. It sets edge to fire at the next
// opening or closing.
func (m *manager) windowEdge(edge *time.Timer) {
	now := m.now()
	var stopped []chan struct{}
	m.mu.Lock()
	if !m.window.Open(now) {
		for _, j := range m.jobs {
			if stateRunning(j.State) && j.run != nil && j.run.cancel != nil && j.run.stop == "" {
				j.run.stop = jobQueued
				j.run.cancel(errOutsideWindow)
				j.State, j.Phase = jobQueued, ""
				m.markLocked(j)
				stopped = append(stopped, j.run.done)
			}
		}
	}
	m.scheduleLocked()
	next := m.window.NextChange(now)
	m.mu.Unlock()
	m.save()
	m.waitStopped(stopped...)
	edge.Stop()
	if !next.IsZero() {
		// A second past the minute, so the clock is surely on the new side.
		edge.Reset(next.Sub(now) + time.Second)
	}
}

// errOutsideWindow is the cause a transfer stops with at the end of the
// time window.
var errOutsideWindow = errors.New("outside the download time window")

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
	for _, j := range m.jobs {
		if j.run != nil || j.State == jobQueued {
			m.markLocked(j) // their latest figures, for the next start
		}
	}
	m.writeLocked()
	// A clean stop of the web UI leaves queue.json whole, for a person or
	// a script reading it, and an empty journal. A command's run leaves
	// its few lines in the journal (the next start reads them): three
	// fsyncs less for every command.
	if m.saveErr == "" && !m.cfg.OwnJobsOnly && (m.store.lines > 0 || !m.store.exists) {
		all := make([]*managerJob, len(m.jobs))
		for i, j := range m.jobs {
			all[i] = m.storedCopy(j)
		}
		m.noteSaveLocked(m.store.snapshot(all))
	}
	m.mu.Unlock()
	m.save()
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
	err := m.update(func() ([]chan struct{}, error) {
		if len(m.jobs)+len(jobs) > maxQueueJobs {
			return nil, conflictf("the queue is full: it holds %d downloads and takes at most %d; clear finished ones (or remove some) and add again", len(m.jobs), maxQueueJobs)
		}
		// One look at the queue for the whole batch: adding N to a queue
		// of Q costs N+Q, not N×Q.
		idx := m.addIndexLocked()
		for i, j := range jobs {
			jobs[i] = m.addLocked(j, idx)
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

func (m *manager) addIndexLocked() addIndex {
	idx := addIndex{ids: make(map[string]bool, len(m.jobs)), unfinished: make(map[string]*managerJob)}
	for _, o := range m.jobs {
		idx.ids[o.ID] = true
		if !stateFinished(o.State) {
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
	return j.Kind + "\x00" + j.Output + "\x00" + j.ModelsDir + "\x00" + src
}

// addLocked queues j, or returns the unfinished job for the same source.
func (m *manager) addLocked(j *managerJob, idx addIndex) *managerJob {
	if o := idx.unfinished[j.addKey()]; o != nil {
		if o.State == jobPaused {
			o.State = jobQueued
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
	if req.Split < 0 {
		return nil, badInputf("split must be a positive size, like 4G")
	}
	j := &managerJob{Source: src, Retries: retries, SHA256: sum, LimitRate: req.LimitRate, State: jobQueued, Total: -1, Attempt: 1, Force: req.Force}
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
		j.Split = req.Split
		if req.ModelsDir != "" {
			if !filepath.IsAbs(req.ModelsDir) {
				return nil, badInputf("models_dir must be an absolute path, got %q", req.ModelsDir)
			}
			if req.Output != "" || req.Split > 0 {
				return nil, badInputf("an install into Ollama's models folder writes no zip: leave out the output path and split")
			}
			j.ModelsDir = filepath.Clean(req.ModelsDir)
		}
		j.Path = j.Output
		if j.Path == "" && j.ModelsDir == "" {
			j.Path = filepath.Join(m.outputDir, name.ZipName())
		}
	}
	if j.Kind == jobKindFile && (req.ModelsDir != "" || req.Split != 0) {
		return nil, badInputf("models_dir and split apply to model names only")
	}
	return j, nil
}

// newIDLocked names a new job: its creation second for a person, then
// random digits, so that IDs made by two processes in the same second
// (ten CLI runs in a loop) never meet — the history keeps one record per
// ID, and a second-derived counter lost records that way (issue 18).
func (m *manager) newIDLocked(inUse map[string]bool) string {
	now := m.now().Unix()
	for {
		id := fmt.Sprintf("d-%d-%s", now, newRandomID())
		if !inUse[id] {
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

		ErrorCode:    j.ErrorCode,
		Layers:       j.layers,
		ReusedBytes:  j.Reused,
		Outcome:      j.Outcome,
		PreviousPath: m.viewPath(j.Previous),
		ModelsDir:    j.ModelsDir,
		Rev:          j.rev,
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
	case jobCompleted:
		return "already finished"
	case jobCanceled:
		return "canceled"
	default:
		return state // downloading, paused, failed
	}
}

// Pause stops a queued or running download and keeps its partial data. It
// returns once the transfer has let go of its files (or after a few seconds).
func (m *manager) Pause(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobQueued && !stateRunning(j.State) {
			return nil, conflictf("%s is %s: only a queued or running download can be paused", j.displayName(), stateWords(j.State))
		}
		return m.pauseLocked(j), nil
	})
}

func (m *manager) pauseLocked(j *managerJob) chan struct{} {
	j.State = jobPaused
	j.Phase = ""
	m.markLocked(j)
	if j.run == nil {
		return nil
	}
	if j.run.stop == "" && j.run.cancel != nil {
		j.run.stop = jobPaused
		j.run.cancel(errors.New("download paused"))
	}
	return j.run.done
}

// update runs fn under the lock; when it succeeds the changes fn marked
// are saved and the transfers fn stopped (their done channels) are waited
// for. It is how every change a person makes is applied.
func (m *manager) update(fn func() (stopped []chan struct{}, err error)) error {
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
		m.markLocked(j)
		return nil, nil
	})
}

// Resume queues a paused download again; the transfer continues from its
// partial data.
func (m *manager) Resume(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobPaused {
			return nil, conflictf("%s is %s: only a paused download can be resumed", j.displayName(), stateWords(j.State))
		}
		j.State = jobQueued
		m.markLocked(j)
		m.scheduleLocked()
		return nil, nil
	})
}

// Cancel stops a download that is not finished and removes its partial data.
// It returns once the data is gone (or after a few seconds).
func (m *manager) Cancel(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if stateFinished(j.State) {
			return nil, conflictf("%s is %s: there is nothing to cancel (remove it from the list instead)", j.displayName(), stateWords(j.State))
		}
		return m.cancelLocked(j), nil
	})
}

// cancelLocked marks j canceled and makes sure a goroutine removes its
// partial data and records it in the history once no transfer uses it.
func (m *manager) cancelLocked(j *managerJob) chan struct{} {
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
func (m *manager) Retry(id string) error {
	return m.change(id, func(j *managerJob) (chan struct{}, error) {
		if j.State != jobFailed && j.State != jobCanceled {
			return nil, conflictf("%s is %s: only a failed or canceled download can be retried", j.displayName(), stateWords(j.State))
		}
		if j.State == jobCanceled {
			j.Done, j.Total = 0, -1
			if j.Kind == jobKindFile && j.Output == "" {
				j.Path = "" // the server may name it differently now
			}
		}
		j.State = jobQueued
		j.Error, j.ErrorCode = "", ""
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
func (m *manager) Remove(id string, deleteFile bool) error {
	// A download that has just finished may still be writing its history
	// record: wait for that (briefly) rather than refuse.
	m.mu.Lock()
	if j, err := m.lookupLocked(id); err == nil && stateFinished(j.State) && j.run != nil {
		done := j.run.done
		m.mu.Unlock()
		m.waitStopped(done)
	} else {
		m.mu.Unlock()
	}
	var rel, state, kind, p, modelsDir string
	var name modelName
	err := m.change(id, func(j *managerJob) (chan struct{}, error) {
		if !stateFinished(j.State) {
			return nil, conflictf("%s is %s: cancel it first, then remove it", j.displayName(), stateWords(j.State))
		}
		if j.run != nil {
			return nil, conflictf("%s is still stopping: try again in a moment", j.displayName())
		}
		if deleteFile && j.Path != "" {
			var ok bool
			if rel, ok = m.insideOutput(j.Path); !ok {
				return nil, conflictf("refusing to delete %s: it is outside the output folder %s", j.Path, m.outputDir)
			}
		}
		kind, state, name, p, modelsDir = j.Kind, j.State, j.name, j.Path, j.ModelsDir
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
	if state == jobFailed {
		m.removeData(kind, p, name, modelsDir)
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
func (m *manager) removeData(kind, p string, name modelName, modelsDir string) {
	var err error
	switch {
	case kind == jobKindFile && p != "":
		err = removePartial(p)
	case kind == jobKindModel && name.Model != "" && modelsDir != "":
		err = removeInstallStaging(modelsDir, name)
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
			return nil, conflictf("%s is %s: only a queued download can be moved in the queue", j.displayName(), stateWords(j.State))
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
		m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool {
			if stateFinished(j.State) && j.run == nil {
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
			return fmt.Errorf("download %s: %w", id, errNotFound)
		}
		pending = append(pending, j)
	}
	var errs []error
	for {
		pending = slices.DeleteFunc(pending, func(j *managerJob) bool {
			if !stateFinished(j.State) || j.run != nil {
				return false
			}
			if j.State == jobFailed {
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
func (m *manager) Views(ids []string) []jobView {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := make(map[string]int, len(m.jobs))
	for i, j := range m.jobs {
		pos[j.ID] = i
	}
	out := make([]jobView, 0, len(ids))
	for _, id := range ids {
		if i, ok := pos[id]; ok {
			out = append(out, m.viewLocked(m.jobs[i], i))
		}
	}
	return out
}

// scheduleLocked starts queued jobs, in queue order, while fewer than
// Concurrency transfers run. A job whose previous transfer is still
// stopping waits for it, so two transfers never share a .part.
func (m *manager) scheduleLocked() {
	if m.runCtx == nil || m.runCtx.Err() != nil || !m.window.Open(m.now()) {
		return
	}
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
		if j.State == jobQueued && j.run == nil && (m.own == nil || m.own[j.ID]) && !clashes(j, working) {
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
	j.Error, j.ErrorCode = "", ""
	j.Outcome, j.Previous = "", ""
	if j.StartedAt.IsZero() {
		j.StartedAt = now.UTC()
	}
	m.markLocked(j)
	if j.Kind == jobKindFile {
		req := fileRequest{
			URL:      j.Source,
			Dir:      m.outputDir,
			Path:     j.Path,
			SHA256:   j.SHA256,
			Retries:  j.Retries,
			Limiter:  m.limiterLocked(j),
			Progress: func(done, total int64) { m.progress(j, run, pullProgress{Done: done, Total: total}) },
			OnPath:   func(p string) { m.onPath(j, run, p) },
		}
		force := j.Force || j.Output != ""
		go func() {
			res, err := m.fetchFile(ctx, req, force)
			m.finish(ctx, j, run, res, err)
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
		ModelsDir:   j.ModelsDir,
		Split:       j.Split,
		Progress:    func(p pullProgress) { m.progress(j, run, p) },
	}
	go func() {
		res, err := m.pull(ctx, req)
		m.finish(ctx, j, run, transferResult{Path: res.Path, Size: res.Size, Reused: res.Reused}, err)
		cancel(nil)
	}()
}

// transferResult is what a finished transfer hands to finish.
type transferResult struct {
	Path     string
	Size     int64
	Reused   int64          // models: bytes taken from disk
	Outcome  string         // files: "unchanged", "unchecked" or "updated" when the URL was downloaded before
	Previous string         // files: the earlier download of the same URL
	Remember fileValidators // files: what the done index keeps; zero Size = nothing to remember
}

// fetchFile downloads a file job, unless this folder already has the URL
// complete (its file still there with its size) and the server says it is
// unchanged — then nothing is fetched (issue 14: a rerun of the same
// command fetched 5 GB again as "name (1).ext"). A changed file is fetched
// beside the old one, which is kept. force skips the check.
func (m *manager) fetchFile(ctx context.Context, req fileRequest, force bool) (transferResult, error) {
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
				m.log.Info("could not check the server for a newer version", "url", redactURL(req.URL), "err", err)
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
	res.Remember = fileValidators{Size: fr.Size, ETag: fr.ETag, LastModified: fr.LastModified}
	return res, err
}

// done is the folder's index of finished URLs.
func (m *manager) done() *doneIndex { return m.doneIdx }

// progress records a transfer's figures. It is called often from the
// transfer goroutine, so it only updates memory: nothing is saved, and
// Run announces the change at most once per saveEvery.
func (m *manager) progress(j *managerJob, run *managerRun, p pullProgress) {
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
	if phase := p.Phase; j.Kind == jobKindModel && phase != "" && phase != j.Phase {
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

// onPath learns where a file transfer writes. It goes to the journal at
// once (one line) but is not waited for: until it is durable a restart
// finds the same .part anyway, by the URL its sidecar was claimed with
// (see choosePath).
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
	m.markLocked(j)
	m.changedLocked()
	m.writeLocked()
}

// finish settles a job once its goroutine's transfer returned: completed,
// failed, or (after a pause, cancel, shutdown or the end of the time
// window) what was asked for. A canceled job's partial data is removed and
// the history is written before the job is let go, so Cancel and Wait see
// the end result.
func (m *manager) finish(ctx context.Context, j *managerJob, run *managerRun, res transferResult, err error) {
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
		j.State = jobCompleted
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
		if stateRunning(j.State) {
			j.State = jobQueued
		}
	default:
		j.State = jobFailed
		j.Error = singleLine(err.Error())
		j.ErrorCode = errorCode(err)
		j.FinishedAt = now.UTC()
		m.log.Warn("download failed", "id", j.ID, "source", j.safeSource(), "err", err)
	}
	j.Phase = ""
	m.markLocked(j)
	// The transfer is over: its slot goes to the next download now, not
	// after the history write below (j.run stays set until then, so no
	// job for the same file starts early).
	run.cancel = nil
	m.scheduleLocked()
	cleaned, recorded := false, false
	for {
		clean := err != nil && run.stop == jobCanceled && !cleaned
		var rec *historyRecord
		// An unchanged file was not downloaded again: nothing to record.
		if !clean && !recorded && stateFinished(j.State) && !(j.State == jobCompleted && (res.Outcome == "unchanged" || res.Outcome == "unchecked")) {
			r := m.recordLocked(j)
			rec = &r
			recorded = true
		}
		if !clean && rec == nil {
			break
		}
		kind, path, name, modelsDir := j.Kind, run.path, j.name, j.ModelsDir
		m.mu.Unlock()
		if clean {
			m.removeData(kind, path, name, modelsDir)
			cleaned = true
		}
		if rec != nil && m.cfg.History != nil {
			if herr := m.cfg.History.AddOnce(*rec); herr != nil {
				m.log.Warn("writing history", "id", rec.ID, "err", herr)
			}
		}
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
	// would otherwise pay a queue fsync each.
	m.writeLocked()
	m.mu.Unlock()
}

// singleLine keeps a message on one line (some servers' texts have
// several), as the CLI and the API show it.
func singleLine(s string) string {
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

// markLocked notes that j changed: its rev moves on (ListSince reports
// it) and it is written to the store with the next write.
func (m *manager) markLocked(j *managerJob) {
	m.rev++
	j.rev = m.rev
	m.pending[j.ID] = j
}

// removedLocked notes that j left the queue.
func (m *manager) removedLocked(j *managerJob) {
	m.rev++
	m.orderRev = m.rev
	delete(m.pending, j.ID)
	m.pendingDel = append(m.pendingDel, j.ID)
	m.removed = append(m.removed, removal{id: j.ID, rev: m.rev})
	if over := len(m.removed) - maxRemovals; over > 0 {
		m.removedFrom = m.removed[over-1].rev
		m.removed = slices.Delete(m.removed, 0, over)
	}
	if m.own != nil {
		delete(m.own, j.ID)
	}
}

// writeLocked writes the pending changes to the store's journal, in the
// order they were made (the lock keeps it), and folds the journal into a
// new queue.json when it has grown past the queue. It does not wait for
// the disk: save does.
func (m *manager) writeLocked() {
	if len(m.pending) == 0 && len(m.pendingDel) == 0 {
		return
	}
	// Each line carries its job's rank, so the order of the lines does
	// not matter; walking the pending set, not the queue, keeps a change
	// O(1) with 10,000 jobs queued.
	puts := make([]*managerJob, 0, len(m.pending))
	for _, j := range m.pending {
		puts = append(puts, m.storedCopy(j))
	}
	err := m.store.write(puts, m.pendingDel)
	if err == nil && m.store.needsSnapshot(len(m.jobs)) {
		all := make([]*managerJob, len(m.jobs))
		for i, j := range m.jobs {
			all[i] = m.storedCopy(j)
		}
		err = m.store.snapshot(all)
	}
	if m.noteSaveLocked(err) {
		clear(m.pending)
		m.pendingDel = m.pendingDel[:0]
	}
}

// storedCopy is j as the store keeps it: paths relative to the output
// folder when inside it.
func (m *manager) storedCopy(j *managerJob) *managerJob {
	c := *j
	c.Path = m.viewPath(j.Path)
	c.Output = m.viewPath(j.Output)
	c.Previous = m.viewPath(j.Previous)
	c.run, c.limiter, c.layers = nil, nil, nil
	return &c
}

// noteSaveLocked logs a save error once (a full disk fails every save
// until space is freed: one line, not a cascade) and reports success.
func (m *manager) noteSaveLocked(err error) bool {
	if err == nil {
		if m.saveErr != "" {
			m.log.Info("saving the download queue works again")
			m.saveErr = ""
		}
		return true
	}
	if msg := err.Error(); msg != m.saveErr {
		m.log.Error("saving download queue", "path", m.statePath, "err", err)
		m.saveErr = msg
	}
	return false
}

// save writes what changed and returns once it is on disk. Callers that
// save at the same moment share one fsync (the journal's group commit):
// 200 files finishing cost a handful of fsyncs, not 200.
func (m *manager) save() {
	m.mu.Lock()
	m.writeLocked()
	failed := m.saveErr != ""
	m.mu.Unlock()
	if failed {
		return
	}
	if err := m.store.Sync(); err != nil {
		m.mu.Lock()
		m.noteSaveLocked(err)
		m.mu.Unlock()
	}
}

// downloadsDelta is what changed in the queue since a rev: GET
// /api/downloads?since=N and each event of /api/events (issue 18: with
// 10,000 queued, sending every job every second cost 3 MB per poll).
type downloadsDelta struct {
	Rev       uint64    `json:"rev"`
	Full      bool      `json:"full"`      // Downloads is the whole queue
	Downloads []jobView `json:"downloads"` // in queue order
	Removed   []string  `json:"removed"`
	Order     []string  `json:"order"` // every ID in queue order, only when the order changed (a move or a removal); appends come with their position
}

// ListSince returns the jobs changed after rev since (and every running
// one: their speed changes without a report), the IDs removed since, and
// the order when it changed. since 0, or a rev older than the removals
// kept, gives everything.
func (m *manager) ListSince(since uint64) downloadsDelta {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := downloadsDelta{Rev: m.rev, Downloads: []jobView{}, Removed: []string{}}
	if since == 0 || since < m.removedFrom || since > m.rev {
		d.Full = true
		d.Downloads = make([]jobView, len(m.jobs))
		for i, j := range m.jobs {
			d.Downloads[i] = m.viewLocked(j, i)
		}
		return d
	}
	for i, j := range m.jobs {
		if j.rev > since || stateRunning(j.State) {
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

// queueSummary is the whole queue at a glance: the header's "2 running"
// and the overall progress of everything not finished.
type queueSummary struct {
	Running    int     `json:"running"`
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
func (m *manager) Summary() queueSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s queueSummary
	known := true
	for _, j := range m.jobs {
		switch {
		case stateRunning(j.State):
			s.Running++
			if j.run != nil && j.run.speed != nil {
				s.Speed += j.run.speed.Speed()
			}
		case j.State == jobQueued:
			s.Queued++
		case j.State == jobPaused:
			s.Paused++
		case j.State == jobFailed:
			s.Failed++
		case j.State == jobCompleted:
			s.Completed++
		case j.State == jobCanceled:
			s.Canceled++
		}
		if !stateFinished(j.State) {
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

// scheduleView is the time window as the API shows it.
type scheduleView struct {
	Start     string    `json:"start"` // "HH:MM" local, "" = always
	End       string    `json:"end"`
	Open      bool      `json:"open"`                // downloads may run now
	NextStart time.Time `json:"next_start,omitzero"` // when they next may, while closed
}

// Schedule is the current time window.
func (m *manager) Schedule() scheduleView {
	now := m.now()
	m.mu.Lock()
	w := m.window
	m.mu.Unlock()
	v := scheduleView{Start: w.Start(), End: w.End(), Open: w.Open(now)}
	if !v.Open {
		v.NextStart = w.NextOpen(now)
	}
	return v
}

// SetSchedule sets the daily window ("HH:MM" local; both "" = always).
// Outside it running downloads stop and wait as queued; they continue at
// its start.
func (m *manager) SetSchedule(start, end string) error {
	w, err := parseTimeWindow(start, end)
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
func (m *manager) RemoveFinished(ids []string) int {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	m.update(func() ([]chan struct{}, error) {
		m.jobs = slices.DeleteFunc(m.jobs, func(j *managerJob) bool {
			if want[j.ID] && stateFinished(j.State) && j.run == nil {
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
