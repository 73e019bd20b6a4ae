package queue

import (
	"errors"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/registry"
	"path/filepath"
	"slices"
	"strings"
)

// maxExportNames bounds the models of one export: a zip holds at most
// this many manifests anyway.
const maxExportNames = 1000

// parseExportNames reads an export's Source: model names separated by
// spaces, resolved as Ollama resolves them (qwen2 is
// registry.ollama.ai/library/qwen2:latest), whatever -registry says.
func parseExportNames(src string) ([]registry.Name, error) {
	fields := strings.Fields(src)
	if len(fields) == 0 {
		return nil, fault.BadInputf("name at least one model of this machine's Ollama to export")
	}
	if len(fields) > maxExportNames {
		return nil, fault.BadInputf("%d models in one export: at most %d go into one zip", len(fields), maxExportNames)
	}
	names := make([]registry.Name, len(fields))
	for i, f := range fields {
		n, err := registry.ParseName(f, registry.OllamaHost)
		if err != nil {
			if errors.Is(err, fault.ErrBadInput) {
				return nil, err
			}
			return nil, fault.BadInputf("%q is not a valid model name: %v", f, err)
		}
		names[i] = n
	}
	return names, nil
}

// exportKey says which models an export takes, whatever their order or
// case: the same export added twice is one job.
func exportKey(names []registry.Name) string {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = strings.ToLower(n.String())
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

// newExport fills an export job from what was asked: the names, the
// models folder (absolute: it is read by whichever process runs the
// queue), the zip.
func (m *Manager) newExport(j *managerJob, req AddRequest) error {
	names, err := parseExportNames(req.Source)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(req.ModelsDir) {
		return fault.BadInputf("an export needs the Ollama models folder as an absolute path, got %q", req.ModelsDir)
	}
	if j.SHA256 != "" || req.Force {
		return fault.BadInputf("sha256 and force apply to file downloads only: an export hashes every blob anyway")
	}
	j.Kind = KindExport
	j.Source = strings.Join(strings.Fields(req.Source), " ")
	j.names = names
	j.ModelsDir = filepath.Clean(req.ModelsDir)
	j.Split = req.Split
	j.Path = j.Output
	if j.Path == "" {
		j.Path = filepath.Join(m.outputDir, models.ExportZipName(names))
	}
	return nil
}
