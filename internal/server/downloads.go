package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/engine"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/queue"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// params reads a request's parameters from a form (urlencoded or
// multipart), a JSON object, or the query string, into one url.Values so
// that every handler reads them the same way.
func params(r *http.Request) (url.Values, error) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype != "application/json" {
		var err error
		if ctype == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		if err != nil {
			return nil, fault.BadInputf("reading form: %v", err)
		}
		return r.Form, nil
	}
	var obj map[string]any
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, fault.BadInputf("reading JSON body: %v (send an object such as {\"url\": \"…\"})", err)
	}
	vals := r.URL.Query()
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			vals.Add(k, v)
		case json.Number:
			vals.Add(k, v.String())
		case bool:
			vals.Add(k, strconv.FormatBool(v))
		case nil:
		case []any:
			for _, e := range v {
				str, ok := e.(string)
				if !ok {
					return nil, fault.BadInputf("JSON field %q: a list may hold only strings", k)
				}
				vals.Add(k, str)
			}
		default:
			return nil, fault.BadInputf("JSON field %q: want a string, number, boolean or list of strings", k)
		}
	}
	return vals, nil
}

// intParam parses an optional whole number within [lo, hi].
func intParam(vals url.Values, name string, def, lo, hi int) (int, error) {
	s := strings.TrimSpace(vals.Get(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fault.BadInputf("%s must be a whole number from %d to %d, not %q", name, lo, hi, s)
	}
	return n, nil
}

// addError is one line of an add request that the manager refused.
type addError struct {
	Source    string `json:"source"`
	Error     string `json:"error"`
	ErrorCode string `json:"error_code,omitempty"`
}

func (s *Server) handleAdd(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var sources []string
	for _, v := range vals["url"] {
		for line := range strings.Lines(v) {
			if line = strings.TrimSpace(line); line != "" {
				sources = append(sources, line)
			}
		}
	}
	if len(sources) == 0 {
		s.writeError(w, r, fault.BadInputf("url is empty: give a URL (https://…) or a model name (llama3:latest), one per line"))
		return
	}
	if len(sources) > maxAddURLs {
		s.writeError(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%d downloads in one request: send at most %d at a time", len(sources), maxAddURLs)})
		return
	}
	// url may repeat (several downloads); a field that takes one value must
	// not, or one of two checksums would be silently ignored.
	for _, k := range []string{"retries", "sha256", "limit_rate", "referrer", "cookie", "user_agent"} {
		if len(vals[k]) > 1 {
			s.writeError(w, r, fault.BadInputf("%s was given %d times: send it once", k, len(vals[k])))
			return
		}
	}
	retries, err := intParam(vals, "retries", -1, 0, maxRetries)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum := strings.ToLower(strings.TrimSpace(vals.Get("sha256")))
	if sum != "" {
		if !engine.IsHex64(sum) {
			s.writeError(w, r, fault.BadInputf("sha256 must be 64 hexadecimal characters"))
			return
		}
		if len(sources) > 1 {
			s.writeError(w, r, fault.BadInputf("sha256 applies to one download, but %d were given", len(sources)))
			return
		}
	}

	var limit int64
	if vals.Has("limit_rate") {
		if limit, err = engine.ParseRate(vals.Get("limit_rate")); err != nil {
			s.writeError(w, r, fault.BadInputf("limit_rate: %v", err))
			return
		}
	}

	// Several lines are several downloads. Each is checked first; the good
	// ones are then queued together, with one save of the queue (issue 18:
	// one Add per line rewrote the queue file per line), even when another
	// line is refused; the refusals are listed.
	// A model can go straight into an Ollama models folder (absolute, as
	// the install API asks), or into a zip split in parts; a URL can be
	// fetched again even when unchanged upstream.
	force := vals.Get("force") == "true" || vals.Get("force") == "1"
	// Where a file goes is the server's to decide (docs/API.md), except for
	// a command of this same user handing over its -o or -models-dir: it
	// proves itself with the key only it can read (.state/owner.json, mode
	// 0600). An unknown output is ignored like any unknown field; a
	// models_dir is refused, since ignoring it would make a zip where an
	// install was asked for.
	local := s.fromLocalKey(r)
	modelsDir := strings.TrimSpace(vals.Get("models_dir"))
	if modelsDir != "" && !local {
		s.writeError(w, r, errForbidden("models_dir is only for a command of this user handing over its downloads (it sends the key in .state/owner.json); run the command itself: ollama-model-downloader install -models-dir DIR MODEL"))
		return
	}
	if modelsDir != "" && !filepath.IsAbs(modelsDir) {
		s.writeError(w, r, fault.BadInputf("models_dir must be an absolute path, got %q", modelsDir))
		return
	}
	var split int64
	if v := strings.TrimSpace(vals.Get("split")); v != "" {
		if split, err = models.ParseSplitSize(v); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var output string
	if local {
		output = strings.TrimSpace(vals.Get("output"))
	}
	// What a browser knew about the links (the extension sends it): for
	// these file downloads only, never shown, logged or kept in the history.
	header, err := queue.CheckHeader(http.Header{
		"Referer": vals["referrer"], "Cookie": vals["cookie"], "User-Agent": vals["user_agent"],
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m := s.cfg.Manager
	var reqs []queue.AddRequest
	var failed []addError
	var firstErr error
	for _, src := range sources {
		req := queue.AddRequest{Source: src, Retries: retries, SHA256: sum, LimitRate: limit, Force: force, Output: output}
		if !engine.IsURL(src) {
			req.ModelsDir, req.Split, req.Force = modelsDir, split, false
		} else {
			req.Header = header
		}
		if err := m.Check(req); err != nil {
			if statusFor(err) == http.StatusInternalServerError {
				s.writeError(w, r, fmt.Errorf("adding %s: %w", src, err))
				return
			}
			firstErr = cmp.Or(firstErr, err)
			failed = append(failed, addError{Source: src, Error: err.Error(), ErrorCode: knownErrorCode(err)})
			continue
		}
		reqs = append(reqs, req)
	}
	if len(reqs) == 0 {
		if len(sources) > 1 {
			firstErr = fmt.Errorf("%s: %w", sources[0], firstErr)
		}
		s.writeError(w, r, firstErr)
		return
	}
	added, err := m.AddAll(reqs)
	if err != nil {
		s.writeError(w, r, err) // a full queue is 409
		return
	}
	s.writeJSON(w, http.StatusCreated, struct {
		Downloads []queue.JobView `json:"downloads"`
		Errors    []addError      `json:"errors,omitempty"`
	}{added, failed})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Manager.Get(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, v)
}

// handleAction is pause, resume, cancel and retry: each answers with the
// download as it is afterwards.
func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	m := s.cfg.Manager
	var err error
	switch action := path.Base(r.URL.Path); action {
	case "pause":
		// A command that handed its downloads here and was interrupted
		// pauses them with the local key (owner.Client.Pause): the row
		// then says where the pause came from.
		by := ""
		if s.fromLocalKey(r) {
			by = queue.PausedByCLI
		}
		err = m.PauseFor(id, by)
	case "resume":
		err = m.Resume(id)
	case "cancel":
		err = m.Cancel(id)
	case "retry":
		err = m.Retry(id)
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	deleteFile := false
	if v := strings.TrimSpace(vals.Get("delete_file")); v != "" {
		if deleteFile, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, fault.BadInputf("delete_file must be true or false, not %q", v))
			return
		}
	}
	if err := s.cfg.Manager.Remove(r.PathValue("id"), deleteFile); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to := strings.TrimSpace(vals.Get("to"))
	if !slices.Contains([]string{"top", "up", "down", "bottom"}, to) {
		s.writeError(w, r, fault.BadInputf("to must be top, up, down or bottom, not %q", to))
		return
	}
	if err := s.cfg.Manager.Move(r.PathValue("id"), to); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

// handleLimit sets one download's own speed limit (limit_rate=2M, 0 = none),
// also while it runs; the global limit in settings applies on top.
func (s *Server) handleLimit(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !vals.Has("limit_rate") {
		s.writeError(w, r, fault.BadInputf("send limit_rate=<bytes per second, e.g. 500K or 2M; 0 = none>"))
		return
	}
	rate, err := engine.ParseRate(vals.Get("limit_rate"))
	if err != nil {
		s.writeError(w, r, fault.BadInputf("limit_rate: %v", err))
		return
	}
	if err := s.cfg.Manager.SetLimit(r.PathValue("id"), rate); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleGet(w, r)
}

func (s *Server) handleBulk(w http.ResponseWriter, r *http.Request) {
	m := s.cfg.Manager
	var n int
	switch path.Base(r.URL.Path) {
	case "pause-all":
		n = m.PauseAll()
	case "resume-all":
		n = m.ResumeAll()
	case "cancel-all":
		n = m.CancelAll()
	case "clear-finished":
		n = m.ClearFinished()
	}
	s.writeJSON(w, http.StatusOK, map[string]int{"count": n})
}
