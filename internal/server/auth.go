package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// MinTokenLength keeps the token out of reach of guessing, with the
	// throttle below: 16 random characters are beyond any number of tries.
	MinTokenLength = 16

	// sessionLabel is what the session cookie's HMAC signs. Changing it
	// logs every browser out, which is the point of the version.
	sessionLabel = "ollama-model-downloader web session v1"

	// A client address may fail authFailLimit token tries within
	// authFailWindow; then every token it sends is refused with 429 for
	// authFirstPause, doubling with each pause up to authMaxPause. A
	// correct token does not shorten a pause: otherwise the 429s would
	// tell a guesser nothing and cost it nothing.
	authFailLimit  = 5
	authFailWindow = time.Minute
	authFirstPause = 10 * time.Second
	authMaxPause   = 15 * time.Minute
	// authForget is how long a quiet address keeps its record (and so the
	// length of its next pause).
	authForget = 30 * time.Minute
	// authMaxClients bounds the throttle's memory: past it, forgotten and
	// then unpaused records make room, and when every record is a pause
	// in progress, new addresses share one record.
	authMaxClients = 4096
)

// CheckToken refuses a token that is too short to be a secret.
func CheckToken(token string) error {
	if token == "" {
		return nil
	}
	if n := utf8.RuneCountInString(token); n < MinTokenLength {
		return fault.BadInputf("the access token has %d characters; use at least %d, e.g. a random one: head -c 24 /dev/urandom | base64 > ~/.omd-token, then -token-file ~/.omd-token", n, MinTokenLength)
	}
	return nil
}

// ReadTokenFile reads -token-file: the token is the file's content without
// surrounding white space (the newline an editor or echo adds).
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fault.BadInputf("-token-file: %v", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fault.BadInputf("-token-file %s is empty: write the token into it", path)
	}
	return token, nil
}

// sessionCookieName is per port: two servers on one host (cookies ignore
// ports) keep their own cookies instead of overwriting each other's.
func sessionCookieName(port string) string {
	if port == "" {
		return "omd_session"
	}
	return "omd_session_" + port
}

// sessionValue is what the session cookie holds: an HMAC with the token as
// key, so the cookie never carries the token itself, and bound to the port,
// so a server on another port with the same token does not accept it.
func sessionValue(token, port string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(sessionLabel + "\x00" + port))
	return hex.EncodeToString(mac.Sum(nil))
}

// sameSecret compares in constant time; an empty secret matches nothing.
func sameSecret(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// authorized enforces the optional token, and answers 401 or 429 itself
// when it returns false. Accepted:
//   - "Authorization: Bearer <token>", or Bearer <LocalKey> (another
//     process of this user, see Config.LocalKey);
//   - the session cookie (omd_session_<port>), an HMAC of the token;
//   - ?token=<token>, exchanged once for the cookie: the token is taken out
//     of the URL before any handler sees it, and a page (or any browser
//     navigation) is redirected to the same URL without it.
//
// Wrong tokens are counted per client address (see authThrottle).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	port := s.own.Load().port
	ok := false
	var tries []string // tokens offered that are not otherwise proven
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, _ := strings.Cut(auth, " ")
		tok = strings.TrimSpace(tok)
		switch {
		case !strings.EqualFold(scheme, "Bearer"):
		case sameSecret(tok, s.cfg.LocalKey):
			ok = true
		default:
			tries = append(tries, tok)
		}
	}
	if c, err := r.Cookie(sessionCookieName(port)); err == nil && sameSecret(c.Value, sessionValue(s.cfg.Token, port)) {
		ok = true
	}
	q := r.URL.Query()
	fromURL := q.Has("token")
	if fromURL {
		tries = append(tries, q.Get("token"))
	}

	if !ok && len(tries) > 0 {
		client := throttleKey(r.RemoteAddr)
		now := s.now()
		if wait := s.throttle.paused(client, now); wait > 0 {
			s.refuseThrottled(w, r, wait)
			return false
		}
		for _, tok := range tries {
			if sameSecret(tok, s.cfg.Token) {
				ok = true
			}
		}
		if !ok {
			if wait := s.throttle.fail(client, now); wait > 0 {
				s.log.Warn("access token tries paused", "client", client, "seconds", int(wait.Seconds()))
			}
		} else {
			s.throttle.forget(client)
		}
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ollama-model-downloader"`)
		s.writeError(w, r, errUnauthorized("this server needs its access token: open the URL it printed at start (…/?token=…) or send \"Authorization: Bearer <token>\""))
		return false
	}
	if !fromURL {
		return true
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookieName(port), Value: sessionValue(s.cfg.Token, port), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	// From here on the token is not in the request: no handler, log line or
	// answer can echo it.
	q.Del("token")
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	navigation := r.Header.Get("Sec-Fetch-Mode") == "navigate" || !strings.HasPrefix(r.URL.Path, "/api/")
	if navigation && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// Out of the address bar and the browser history. The path is
		// made to start with one slash: "//host" would leave this server.
		loc := "/" + strings.TrimLeft(r.URL.EscapedPath(), "/")
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loc, http.StatusSeeOther)
		return false
	}
	return true
}

// refuseThrottled answers a token try from an address whose tries are
// paused: 429 with Retry-After in whole seconds.
func (s *Server) refuseThrottled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.writeError(w, r, &httpError{http.StatusTooManyRequests,
		fmt.Sprintf("too many wrong access tokens from this address: try again in %d s", secs)})
}

// throttleKey is the client address a failed try counts against: the IP,
// and for IPv6 its /64, which one machine can fill with addresses.
func throttleKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// authThrottle counts failed token tries per client address and pauses an
// address that fails too often. Its table is bounded (authMaxClients).
type authThrottle struct {
	mu      sync.Mutex
	clients map[string]*authRecord
	// noRoomUntil is the end of the earliest pause when the table was
	// last found full of pauses: no use looking for room before it.
	noRoomUntil time.Time
}

type authRecord struct {
	window   time.Time // start of the current counting window
	failures int       // within the window
	pauses   int       // pauses so far: each is twice the one before
	until    time.Time // tries are refused before this
	last     time.Time // latest failure
}

// overflowKey is the record every new address shares while the table is
// full of pauses in progress.
const overflowKey = "*"

// paused returns how long tries from client are still refused.
func (t *authThrottle) paused(client string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.clients[client]
	if rec == nil {
		rec = t.clients[overflowKey]
		if rec == nil || !t.fullLocked() {
			return 0
		}
	}
	return max(rec.until.Sub(now), 0)
}

// fullLocked reports whether a new address has no record of its own: the
// last slot is kept for the overflow record.
func (t *authThrottle) fullLocked() bool {
	return len(t.clients) >= authMaxClients-1
}

// fail records a failed try and returns the pause it starts, if any.
func (t *authThrottle) fail(client string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		t.clients = map[string]*authRecord{}
	}
	rec := t.clients[client]
	if rec == nil {
		if t.fullLocked() && !now.Before(t.noRoomUntil) {
			t.evictLocked(now)
		}
		if t.fullLocked() {
			client = overflowKey
			rec = t.clients[client]
		}
		if rec == nil {
			rec = &authRecord{}
			t.clients[client] = rec
		}
	}
	if now.Sub(rec.last) > authForget {
		rec.pauses = 0 // quiet long enough: start over
	}
	if now.Sub(rec.window) > authFailWindow {
		rec.window, rec.failures = now, 0
	}
	rec.failures++
	rec.last = now
	if rec.failures < authFailLimit {
		return 0
	}
	pause := authFirstPause << min(rec.pauses, 16)
	pause = min(pause, authMaxPause)
	rec.pauses++
	rec.failures = 0
	rec.window = now.Add(pause)
	rec.until = now.Add(pause)
	return pause
}

// forget drops an address's record after a correct token.
func (t *authThrottle) forget(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.clients, client)
}

// evictLocked makes room: records quiet for authForget first, then the
// unpaused record whose last failure is oldest.
// When every record is a pause in progress, nothing is removed until the
// earliest ends.
func (t *authThrottle) evictLocked(now time.Time) {
	var oldest string
	var earliest time.Time
	for k, rec := range t.clients {
		paused := now.Before(rec.until)
		switch {
		case !paused && now.Sub(rec.last) > authForget:
			delete(t.clients, k)
		case paused:
			if earliest.IsZero() || rec.until.Before(earliest) {
				earliest = rec.until
			}
		case k != overflowKey && (oldest == "" || rec.last.Before(t.clients[oldest].last)):
			oldest = k
		}
	}
	if t.fullLocked() {
		if oldest != "" {
			delete(t.clients, oldest)
		} else {
			t.noRoomUntil = earliest
		}
	}
}

// fromLocalKey reports whether the request carries this server's local
// key: another process of the same user, which read it from owner.json.
func (s *Server) fromLocalKey(r *http.Request) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return s.cfg.LocalKey != "" && strings.EqualFold(scheme, "Bearer") && sameSecret(strings.TrimSpace(tok), s.cfg.LocalKey)
}
