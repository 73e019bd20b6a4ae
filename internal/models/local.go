package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/registry"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// maxLocalManifests bounds one listing of a models folder: a real one
// holds a few dozen models.
const maxLocalManifests = 10000

// The states of a models folder as ListLocal finds it.
const (
	LocalOK         = "ok"         // read; it may hold no model
	LocalMissing    = "missing"    // no such folder: Ollama has pulled nothing here (or looks elsewhere)
	LocalUnreadable = "unreadable" // it is there, but this user cannot read it
)

// LocalModel is one model of an Ollama models folder as `ollama list`
// shows it (name, ID, size, modified), with what `show` reads from its
// config blob.
type LocalModel struct {
	Name         string    `json:"name"`     // as `ollama list` shows it: qwen2:latest, hf.co/bartowski/x:Q4_K_M
	Ref          string    `json:"ref"`      // host/namespace/model:tag, what export and pull take
	ID           string    `json:"id"`       // the first 12 hex of the manifest's SHA-256, as `ollama list` prints
	Digest       string    `json:"digest"`   // sha256:<hex> of the manifest file
	Size         int64     `json:"size"`     // config and layers, added up as `ollama list` does
	Modified     time.Time `json:"modified"` // the manifest file's time, as `ollama list` uses
	Family       string    `json:"family"`
	Parameters   string    `json:"parameters"`
	Quantization string    `json:"quantization"`
	// MissingBlobs counts the blobs the manifest names that are not in
	// blobs/ with their size: such a model cannot be exported.
	MissingBlobs int `json:"missing_blobs,omitempty"`
}

// LocalModels is an Ollama models folder as `list -json` prints it and
// GET /api/models/local sends it.
type LocalModels struct {
	ModelsDir string       `json:"models_dir"`
	State     string       `json:"state"`           // LocalOK, LocalMissing or LocalUnreadable
	Error     string       `json:"error,omitempty"` // why it could not be read
	Models    []LocalModel `json:"models"`          // newest first, as `ollama list`
	// TotalSize is what the models take on disk: every blob they use,
	// once however many models share it.
	TotalSize int64 `json:"total_size"`
	// Skipped names manifest files that could not be read as models.
	Skipped []string `json:"skipped,omitempty"`
}

// localManifest is one model found in a models folder: its name with
// the case it has on disk, and its manifest as written there.
type localManifest struct {
	Name     registry.Name
	Path     string
	Manifest LayoutManifest
	Modified time.Time
}

// ListLocal lists the models of an Ollama models folder without a
// server, as `ollama list` does: every manifests/<host>/<namespace>/
// <model>/<tag> that parses, newest first. A folder that is not there or
// cannot be read says so in State and Error; it is not an error.
func ListLocal(modelsDir string) LocalModels {
	out := LocalModels{ModelsDir: modelsDir, State: LocalOK, Models: []LocalModel{}}
	found, skipped, err := walkLocal(modelsDir)
	if err != nil {
		out.State, out.Error = localState(err), err.Error()
		return out
	}
	out.Skipped = skipped
	counted := map[string]bool{}
	for _, lm := range found {
		m := LocalModel{
			Name:     lm.Manifest.ShortRef(),
			Ref:      lm.Manifest.Ref(),
			ID:       manifestID(lm.Manifest.Digest),
			Digest:   lm.Manifest.Digest,
			Modified: lm.Modified,
		}
		for i, ref := range lm.Manifest.Refs {
			m.Size += ref.Size
			fi, err := os.Stat(filepath.Join(modelsDir, "blobs", blobFile(ref.Digest)))
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != ref.Size {
				m.MissingBlobs++
				continue
			}
			if !counted[ref.Digest] {
				counted[ref.Digest] = true
				out.TotalSize += ref.Size
			}
			if i == 0 {
				m.Family, m.Parameters, m.Quantization = readConfigDetails(modelsDir, ref)
			}
		}
		out.Models = append(out.Models, m)
	}
	slices.SortStableFunc(out.Models, func(a, b LocalModel) int {
		if c := b.Modified.Compare(a.Modified); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// localState names what went wrong reading a models folder.
func localState(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return LocalMissing
	}
	return LocalUnreadable
}

// walkLocal reads every manifest under modelsDir/manifests, four folders
// deep as Ollama lays them out. Files whose path or content is not a
// model's are skipped and named.
func walkLocal(modelsDir string) ([]localManifest, []string, error) {
	if err := checkModelsDir(modelsDir); err != nil {
		return nil, nil, err
	}
	root := filepath.Join(modelsDir, "manifests")
	var found []localManifest
	var skipped []string
	var walk func(dir string, parts []string) error
	walk = func(dir string, parts []string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if len(parts) == 0 && errors.Is(err, fs.ErrNotExist) {
				return nil // nothing pulled yet
			}
			return localReadError(modelsDir, err)
		}
		for _, e := range entries {
			if len(found)+len(skipped) >= maxLocalManifests {
				return nil
			}
			p := filepath.Join(dir, e.Name())
			next := append(slices.Clip(parts), e.Name())
			if strings.HasPrefix(e.Name(), ".") || CheckLayoutParts(next) != "" {
				continue // not a name Ollama would have written
			}
			if len(next) < 4 {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					if err := walk(p, next); err != nil {
						return err
					}
				}
				continue
			}
			lm, err := readLocalManifest(p, next)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s: %v", filepath.ToSlash(filepath.Join("manifests", filepath.Join(next...))), err))
				continue
			}
			found = append(found, lm)
		}
		return nil
	}
	if err := walk(root, nil); err != nil {
		return nil, nil, err
	}
	return found, skipped, nil
}

// checkModelsDir says, in one line, why modelsDir cannot be read as an
// Ollama models folder, or nil when it can.
func checkModelsDir(modelsDir string) error {
	fi, err := os.Stat(modelsDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fault.WithKind(fs.ErrNotExist, fmt.Errorf("there is no Ollama models folder at %s (give -models-dir, or set OLLAMA_MODELS as Ollama has it)%s", modelsDir, serviceModelsHint(modelsDir)))
	case err != nil:
		return localReadError(modelsDir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder: an Ollama models folder holds blobs/ and manifests/", modelsDir)
	}
	return nil
}

// localReadError explains a folder this user cannot read.
func localReadError(modelsDir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot read the Ollama models folder %s: %w (it belongs to another user, such as the ollama service: run as that user or with sudo, or add yourself to its group)", modelsDir, err)
	}
	return fmt.Errorf("cannot read the Ollama models folder %s: %w", modelsDir, err)
}

// serviceModelsHint points to the folder of Ollama's Linux service when
// it exists and is not the one looked in.
func serviceModelsHint(modelsDir string) string {
	if filepath.Clean(modelsDir) == linuxServiceModelsDir {
		return ""
	}
	if _, err := os.Stat(linuxServiceModelsDir); err == nil || errors.Is(err, fs.ErrPermission) {
		return "; the Ollama service keeps its models in " + linuxServiceModelsDir
	}
	return ""
}

// readLocalManifest reads one manifest file; parts are its host,
// namespace, model and tag as folder names.
func readLocalManifest(p string, parts []string) (localManifest, error) {
	f, err := os.Open(p)
	if err != nil {
		return localManifest{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return localManifest{}, err
	}
	if !fi.Mode().IsRegular() {
		return localManifest{}, errors.New("not a regular file")
	}
	data, err := ReadManifestBytes(f)
	if err != nil {
		return localManifest{}, err
	}
	m := LayoutManifest{
		Name: "manifests/" + strings.Join(parts, "/"),
		Host: parts[0], Namespace: parts[1], Model: parts[2], Tag: parts[3],
		Data: data, Digest: registry.DigestOf(data),
	}
	if problem := m.parse(); problem != "" {
		return localManifest{}, errors.New(problem)
	}
	name := registry.Name{Host: m.Host, Namespace: m.Namespace, Model: m.Model, Tag: m.Tag}
	if hexPart, ok := strings.CutPrefix(m.Tag, registry.DigestFilePrefix); ok {
		// A digest pull of this tool is stored under its digest.
		name.Tag, name.Digest = "", registry.DigestAlgoPrefix+hexPart
	}
	return localManifest{Name: name, Path: p, Manifest: m, Modified: fi.ModTime().UTC().Truncate(time.Second)}, nil
}

// readConfigDetails reads family, parameters and quantization from a
// model's config blob, as show does; "" where it says nothing.
func readConfigDetails(modelsDir string, ref registry.Descriptor) (family, parameters, quantization string) {
	if ref.Size > maxShowBlob {
		return "", "", ""
	}
	f, err := os.Open(filepath.Join(modelsDir, "blobs", blobFile(ref.Digest)))
	if err != nil {
		return "", "", ""
	}
	defer f.Close()
	var cfg ollamaConfig
	data, err := io.ReadAll(io.LimitReader(f, maxShowBlob))
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		return "", "", ""
	}
	return cfg.family(), cfg.ModelType, cfg.FileType
}

// FindLocal finds the model ref names in an Ollama models folder, as
// Ollama resolves names (qwen2 is registry.ollama.ai/library/qwen2:latest;
// case does not matter). A model that is not there is an error of one
// line naming the folder, and the tags of that model it does have.
func FindLocal(modelsDir, ref string) (localManifest, error) {
	name, err := registry.ParseName(strings.TrimSpace(ref), registry.OllamaHost)
	if err != nil {
		return localManifest{}, err
	}
	if err := checkModelsDir(modelsDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fault.WithKind(fault.ErrNotFound, fault.WithKind(fault.ErrModelNotFound, fmt.Errorf("%s: %w", name.DisplayName(), err)))
		}
		return localManifest{}, err
	}
	dir := filepath.Join(modelsDir, "manifests")
	var parts []string
	for _, want := range []string{name.Host, name.Namespace, name.Model, name.ManifestFile()} {
		got, err := matchFold(dir, want)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				return localManifest{}, localReadError(modelsDir, err)
			}
			return localManifest{}, notHere(modelsDir, name, parts)
		}
		parts = append(parts, got)
		dir = filepath.Join(dir, got)
	}
	lm, err := readLocalManifest(dir, parts)
	if err != nil {
		return localManifest{}, fault.WithKind(fault.ErrBadManifest, fmt.Errorf("%s in %s: %w", name.DisplayName(), modelsDir, err))
	}
	return lm, nil
}

// matchFold finds the entry of dir named want, ignoring case as Ollama
// does (an exact match first).
func matchFold(dir, want string) (string, error) {
	if _, err := os.Lstat(filepath.Join(dir, want)); err == nil {
		return want, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if strings.EqualFold(e.Name(), want) {
			return e.Name(), nil
		}
	}
	return "", fs.ErrNotExist
}

// notHere is the error for a model a folder does not have; when it has
// other tags of that model (parts reached the model's folder) it names
// them.
func notHere(modelsDir string, name registry.Name, parts []string) error {
	msg := fmt.Sprintf("%s is not in the Ollama models folder %s", name.DisplayName(), modelsDir)
	if len(parts) == 3 {
		var tags []string
		if entries, err := os.ReadDir(filepath.Join(append([]string{modelsDir, "manifests"}, parts...)...)); err == nil {
			for _, e := range entries {
				if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					tags = append(tags, LayoutManifest{Host: parts[0], Namespace: parts[1], Model: parts[2], Tag: e.Name()}.ShortRef())
				}
			}
		}
		if len(tags) > 0 {
			msg += " (it has " + strings.Join(tags, ", ") + ")"
		}
	} else {
		msg += " ('list' shows what is there)" + serviceModelsHint(modelsDir)
	}
	return fault.WithKind(fault.ErrNotFound, fault.WithKind(fault.ErrModelNotFound, errors.New(msg)))
}

// blobFile is a blob's file name in blobs/: sha256-<hex>.
func blobFile(digest string) string {
	return registry.DigestFilePrefix + strings.TrimPrefix(digest, registry.DigestAlgoPrefix)
}

// manifestID is the ID `ollama list` shows for a manifest digest.
func manifestID(digest string) string {
	return strings.TrimPrefix(digest, registry.DigestAlgoPrefix)[:12]
}
