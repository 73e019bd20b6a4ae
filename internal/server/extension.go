package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The browser extension's way in (issue 24). An extension's requests are
// told apart by their Origin (chrome-extension://…, moz-extension://…) or
// by a pairing key ("Authorization: Bearer omdx_…"); every other request
// goes through the access token and the page's origin check as before.
//
//   - An extension that is not paired may only ask to be
//     (POST /api/extension/pair); anything else is 401.
//   - A waiting extension may only ask whether it is paired yet
//     (GET /api/extension/status).
//   - A paired extension, with its key and from its own origin (or with
//     no Origin at all: Chromium sends none on a GET from an extension
//     that has host access), may add downloads, read the list and its
//     status, and unpair itself; nothing else (no settings, no pairing of
//     others, no deleting files).
//   - CORS: an answer names exactly the caller's origin in
//     Access-Control-Allow-Origin, and only for a paired or waiting
//     origin (and on the pairing request itself); a preflight from any
//     other origin is refused. Web pages never get CORS headers.
//
// The key stands in for the access token, so the same rules hold with
// -listen beyond loopback; wrong keys are counted by the same throttle as
// wrong tokens.

const (
	extensionPairPath   = "/api/extension/pair"
	extensionStatusPath = "/api/extension/status"
	extensionUnpairPath = "/api/extension/unpair"
)

// extensionRoutes are what a paired extension may call.
var extensionRoutes = []string{
	"GET " + extensionStatusPath,
	"POST " + extensionUnpairPath,
	"POST /api/download/add",
	"GET /api/downloads",
}

// extensionVerdict is what the gate decided about a request.
type extensionVerdict int

const (
	notFromExtension  extensionVerdict = iota // the usual checks apply
	extensionAnswered                         // refused, or a preflight answered
	extensionAllowed                          // let in: the token and page checks are skipped
)

// callerKey carries the paired (or waiting) extension in a request's context.
type callerKey struct{}

// extensionCaller is the extension a request came from.
type extensionCaller struct {
	pairing
	pending bool
}

func callerOf(r *http.Request) (extensionCaller, bool) {
	c, ok := r.Context().Value(callerKey{}).(extensionCaller)
	return c, ok
}

// pairingKey is the request's extension key, if it carries one.
func pairingKey(r *http.Request) string {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(tok, pairingKeyPrefix) {
		return ""
	}
	return tok
}

// fromExtension is the gate: it answers refusals and preflights itself.
func (s *Server) fromExtension(w http.ResponseWriter, r *http.Request) (extensionVerdict, *http.Request) {
	origin := r.Header.Get("Origin")
	ext := isExtensionOrigin(origin)
	key := pairingKey(r)
	if !ext && key == "" {
		if r.URL.Path == extensionPairPath && origin == "" && fetchedByNoPage(r) && s.pairs != nil {
			return extensionAllowed, r // Firefox: the handler reads the origin the extension gives
		}
		return notFromExtension, r
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if !ext && origin != "" {
		s.writeError(w, r, errForbidden("a pairing key works only for the browser extension it was given to"))
		return extensionAnswered, r
	}
	if s.pairs == nil {
		s.writeError(w, r, errForbidden("this server does not take requests from browser extensions: pair the extension with the web UI (the program run with no arguments)"))
		return extensionAnswered, r
	}
	if r.Method == http.MethodOptions {
		s.preflight(w, r, origin)
		return extensionAnswered, r
	}
	if r.URL.Path == extensionPairPath {
		if ext {
			allowOrigin(h, origin)
		}
		return extensionAllowed, r
	}
	if key == "" {
		s.writeError(w, r, errNotPaired())
		return extensionAnswered, r
	}
	client := throttleKey(r.RemoteAddr)
	if wait := s.throttle.paused(client, s.now()); wait > 0 {
		s.refuseThrottled(w, r, wait)
		return extensionAnswered, r
	}
	p, pending, ok := s.pairs.byKey(key)
	if !ok {
		if wait := s.throttle.fail(client, s.now()); wait > 0 {
			s.log.Warn("pairing key tries paused", "client", client, "seconds", int(wait.Seconds()))
		}
		s.writeError(w, r, errNotPaired())
		return extensionAnswered, r
	}
	if ext && origin != p.Origin {
		s.writeError(w, r, errForbidden("this pairing key was given to another browser extension"))
		return extensionAnswered, r
	}
	if ext {
		allowOrigin(h, origin)
	}
	route := r.Method + " " + r.URL.Path
	switch {
	case pending && route != "GET "+extensionStatusPath:
		s.writeError(w, r, &httpError{http.StatusForbidden, "the pairing is not confirmed yet: allow it in the manager's page"})
		return extensionAnswered, r
	case !pending && !slices.Contains(extensionRoutes, route):
		s.writeError(w, r, errForbidden("a browser extension may only add downloads and read the list (%s is not for it)", r.URL.Path))
		return extensionAnswered, r
	}
	return extensionAllowed, r.WithContext(context.WithValue(r.Context(), callerKey{}, extensionCaller{p, pending}))
}

func errNotPaired() error {
	return &httpError{http.StatusUnauthorized, "this browser extension is not paired with the manager: open the extension's settings and pair it"}
}

// preflight answers a CORS preflight from an extension: allowed for a
// paired or waiting origin, and for anyone's pairing request.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	if !isExtensionOrigin(origin) || r.URL.Path != extensionPairPath && !s.pairs.knows(origin) {
		s.writeError(w, r, errForbidden("cross-origin request refused: pair the browser extension first"))
		return
	}
	h := w.Header()
	allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
}

// handleExtensionPair records an extension's request to be paired. The
// extension shows the code and opens confirm_url (the web UI), where the
// person sees the same code and allows it. The key works once allowed.
func (s *Server) handleExtensionPair(w http.ResponseWriter, r *http.Request) {
	vals, err := params(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	origin := r.Header.Get("Origin")
	if origin == "" && fetchedByNoPage(r) {
		// Firefox may send no Origin from an extension with host access;
		// no web page can make such a request, so the extension says it.
		origin = strings.TrimSpace(vals.Get("origin"))
	}
	if !isExtensionOrigin(origin) {
		s.writeError(w, r, errForbidden("only a browser extension can ask to be paired (its origin is chrome-extension://… or moz-extension://…)"))
		return
	}
	p, key, err := s.pairs.request(origin, pairingName(vals.Get("name")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("a browser extension asks to be paired", "origin", origin, "name", p.Name)
	s.writeJSON(w, http.StatusCreated, map[string]any{
		"id": p.ID, "key": key, "code": p.code, "expires_at": p.expires,
		"confirm_url": "/?pair=" + p.ID,
	})
}

// fetchedByNoPage reports a request no web page sent: fetch metadata that
// says so, or none at all (an older browser, a program).
func fetchedByNoPage(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "none"
}

// handleExtensionStatus tells an extension whether it is paired (or still
// waiting for the person), and with which server.
func (s *Server) handleExtensionStatus(w http.ResponseWriter, r *http.Request) {
	c, ok := callerOf(r)
	if !ok {
		s.writeError(w, r, errNotPaired())
		return
	}
	state := "paired"
	var expires time.Time
	if c.pending {
		state, expires = "pending", c.expires
	}
	s.writeJSON(w, http.StatusOK, struct {
		State     string    `json:"state"`
		ID        string    `json:"id"`
		Origin    string    `json:"origin"`
		Name      string    `json:"name"`
		PairedAt  time.Time `json:"paired_at,omitzero"`
		ExpiresAt time.Time `json:"expires_at,omitzero"`
		Version   string    `json:"version"`
	}{state, c.ID, c.Origin, c.Name, c.PairedAt, expires, s.cfg.Version})
}

// handleExtensionUnpair is an extension forgetting this manager: its key
// stops working.
func (s *Server) handleExtensionUnpair(w http.ResponseWriter, r *http.Request) {
	c, ok := callerOf(r)
	if !ok || c.pending {
		s.writeError(w, r, errNotPaired())
		return
	}
	if err := s.pairs.remove(c.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("browser extension unpaired itself", "origin", c.Origin)
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
