package server

import (
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/owner"
	"os"
)

// handleOwner is GET /api/owner: which process this is (pid, and "web" or
// "cli"), for a command that read owner.json and must make sure, before it
// hands anything over, that the URL there leads to the process that wrote
// the file. Answered only to the key of owner.json: knowing it is the
// proof, also on a web UI without a token.
func (s *Server) handleOwner(w http.ResponseWriter, r *http.Request) {
	if !s.fromLocalKey(r) {
		s.writeError(w, r, errForbidden("only a process with the key of this folder's .state/owner.json may ask"))
		return
	}
	kind := owner.KindWeb
	if s.cfg.Yield != nil {
		kind = owner.KindCLI
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"pid": os.Getpid(), "kind": kind})
}

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
