// Command ollama-model-downloader pulls Ollama models from an OCI registry
// into a zip that extracts into ~/.ollama/models, and downloads any HTTP(S)
// file with resume, retries and verification. With no argument it serves a
// Persian web UI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/queue"
	"ollama-model-downloader/internal/registry"
	"ollama-model-downloader/internal/server"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// version is the tool's own version, shown by -h and the API.
const version = "0.1.0"

const usage = `ollama-model-downloader — Ollama models and large files, resumable and verified.

Usage:
  ollama-model-downloader [flags] <model[:tag] | model@sha256:<hex> | URL>...
  ollama-model-downloader [flags]                 (no argument: web UI)

Examples:
  # Pull a model into downloaded-models/llama3-latest.zip
  ollama-model-downloader llama3
  ollama-model-downloader qwen2:0.5b -o qwen.zip

  # Download a file; Ctrl-C and run the same command again to resume
  ollama-model-downloader https://example.com/large-file.iso -retries 5

  # Several downloads at once, through a proxy, checking a digest
  ollama-model-downloader -concurrency 8 https://host/a.iso https://host/b.iso
  ollama-model-downloader -proxy socks5://127.0.0.1:1080 https://host/x.bin
  ollama-model-downloader -sha256 <64 hex> https://host/x.bin

  # At most 2 MiB/s, e.g. on a metered or shared link
  ollama-model-downloader -limit-rate 2M https://host/x.iso

  # A model for a FAT32 USB stick: llama3-latest.zip.001, .002… of at most 4 GiB
  ollama-model-downloader -split 4G llama3

  # A private or local registry (the scheme decides http or https)
  ollama-model-downloader -registry http://127.0.0.1:5000 127.0.0.1:5000/library/tiny:1

  # The web UI on a chosen port, without opening a browser
  ollama-model-downloader -port 9000 -no-browser

Subcommands (each has -h):
  ollama-model-downloader verify llama3-latest.zip         check a zip before carrying it
  ollama-model-downloader install llama3-latest.zip        into $OLLAMA_MODELS or ~/.ollama/models
  ollama-model-downloader install llama3.2:1b              pull straight into the models folder
  ollama-model-downloader show llama3.2:1b                 what a model is, before pulling it
  ollama-model-downloader list                             the models this machine's Ollama has (no server needed)
  ollama-model-downloader export qwen2:0.5b                one of them into a zip, with no network
  ollama-model-downloader serve-models -listen 0.0.0.0:11435
        serve downloaded models to 'ollama pull --insecure <host>:11435/library/<model>'

Flags (before or after the arguments):
`

// options are the parsed command line.
type options struct {
	output      string
	outputDir   string
	registry    string
	platform    string
	proxy       string
	sha256      string
	limitRate   string
	rateLimit   int64 // parsed -limit-rate, bytes/s
	listen      string
	token       string
	tokenFile   string
	schedule    string
	window      queue.Window // parsed -schedule
	splitSize   string
	split       int64 // parsed -split, bytes
	concurrency int
	connections int
	retries     int
	port        int
	verbose     bool
	keepStaging bool
	noBrowser   bool
	force       bool
	args        []string

	clock func() time.Time // time.Now, moved by OMD_TEST_CLOCK_OFFSET in browser tests
}

func main() {
	ctx, stop := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		stop(signalError{sig})
		// A second Ctrl-C does not wait for the clean stop.
		sig = <-signals
		os.Exit(exitCode(signalError{sig}))
	}()
	err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err))
}

// signalError is how a run stopped by a signal ends: shells and scripts
// expect 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "stopped by " + e.sig.String() }

// exitCode maps an error to the exit codes: 0 done, 1 a download failed,
// 2 bad usage, 128+n after signal n.
func exitCode(err error) int {
	var se signalError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se):
		if n, ok := se.sig.(syscall.Signal); ok {
			return 128 + int(n)
		}
		return 130
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(exitStatus)):
		var status exitStatus
		errors.As(err, &status)
		return int(status)
	case errors.Is(err, fault.ErrBadInput):
		return 2
	default:
		return 1
	}
}

// exitStatus is a subcommand's own exit code, passed through main.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// runMain parses the command line and hands off to a subcommand, the CLI
// or the web UI.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		code := -1
		switch args[0] {
		case "install":
			code = runInstallCommandWith(ctx, args[1:], stdout, stderr, pullForInstall(stdout, stderr))
		case "verify":
			code = runVerifyCommand(ctx, args[1:], stdout, stderr)
		case "show":
			code = runShowCommand(ctx, args[1:], stdout, stderr)
		case "export":
			code = runExportCommand(ctx, args[1:], stdout, stderr)
		case "list":
			code = runListCommand(args[1:], stdout, stderr)
		case "serve-models":
			code = runServeModelsCommand(ctx, args[1:], stdout, stderr)
		case "help":
			args = []string{"-h"}
		}
		if code == 0 {
			return nil
		}
		if code > 0 {
			return exitStatus(code)
		}
	}
	opts, err := parseOptions(args, stdout)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "ollama-model-downloader: %v\n", err)
			fmt.Fprintln(stderr, "Run 'ollama-model-downloader -h' for usage.")
		}
		return err
	}
	app, err := newApp(opts, stdout, stderr, newLogger(stderr, opts.verbose, len(opts.args) > 0))
	if err != nil {
		fmt.Fprintf(stderr, "ollama-model-downloader: %v\n", err)
		return err
	}
	if len(opts.args) == 0 {
		err = app.serveUI(ctx)
	} else {
		err = app.downloadAll(ctx, app.requests())
	}
	var se signalError
	if err != nil && !errors.As(err, &se) && !errors.Is(err, errDownloadsFailed) {
		fmt.Fprintf(stderr, "ollama-model-downloader: %s\n", queue.SingleLine(err.Error()))
	}
	return err
}

// newLogger is the one logger, set up once. With -v it records every
// request and decision. Without it a command-line run prints only its own
// lines (progress, and one line per download), never log records; the web
// UI prints warnings, in plain words.
func newLogger(stderr io.Writer, verbose, cli bool) *slog.Logger {
	switch {
	case verbose:
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case cli:
		return slog.New(slog.DiscardHandler)
	default:
		return slog.New(plainLogHandler{out: stderr, level: slog.LevelWarn})
	}
}

// parseOptions reads flags that may come before or after the arguments:
// the flag package stops at the first argument, so parsing resumes after
// each one. "--" ends the flags.
func parseOptions(args []string, stdout io.Writer) (options, error) {
	o := options{clock: testClock(os.Getenv("OMD_TEST_CLOCK_OFFSET"))}
	fs := flag.NewFlagSet("ollama-model-downloader", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "", "output `path` (zip for a model, file for a URL)")
	fs.StringVar(&o.outputDir, "output-dir", "downloaded-models", "`folder` for downloads, history and state")
	fs.StringVar(&o.registry, "registry", "https://registry.ollama.ai", "registry base `URL` (scheme decides http/https; may carry user:pass@)")
	fs.StringVar(&o.platform, "platform", "", "`os/arch` for multi-arch indexes (default: this machine's)")
	fs.StringVar(&o.proxy, "proxy", "", "proxy `URL` (http://, https://, socks5://); default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY")
	fs.StringVar(&o.sha256, "sha256", "", "expected SHA-256 (64 hex) of the single URL argument, checked before the file is published")
	fs.StringVar(&o.limitRate, "limit-rate", "0", "overall speed limit in bytes/s, like curl: 500K, 2M, 0 = none (changeable later in the web UI)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1", "`address` the web UI listens on; anything but loopback requires an access token (-token-file or OMD_TOKEN)")
	fs.StringVar(&o.token, "token", os.Getenv("OMD_TOKEN"), "access `token` for the web UI and API, at least 16 characters (visible in ps: prefer -token-file or env OMD_TOKEN)")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the access token from this `file` (surrounding white space ignored)")
	fs.IntVar(&o.concurrency, "concurrency", 4, "concurrent downloads / blob downloads, 1–32")
	fs.IntVar(&o.connections, "connections", 16, "most connections per file, 1–32; added while they make it faster (servers must support Range)")
	fs.IntVar(&o.retries, "retries", 3, "retry attempts per transfer, 0–100")
	fs.IntVar(&o.port, "port", 8080, "web UI `port`; 0 = a random free port (8080 falls back to a free port if taken)")
	fs.BoolVar(&o.verbose, "v", false, "verbose logging (requests and responses, URLs redacted)")
	fs.BoolVar(&o.keepStaging, "keep-staging", false, "keep the model's staging folder after zipping")
	fs.BoolVar(&o.noBrowser, "no-browser", false, "do not open the browser when starting the web UI")
	fs.BoolVar(&o.force, "force", false, "download a URL again even when this folder has it complete and unchanged upstream")
	fs.StringVar(&o.schedule, "schedule", "", "download only in this daily window, local time, like 02:00-07:00 (the web UI sets its own in Settings)")
	fs.StringVar(&o.splitSize, "split", "", "write a model's zip in parts of at most `SIZE` (K/M/G, e.g. 4G for FAT32): NAME.zip.001, .002…")
	fs.Usage = func() {} // an unknown flag gets one line, not the whole usage
	rest, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return o, err
	}
	if err != nil {
		return o, fault.BadInputf("%v", err)
	}
	o.args = rest
	if o.tokenFile != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "token" })
		if explicit {
			return o, fault.BadInputf("give -token or -token-file, not both")
		}
		if o.token, err = server.ReadTokenFile(o.tokenFile); err != nil {
			return o, err
		}
	}
	return o, o.validate()
}

// validate checks everything that can be checked before any request, so
// bad input writes nothing.
func (o *options) validate() error {
	if o.concurrency < 1 || o.concurrency > queue.MaxConcurrency {
		return fault.BadInputf("-concurrency must be between 1 and %d, got %d", queue.MaxConcurrency, o.concurrency)
	}
	if o.connections < 1 || o.connections > 32 {
		return fault.BadInputf("-connections must be between 1 and 32, got %d", o.connections)
	}
	if o.retries < 0 || o.retries > 100 {
		return fault.BadInputf("-retries must be between 0 and 100, got %d", o.retries)
	}
	rate, err := engine.ParseRate(o.limitRate)
	if err != nil {
		return fault.BadInputf("-limit-rate: %v", err)
	}
	o.rateLimit = rate
	if o.port < 0 || o.port > 65535 {
		return fault.BadInputf("-port must be between 0 and 65535, got %d", o.port)
	}
	if o.output != "" && len(o.args) > 1 {
		return fault.BadInputf("-o names one output, but %d downloads were given", len(o.args))
	}
	if o.sha256 != "" {
		if len(o.args) != 1 || !engine.IsURL(o.args[0]) {
			return fault.BadInputf("-sha256 needs exactly one URL argument")
		}
		o.sha256 = strings.ToLower(o.sha256)
		if !engine.IsHex64(o.sha256) {
			return fault.BadInputf("-sha256 must be 64 hexadecimal characters")
		}
	}
	if err := server.CheckToken(o.token); err != nil {
		return err
	}
	if listen := strings.Trim(o.listen, "[]"); len(o.args) == 0 && listen != "" && !engine.IsLoopbackHost(listen) && o.token == "" {
		return fault.BadInputf("-listen %s lets other machines reach the web UI and its API, so it needs an access token: add -token-file PATH (a file holding at least %d random characters) or set OMD_TOKEN, or leave -listen out to stay on 127.0.0.1", o.listen, server.MinTokenLength)
	}
	if o.window, err = queue.ParseScheduleFlag(o.schedule); err != nil {
		return err
	}
	if o.splitSize != "" {
		if o.split, err = engine.ParseRate(o.splitSize); err != nil || o.split <= 0 {
			return fault.BadInputf("-split takes a size such as 4G (K, M, G), got %q", o.splitSize)
		}
	}
	if strings.TrimSpace(o.outputDir) == "" {
		return fault.BadInputf("-output-dir must not be empty")
	}
	if u, err := url.Parse(o.registry); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fault.BadInputf("-registry must be an http:// or https:// URL, got %q", engine.RedactURL(o.registry))
	}
	if _, err := engine.ProxyFor(o.proxy, func(string) string { return "" }); err != nil {
		return fault.BadInputf("%v", err)
	}
	for _, arg := range o.args {
		if engine.IsURL(arg) {
			if err := engine.CheckDownloadURL(arg); err != nil {
				return fault.BadInputf("%v", err)
			}
			continue
		}
		if _, err := registry.ParseName(arg, registryHost(o.registry)); err != nil {
			return fault.BadInputf("%q is neither a URL (http:// or https://) nor a valid model name: %v", arg, err)
		}
	}
	return nil
}

// parseInterspersed parses flags placed before, between or after the
// arguments, as people type them ("install x.zip -models-dir d"), and
// returns the arguments. After "--" everything is an argument.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// subcommandArgs is parseInterspersed for a subcommand. When ok is false
// the command ends with code: 0 after -h (usage on stdout, so that
// "-h | less" shows it), 2 after a bad flag (one line on stderr).
func subcommandArgs(fset *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (rest []string, code int, ok bool) {
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	rest, err := parseInterspersed(fset, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fset.SetOutput(stdout)
		fset.PrintDefaults()
		return nil, 0, false
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\nRun 'ollama-model-downloader %s -h' for usage.\n", fset.Name(), err, fset.Name())
		return nil, 2, false
	}
	return rest, 0, true
}

// pullForInstall makes "install <model>" a pull straight into the models
// folder through the output folder's queue, like any download: its
// progress lines, its history record, and a web UI that owns the folder
// running it (issue 15).
func pullForInstall(stdout, stderr io.Writer) models.InstallPuller {
	return func(ctx context.Context, req models.InstallPullRequest) (models.PullResult, error) {
		opts, err := parseOptions([]string{"-output-dir", req.OutputDir, "-registry", req.Registry, "--", req.Ref}, io.Discard)
		if err != nil {
			return models.PullResult{}, err
		}
		a, err := newApp(opts, stdout, stderr, slog.New(slog.DiscardHandler))
		if err != nil {
			return models.PullResult{}, err
		}
		views, err := a.runDownloads(ctx, []queue.AddRequest{{Source: req.Ref, Retries: -1, ModelsDir: req.ModelsDir}})
		if err != nil {
			return models.PullResult{}, err
		}
		v := views[0]
		switch {
		case v.State == queue.JobCompleted:
		case ctx.Err() != nil:
			return models.PullResult{}, context.Cause(ctx)
		case v.State == queue.JobFailed:
			return models.PullResult{}, errors.New(v.Error)
		default:
			return models.PullResult{}, fmt.Errorf("%s stopped (%s): run the same command again to resume", req.Ref, v.State)
		}
		name, _ := registry.ParseName(req.Ref, registryHost(req.Registry))
		return models.PullResult{Path: v.Path, Size: v.BytesTotal, Name: name, Reused: v.ReusedBytes}, nil
	}
}

// registryHost is the host[:port] of the -registry URL, the default host of
// model names.
func registryHost(registryURL string) string {
	u, err := url.Parse(registryURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// testClock is time.Now, moved by offset (a Go duration, e.g. "-5h"):
// the browser tests set OMD_TEST_CLOCK_OFFSET to put the server outside
// or inside a time window without waiting for the hour. Empty or invalid
// is the real clock.
func testClock(offset string) func() time.Time {
	d, err := time.ParseDuration(offset)
	if offset == "" || err != nil {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(d) }
}

// plainLogHandler prints records at or above level as one plain line,
// "warning: could not open the browser (err=…)", for the web UI's
// terminal: no timestamps or level=… fields a person has to read past.
type plainLogHandler struct {
	out   io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h plainLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h plainLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.Level.String()))
	b.WriteString(": ")
	b.WriteString(r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		kv = append(kv, a.Key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	b.WriteByte('\n')
	_, err := io.WriteString(h.out, b.String())
	return err
}

func (h plainLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(slices.Clip(h.attrs), attrs...)
	return h
}

func (h plainLogHandler) WithGroup(string) slog.Handler { return h }
