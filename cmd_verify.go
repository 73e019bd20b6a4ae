package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"ollama-model-downloader/internal/models"
)

const verifyUsage = `Usage: ollama-model-downloader verify <file.zip | folder>...

Checks a model zip made by this tool (or a folder in Ollama's layout) before
you carry it to another machine: only blobs/ and manifests/ entries with safe
names, every blob's SHA-256 equal to its name, every blob a manifest names
present with the right size. Prints what is wrong; exit code 0 when all is
well, 1 when something is wrong.

Examples:
  ollama-model-downloader verify downloaded-models/llama3.2-latest.zip
  ollama-model-downloader verify /media/usb/*.zip
  ollama-model-downloader verify ~/.ollama/models
`

// runVerifyCommand is "ollama-model-downloader verify". It returns the exit
// code: 0 sound, 1 problems found, 2 bad usage.
func runVerifyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("verify", flag.ContinueOnError)
	paths, code, ok := subcommandArgs(fset, args, verifyUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "verify: name a zip or a folder to check (-h for help)")
		return 2
	}
	code = 0
	for _, p := range paths {
		if !models.VerifyAndReport(ctx, p, stdout) {
			code = 1
		}
	}
	return code
}
