package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// What a browser knows about a link goes with it (issue 24): the page's
// referrer, and the cookies and user-agent the site gave the browser, so
// that a download behind a login works. These are secrets of one download:
// they live in memory with the job and, so that a restart can continue the
// download, in one file per job beside the queue (0600, in a 0700 folder),
// never in queue.json, its journal, the history or a log line; the file is
// removed when the download ends (completed, failed or canceled) or leaves
// the queue. The engine drops the cookies on a redirect to another host.

// requestHeaderNames are the only extra headers a download may carry.
var requestHeaderNames = []string{"Cookie", "Referer", "User-Agent"}

// Limits on what a browser may hand over. A cookie header of 32 KiB is
// already far past what browsers send to one site.
const (
	maxCookieBytes    = 32 << 10
	maxRefererBytes   = 8 << 10
	maxUserAgentBytes = 1 << 10
)

// CheckHeader validates the extra request headers of one download and
// returns them in canonical form (nil when there are none): only Cookie,
// Referer (an http or https URL) and User-Agent, one value each, no
// control characters, each within its size.
func CheckHeader(h http.Header) (http.Header, error) {
	out := http.Header{}
	for k, vs := range h {
		name := http.CanonicalHeaderKey(k)
		if !slices.Contains(requestHeaderNames, name) {
			return nil, fault.BadInputf("header %q cannot be sent with a download: only the cookies, referrer and user-agent", k)
		}
		if len(vs) > 1 {
			return nil, fault.BadInputf("%s was given %d times: send it once", headerField(name), len(vs))
		}
		if len(vs) == 0 || strings.TrimSpace(vs[0]) == "" {
			continue
		}
		v := strings.TrimSpace(vs[0])
		limit := map[string]int{"Cookie": maxCookieBytes, "Referer": maxRefererBytes, "User-Agent": maxUserAgentBytes}[name]
		if len(v) > limit {
			return nil, fault.BadInputf("%s is %d bytes long; at most %d are taken", headerField(name), len(v), limit)
		}
		if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return nil, fault.BadInputf("%s holds a line break or another control character", headerField(name))
		}
		if name == "Referer" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fault.BadInputf("referrer must be an http:// or https:// address")
			}
			// A fragment is never sent (RFC 9110 §10.1.3), nor a user name.
			u.Fragment, u.RawFragment, u.User = "", "", nil
			v = u.String()
		}
		out.Set(name, v)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// headerField is the API's name for a header (docs/API.md).
func headerField(name string) string {
	switch name {
	case "Cookie":
		return "cookie"
	case "Referer":
		return "referrer"
	default:
		return "user_agent"
	}
}

// headerNames lists the names of h, sorted: what a view may say about a
// download's extra headers without showing a value.
func headerNames(h http.Header) []string {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// headerStore keeps the extra headers of unfinished downloads across a
// restart: <output-dir>/.state/<queue name>.headers/<job id>.json. Each
// queue file has its own folder, so that one manager's sweep never
// touches another's.
type headerStore struct {
	dir string
}

func newHeaderStore(statePath string) headerStore {
	return headerStore{dir: strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".headers"}
}

func (s headerStore) path(id string) (string, error) {
	if id == "" || filepath.Base(id) != id || strings.HasPrefix(id, ".") {
		return "", fmt.Errorf("download id %q cannot name a file", id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// save writes h for the download id, durably: a download added from the
// browser must not lose its cookies to a power cut in its first second.
func (s headerStore) save(id string, h http.Header) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("making the folder for request headers: %w", err)
	}
	// MkdirAll leaves an existing folder's mode alone.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("making the folder for request headers private: %w", err)
	}
	data, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding request headers: %w", err)
	}
	return disk.WriteFileAtomic(p, 0o600, disk.WriteBytes(data))
}

// load reads the headers saved for id (nil when there are none).
func (s headerStore) load(id string) (http.Header, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading request headers: %w", err)
	}
	var h http.Header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("reading request headers %s: %w", p, err)
	}
	return CheckHeader(h)
}

// drop removes the headers saved for id, if any. The manager's lock
// orders it with save, so the folder never goes while a file is written.
func (s headerStore) drop(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing request headers: %w", err)
	}
	os.Remove(s.dir) // the last one takes the folder; fails harmlessly otherwise
	return nil
}

// sweep removes every file but those of the downloads keep names: what a
// crash left behind (a download that ended, or an add that never reached
// the queue file). The folder goes when it is empty.
func (s headerStore) sweep(keep map[string]bool) error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the folder of request headers: %w", err)
	}
	var firstErr error
	left := 0
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && keep[id] {
			left++
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("removing stale request headers: %w", err)
		}
	}
	if left == 0 {
		os.Remove(s.dir) // fails harmlessly if something is left
	}
	return firstErr
}

// restoreHeaders reads back the headers of the unfinished downloads after
// a restart and removes the rest.
func (m *Manager) restoreHeaders() {
	keep := make(map[string]bool)
	for _, j := range m.jobs {
		if StateFinished(j.State) {
			continue
		}
		h, err := m.headers.load(j.ID)
		if err != nil {
			// The download goes on without them; the site may refuse it,
			// and the person can send the link again.
			m.log.Warn("request headers of a download are unreadable; it continues without them", "id", j.ID, "err", err)
			continue
		}
		if h != nil {
			j.header = h
			keep[j.ID] = true
		}
	}
	if err := m.headers.sweep(keep); err != nil {
		m.log.Warn("cleaning up request headers", "err", err)
	}
}

// setHeaderLocked gives j the extra headers h for its next transfer (a
// download added again from the browser brings fresh cookies), and keeps
// them for a restart.
func (m *Manager) setHeaderLocked(j *managerJob, h http.Header) {
	if h == nil || StateFinished(j.State) {
		return
	}
	j.header = h
	if err := m.headers.save(j.ID, h); err != nil {
		m.log.Warn("keeping request headers for a restart; the download has them until then", "id", j.ID, "err", err)
	}
}

// dropHeaderLocked forgets j's extra headers: its download ended.
func (m *Manager) dropHeaderLocked(j *managerJob) {
	if j.header == nil {
		return
	}
	j.header = nil
	if err := m.headers.drop(j.ID); err != nil {
		m.log.Warn("removing request headers of a finished download", "id", j.ID, "err", err)
	}
}
