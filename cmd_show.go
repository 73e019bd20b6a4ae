package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"sort"
)

const showUsage = `Usage: ollama-model-downloader show [-registry URL] [-json] <model>

Prints what 'ollama show' would, before anything large is fetched: the name
and tag, the ID 'ollama list' will show, the total size, the family,
parameters and quantization, each layer's type and size, and the license's
first line. Only the manifest, the config and the small layers (template,
license, params, system) are read; the model weights are not.

Examples:
  ollama-model-downloader show llama3.2:1b
  ollama-model-downloader show -json qwen3:8b
  ollama-model-downloader show -registry http://127.0.0.1:5000 127.0.0.1:5000/library/tiny

Flags:
`

// runShowCommand is "ollama-model-downloader show". It returns the exit
// code: 0 shown, 1 failed (the registry, the network), 2 bad usage or an
// unknown model name.
func runShowCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("show", flag.ContinueOnError)
	registryURL := fset.String("registry", "https://registry.ollama.ai", "registry base `URL`")
	platform := fset.String("platform", "", "`os/arch` for multi-arch indexes (default: this machine's)")
	outputDir := fset.String("output-dir", "downloaded-models", "`folder` whose zips count as already on disk")
	modelsDir := fset.String("models-dir", "", "Ollama models `folder` whose blobs count as already on disk (default $OLLAMA_MODELS, else ~/.ollama/models)")
	asJSON := fset.Bool("json", false, "print JSON (the shape of GET /api/model/show)")
	names, code, ok := subcommandArgs(fset, args, showUsage, stdout, stderr)
	if !ok {
		return code
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "show: name one model (-h for help)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := engine.NewHTTPClient("")
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		return 1
	}
	c, err := registry.New(registry.Config{Registry: *registryURL, Platform: *platform, Client: client, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		return 2
	}
	dirs := []string{*modelsDir}
	if d, err := models.ResolveModelsDir(""); err == nil {
		dirs = append(dirs, d)
	}
	info, err := models.NewPuller(c).Show(ctx, names[0], models.ReusePlacesFor(*outputDir, dirs))
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		if errors.Is(err, fault.ErrBadInput) || errors.Is(err, fault.ErrNotFound) {
			return 2
		}
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(info)
		return 0
	}
	printModelInfo(stdout, info)
	return 0
}

// printModelInfo lays a model out as `ollama show` does: sections of
// indented name/value pairs.
func printModelInfo(w io.Writer, info models.ModelInfo) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "    %-14s %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "  Model")
	row("name", info.Display)
	row("id", info.ID)
	row("size", models.ModelSizeText(info.Size))
	row("family", info.Family)
	row("parameters", info.Parameters)
	row("quantization", info.Quantization)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  Layers")
	for _, l := range info.Layers {
		fmt.Fprintf(w, "    %-14s %-9s %s\n", l.Type, models.ModelSizeText(l.Size), models.DigestShort(l.Digest))
	}
	if params := paramLines(info.Params); len(params) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  Parameters")
		for _, p := range params {
			fmt.Fprintln(w, "    "+p)
		}
	}
	if info.System != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  System")
		fmt.Fprintln(w, "    "+info.System)
	}
	if info.License != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  License")
		fmt.Fprintln(w, "    "+info.License)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  On disk already: %s of %s (%s to download)\n", models.ModelSizeText(info.OnDisk), models.ModelSizeText(info.Size), models.ModelSizeText(info.Size-info.OnDisk))
}

// paramLines renders the params layer ({"stop":["a","b"],"temperature":
// 0.6}) as Ollama shows it: one "name value" line per value.
func paramLines(params string) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(params), &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		var list []json.RawMessage
		if json.Unmarshal(m[k], &list) != nil {
			list = []json.RawMessage{m[k]}
		}
		for _, v := range list {
			out = append(out, fmt.Sprintf("%-14s %s", k, string(v)))
		}
	}
	return out
}
