package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/queue"
	"path/filepath"
	"strings"
)

// maxExportPerRequest bounds the names of one export request.
const maxExportPerRequest = 1000

// localModelsDir is this machine's Ollama models folder as the server
// sees it: Config.ModelsDir, else $OLLAMA_MODELS of this process, else
// ~/.ollama/models of the user it runs as (the rule install follows).
func (s *Server) localModelsDir() (string, error) {
	return models.ResolveModelsDir(s.cfg.ModelsDir)
}

// handleLocalModels is GET /api/models/local: the models of this
// machine's Ollama, as `ollama list` shows them, with the folder, whether
// it could be read, and the disk its models use.
func (s *Server) handleLocalModels(w http.ResponseWriter, r *http.Request) {
	dir, err := s.localModelsDir()
	if err != nil {
		s.writeJSON(w, http.StatusOK, models.LocalModels{State: models.LocalUnreadable, Error: err.Error(), Models: []models.LocalModel{}})
		return
	}
	s.writeJSON(w, http.StatusOK, models.ListLocal(dir))
}

// handleLocalModelCheck is POST /api/models/local/check name=NAME: the
// registry's manifest for that tag against the local one (a HEAD of the
// manifest, no blob). A POST, because it makes the server reach out: the
// origin checks apply. 404 when the model is not in the folder; an
// unreachable registry is an answer (status "unreachable"), not an error.
func (s *Server) handleLocalModelCheck(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := strings.TrimSpace(vals.Get("name"))
	if name == "" {
		s.writeError(w, r, fault.BadInputf("name a model of this machine's Ollama: name=qwen2:latest"))
		return
	}
	if s.cfg.Manager == nil || s.cfg.Manager.Models() == nil {
		s.writeError(w, r, errors.New("model downloads are not configured"))
		return
	}
	dir, err := s.localModelsDir()
	if err != nil {
		s.writeError(w, r, &httpError{http.StatusConflict, err.Error()})
		return
	}
	res, err := s.cfg.Manager.Models().CheckUpdate(r.Context(), dir, name)
	if err != nil {
		s.writeError(w, r, localModelsError(err))
		return
	}
	s.writeJSON(w, http.StatusOK, res)
}

// handleExport is POST /api/models/export name=NAME (repeated, or
// several names in one value): those models of this machine's Ollama
// into one zip in the output folder, through the queue like a pull.
// models_dir (another folder) and output (another zip path) are for a
// command of this same user handing over its own, proven by the key it
// reads from .state/owner.json: nothing else may make this server read
// a folder or write a file it did not choose.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var names []string
	for _, v := range vals["name"] {
		names = append(names, strings.Fields(v)...)
	}
	if len(names) == 0 {
		s.writeError(w, r, fault.BadInputf("name the models to export: name=qwen2:latest (repeat name for several in one zip)"))
		return
	}
	if len(names) > maxExportPerRequest {
		s.writeError(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%d models in one export: at most %d", len(names), maxExportPerRequest)})
		return
	}
	req := queue.AddRequest{Source: strings.Join(names, " "), Retries: -1, Export: true}
	if v := strings.TrimSpace(vals.Get("split")); v != "" && v != "0" {
		if req.Split, err = engine.ParseRate(v); err != nil || req.Split <= 0 {
			s.writeError(w, r, fault.BadInputf("split takes a size such as 4G (K, M, G), got %q", v))
			return
		}
	}
	if vals.Has("limit_rate") {
		if req.LimitRate, err = engine.ParseRate(vals.Get("limit_rate")); err != nil {
			s.writeError(w, r, fault.BadInputf("limit_rate: %v", err))
			return
		}
	}
	keyed := s.fromLocalKey(r)
	for _, k := range []string{"models_dir", "output"} {
		if strings.TrimSpace(vals.Get(k)) != "" && !keyed {
			s.writeError(w, r, errForbidden("%s is only for a command of the user running this server (it proves itself with the key in .state/owner.json); the page exports from this machine's Ollama folder into the output folder", k))
			return
		}
	}
	req.Output = strings.TrimSpace(vals.Get("output"))
	if req.ModelsDir = strings.TrimSpace(vals.Get("models_dir")); req.ModelsDir == "" {
		if req.ModelsDir, err = s.localModelsDir(); err != nil {
			s.writeError(w, r, &httpError{http.StatusConflict, err.Error()})
			return
		}
	} else if !filepath.IsAbs(req.ModelsDir) {
		s.writeError(w, r, fault.BadInputf("models_dir must be an absolute path, got %q", req.ModelsDir))
		return
	}
	// Say at once what is not there, rather than queue a job that fails.
	for _, n := range names {
		if _, err := models.FindLocal(req.ModelsDir, n); err != nil {
			s.writeError(w, r, localModelsError(err))
			return
		}
	}
	added, err := s.cfg.Manager.AddAll([]queue.AddRequest{req})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, struct {
		Downloads []queue.JobView `json:"downloads"`
	}{added})
}

// localModelsError gives a models folder this server cannot read its
// own status (403) and message; a model that is not there is 404 already.
func localModelsError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return &httpError{http.StatusForbidden, err.Error()}
	}
	if !errors.Is(err, fault.ErrBadInput) && !errors.Is(err, fault.ErrNotFound) {
		return &httpError{http.StatusConflict, err.Error()}
	}
	return err
}
