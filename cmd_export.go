package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/queue"
	"path/filepath"
	"strconv"
	"strings"
)

const exportUsage = `Usage: ollama-model-downloader export [-o FILE.zip] [-models-dir DIR] [-split SIZE] <model>...

Writes models this machine's Ollama already has into one zip, with no
network: the same zip a pull writes, which verify, install, serve-models and
'unzip -d ~/.ollama/models' take on another machine, where a stock Ollama
lists each model with the same ID.

Names resolve as Ollama resolves them: qwen2 is
registry.ollama.ai/library/qwen2:latest; host:port/namespace/model:tag and
hf.co/<user>/<repo>:<quant> work too, in any case. Several names go into one
zip, each blob once. Every blob is hashed on its way into the zip: a damaged
one is named, and nothing is published.

The export runs through the output folder's queue like a pull: the free space
is checked first, a progress line shows, Ctrl-C stops it and the same command
continues where it stopped; with the web UI open, it runs there and shows in
its Library and History.

The models folder is -models-dir, else $OLLAMA_MODELS, else ~/.ollama/models
('list' shows what it holds).

Examples:
  ollama-model-downloader export qwen2:0.5b              # downloaded-models/qwen2-0.5b.zip
  ollama-model-downloader export llama3.2 qwen2:0.5b -o /media/usb/models.zip
  ollama-model-downloader export -split 4G llama3.1:70b   # .zip.001, .002… for a FAT32 stick
  sudo ollama-model-downloader export -models-dir /usr/share/ollama/.ollama/models llama3.2

On the other machine:
  ollama-model-downloader install qwen2-0.5b.zip         # or: unzip qwen2-0.5b.zip -d ~/.ollama/models
  ollama list

Flags:
`

// runExportCommand is "ollama-model-downloader export". It returns the
// exit code: 0 exported, 1 failed, 2 bad usage or a model that is not
// there, 128+n after signal n.
func runExportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("export", flag.ContinueOnError)
	output := fset.String("o", "", "the zip to write (default: <output-dir>/<model>-<tag>.zip)")
	modelsDir := fset.String("models-dir", "", "Ollama models `folder` to read (default $OLLAMA_MODELS, else ~/.ollama/models)")
	outputDir := fset.String("output-dir", "downloaded-models", "`folder` whose queue runs the export, and where the zip goes without -o")
	splitSize := fset.String("split", "", "write the zip in parts of at most `SIZE` (K/M/G, e.g. 4G for FAT32): NAME.zip.001, .002…")
	limitRate := fset.String("limit-rate", "0", "copy at most this many bytes/s, like 20M (a slow stick, a busy machine); 0 = no limit")
	concurrency := fset.Int("concurrency", 4, "blobs copied at a time, 1–32")
	verbose := fset.Bool("v", false, "verbose logging")
	names, code, ok := subcommandArgs(fset, args, exportUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "export: name the models to export ('list' shows them; -h for help)")
		return 2
	}
	var split, rate int64
	var err error
	if *splitSize != "" {
		if split, err = engine.ParseRate(*splitSize); err == nil && split <= 0 {
			err = errors.New("not a size")
		}
		if err == nil {
			err = models.CheckSplit("export", split)
		}
		if err != nil {
			fmt.Fprintf(stderr, "export: -split takes a size such as 4G (K, M, G) of at least 1M, got %q\n", *splitSize)
			return 2
		}
	}
	if rate, err = engine.ParseRate(*limitRate); err != nil {
		fmt.Fprintf(stderr, "export: -limit-rate: %v\n", err)
		return 2
	}
	dir, err := models.ResolveModelsDir(*modelsDir)
	if err != nil {
		fmt.Fprintln(stderr, "export:", err)
		return 2
	}
	// Each name is looked up before anything is queued: a name that is not
	// there is one line naming the folder.
	var total int64
	var shown []string
	for _, n := range names {
		lm, err := models.FindLocal(dir, n)
		if err != nil {
			fmt.Fprintln(stderr, "export:", queue.SingleLine(err.Error()))
			if errors.Is(err, fault.ErrBadInput) || errors.Is(err, fault.ErrNotFound) {
				return 2
			}
			return 1
		}
		shown = append(shown, fmt.Sprintf("%s (ID %s)", lm.Manifest.ShortRef(), strings.TrimPrefix(lm.Manifest.Digest, "sha256:")[:12]))
		for _, ref := range lm.Manifest.Refs {
			total += ref.Size
		}
	}
	if *output != "" {
		// The queue may run in a web UI started elsewhere: its folder is
		// not ours.
		if *output, err = filepath.Abs(*output); err != nil {
			fmt.Fprintln(stderr, "export:", err)
			return 2
		}
	}
	opts, err := parseOptions([]string{"-output-dir", *outputDir, "-concurrency", strconv.Itoa(*concurrency), "-v=" + strconv.FormatBool(*verbose)}, io.Discard)
	if err != nil {
		fmt.Fprintln(stderr, "export:", err)
		return 2
	}
	a, err := newApp(opts, stdout, stderr, newLogger(stderr, *verbose, true))
	if err != nil {
		fmt.Fprintln(stderr, "export:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Exporting %s from %s\n", strings.Join(shown, ", "), dir)
	views, err := a.runDownloads(ctx, []queue.AddRequest{{Source: strings.Join(names, " "), Export: true, ModelsDir: dir, Output: *output, Split: split, LimitRate: rate, Retries: -1}})
	if err != nil {
		var stopped signalError
		if errors.As(err, &stopped) {
			fmt.Fprintf(stderr, "stopped: export of %s (run the same command again to resume)\n", strings.Join(names, " "))
			return exitCode(err)
		}
		fmt.Fprintln(stderr, "export:", queue.SingleLine(err.Error()))
		return 1
	}
	v := views[0]
	switch {
	case v.State == queue.JobCompleted:
		zip := a.outputPath(v.Path)
		fmt.Fprintf(stdout, "done: %s (%s)\n", zip, models.ModelSizeText(v.BytesTotal))
		fmt.Fprintln(stdout, carryHint(filepath.Base(zip)))
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "stopped: export of %s (run the same command again to resume)\n", strings.Join(names, " "))
		return exitCode(context.Cause(ctx))
	case v.State == queue.JobFailed:
		fmt.Fprintf(stderr, "failed: %s\n", queue.SingleLine(v.Error)) // it names the models
		return 1
	default:
		fmt.Fprintf(stderr, "stopped: export of %s is %s (run the same command again to resume)\n", strings.Join(names, " "), v.State)
		return 1
	}
}

// carryHint says what to run on the other machine; a split set is joined
// before unzip can read it (install reads the parts as they are).
func carryHint(first string) string {
	if whole, ok := strings.CutSuffix(first, ".001"); ok {
		return fmt.Sprintf("On the other machine: ollama-model-downloader install %s   (or: cat %s.0* > %s && unzip %s -d ~/.ollama/models)", first, whole, whole, whole)
	}
	return fmt.Sprintf("On the other machine: ollama-model-downloader install %s   (or: unzip %s -d ~/.ollama/models)", first, first)
}
