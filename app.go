package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

// serveUI runs the web UI until ctx is done.
func (a *app) serveUI(ctx context.Context) error {
	return errors.New("the web UI is not available yet: give a URL or a model name")
}

// cliTransfer is one command-line argument being downloaded.
type cliTransfer struct {
	source string
	mu     sync.Mutex
	status transferStatus
	speed  *speedTracker
	path   string
	err    error
}

func (c *cliTransfer) update(state string, done, total int64) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.State != "downloading" && state == "downloading" {
		c.speed.Reset(now, done)
	}
	c.speed.Sample(now, done)
	c.status.State, c.status.Done, c.status.Total = state, done, total
}

func (c *cliTransfer) snapshot() transferStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Speed = c.speed.Speed()
	s.ETA = -1
	if s.Total > 0 {
		s.ETA = c.speed.ETA(s.Total - s.Done)
	}
	return s
}

// downloadAll downloads every argument, -concurrency at a time, with a
// progress display, then prints one summary line per argument.
func (a *app) downloadAll(ctx context.Context) error {
	if err := os.MkdirAll(a.opts.outputDir, 0o755); err != nil {
		return fmt.Errorf("creating output folder: %w", err)
	}
	transfers := make([]*cliTransfer, len(a.opts.args))
	for i, arg := range a.opts.args {
		transfers[i] = &cliTransfer{source: arg, speed: newSpeedTracker(10),
			status: transferStatus{Name: displaySource(arg), State: "queued", Total: -1, ETA: -1}}
	}
	printerCtx, stopPrinter := context.WithCancel(ctx)
	printer := newProgressPrinter(a.stderr, func() []transferStatus {
		out := make([]transferStatus, len(transfers))
		for i, t := range transfers {
			out[i] = t.snapshot()
		}
		return out
	})
	printerDone := make(chan struct{})
	go func() { printer.Run(printerCtx); close(printerDone) }()

	slots := make(chan struct{}, a.opts.concurrency)
	var wg sync.WaitGroup
	for _, t := range transfers {
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				t.err = ctx.Err()
				return
			}
			defer func() { <-slots }()
			t.path, t.err = a.downloadOne(ctx, t)
		})
	}
	wg.Wait()
	stopPrinter()
	<-printerDone

	failed := 0
	for _, t := range transfers {
		switch {
		case t.err == nil:
			fmt.Fprintf(a.stdout, "done: %s\n", t.path)
		case errors.Is(t.err, context.Canceled):
			failed++
			fmt.Fprintf(a.stderr, "stopped: %s (run the same command again to resume)\n", t.source)
		default:
			failed++
			fmt.Fprintf(a.stderr, "failed: %s: %v\n", displaySource(t.source), t.err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d downloads did not finish", failed, len(transfers))
	}
	return nil
}

// downloadOne runs one argument: a file URL or a model pull.
func (a *app) downloadOne(ctx context.Context, t *cliTransfer) (string, error) {
	if isURLArg(t.source) {
		res, err := a.files.Download(ctx, fileRequest{
			URL: t.source, Dir: a.opts.outputDir, Path: a.opts.output, SHA256: a.opts.sha256, Retries: -1,
			Progress: func(done, total int64) { t.update("downloading", done, total) },
			OnPath: func(path string) {
				t.mu.Lock()
				t.status.Name = filepath.Base(path)
				t.mu.Unlock()
			},
		})
		if err != nil {
			t.update("failed", t.snapshot().Done, t.snapshot().Total)
			return "", err
		}
		t.update("completed", res.Size, res.Size)
		return res.Path, nil
	}
	res, err := a.registry.Pull(ctx, pullRequest{
		Ref: t.source, OutputDir: a.opts.outputDir, Output: a.opts.output, KeepStaging: a.opts.keepStaging, Retries: -1,
		Progress: func(p pullProgress) { t.update(p.Phase, p.Done, p.Total) },
	})
	if err != nil {
		t.update("failed", t.snapshot().Done, t.snapshot().Total)
		return "", err
	}
	t.update("completed", res.Size, res.Size)
	return res.Path, nil
}

// displaySource is how an argument is named before its file name is known.
func displaySource(src string) string {
	if isURLArg(src) {
		return redactURL(src)
	}
	return src
}
