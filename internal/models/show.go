package models

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/registry"
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

// ModelInfo is what show says about a model (and GET /api/model/show
// sends as JSON).
type ModelInfo struct {
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
func (p *Puller) Show(ctx context.Context, ref string, places ReusePlaces) (ModelInfo, error) {
	c := p.reg
	name, err := registry.ParseName(strings.TrimSpace(ref), c.DefaultHost())
	if err != nil {
		return ModelInfo{}, err
	}
	retries := c.Retries()
	raw, m, err := c.ResolveManifest(ctx, name, retries)
	if err != nil {
		return ModelInfo{}, err
	}
	blobs, err := registry.ManifestBlobs(m)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("reading manifest of %s: %w", name.DisplayName(), err)
	}
	digest := registry.DigestOf(raw)
	info := ModelInfo{Name: name.String(), Display: name.DisplayName(), Digest: digest, ID: strings.TrimPrefix(digest, registry.DigestAlgoPrefix)[:12], Layers: []showLayer{}}
	local := FindReusableBlobs(ctx, places, blobs)
	for _, b := range blobs {
		info.Size += b.Size
		if _, ok := local[b.Digest]; ok {
			info.OnDisk += b.Size
		}
	}
	// The config first, then the layers in the manifest's order.
	layers := append([]registry.Descriptor{*m.Config}, m.Layers...)
	seen := map[string]bool{}
	for _, d := range layers {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		b := registry.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}
		typ := registry.LayerType(d.MediaType)
		if d.Digest == m.Config.Digest {
			typ = "config"
		}
		info.Layers = append(info.Layers, showLayer{Type: typ, MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
		if !slices.Contains([]string{"config", "license", "system", "params"}, typ) || d.Size > maxShowBlob {
			continue
		}
		data, err := smallBlob(ctx, c, name, b, local, retries)
		if err != nil {
			return ModelInfo{}, err
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
func smallBlob(ctx context.Context, c *registry.Client, name registry.Name, b registry.Blob, local map[string]blobSource, retries int) ([]byte, error) {
	if src, ok := local[b.Digest]; ok {
		var buf bytes.Buffer
		if _, err := copyReusedBlob(ctx, &buf, src, nil); err == nil {
			return buf.Bytes(), nil
		}
	}
	return c.FetchSmallBlob(ctx, name, b, retries)
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

// LibraryModel is one model of the library as `ollama list` shows it.
type LibraryModel struct {
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

// LibraryModels lists the models in the zips of the output folder (a
// split set once), newest first, through os.Root. A zip that cannot be
// read or is over the caps is left out.
func LibraryModels(outputDir string) []LibraryModel {
	list := []LibraryModel{}
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
func zipModels(root *os.Root, rel string) []LibraryModel {
	zs, err := openZipSourceIn(root, filepath.FromSlash(rel))
	if err != nil {
		return nil
	}
	defer zs.Close()
	l, err := OpenLayoutFrom(zs)
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
	var out []LibraryModel
	for _, m := range l.Manifests {
		lm := LibraryModel{Name: m.ShortRef(), ID: strings.TrimPrefix(m.Digest, registry.DigestAlgoPrefix)[:12], Modified: modified, Path: rel, Parts: parts}
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
