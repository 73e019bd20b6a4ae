package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/owner"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/server"
	"ollama-model-downloader/internal/units"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// app wires the parts together for one run of the command: the shared HTTP
// client, the file engine, the registry client and the output folder.
type app struct {
	opts     options
	stdout   io.Writer
	stderr   io.Writer
	log      *slog.Logger
	files    *engine.Downloader
	registry *registry.Client

	// Knobs that tests turn.
	now        func() time.Time
	ownerWait  time.Duration // how long to wait for an owner to say where it listens, or to let go
	followPoll time.Duration // how often a follower asks the owner for news
}

// maxTakeovers bounds how often one run changes hands between owning the
// folder and following its owner (each change needs another process to
// start, stop or die); with the pause after an owner that stopped
// answering, it is also at least a minute of waiting for one that is
// still letting go.
const maxTakeovers = 1000

func newApp(opts options, stdout, stderr io.Writer, log *slog.Logger) (*app, error) {
	client, err := engine.NewHTTPClient(opts.proxy)
	if err != nil {
		return nil, err
	}
	files := engine.NewDownloader(client, log)
	files.UserAgent = "ollama-model-downloader/" + version
	files.Retries = opts.retries
	files.RetryFor = opts.retryFor
	files.Connections = opts.connections
	files.SetRateLimit(opts.rateLimit)
	reg, err := registry.New(registry.Config{
		Registry:    opts.registry,
		Platform:    opts.platform,
		Concurrency: opts.concurrency,
		Files:       files,
		Client:      client,
		Log:         log,
	})
	if err != nil {
		return nil, err
	}
	return &app{
		opts: opts, stdout: stdout, stderr: stderr, log: log, files: files, registry: reg,
		now: opts.clock, ownerWait: 30 * time.Second, followPoll: 250 * time.Millisecond,
	}, nil
}

// makeOutputDir creates the output folder, or says in one line why it
// cannot (a file in the way, no permission).
func (a *app) makeOutputDir() error {
	if err := os.MkdirAll(a.opts.outputDir, 0o755); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create the output folder %s: %w", a.opts.outputDir, err)
	}
	return nil
}

// serveUI runs the download manager and the web UI until ctx is done
// (Ctrl-C or SIGTERM), then stops both: running downloads keep their .part
// files and continue at the next start. A folder another web UI already
// serves is not served twice: its address is printed (and opened) instead.
// A command-line run that owns the folder is asked to hand it over.
func (a *app) serveUI(ctx context.Context) error {
	if err := a.makeOutputDir(); err != nil {
		return err
	}
	own, err := a.claimForUI(ctx)
	if err != nil || own == nil {
		return err
	}
	defer own.Release()

	hist, err := history.Open(a.opts.outputDir, a.log)
	if err != nil {
		return err
	}
	defer hist.Close()
	if aside := hist.Recovered(); aside != "" {
		fmt.Fprintf(a.stderr, "warning: the history was partly unreadable; what could be read was kept, the file as it was is in %s\n", aside)
	}
	window, err := queue.LoadWindow(a.opts.outputDir)
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: %v; downloads may run at any time\n", err)
	}
	m, err := a.newManager(hist, queue.Config{Window: window, WindowFile: queue.WindowFile(a.opts.outputDir)})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()

	key := history.NewID() + history.NewID()
	srv := server.New(server.Config{
		Manager:   m,
		History:   hist,
		Files:     a.files,
		OutputDir: a.opts.outputDir,
		Token:     a.opts.token,
		LocalKey:  key,
		Version:   version,
		Log:       a.log,
		Pairings:  filepath.Join(a.opts.outputDir, ".state", server.PairingsFile),
	})
	addr := net.JoinHostPort(a.opts.listen, strconv.Itoa(a.opts.port))
	serveErr := srv.ListenAndServe(ctx, addr, func(open string) {
		if err := own.Announce(owner.Info{Kind: owner.KindWeb, URL: baseURL(open), Key: key}); err != nil {
			a.log.Warn("announcing the web UI in the output folder", "err", err)
		}
		fmt.Fprintf(a.stdout, "Web UI: %s\n", open)
		fmt.Fprintf(a.stdout, "Downloads go to %s. Press Ctrl-C to stop; unfinished downloads continue at the next start.\n", a.opts.outputDir)
		a.openBrowser(open)
	})
	stopRun()
	if err := <-runDone; err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// claimForUI makes this process the folder's owner. When a web UI already
// owns it, it prints that UI's address, opens it, and returns a nil owner:
// there is nothing more to do. A command-line run is asked to yield.
func (a *app) claimForUI(ctx context.Context) (*owner.Owner, error) {
	asked := false
	deadline := time.Now().Add(a.ownerWait)
	for {
		own, err := owner.Claim(a.opts.outputDir)
		if err == nil {
			return own, nil
		}
		if !errors.Is(err, disk.ErrLocked) {
			return nil, err
		}
		info, ierr := owner.Read(a.opts.outputDir)
		switch {
		case ierr == nil && info.Kind == owner.KindWeb:
			// Printed and opened only when it leads to this machine, as
			// owner.json's writer could otherwise send the person anywhere.
			if err := owner.CheckAnnouncement(a.opts.outputDir, info); err != nil {
				return nil, err
			}
			open := info.URL
			fmt.Fprintf(a.stdout, "A web UI already serves %s: %s\n", a.opts.outputDir, open)
			a.openBrowser(open)
			return nil, nil
		case ierr == nil && info.Kind == owner.KindCLI && !asked:
			c, err := owner.Reach(ctx, a.opts.outputDir, info)
			if err == nil {
				fmt.Fprintf(a.stderr, "A command-line run (pid %d) is downloading into %s; taking the folder over, its downloads continue here.\n", info.PID, a.opts.outputDir)
				err = c.Yield(ctx)
			}
			if err != nil && !errors.Is(err, owner.ErrGone) {
				return nil, fmt.Errorf("asking the command-line run (pid %d) to hand %s over: %w", info.PID, a.opts.outputDir, err)
			}
			asked = true
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("another process (%s) holds %s and does not let go; stop it, or use another -output-dir", ownerDescription(info, ierr), a.opts.outputDir)
		}
		if engine.Sleep(ctx, 100*time.Millisecond) != nil {
			return nil, context.Cause(ctx)
		}
	}
}

func ownerDescription(info owner.Info, err error) string {
	if err != nil {
		return "it has not said what it is"
	}
	return fmt.Sprintf("pid %d, %s", info.PID, info.Kind)
}

// openBrowser opens url unless -no-browser.
func (a *app) openBrowser(u string) {
	if a.opts.noBrowser {
		return
	}
	if err := newBrowserOpener().Open(u); err != nil {
		fmt.Fprintf(a.stderr, "could not open the browser (%v): open the address above yourself\n", err)
	}
}

// baseURL is the printed address without its query (the token).
func baseURL(open string) string {
	u, err := url.Parse(open)
	if err != nil {
		return open
	}
	u.RawQuery = ""
	return u.String()
}

// newManager builds the download manager over the output folder, with
// the history; cfg adds what the caller decides.
func (a *app) newManager(hist *history.Store, cfg queue.Config) (*queue.Manager, error) {
	cfg.OutputDir = a.opts.outputDir
	cfg.Concurrency = a.opts.concurrency
	cfg.Retries = a.opts.retries
	cfg.Files = a.files
	cfg.Models = models.NewPuller(a.registry)
	cfg.History = hist
	cfg.Log = a.log
	cfg.KeepStaging = a.opts.keepStaging
	cfg.Now = a.now
	m, err := queue.New(cfg)
	if err != nil {
		return nil, err
	}
	if aside := m.Recovered(); aside != "" {
		fmt.Fprintf(a.stderr, "warning: the saved queue was partly unreadable; what could be read was kept, the file as it was is in %s\n", aside)
	}
	return m, nil
}

// requests are the command's arguments as downloads.
func (a *app) requests() []queue.AddRequest {
	reqs := make([]queue.AddRequest, len(a.opts.args))
	for i, arg := range a.opts.args {
		reqs[i] = queue.AddRequest{Source: arg, Retries: -1, SHA256: a.opts.sha256, Output: a.opts.output, Force: a.opts.force, Split: a.opts.split}
		if engine.IsURL(arg) {
			reqs[i].Split = 0
		}
	}
	return reqs
}

// downloadAll runs the arguments through the folder's one queue, with a
// progress display, then prints one line per argument. When no other
// process owns the folder, this one does for as long as its downloads
// run; when another does (the web UI, or another command), the downloads
// are handed to it and followed there. Ownership can change hands on the
// way — the owner exits or is killed, a web UI starts — and the run
// carries on from the .part files either way.
func (a *app) downloadAll(ctx context.Context, reqs []queue.AddRequest) error {
	views, err := a.runDownloads(ctx, reqs)
	if err != nil {
		return err
	}
	return a.report(ctx, views)
}

// runDownloads is downloadAll without the final lines: the downloads as
// they ended (or stopped), in the order of reqs.
func (a *app) runDownloads(ctx context.Context, reqs []queue.AddRequest) ([]queue.JobView, error) {
	if err := a.makeOutputDir(); err != nil {
		return nil, err
	}
	for range maxTakeovers {
		own, err := owner.Claim(a.opts.outputDir)
		switch {
		case err == nil:
			views, err := a.runAsOwner(ctx, own, reqs)
			if errors.Is(err, errYielded) {
				// Leave the folder to the web UI that asked for it: do
				// not take it back before it had its chance.
				a.waitForWebUI(ctx)
				continue
			}
			return views, err
		case errors.Is(err, disk.ErrLocked):
			info, err := a.waitForOwner(ctx)
			if errors.Is(err, owner.ErrGone) {
				continue // it let go while we looked
			}
			if err != nil {
				return nil, err
			}
			views, err := a.follow(ctx, info, reqs)
			if errors.Is(err, owner.ErrGone) {
				// It may still hold the lock while it stops: give it a
				// moment rather than spin.
				if engine.Sleep(ctx, 60*time.Millisecond) != nil {
					return nil, context.Cause(ctx)
				}
				continue
			}
			return views, err
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("the ownership of %s changed hands %d times during this run; giving up", a.opts.outputDir, maxTakeovers)
}

// errYielded ends a CLI owner's turn: a web UI asked for the folder.
var errYielded = errors.New("handed the folder to the web UI")

// runAsOwner runs the downloads in this process, which owns the folder:
// its own queue run (only these downloads and those other commands hand
// it), a loopback API for those other commands, and the progress display.
func (a *app) runAsOwner(ctx context.Context, own *owner.Owner, reqs []queue.AddRequest) ([]queue.JobView, error) {
	defer own.Release()
	hist, err := history.OpenRecent(a.opts.outputDir, a.log)
	if err != nil {
		return nil, err
	}
	defer hist.Close()
	m, err := a.newManager(hist, queue.Config{OwnJobsOnly: true, Window: a.opts.window})
	if err != nil {
		return nil, err
	}
	jobs, err := m.AddAll(reqs)
	if err != nil {
		m.Close()
		return nil, err
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan struct{})
	go func() { m.Run(runCtx); close(runDone) }()

	// Other commands on this folder reach this run through its API, with
	// a key only this user can read (owner.json is 0600).
	key := history.NewID() + history.NewID()
	yield := make(chan struct{}, 1)
	srv := server.New(server.Config{
		Manager: m, History: hist, Files: a.files, OutputDir: a.opts.outputDir,
		Token: key, LocalKey: key, Version: version, Log: a.log,
		Yield: func() {
			select {
			case yield <- struct{}{}:
			default:
			}
		},
	})
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- srv.ListenAndServe(srvCtx, "127.0.0.1:0", func(open string) {
			if err := own.Announce(owner.Info{Kind: owner.KindCLI, URL: baseURL(open), Key: key}); err != nil {
				a.log.Warn("announcing this run in the output folder", "err", err)
			}
		})
	}()

	// Said once the queue has made its first pass: by then nothing that
	// must wait has started.
	select {
	case <-m.Started():
	case <-ctx.Done():
	}
	if now := a.now(); !a.opts.window.Open(now) {
		fmt.Fprintf(a.stderr, "Waiting for the download window %s: the downloads start at %s (Ctrl-C stops; they stay queued).\n",
			a.opts.window, a.opts.window.NextOpen(now).Format("15:04 on Mon 2 Jan"))
	}
	waitCtx, stopWait := context.WithCancel(ctx)
	go func() {
		select {
		case <-yield:
			stopWait()
		case <-waitCtx.Done():
		}
	}()
	printer := a.startPrinter(waitCtx, func() []transferStatus {
		views := m.Views(ids)
		out := make([]transferStatus, len(views))
		for i, v := range views {
			out[i] = statusOf(v)
		}
		return out
	})
	waitErr := m.Wait(waitCtx, ids...)
	yielded := waitCtx.Err() != nil && ctx.Err() == nil
	stopWait()
	printer()

	// Stop serving first, so that followers see this owner go and take
	// the folder over; then stop the queue (what still runs keeps its
	// .part and stays queued) and let the folder go.
	own.Withdraw()
	stopSrv()
	if err := <-srvDone; err != nil {
		a.log.Warn("loopback API", "err", err)
	}
	stopRun()
	<-runDone

	views := make([]queue.JobView, len(ids))
	got := m.Views(ids)
	for i, id := range ids {
		views[i] = queue.JobView{ID: id, Source: reqs[i].Source, State: queue.JobFailed, Error: "the download left the queue"}
		for len(got) > 0 && got[0].ID == id {
			views[i], got = got[0], got[1:]
		}
	}
	if yielded {
		fmt.Fprintf(a.stderr, "A web UI took %s over; following the downloads there.\n", a.opts.outputDir)
		return nil, errYielded
	}
	if waitErr == nil || ctx.Err() == nil {
		m.RemoveFinished(ids) // their outcome is in the history
	}
	return views, nil
}

// startPrinter runs the progress display until ctx is done; the returned
// function stops it and waits for its last drawing.
func (a *app) startPrinter(ctx context.Context, snapshot func() []transferStatus) func() {
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	printer := newProgressPrinter(a.stderr, snapshot)
	go func() { printer.Run(pctx); close(done) }()
	return func() { stop(); <-done }
}

// waitForWebUI waits (at most ownerWait) until a web UI owns the folder.
func (a *app) waitForWebUI(ctx context.Context) {
	deadline := time.Now().Add(a.ownerWait)
	for time.Now().Before(deadline) {
		if info, err := owner.Read(a.opts.outputDir); err == nil && info.Kind == owner.KindWeb {
			return
		}
		if engine.Sleep(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}

// waitForOwner reads how to reach the folder's owner, waiting while it
// starts. errOwnerGone means the folder came free meanwhile.
func (a *app) waitForOwner(ctx context.Context) (owner.Info, error) {
	deadline := time.Now().Add(a.ownerWait)
	for {
		info, err := owner.Read(a.opts.outputDir)
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, owner.ErrUnknown) {
			return info, err
		}
		if o, cerr := owner.Claim(a.opts.outputDir); cerr == nil {
			o.Release()
			return info, owner.ErrGone
		}
		if time.Now().After(deadline) {
			return info, fmt.Errorf("another process owns %s but does not say how to reach it (an older version of this tool?); wait for it to finish or use another -output-dir", a.opts.outputDir)
		}
		if engine.Sleep(ctx, 50*time.Millisecond) != nil {
			return info, context.Cause(ctx)
		}
	}
}

// follow hands the downloads to the owner and shows their progress until
// they finish. On Ctrl-C they are paused there (run the same command
// again to resume). errOwnerGone means the owner went away: the caller
// takes the folder over.
func (a *app) follow(ctx context.Context, info owner.Info, reqs []queue.AddRequest) ([]queue.JobView, error) {
	c, err := owner.Reach(ctx, a.opts.outputDir, info)
	if err != nil {
		return nil, err
	}
	jobs, err := c.Add(ctx, reqs)
	if err != nil {
		return nil, err
	}
	who := "the web UI at " + info.URL
	if info.Kind == owner.KindCLI {
		who = fmt.Sprintf("another command (pid %d)", info.PID)
	}
	fmt.Fprintf(a.stderr, "%s owns %s: its queue runs these downloads; following them there.\n", who, a.opts.outputDir)

	views := slices.Clone(jobs)
	index := make(map[string]int, len(jobs))
	for i, j := range jobs {
		index[j.ID] = i
	}
	var mu sync.Mutex // views, between the poll below and the printer
	snapshot := func() []transferStatus {
		mu.Lock()
		defer mu.Unlock()
		out := make([]transferStatus, len(views))
		for i, v := range views {
			out[i] = statusOf(v)
		}
		return out
	}
	stopPrinter := a.startPrinter(ctx, snapshot)
	defer stopPrinter()

	var rev uint64
	toldWindow := false
	for {
		d, err := c.List(ctx, rev)
		if err != nil {
			if ctx.Err() != nil {
				stopPrinter()
				a.pauseAtOwner(c, views)
				return views, nil
			}
			return nil, err
		}
		mu.Lock()
		for _, v := range d.Downloads {
			if i, ok := index[v.ID]; ok {
				views[i] = v
			}
		}
		for _, id := range d.Removed {
			if i, ok := index[id]; ok && !queue.StateFinished(views[i].State) {
				views[i].State, views[i].Error = queue.JobFailed, "removed from the queue in the web UI"
			}
		}
		pending := slices.ContainsFunc(views, func(v queue.JobView) bool { return !queue.StateFinished(v.State) })
		// An export starts whatever the window: it uses no network.
		waits := slices.ContainsFunc(views, func(v queue.JobView) bool { return !queue.StateFinished(v.State) && v.Kind != queue.KindExport })
		mu.Unlock()
		rev = d.Rev
		if sch := d.Schedule; waits && sch != nil && !sch.Open && !toldWindow {
			fmt.Fprintf(a.stderr, "The owner's download window (%s–%s) is closed: the downloads start at %s.\n",
				sch.Start, sch.End, sch.NextStart.Local().Format("15:04 on Mon 2 Jan"))
			toldWindow = true
		}
		if !pending {
			if info.Kind == owner.KindCLI {
				for _, v := range views {
					c.Remove(ctx, v.ID) // the owning command keeps no list for us
				}
			}
			return views, nil
		}
		if engine.Sleep(ctx, a.followPoll) != nil {
			stopPrinter()
			a.pauseAtOwner(c, views)
			return views, nil
		}
	}
}

// pauseAtOwner pauses the unfinished downloads of an interrupted follower:
// Ctrl-C in the terminal stops them, as it would in an owning run.
func (a *app) pauseAtOwner(c *owner.Client, views []queue.JobView) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, v := range views {
		if !queue.StateFinished(v.State) {
			if err := c.Pause(ctx, v.ID); err == nil {
				views[i].State = queue.JobPaused
			}
		}
	}
}

// report prints one line per download and returns the run's outcome:
// nil when every download is done, else an error (exit status 1, or the
// signal's when the run was interrupted).
func (a *app) report(ctx context.Context, views []queue.JobView) error {
	failed := 0
	for i, v := range views {
		src := displaySource(a.opts.args[i])
		switch {
		case v.State == queue.JobCompleted && v.Outcome == "unchanged":
			fmt.Fprintf(a.stdout, "already downloaded: %s\n", a.outputPath(v.Path))
		case v.State == queue.JobCompleted && v.Outcome == "unchecked":
			fmt.Fprintf(a.stdout, "already downloaded: %s (the server could not be reached to check for a newer version)\n", a.outputPath(v.Path))
		case v.State == queue.JobCompleted && v.Outcome == "updated":
			fmt.Fprintf(a.stdout, "done: %s (a newer version; the earlier one is kept as %s)\n", a.outputPath(v.Path), a.outputPath(v.PreviousPath))
		case v.State == queue.JobCompleted && v.ModelsDir != "":
			fmt.Fprintf(a.stdout, "installed: %s into %s%s\n", v.Name, v.ModelsDir, reusedNote(v.ReusedBytes))
		case v.State == queue.JobCompleted:
			fmt.Fprintf(a.stdout, "done: %s%s\n", a.outputPath(v.Path), reusedNote(v.ReusedBytes))
		case v.State == queue.JobFailed:
			failed++
			why := v.Error
			if a.opts.verbose && v.ErrorDetail != "" {
				why = v.ErrorDetail // the raw error too, with -v
			}
			fmt.Fprintf(a.stderr, "failed: %s: %s\n", src, queue.SingleLine(why))
		default:
			failed++
			fmt.Fprintf(a.stderr, "stopped: %s (run the same command again to resume)\n", src)
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d downloads did not finish: %w", failed, len(views), errDownloadsFailed)
	}
	return nil
}

// errDownloadsFailed ends a run whose failures were already reported, one
// line each: exit status 1, nothing more to print.
var errDownloadsFailed = errors.New("downloads failed")

// reusedNote says how much of a model came from disk instead of the network.
func reusedNote(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%s reused from disk)", units.Decimal(n))
}

// outputPath turns a job's path (relative to the output folder when inside
// it) into one a person can use from the current folder.
func (a *app) outputPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.opts.outputDir, filepath.FromSlash(p))
}

// statusOf turns a job into a progress line.
func statusOf(v queue.JobView) transferStatus {
	state := v.State
	if v.Phase != "" && state == "downloading" {
		state = v.Phase
	}
	if state == "resolving" {
		state = "queued"
	}
	eta := time.Duration(-1)
	if v.ETASeconds >= 0 {
		eta = time.Duration(v.ETASeconds) * time.Second
	}
	return transferStatus{Name: v.Name, State: state, Done: v.BytesDone, Total: v.BytesTotal, Speed: v.Speed, ETA: eta,
		Running: queue.StateRunning(v.State), Wait: v.Waiting, Now: time.Now()}
}

// displaySource is how an argument is named before its file name is known.
func displaySource(src string) string {
	if engine.IsURL(src) {
		return engine.RedactURL(src)
	}
	return src
}
