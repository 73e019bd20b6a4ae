package server

import (
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/fault"
)

// handleYield is POST /api/owner/yield: a web UI starting on a folder a
// command-line run owns asks for it. The run stops its queue (running
// downloads keep their .part) and follows its downloads in the web UI.
func (s *Server) handleYield(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Yield == nil {
		s.writeError(w, r, fmt.Errorf("this server does not hand its folder over: it is a web UI: %w", fault.ErrConflict))
		return
	}
	s.cfg.Yield()
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
