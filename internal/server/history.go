package server

import (
	"net/http"
	"ollama-model-downloader/internal/history"
)

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", history.DefaultLimit, 1, history.MaxLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	offset, err := intParam(q, "offset", 0, 0, 1<<30)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.cfg.History.List(history.Query{Limit: limit, Offset: offset, Status: q.Get("status"), Search: q.Get("q")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if page.Records == nil {
		page.Records = []history.Record{}
	}
	s.writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleHistoryDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.History.Delete(r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleHistoryClear(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.History.Clear(); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleStatistics(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.cfg.History.Stats(s.now()))
}
