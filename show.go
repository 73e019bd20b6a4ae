package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

const (
	// maxShowBlob is the largest layer show reads: config, template,
	// license, params and system are a few KiB; the model is never read.
	maxShowBlob = 1 << 20
	// maxLibraryModelZips bounds how many zips one library listing opens.
	maxLibraryModelZips = 500
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

// modelInfo is what show says about a model (and GET /api/model/show
// sends as JSON).
type modelInfo struct {
	Name         string      `json:"name"`    // host/namespace/model:tag
	Display      string      `json:"display"` // as a person types it: llama3.2:1b
	ID           string      `json:"id"`      // first 12 hex of the manifest's sha256, as `ollama list` shows
	Digest       string      `json:"digest"`  // sha256:<hex> of the manifest
	Size         int64       `json:"size"`    // every blob
	Family       string      `json:"family"`
	Parameters   string      `json:"parameters"`
	Quantization string      `json:"quantization"`
	Layers       []showLayer `json:"layers"`
	License      string      `json:"license"` // its first line
	System       string      `json:"system,omitempty"`
	Params       string      `json:"params,omitempty"` // the params layer as served (JSON)
	OnDisk       int64       `json:"on_disk"`          // bytes of it already on this machine, reusable by a pull
}

// showLayer is one blob of a model as show lists it.
type showLayer struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// ollamaConfig is the part of a model's config blob show reads.
type ollamaConfig struct {
	ModelFamily   string   `json:"model_family"`
	ModelFamilies []string `json:"model_families"`
	ModelType     string   `json:"model_type"` // the parameter count, "3.2B"
	FileType      string   `json:"file_type"`  // the quantization, "Q4_K_M"
}

func (c ollamaConfig) family() string {
	if c.ModelFamily != "" {
		return c.ModelFamily
	}
	if len(c.ModelFamilies) > 0 {
		return c.ModelFamilies[0]
	}
	return ""
}

// Show resolves a model and reads its manifest, config and small layers
// (from disk when places hold them, else from the registry), never the
// weights.
func (p *modelPuller) Show(ctx context.Context, ref string, places reusePlaces) (modelInfo, error) {
	c := p.reg
	name, err := parseModelName(strings.TrimSpace(ref), c.DefaultHost())
	if err != nil {
		return modelInfo{}, err
	}
	retries := c.retries()
	raw, m, err := c.resolveManifest(ctx, name, retries)
	if err != nil {
		return modelInfo{}, err
	}
	blobs, err := manifestBlobs(m)
	if err != nil {
		return modelInfo{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	digest := digestOfBytes(raw)
	info := modelInfo{Name: name.String(), Display: name.DisplayName(), Digest: digest, ID: strings.TrimPrefix(digest, digestAlgoPrefix)[:12], Layers: []showLayer{}}
	local := findReusableBlobs(ctx, places, blobs)
	for _, b := range blobs {
		info.Size += b.Size
		if _, ok := local[b.Digest]; ok {
			info.OnDisk += b.Size
		}
	}
	// The config first, then the layers in the manifest's order.
	layers := append([]ociDescriptor{*m.Config}, m.Layers...)
	seen := map[string]bool{}
	for _, d := range layers {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		b := blobRef{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}
		typ := layerType(d.MediaType)
		if d.Digest == m.Config.Digest {
			typ = "config"
		}
		info.Layers = append(info.Layers, showLayer{Type: typ, MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
		if !slices.Contains([]string{"config", "license", "system", "params"}, typ) || d.Size > maxShowBlob {
			continue
		}
		data, err := smallBlob(ctx, c, name, b, local, retries)
		if err != nil {
			return modelInfo{}, err
		}
		switch typ {
		case "config":
			var cfg ollamaConfig
			if json.Unmarshal(data, &cfg) == nil {
				info.Family, info.Parameters, info.Quantization = cfg.family(), cfg.ModelType, cfg.FileType
			}
		case "license":
			if info.License == "" {
				info.License = firstLine(data)
			}
		case "system":
			info.System = firstLine(data)
		case "params":
			info.Params = strings.TrimSpace(string(data))
		}
	}
	return info, nil
}

// smallBlob reads one small blob, from a copy on disk when there is one
// that hashes right, else from the registry; its digest is checked.
func smallBlob(ctx context.Context, c *registryClient, name modelName, b blobRef, local map[string]blobSource, retries int) ([]byte, error) {
	if src, ok := local[b.Digest]; ok {
		var buf bytes.Buffer
		if _, err := copyReusedBlob(ctx, &buf, src, nil); err == nil {
			return buf.Bytes(), nil
		}
	}
	return c.fetchSmallBlob(ctx, name, b, retries)
}

// fetchSmallBlob reads one small blob (a config, a license) into memory
// from the registry, retrying what is worth retrying; its digest is checked.
func (c *registryClient) fetchSmallBlob(ctx context.Context, name modelName, b blobRef, retries int) ([]byte, error) {
	h := c.host(name)
	u := h.base.JoinPath("v2", name.Namespace, name.Model, "blobs", b.Digest).String()
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		data, err := c.smallBlobOnce(ctx, h, u, b)
		if err == nil || attempt >= retries || !retryable(err) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("reading the %s layer of %s: %w", layerType(b.MediaType), name.DisplayName(), explainNetError(err, h.base.Hostname()))
			}
			return data, nil
		}
		if sleepCtx(ctx, delay) != nil {
			return nil, ctx.Err()
		}
		delay *= 2
	}
}

func (c *registryClient) smallBlobOnce(ctx context.Context, h *pullHost, u string, b blobRef) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusErrorFrom(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != b.Size || digestOfBytes(data) != b.Digest {
		return nil, fmt.Errorf("blob %s: %w: got %d bytes with %s", b.Digest, errChecksumMismatch, len(data), digestOfBytes(data))
	}
	return data, nil
}

// firstLine is the first non-empty line of a text, trimmed and cut to a
// length a line can show.
func firstLine(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxShowBlob)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			if len(line) > 200 {
				line = strings.ToValidUTF8(line[:200], "") + "…"
			}
			return line
		}
	}
	return ""
}

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
	client, err := newHTTPClient("")
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		return 1
	}
	c, err := newRegistryClient(registryConfig{Registry: *registryURL, Platform: *platform, Client: client, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		return 2
	}
	dirs := []string{*modelsDir}
	if d, err := resolveModelsDir(""); err == nil {
		dirs = append(dirs, d)
	}
	info, err := newModelPuller(c).Show(ctx, names[0], reusePlacesFor(*outputDir, dirs))
	if err != nil {
		fmt.Fprintln(stderr, "show:", err)
		if errors.Is(err, errBadInput) || errors.Is(err, errNotFound) {
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
func printModelInfo(w io.Writer, info modelInfo) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "    %-14s %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "  Model")
	row("name", info.Display)
	row("id", info.ID)
	row("size", modelSizeText(info.Size))
	row("family", info.Family)
	row("parameters", info.Parameters)
	row("quantization", info.Quantization)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  Layers")
	for _, l := range info.Layers {
		fmt.Fprintf(w, "    %-14s %-9s %s\n", l.Type, modelSizeText(l.Size), digestShort(l.Digest))
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
	fmt.Fprintf(w, "  On disk already: %s of %s (%s to download)\n", modelSizeText(info.OnDisk), modelSizeText(info.Size), modelSizeText(info.Size-info.OnDisk))
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

// handleModelShow is GET /api/model/show?name=NAME: show's modelInfo,
// before the model is added. 400 for a bad name, 404 for a model or tag
// the registry does not have.
func (s *server) handleModelShow(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if name == "" {
		s.writeError(w, r, badInputf("name a model: /api/model/show?name=llama3.2:1b"))
		return
	}
	if s.cfg.Manager == nil || s.cfg.Manager.Models() == nil {
		s.writeError(w, r, errors.New("model downloads are not configured"))
		return
	}
	dirs := []string{}
	if d, err := resolveModelsDir(""); err == nil {
		dirs = append(dirs, d)
	}
	info, err := s.cfg.Manager.Models().Show(r.Context(), name, reusePlacesFor(s.cfg.OutputDir, dirs))
	if err != nil {
		if !errors.Is(err, errBadInput) && !errors.Is(err, errNotFound) && r.Context().Err() == nil {
			// The registry or the network failed: say so, not "internal error".
			err = &httpError{http.StatusBadGateway, err.Error()}
		}
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, info)
}

// libraryModel is one model of the library as `ollama list` shows it.
type libraryModel struct {
	Name         string    `json:"name"` // llama3.2:1b
	ID           string    `json:"id"`
	Size         int64     `json:"size"`
	Family       string    `json:"family,omitempty"`
	Parameters   string    `json:"parameters"`
	Quantization string    `json:"quantization"`
	Modified     time.Time `json:"modified"`
	Path         string    `json:"path"`            // the zip, or a split set's first part, relative to the output folder
	Parts        []string  `json:"parts,omitempty"` // a split set's parts
}

// libraryModels lists the models in the zips of the output folder (a
// split set once), newest first, through os.Root. A zip that cannot be
// read or is over the caps is left out.
func libraryModels(outputDir string) []libraryModel {
	list := []libraryModel{}
	root, err := os.OpenRoot(outputDir)
	if err != nil {
		return list
	}
	defer root.Close()
	var zips []string
	fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		lower := strings.ToLower(d.Name())
		if d.Type().IsRegular() && (strings.HasSuffix(lower, ".zip") || strings.HasSuffix(lower, ".zip.001")) {
			zips = append(zips, p)
		}
		if len(zips) >= maxLibraryModelZips {
			return fs.SkipAll
		}
		return nil
	})
	for _, p := range zips {
		list = append(list, zipModels(root, p)...)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Modified.Equal(list[j].Modified) {
			return list[i].Modified.After(list[j].Modified)
		}
		return list[i].Path < list[j].Path
	})
	return list
}

// zipModels reads the models of one zip of the library.
func zipModels(root *os.Root, rel string) []libraryModel {
	zs, err := openZipSourceIn(root, filepath.FromSlash(rel))
	if err != nil {
		return nil
	}
	defer zs.Close()
	l, err := openModelLayoutFrom(zs)
	if err != nil {
		return nil
	}
	var modified time.Time
	if fi, err := zs.files[0].Stat(); err == nil {
		modified = fi.ModTime().UTC().Truncate(time.Second)
	}
	var parts []string
	for _, p := range zs.Parts {
		parts = append(parts, filepath.ToSlash(p))
	}
	var out []libraryModel
	for _, m := range l.Manifests {
		lm := libraryModel{Name: m.ShortRef(), ID: strings.TrimPrefix(m.Digest, digestAlgoPrefix)[:12], Modified: modified, Path: rel, Parts: parts}
		for i, ref := range m.Refs {
			lm.Size += ref.Size
			b, ok := l.Blobs[ref.Digest]
			if i != 0 || !ok || b.Size > maxShowBlob {
				continue
			}
			rc, err := l.Open(b.Name)
			if err != nil {
				continue
			}
			var cfg ollamaConfig
			if data, err := io.ReadAll(io.LimitReader(rc, maxShowBlob)); err == nil && json.Unmarshal(data, &cfg) == nil {
				lm.Family, lm.Parameters, lm.Quantization = cfg.family(), cfg.ModelType, cfg.FileType
			}
			rc.Close()
		}
		out = append(out, lm)
	}
	return out
}
