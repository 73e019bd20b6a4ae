package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// app wires the parts together for one run of the command: the shared HTTP
// client, the file engine, the registry client and the output folder.
type app struct {
	opts     options
	stdout   io.Writer
	stderr   io.Writer
	log      *slog.Logger
	files    *rangeDownloader
	registry *registryClient
}

func newApp(opts options, stdout, stderr io.Writer, log *slog.Logger) (*app, error) {
	client, err := newHTTPClient(opts.proxy)
	if err != nil {
		return nil, err
	}
	files := newRangeDownloader(client, log)
	files.retries = opts.retries
	files.connections = opts.connections
	files.SetRateLimit(opts.rateLimit)
	registry, err := newRegistryClient(registryConfig{
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
	return &app{opts: opts, stdout: stdout, stderr: stderr, log: log, files: files, registry: registry}, nil
}

// serveUI runs the download manager and the web UI until ctx is done
// (Ctrl-C or SIGTERM), then stops both: running downloads keep their .part
// files and continue at the next start.
func (a *app) serveUI(ctx context.Context) error {
	m, history, err := a.newManager("")
	if err != nil {
		return err
	}
	if aside := history.Recovered(); aside != "" {
		fmt.Fprintf(a.stderr, "warning: the history was unreadable and was moved to %s\n", aside)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()

	srv := newServer(serverConfig{
		Manager:   m,
		History:   history,
		Files:     a.files,
		OutputDir: a.opts.outputDir,
		Token:     a.opts.token,
		Version:   version,
		Log:       a.log,
	})
	addr := net.JoinHostPort(a.opts.listen, strconv.Itoa(a.opts.port))
	serveErr := srv.ListenAndServe(ctx, addr, func(url string) {
		fmt.Fprintf(a.stdout, "Web UI: %s\n", url)
		fmt.Fprintf(a.stdout, "Downloads go to %s. Press Ctrl-C to stop; unfinished downloads continue at the next start.\n", a.opts.outputDir)
		if !a.opts.noBrowser {
			if err := newBrowserOpener().Open(url); err != nil {
				a.log.Warn("could not open the browser; open the address above yourself", "error", err)
			}
		}
	})
	stopRun()
	if err := <-runDone; err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// newManager builds the download manager over the output folder, with
// the shared history. queueFile "" is the web UI's queue.
func (a *app) newManager(queueFile string) (*manager, *historyStore, error) {
	if err := os.MkdirAll(a.opts.outputDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating output folder: %w", err)
	}
	history, err := openHistory(a.opts.outputDir, a.log)
	if err != nil {
		return nil, nil, err
	}
	m, err := newManager(managerConfig{
		OutputDir:   a.opts.outputDir,
		Concurrency: a.opts.concurrency,
		Retries:     a.opts.retries,
		Files:       a.files,
		Models:      a.registry,
		History:     history,
		Log:         a.log,
		KeepStaging: a.opts.keepStaging,
		QueueFile:   queueFile,
	})
	if err != nil {
		return nil, nil, err
	}
	if aside := m.Recovered(); aside != "" {
		fmt.Fprintf(a.stderr, "warning: the saved queue was unreadable and was moved to %s\n", aside)
	}
	return m, history, nil
}

// downloadAll runs the arguments through the download manager, the same
// queue the web UI uses, with a progress display, then prints one summary
// line per argument. The CLI keeps its own queue file: rerunning the same
// command continues its downloads, and only its own arguments run.
func (a *app) downloadAll(ctx context.Context) error {
	m, _, err := a.newManager("cli-queue.json")
	if err != nil {
		return err
	}
	m.PauseAll() // leftovers of another command wait; ours are resumed by Add
	reqs := make([]addRequest, len(a.opts.args))
	for i, arg := range a.opts.args {
		reqs[i] = addRequest{Source: arg, Retries: -1, SHA256: a.opts.sha256, Output: a.opts.output}
	}
	jobs, err := m.AddAll(reqs)
	if err != nil {
		return err
	}
	ids := make([]string, len(jobs))
	for i, job := range jobs {
		ids[i] = job.ID
	}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan struct{})
	go func() { m.Run(runCtx); close(runDone) }()
	printerCtx, stopPrinter := context.WithCancel(ctx)
	printer := newProgressPrinter(a.stderr, func() []transferStatus {
		out := make([]transferStatus, 0, len(ids))
		for _, id := range ids {
			if v, err := m.Get(id); err == nil {
				out = append(out, statusOf(v))
			}
		}
		return out
	})
	printerDone := make(chan struct{})
	go func() { printer.Run(printerCtx); close(printerDone) }()

	waitErr := m.Wait(ctx, ids...)
	stopPrinter()
	<-printerDone
	stopRun() // Run stops what still runs, keeps .part files and saves the queue
	<-runDone

	failed := 0
	for i, id := range ids {
		v, err := m.Get(id)
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(a.stderr, "failed: %s: %v\n", displaySource(a.opts.args[i]), err)
		case v.State == "completed":
			fmt.Fprintf(a.stdout, "done: %s\n", a.outputPath(v.Path))
		case v.State == "failed":
			failed++
			fmt.Fprintf(a.stderr, "failed: %s: %s\n", displaySource(a.opts.args[i]), v.Error)
		default:
			failed++
			fmt.Fprintf(a.stderr, "stopped: %s (run the same command again to resume)\n", displaySource(a.opts.args[i]))
		}
	}
	if waitErr == nil || failed == 0 {
		m.ClearFinished() // their outcome is in the history
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d downloads did not finish", failed, len(ids))
	}
	return nil
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
func statusOf(v jobView) transferStatus {
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
	return transferStatus{Name: v.Name, State: state, Done: v.BytesDone, Total: v.BytesTotal, Speed: v.Speed, ETA: eta}
}

// displaySource is how an argument is named before its file name is known.
func displaySource(src string) string {
	if isURLArg(src) {
		return redactURL(src)
	}
	return src
}
