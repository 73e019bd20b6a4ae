package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"os"
	"runtime"
	"strings"
)

const installUsage = `Usage: ollama-model-downloader install [-models-dir DIR] <file.zip | file.zip.001 | folder | model>...

Puts the models of a zip made by this tool (one zip, or the first part of a
split set), or of a folder in Ollama's layout (an extracted zip, a kept
staging folder), into the Ollama models folder. Every blob's SHA-256 and
every manifest reference is checked before anything is written; an existing
different file is never replaced; manifests are written last, so Ollama
never sees half a model.

A model name is pulled straight into the models folder: no zip, no second
copy. Blobs already on this machine (the models folder, $OLLAMA_MODELS, the
zips and staging folders of -output-dir) are taken from disk, their digests
checked. Interrupted, the same command continues where it stopped. A running
Ollama sees the model at once.

The models folder is -models-dir, else $OLLAMA_MODELS, else ~/.ollama/models.

Examples:
  ollama-model-downloader install llama3.2:1b
  ollama-model-downloader install downloaded-models/llama3.2-latest.zip
  ollama-model-downloader install /media/usb/qwen3-8b.zip.001
  ollama-model-downloader install -models-dir /data/ollama/models qwen3-8b.zip
  sudo ollama-model-downloader install -models-dir /usr/share/ollama/.ollama/models llama3.2-latest.zip

Flags:
`

// runInstallCommand is "ollama-model-downloader install" for zips and
// folders. It returns the exit code: 0 installed, 1 failed, 2 bad usage.
func runInstallCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runInstallCommandWith(ctx, args, stdout, stderr, nil)
}

// runInstallCommandWith is runInstallCommand where an argument that is not
// a file or folder (and does not end in .zip) is a model reference, pulled
// with pull first. A nil pull makes that a usage error.
func runInstallCommandWith(ctx context.Context, args []string, stdout, stderr io.Writer, pull models.InstallPuller) int {
	fset := flag.NewFlagSet("install", flag.ContinueOnError)
	modelsDir := fset.String("models-dir", "", "Ollama models `folder` (default $OLLAMA_MODELS, else ~/.ollama/models)")
	outputDir := fset.String("output-dir", "downloaded-models", "`folder` whose zips and staging folders may already hold blobs of a named model")
	registryURL := fset.String("registry", "https://registry.ollama.ai", "registry a named model is pulled from")
	paths, code, ok := subcommandArgs(fset, args, installUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "install: name a zip, a folder or a model to install (-h for help)")
		return 2
	}
	dir, err := models.ResolveModelsDir(*modelsDir)
	if err != nil {
		fmt.Fprintln(stderr, "install:", err)
		return 2
	}
	for _, p := range paths {
		if _, statErr := os.Stat(p); statErr != nil && !strings.HasSuffix(strings.ToLower(p), ".zip") {
			if pull == nil {
				fmt.Fprintf(stderr, "install: %s is not a zip or a folder here\n", p)
				return 2
			}
			fmt.Fprintf(stdout, "Pulling %s into %s\n", p, dir)
			res, err := pull(ctx, models.InstallPullRequest{Ref: p, ModelsDir: dir, OutputDir: *outputDir, Registry: *registryURL})
			var stopped signalError
			switch {
			case errors.As(err, &stopped):
				fmt.Fprintf(stderr, "install: stopped: %s (run the same command again to resume)\n", p)
				return exitCode(err)
			case err != nil:
				fmt.Fprintln(stderr, "install:", err)
				if errors.Is(err, fault.ErrBadInput) {
					return 2
				}
				return 1
			}
			fmt.Fprintln(stdout, installedLine(res))
			for _, note := range models.InstallNotes(dir, runtime.GOOS, []models.LayoutManifest{{Host: res.Name.Host, Namespace: res.Name.Namespace, Model: res.Name.Model, Tag: res.Name.Tag}}) {
				fmt.Fprintln(stdout, note)
			}
			continue
		}
		if err := models.InstallZip(ctx, p, dir, stdout); err != nil {
			fmt.Fprintln(stderr, "install:", err)
			return 1
		}
	}
	return 0
}

// installedLine is the CLI's last word on "install NAME": what, its ID as
// `ollama list` shows it, its size, and what came from disk.
func installedLine(res models.PullResult) string {
	id := ""
	if raw, err := os.ReadFile(res.Path); err == nil {
		id = " " + strings.TrimPrefix(registry.DigestOf(raw), registry.DigestAlgoPrefix)[:12]
	}
	line := fmt.Sprintf("Installed %s (ID%s, %s)", models.LayoutManifest{Host: res.Name.Host, Namespace: res.Name.Namespace, Model: res.Name.Model, Tag: res.Name.Tag}.ShortRef(), id, models.ModelSizeText(res.Size))
	if res.Reused > 0 {
		line += fmt.Sprintf("; reused %s from disk", models.ModelSizeText(res.Reused))
	}
	return line
}
