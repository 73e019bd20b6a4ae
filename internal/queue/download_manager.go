package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
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
	JobPaused      = "paused"
	JobCompleted   = "completed"
	JobFailed      = "failed"
	jobCanceled    = "canceled"
)

// PausedByCLI is a paused download's paused_by when the command that
// handed it to this process was interrupted (Ctrl-C in its terminal): the
// web UI says so on its row, which it would otherwise show with no word
// of where the pause came from (issue 25).
const PausedByCLI = "cli"

const (
	jobKindFile  = "file"
	jobKindModel = "model"
	// KindExport is models of this machine's Ollama into one zip
	// (issue 23): its Source is their names, separated by spaces.
	KindExport = "export"

	// maxQueueJobs bounds the queue (issue 18): past it an add is refused
	// with a message, instead of every change costing more and more.
	maxQueueJobs = 20_000
	// maxRemovals is how many removals ListSince can report; a client
	// further behind gets the whole list.
	maxRemovals = 4096
)

// Manager runs one queue of file and model downloads through a pool of at
// most Concurrency workers, and keeps the queue in <output-dir>/.state
// (queueStore) so that a restart continues where it left.
//
// Every field below mu is guarded by it. Transfers, history writes and file
// removals happen outside the lock; a job's goroutine reports back through
// progress, onPath and finish.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	outputDir string // absolute
	statePath string

	// Fields tests change: the engines, the clock and the timings.
	download    func(context.Context, engine.Request) (engine.Result, error)
	pull        func(context.Context, models.PullRequest) (models.PullResult, error)
	export      func(context.Context, models.ExportRequest) (models.PullResult, error)
	checkSame   func(context.Context, string, engine.Validators) (bool, error) // the same URL again: unchanged upstream?
	addHistory  func(history.Record) error                                     // records a job's end once (History.AddOnce)
	now         func() time.Time
	saveEvery   time.Duration // how often running downloads' progress is announced
	stopTimeout time.Duration // how long Pause, Cancel and Run's shutdown wait for a transfer to stop

	store   *queueStore
	doneIdx *doneIndex  // finished URLs, for the same URL again
	headers headerStore // extra request headers of unfinished downloads (headers.go)

	started     chan struct{} // closed once Run has made its first pass (Started)
	startedOnce sync.Once

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
	window      Window                 // when downloads may run
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

type Config struct {
	OutputDir   string
	Concurrency int // 1–32
	Retries     int // default per job
	Files       *engine.Downloader
	Models      *models.Puller
	History     *history.Store
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
	Window      Window           // daily window in which downloads may start; zero = always
	WindowFile  string           // where SetSchedule keeps the window for the next start; "" = not kept
	Now         func() time.Time // the clock; nil = time.Now
	// ProgressEvery is how often running downloads' progress is announced
	// and saved; 0 = every second. Tests make it shorter.
	ProgressEvery time.Duration
}

type AddRequest struct {
	Source    string // URL or model reference
	Retries   int    // < 0 = default
	SHA256    string // optional, files only
	Output    string // optional explicit path (CLI -o)
	LimitRate int64  // optional speed limit for this download, bytes/s; 0 = none
	ModelsDir string // models only: install into this Ollama models folder instead of a zip; exports: the folder read
	Split     int64  // models only: zip parts of at most this many bytes
	Force     bool   // files only: fetch again even when this folder has the URL complete and unchanged
	// Export makes Source one or more model names, separated by spaces,
	// that go from the Ollama models folder ModelsDir into one zip.
	Export bool
	// Header is sent with every request of this download only: the
	// cookies, referrer and user-agent a browser had for the link (see
	// CheckHeader and headers.go). Files only.
	Header http.Header
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
	ErrorDetail string    `json:"error_detail,omitempty"` // the raw error behind Error (fault.Detail), for -v and the page's details
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
	PausedBy    string    `json:"paused_by,omitempty"` // who paused it, while paused: "" (a person, here) or PausedByCLI

	name    registry.Name          // parsed reference (models only)
	names   []registry.Name        // exports: the parsed names
	run     *managerRun            // non-nil while a goroutine transfers or cleans up this job
	limiter *engine.RateLimiter    // this download's own speed limit, changeable while it runs
	rev     uint64                 // manager rev of its last change
	layers  []models.LayerProgress // models: the blobs, once the manifest is known
	header  http.Header            // extra request headers while the download needs them; never in queue.json
}

// managerRun is one goroutine working on a job: a transfer, or the removal
// of a canceled job's partial data.
type managerRun struct {
	cancel  context.CancelCauseFunc // nil for a cleanup-only run
	done    chan struct{}           // closed when the goroutine has let go of the job
	stop    string                  // jobPaused or jobCanceled once the person stopped it
	path    string                  // where the transfer writes, for cleanup
	speed   *engine.SpeedTracker
	sampled bool
	last    int64 // bytes done at the previous progress report
	saved   int64 // bytes done when last written to the store
	started time.Time
	waiting *engine.Wait   // the failure the transfer waits out, while it does
	tryNow  *engine.Signal // ends that wait (Retry on a waiting download)
}

// New loads <output-dir>/.state/queue.json. What was running or queued
// is queued again, paused stays paused, finished stays finished. A file that
// cannot be read as a queue is moved aside (see Recovered) and the manager
// starts empty.
func New(cfg Config) (*Manager, error) {
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
	m := &Manager{
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
		started:     make(chan struct{}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.doneIdx = newDoneIndex(filepath.Join(filepath.Dir(m.statePath), "done"))
	m.headers = newHeaderStore(m.statePath)
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
	m.checkSame = func(ctx context.Context, u string, prev engine.Validators) (bool, error) {
		if cfg.Files == nil {
			return false, errors.New("file downloads are not configured")
		}
		return cfg.Files.CheckUnchanged(ctx, u, prev)
	}
	m.download = func(ctx context.Context, req engine.Request) (engine.Result, error) {
		if cfg.Files == nil {
			return engine.Result{}, errors.New("file downloads are not configured")
		}
		return cfg.Files.Download(ctx, req)
	}
	m.addHistory = func(rec history.Record) error {
		if cfg.History == nil {
			return nil
		}
		return cfg.History.AddOnce(rec)
	}
	m.pull = func(ctx context.Context, req models.PullRequest) (models.PullResult, error) {
		if cfg.Models == nil {
			return models.PullResult{}, errors.New("model downloads are not configured")
		}
		return cfg.Models.Pull(ctx, req)
	}
	m.export = func(ctx context.Context, req models.ExportRequest) (models.PullResult, error) {
		if cfg.Models == nil {
			return models.PullResult{}, errors.New("model exports are not configured")
		}
		return cfg.Models.Export(ctx, req)
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	m.restoreHeaders()
	return m, nil
}

// Started is closed once Run has made its first pass over the queue and
// saved it: what may start has started, and what waits (for the time
// window, a free slot) is known to wait.
func (m *Manager) Started() <-chan struct{} { return m.started }

// Models is the puller model jobs go through (nil: files only).
func (m *Manager) Models() *models.Puller { return m.cfg.Models }

// Recovered is the path a corrupt queue.json was moved to when the manager
// started, or "" if none was.
func (m *Manager) Recovered() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recovered
}

func (m *Manager) load() error {
	store, jobs, recovered, err := openQueueStore(m.statePath, m.log, m.now())
	if err != nil {
		return fmt.Errorf("reading download queue: %w", err)
	}
	m.store, m.recovered = store, recovered
	if err := m.checkJobs(jobs); err != nil {
		// Each line parsed, but together they are no queue (a hand edit,
		// a bug): keep them aside and start empty, never drop silently.
		store.Close()
		aside, merr := disk.MoveAside(m.statePath, m.now())
		if merr != nil && !errors.Is(merr, os.ErrNotExist) {
			return fmt.Errorf("moving aside corrupt download queue %s: %w", m.statePath, merr)
		}
		if _, jerr := disk.MoveAside(journalPath(m.statePath), m.now()); jerr != nil && !errors.Is(jerr, os.ErrNotExist) {
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
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.store.Close()
}

// settleFromHistory finishes the jobs whose end the history recorded but
// the queue file did not: the queue is saved after the history (at most
// saveEvery later), so a kill in between leaves a job that looks
// unfinished, maybe without its path. Running it again would fetch the
// file a second time, as "name (1).ext".
func (m *Manager) settleFromHistory() {
	if m.cfg.History == nil {
		return
	}
	for _, j := range m.jobs {
		if StateFinished(j.State) {
			continue
		}
		rec, ok := m.cfg.History.Get(j.recordID())
		if !ok || rec.Status != JobCompleted && rec.Status != JobFailed {
			continue
		}
		j.State, j.Error = rec.Status, rec.Error
		j.FinishedAt = rec.FinishedAt
		if rec.Status == JobCompleted {
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
func (m *Manager) checkJobs(jobs []*managerJob) error {
	seen := make(map[string]bool)
	for i, j := range jobs {
		switch {
		case j == nil || j.ID == "" || j.Source == "":
			return fmt.Errorf("job %d: missing id or source", i)
		case seen[j.ID]:
			return fmt.Errorf("job %d: duplicate id %s", i, j.ID)
		case j.Kind != jobKindFile && j.Kind != jobKindModel && j.Kind != KindExport:
			return fmt.Errorf("job %s: unknown kind %q", j.ID, j.Kind)
		}
		seen[j.ID] = true
		switch j.State {
		case jobDownloading, jobVerifying, jobPackaging:
			j.State = jobQueued
		case jobQueued, JobPaused, JobCompleted, JobFailed, jobCanceled:
		default:
			return fmt.Errorf("job %s: unknown state %q", j.ID, j.State)
		}
		j.Phase = ""
		j.Attempt = max(j.Attempt, 1)
		j.Path, j.Output = m.absPath(j.Path), m.absPath(j.Output)
		if j.Kind == jobKindModel {
			// A failure here (the registry flag changed, say) is reported
			// when the pull runs; cleanup then has no staging to remove.
			j.name, _ = registry.ParseName(j.Source, m.defaultHost())
		}
		if j.Kind == KindExport {
			j.names, _ = parseExportNames(j.Source)
		}
	}
	return nil
}

func (m *Manager) defaultHost() string {
	if m.cfg.Models == nil {
		return "registry.ollama.ai"
	}
	return m.cfg.Models.DefaultHost()
}

// Run starts queued jobs, at most Concurrency at a time, until ctx is done.
// Then it stops the running transfers (their .part files stay, and they are
// queued again so that the next start continues them), saves the queue and
// returns.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("download manager is already running")
	}
	m.runCtx = ctx
	m.scheduleLocked()
	m.mu.Unlock()
	m.save()
	m.startedOnce.Do(func() { close(m.started) })

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
func (m *Manager) windowEdge(edge *time.Timer) {
	now := m.now()
	var stopped []chan struct{}
	m.mu.Lock()
	if !m.window.Open(now) {
		for _, j := range m.jobs {
			if StateRunning(j.State) && j.Kind != KindExport && j.run != nil && j.run.cancel != nil && j.run.stop == "" {
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

func (m *Manager) shutdown() error {
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
