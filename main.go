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
	"os"
	"os/signal"
	"strings"
	"syscall"
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
	splitSize   string
	split       int64 // parsed -split, bytes per zip part; 0 = one zip
	listen      string
	token       string
	concurrency int
	connections int
	retries     int
	port        int
	verbose     bool
	keepStaging bool
	noBrowser   bool
	args        []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps an error to SPEC §3's exit codes: 0 done, 1 a download
// failed, 2 bad usage.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(exitStatus)):
		var status exitStatus
		errors.As(err, &status)
		return int(status)
	case errors.Is(err, errBadInput):
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
			code = runInstallCommandWith(ctx, args[1:], stdout, stderr, pullForInstall(stderr))
		case "verify":
			code = runVerifyCommand(ctx, args[1:], stdout, stderr)
		case "show":
			code = runShowCommand(ctx, args[1:], stdout, stderr)
		case "serve-models":
			code = runServeModelsCommand(ctx, args[1:], stdout, stderr)
		}
		if code == 0 {
			return nil
		}
		if code > 0 {
			return exitStatus(code)
		}
	}
	opts, err := parseOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "ollama-model-downloader: %v\n", err)
			fmt.Fprintln(stderr, "Run 'ollama-model-downloader -h' for usage.")
		}
		return err
	}
	level := slog.LevelInfo
	if opts.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	app, err := newApp(opts, stdout, stderr, log)
	if err != nil {
		fmt.Fprintf(stderr, "ollama-model-downloader: %v\n", err)
		return err
	}
	if len(opts.args) == 0 {
		return app.serveUI(ctx)
	}
	return app.downloadAll(ctx)
}

// parseOptions reads flags that may come before or after the arguments:
// the flag package stops at the first argument, so parsing resumes after
// each one. "--" ends the flags.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ollama-model-downloader", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "", "output `path` (zip for a model, file for a URL)")
	fs.StringVar(&o.outputDir, "output-dir", "downloaded-models", "`folder` for downloads, history and state")
	fs.StringVar(&o.registry, "registry", "https://registry.ollama.ai", "registry base `URL` (scheme decides http/https; may carry user:pass@)")
	fs.StringVar(&o.platform, "platform", "", "`os/arch` for multi-arch indexes (default: this machine's)")
	fs.StringVar(&o.proxy, "proxy", "", "proxy `URL` (http://, https://, socks5://); default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY")
	fs.StringVar(&o.sha256, "sha256", "", "expected SHA-256 (64 hex) of the single URL argument, checked before the file is published")
	fs.StringVar(&o.limitRate, "limit-rate", "0", "overall speed limit in bytes/s, like curl: 500K, 2M, 0 = none (changeable later in the web UI)")
	fs.StringVar(&o.splitSize, "split", "0", "write each model zip as NAME.zip.001, .002… of at most this `size` (4G for FAT32; K/M/G), 0 = one zip")
	fs.StringVar(&o.listen, "listen", "127.0.0.1", "`address` the web UI listens on; anything but loopback requires -token")
	fs.StringVar(&o.token, "token", os.Getenv("OMD_TOKEN"), "access `token` for the web UI and API (env OMD_TOKEN)")
	fs.IntVar(&o.concurrency, "concurrency", 4, "concurrent downloads / blob downloads, 1–32")
	fs.IntVar(&o.connections, "connections", 16, "most connections per file, 1–32; added while they make it faster (servers must support Range)")
	fs.IntVar(&o.retries, "retries", 3, "retry attempts per transfer, 0–100")
	fs.IntVar(&o.port, "port", 8080, "web UI `port`; 0 = a random free port (8080 falls back to a free port if taken)")
	fs.BoolVar(&o.verbose, "v", false, "verbose logging (requests and responses, URLs redacted)")
	fs.BoolVar(&o.keepStaging, "keep-staging", false, "keep the model's staging folder after zipping")
	fs.BoolVar(&o.noBrowser, "no-browser", false, "do not open the browser when starting the web UI")
	fs.Usage = func() {} // an unknown flag gets one line, not the whole usage
	rest, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return o, err
	}
	if err != nil {
		return o, badInputf("%v", err)
	}
	o.args = rest
	return o, o.validate()
}

// validate checks everything that can be checked before any request, so
// bad input writes nothing.
func (o *options) validate() error {
	if o.concurrency < 1 || o.concurrency > maxConcurrency {
		return badInputf("-concurrency must be between 1 and %d, got %d", maxConcurrency, o.concurrency)
	}
	if o.connections < 1 || o.connections > 32 {
		return badInputf("-connections must be between 1 and 32, got %d", o.connections)
	}
	if o.retries < 0 || o.retries > 100 {
		return badInputf("-retries must be between 0 and 100, got %d", o.retries)
	}
	rate, err := parseRate(o.limitRate)
	if err != nil {
		return badInputf("-limit-rate: %v", err)
	}
	o.rateLimit = rate
	if o.split, err = parseSplitSize(o.splitSize); err != nil {
		return err
	}
	if o.port < 0 || o.port > 65535 {
		return badInputf("-port must be between 0 and 65535, got %d", o.port)
	}
	if o.output != "" && len(o.args) > 1 {
		return badInputf("-o names one output, but %d downloads were given", len(o.args))
	}
	if o.sha256 != "" {
		if len(o.args) != 1 || !isURLArg(o.args[0]) {
			return badInputf("-sha256 needs exactly one URL argument")
		}
		o.sha256 = strings.ToLower(o.sha256)
		if !isHex64(o.sha256) {
			return badInputf("-sha256 must be 64 hexadecimal characters")
		}
	}
	if strings.TrimSpace(o.outputDir) == "" {
		return badInputf("-output-dir must not be empty")
	}
	if u, err := url.Parse(o.registry); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badInputf("-registry must be an http:// or https:// URL, got %q", redactURL(o.registry))
	}
	if _, err := proxyFor(o.proxy, func(string) string { return "" }); err != nil {
		return badInputf("%v", err)
	}
	for _, arg := range o.args {
		if isURLArg(arg) {
			if err := checkDownloadURL(arg); err != nil {
				return badInputf("%v", err)
			}
			continue
		}
		if _, err := parseModelName(arg, registryHost(o.registry)); err != nil {
			return badInputf("%q is neither a URL (http:// or https://) nor a valid model name: %v", arg, err)
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
// the command ends with code: 0 after -h, 2 after a bad flag (which the
// flag package has already reported).
func subcommandArgs(fset *flag.FlagSet, args []string) (rest []string, code int, ok bool) {
	rest, err := parseInterspersed(fset, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, 0, false
	case err != nil:
		return nil, 2, false
	}
	return rest, 0, true
}

// isURLArg is SPEC §3's detection: http:// or https:// is a file URL,
// anything else a model reference.
func isURLArg(s string) bool {
	lower := strings.ToLower(s)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}

// pullForInstall makes "install <model>" a pull straight into the models
// folder (until the manager runs it).
func pullForInstall(stderr io.Writer) installPuller {
	return func(ctx context.Context, req installPullRequest) (pullResult, error) {
		return pullIntoModelsDir(ctx, req, stderr)
	}
}

// registryHost is the host[:port] of the -registry URL, the default host of
// model names.
func registryHost(registry string) string {
	u, err := url.Parse(registry)
	if err != nil {
		return ""
	}
	return u.Host
}
