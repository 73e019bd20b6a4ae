package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Pairing (issue 24): a browser extension asks once (POST
// /api/extension/pair), the person confirms in the web UI, and from then
// on the extension's key, bound to its origin (chrome-extension://<id>,
// moz-extension://<uuid>), lets it add downloads and read the list. The
// paired browsers are kept in <output-dir>/.state/extensions.json (0600),
// which holds each key's SHA-256, never the key: the file does not let
// anyone in. Requests waiting for the person's answer live in memory only.

const (
	// PairingsFile is the file under <output-dir>/.state that lists the
	// paired browser extensions.
	PairingsFile = "extensions.json"

	// pairingKeyPrefix starts every extension key, so that a key is told
	// from the access token without trying it as one (and being counted
	// as a wrong token).
	pairingKeyPrefix = "omdx_"

	maxPendingPairings = 8                // waiting requests; a new one pushes out the oldest
	pairingWait        = 10 * time.Minute // how long a request waits for the person
	maxPairings        = 64
	maxPairingName     = 80 // characters of the name an extension gives itself
	// lastUsedEvery is how stale the kept "last used" time may get: it is
	// written at most this often, not on every request.
	lastUsedEvery = time.Hour
)

// pairing is one browser extension, paired or waiting to be.
type pairing struct {
	ID       string    `json:"id"`
	Origin   string    `json:"origin"`
	Name     string    `json:"name"`
	KeyHash  string    `json:"key_sha256"`
	PairedAt time.Time `json:"paired_at"`
	LastUsed time.Time `json:"last_used,omitzero"`

	// A request waiting for the person's answer.
	code      string // shown by the extension and by the page, for the person to compare
	requested time.Time
	expires   time.Time
	lastSaved time.Time // LastUsed as last written
}

// pairingView is a pairing as GET /api/pairings shows it.
type pairingView struct {
	ID          string    `json:"id"`
	Origin      string    `json:"origin"`
	Name        string    `json:"name"`
	PairedAt    time.Time `json:"paired_at,omitzero"`
	LastUsed    time.Time `json:"last_used,omitzero"`
	Code        string    `json:"code,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

func (p *pairing) view() pairingView {
	return pairingView{ID: p.ID, Origin: p.Origin, Name: p.Name, PairedAt: p.PairedAt, LastUsed: p.LastUsed,
		Code: p.code, RequestedAt: p.requested, ExpiresAt: p.expires}
}

// pairings is the store of paired and waiting extensions.
type pairings struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	paired  []*pairing
	pending []*pairing
}

// pairingsFile is the kept list as written.
type pairingsFile struct {
	Paired []*pairing `json:"paired"`
}

// openPairings reads the kept list. An unreadable file is moved aside and
// reported, never overwritten: the person pairs again.
func openPairings(path string, now func() time.Time, log *slog.Logger) *pairings {
	s := &pairings{path: path, now: now, log: log}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s
	}
	var f pairingsFile
	if err == nil {
		err = json.Unmarshal(data, &f)
	}
	if err == nil {
		for _, p := range f.Paired {
			if p == nil || p.ID == "" || !isExtensionOrigin(p.Origin) || len(p.KeyHash) != sha256.Size*2 {
				err = fmt.Errorf("a pairing without id, origin or key")
				break
			}
		}
	}
	if err != nil {
		aside, merr := disk.MoveAside(path, now())
		if merr != nil {
			// Not moved: it is not overwritten either until a pairing
			// changes, and then the person has paired again.
			log.Warn("the list of paired browser extensions is unreadable and could not be moved aside", "path", path, "err", err, "move_err", merr)
			return s
		}
		log.Warn("the list of paired browser extensions is unreadable; moved aside, pair them again", "path", path, "moved_to", aside, "err", err)
		return s
	}
	for _, p := range f.Paired {
		p.lastSaved = p.LastUsed
	}
	s.paired = f.Paired
	return s
}

// saveLocked writes the paired extensions: 0600 in a 0700 folder, durably
// (a pairing the person confirmed must survive a power cut; a revoked
// key must stay revoked).
func (s *pairings) saveLocked() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("saving paired browsers: %w", err)
	}
	data, err := json.MarshalIndent(pairingsFile{Paired: s.paired}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding paired browsers: %w", err)
	}
	if err := disk.WriteFileAtomic(s.path, 0o600, disk.WriteBytes(append(data, '\n'))); err != nil {
		return fmt.Errorf("saving paired browsers: %w", err)
	}
	for _, p := range s.paired {
		p.lastSaved = p.LastUsed
	}
	return nil
}

// pruneLocked drops the requests nobody answered in time.
func (s *pairings) pruneLocked(now time.Time) {
	s.pending = slices.DeleteFunc(s.pending, func(p *pairing) bool { return !now.Before(p.expires) })
}

// request records an extension's request to be paired and returns it with
// the key the extension keeps (valid once the person confirms). A new
// request from the same origin replaces its earlier one.
func (s *pairings) request(origin, name string) (pairing, string, error) {
	key, err := randomToken(32)
	if err != nil {
		return pairing{}, "", err
	}
	id, err := randomToken(9)
	if err != nil {
		return pairing{}, "", err
	}
	code, err := pairingCode()
	if err != nil {
		return pairing{}, "", err
	}
	key = pairingKeyPrefix + key
	now := s.now()
	p := &pairing{ID: "p" + id, Origin: origin, Name: name, KeyHash: keyHash(key),
		code: code, requested: now.UTC(), expires: now.Add(pairingWait).UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	s.pending = slices.DeleteFunc(s.pending, func(o *pairing) bool { return o.Origin == origin })
	if over := len(s.pending) - maxPendingPairings + 1; over > 0 {
		s.pending = slices.Delete(s.pending, 0, over)
	}
	s.pending = append(s.pending, p)
	return *p, key, nil
}

// approve pairs a waiting extension: its key works from now on. An
// earlier pairing of the same origin is replaced (its key stops working).
func (s *pairings) approve(id string) (pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	i := slices.IndexFunc(s.pending, func(p *pairing) bool { return p.ID == id })
	if i < 0 {
		return pairing{}, fmt.Errorf("pairing request %s (it may have expired: ask again from the extension): %w", id, fault.ErrNotFound)
	}
	p := s.pending[i]
	paired := slices.DeleteFunc(slices.Clone(s.paired), func(o *pairing) bool { return o.Origin == p.Origin })
	if len(paired) >= maxPairings {
		return pairing{}, fault.Conflictf("%d browsers are paired already: revoke one first", len(paired))
	}
	p.PairedAt = s.now().UTC()
	p.code, p.requested, p.expires = "", time.Time{}, time.Time{}
	before := s.paired
	s.paired = append(paired, p)
	if err := s.saveLocked(); err != nil {
		s.paired = before
		return pairing{}, err
	}
	s.pending = slices.Delete(s.pending, i, i+1)
	return *p, nil
}

// remove revokes a paired extension or refuses a waiting one.
func (s *pairings) remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.pending, func(p *pairing) bool { return p.ID == id }); i >= 0 {
		s.pending = slices.Delete(s.pending, i, i+1)
		return nil
	}
	i := slices.IndexFunc(s.paired, func(p *pairing) bool { return p.ID == id })
	if i < 0 {
		return fmt.Errorf("paired browser %s: %w", id, fault.ErrNotFound)
	}
	before := s.paired
	s.paired = slices.Delete(slices.Clone(s.paired), i, i+1)
	if err := s.saveLocked(); err != nil {
		s.paired = before
		return err
	}
	return nil
}

// byKey finds the extension a key was given to, paired or waiting, and
// notes when a paired one was last used.
func (s *pairings) byKey(key string) (p pairing, pending, ok bool) {
	h := keyHash(key)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	for _, o := range s.paired {
		if subtle.ConstantTimeCompare([]byte(o.KeyHash), []byte(h)) == 1 {
			o.LastUsed = now.UTC()
			if now.Sub(o.lastSaved) > lastUsedEvery {
				if err := s.saveLocked(); err != nil {
					s.log.Warn("noting when a paired browser was last used", "err", err)
				}
			}
			return *o, false, true
		}
	}
	for _, o := range s.pending {
		if subtle.ConstantTimeCompare([]byte(o.KeyHash), []byte(h)) == 1 {
			return *o, true, true
		}
	}
	return pairing{}, false, false
}

// knows reports whether origin is paired or waiting to be: only then may
// a cross-origin request from it be let in (CORS).
func (s *pairings) knows(origin string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	for _, p := range append(slices.Clip(s.paired), s.pending...) {
		if p.Origin == origin {
			return true
		}
	}
	return false
}

// list is every paired and waiting extension, oldest first.
func (s *pairings) list() (paired, pending []pairingView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	paired, pending = []pairingView{}, []pairingView{}
	for _, p := range s.paired {
		paired = append(paired, p.view())
	}
	for _, p := range s.pending {
		pending = append(pending, p.view())
	}
	return paired, pending
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// randomToken is n random bytes, URL-safe.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a random key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// pairingCode is six random digits, for the person to compare between the
// extension and the page.
func pairingCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("making a pairing code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// isExtensionOrigin reports whether origin is a browser extension's own:
// chrome-extension://<id> (Chromium-based browsers), moz-extension://<uuid>
// (Firefox) or safari-web-extension://<uuid>; exactly scheme and host.
func isExtensionOrigin(origin string) bool {
	scheme, host, ok := strings.Cut(origin, "://")
	if !ok || (scheme != "chrome-extension" && scheme != "moz-extension" && scheme != "safari-web-extension") {
		return false
	}
	if host == "" || len(host) > 64 {
		return false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// pairingName is the name an extension gives itself ("Chromium 156 on
// Linux"), on one line, shortened; "" becomes a plain description.
func pairingName(name string) string {
	name = strings.Join(strings.FieldsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if r := []rune(name); len(r) > maxPairingName {
		name = string(r[:maxPairingName])
	}
	if name == "" {
		return "Browser extension"
	}
	return name
}

// handlePairings lists the paired browsers and the requests waiting for
// the person (the web UI's Browsers dialog).
func (s *Server) handlePairings(w http.ResponseWriter, r *http.Request) {
	if s.pairs == nil {
		s.writeJSON(w, http.StatusOK, map[string]any{"enabled": false, "paired": []pairingView{}, "pending": []pairingView{}})
		return
	}
	paired, pending := s.pairs.list()
	s.writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "paired": paired, "pending": pending})
}

// handlePairingApprove is the person's "Allow" on the pairing screen.
func (s *Server) handlePairingApprove(w http.ResponseWriter, r *http.Request) {
	if s.pairs == nil {
		s.writeError(w, r, errNoPairing)
		return
	}
	p, err := s.pairs.approve(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("browser extension paired", "origin", p.Origin, "name", p.Name)
	s.writeJSON(w, http.StatusOK, p.view())
}

// handlePairingDelete revokes a paired browser or refuses a request.
func (s *Server) handlePairingDelete(w http.ResponseWriter, r *http.Request) {
	if s.pairs == nil {
		s.writeError(w, r, errNoPairing)
		return
	}
	if err := s.pairs.remove(r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

var errNoPairing = fmt.Errorf("this server does not pair browser extensions: run the web UI (the program with no arguments) and pair with it: %w", fault.ErrNotFound)
