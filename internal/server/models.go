package server

import (
	"errors"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"strings"
)

// handleModelShow is GET /api/model/show?name=NAME: show's modelInfo,
// before the model is added. 400 for a bad name, 404 for a model or tag
// the registry does not have.
func (s *Server) handleModelShow(w http.ResponseWriter, r *http.Request) {
	// A preview connects to whatever registry the name points at: another
	// site's page must not make this server do that (issue 25), so this GET
	// passes the check every state-changing request passes.
	if err := s.sameOriginReach(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if name == "" {
		s.writeError(w, r, fault.BadInputf("name a model: /api/model/show?name=llama3.2:1b"))
		return
	}
	if s.cfg.Manager == nil || s.cfg.Manager.Models() == nil {
		s.writeError(w, r, errors.New("model downloads are not configured"))
		return
	}
	dirs := []string{}
	if d, err := models.ResolveModelsDir(""); err == nil {
		dirs = append(dirs, d)
	}
	info, err := s.cfg.Manager.Models().Show(r.Context(), name, models.ReusePlacesFor(s.cfg.OutputDir, dirs))
	if err != nil {
		if !errors.Is(err, fault.ErrBadInput) && !errors.Is(err, fault.ErrNotFound) && r.Context().Err() == nil {
			// The registry or the network failed: say so, not "internal error".
			err = &httpError{http.StatusBadGateway, err.Error()}
		}
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, info)
}
