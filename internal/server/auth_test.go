package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/history"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testToken = "test-token-0123456789abcdef"

// apiCookie returns the cookie named name that an answer sets.
func apiCookie(hdr http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (a *apiServer) port() string {
	_, port, _ := net.SplitHostPort(a.ts.Listener.Addr().String())
	return port
}

func TestTokenRequired(t *testing.T) {
	a := newAPIServer(t, func(c *Config) { c.Token = testToken })

	code, hdr, body := a.do(t, "GET", "/api/settings", nil)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	code, hdr, body = a.do(t, "GET", "/", nil)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	code, hdr, body = a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer wrong")
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	// The cookie of old versions, which held the token itself, is no longer a way in.
	code, hdr, body = a.do(t, "GET", "/api/settings", nil, "Cookie", "token="+testToken)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)

	if code, _, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+testToken); code != 200 {
		t.Errorf("with bearer token: status %d (%s)", code, body)
	}
}

// TestTokenExchangedForSession: ?token= is traded for a per-port session
// cookie that is not the token, and the token leaves the URL.
func TestTokenExchangedForSession(t *testing.T) {
	a := newAPIServer(t, func(c *Config) { c.Token = testToken })
	name := "omd_session_" + a.port()

	// A page: 303 to the same URL without the token, other parameters kept.
	code, hdr, _ := a.do(t, "GET", "/?lang=en&token="+testToken, nil)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/?lang=en" {
		t.Fatalf("GET /?token= = %d Location %q, want 303 to /?lang=en", code, hdr.Get("Location"))
	}
	c := apiCookie(hdr, name)
	if c == nil {
		t.Fatalf("no %s cookie in %q", name, hdr.Values("Set-Cookie"))
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
	}
	if strings.Contains(c.Value, testToken) || len(c.Value) != 64 {
		t.Errorf("cookie value %q: want a 64-hex HMAC, not the token", c.Value)
	}
	if strings.Contains(strings.Join(hdr.Values("Set-Cookie"), " "), testToken) {
		t.Error("Set-Cookie carries the token")
	}
	cookie := name + "=" + c.Value
	if code, _, body := a.do(t, "GET", "/", nil, "Cookie", cookie); code != 200 {
		t.Errorf("with cookie: status %d (%s)", code, body)
	}
	if code, _, body := a.do(t, "POST", "/api/downloads/pause-all", nil, "Cookie", cookie, "Origin", a.ts.URL); code != 200 {
		t.Errorf("POST with cookie: status %d (%s)", code, body)
	}
	// A path that starts with two slashes must not redirect to another host.
	code, hdr, _ = a.do(t, "GET", "//evil.example/?token="+testToken, nil)
	if loc := hdr.Get("Location"); code == http.StatusSeeOther && !strings.HasPrefix(loc, "/evil.example") {
		t.Errorf("GET //evil.example/?token= redirects to %q", loc)
	}

	// A script's API request is answered at once, with the cookie, and
	// the token reaches no handler (the add's answer would echo a field).
	code, hdr, body := a.do(t, "GET", "/api/settings?token="+testToken, nil)
	if code != 200 || apiCookie(hdr, name) == nil {
		t.Errorf("GET /api/settings?token= = %d, cookie %v (%s)", code, apiCookie(hdr, name), body)
	}
	if bytes.Contains(body, []byte(testToken)) {
		t.Errorf("answer echoes the token: %s", body)
	}
	// The browser opening an API URL (a file link) is a navigation: redirected too.
	code, hdr, _ = a.do(t, "GET", "/api/settings?token="+testToken, nil, "Sec-Fetch-Mode", "navigate")
	if code != http.StatusSeeOther || hdr.Get("Location") != "/api/settings" {
		t.Errorf("navigation to /api/settings?token= = %d Location %q, want 303 to /api/settings", code, hdr.Get("Location"))
	}

	// Another server on another port with the same token: the cookie of
	// the first is not its own, and its own has another name and value.
	b := newAPIServer(t, func(c *Config) { c.Token = testToken })
	code, hdr, body = b.do(t, "GET", "/api/settings", nil, "Cookie", cookie)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	code, hdr, body = b.do(t, "GET", "/api/settings", nil, "Cookie", "omd_session_"+b.port()+"="+c.Value)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	_, hdr, _ = b.do(t, "GET", "/?token="+testToken, nil)
	if bc := apiCookie(hdr, "omd_session_"+b.port()); bc == nil || bc.Value == c.Value {
		t.Errorf("second server's cookie %+v: want its own name and value", bc)
	}
}

// TestTokenThrottled: five wrong tokens within a minute pause the address
// (429 + Retry-After), the right token included; pauses grow; a session
// cookie still works during a pause; after it the token works again.
func TestTokenThrottled(t *testing.T) {
	a := newAPIServer(t, func(c *Config) { c.Token = testToken })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.now = func() time.Time { return now }
	_, hdr, _ := a.do(t, "GET", "/?token="+testToken, nil)
	c := apiCookie(hdr, "omd_session_"+a.port())
	if c == nil {
		t.Fatal("no session cookie")
	}

	pause := func() int {
		t.Helper()
		for i := range authFailLimit {
			code, hdr, body := a.do(t, "GET", "/api/settings", nil, "Authorization", fmt.Sprintf("Bearer guess-%d", i))
			apiWantError(t, code, hdr, body, http.StatusUnauthorized)
		}
		code, hdr, body := a.do(t, "GET", "/api/settings?token="+testToken, nil)
		apiWantError(t, code, hdr, body, http.StatusTooManyRequests)
		secs, err := strconv.Atoi(hdr.Get("Retry-After"))
		if err != nil || secs <= 0 {
			t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
		}
		code, hdr, body = a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+testToken)
		apiWantError(t, code, hdr, body, http.StatusTooManyRequests)
		if code, _, body := a.do(t, "GET", "/api/settings", nil, "Cookie", c.Name+"="+c.Value); code != 200 {
			t.Errorf("session cookie during a pause: %d %s", code, body)
		}
		return secs
	}
	first := pause()
	now = now.Add(time.Duration(first) * time.Second)
	second := pause()
	if second <= first {
		t.Errorf("second pause %d s, first %d s: want it to grow", second, first)
	}
	now = now.Add(time.Duration(second) * time.Second)
	if code, _, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+testToken); code != 200 {
		t.Errorf("right token after the pause: %d %s", code, body)
	}
	// The right token forgets the record: the next mistake is not paused.
	code, hdr, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer nope")
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
}

func TestAuthThrottleBounded(t *testing.T) {
	var th authThrottle
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Twice as many addresses as the table holds, each pausing itself.
	for i := range 2 * authMaxClients {
		client := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		for range authFailLimit {
			th.fail(client, now)
		}
	}
	if n := len(th.clients); n > authMaxClients {
		t.Errorf("%d records, want at most %d", n, authMaxClients)
	}
	// A new address while the table is full of pauses shares the overflow
	// record, which is paused too.
	if th.paused("192.0.2.1", now) == 0 {
		t.Error("a new address is not paused while the overflow record is")
	}
	// Once the pauses are over and the records quiet, new addresses get
	// their own records again.
	later := now.Add(authForget + authMaxPause)
	th.fail("192.0.2.2", later)
	if th.clients["192.0.2.2"] == nil {
		t.Error("no record for a new address after the others went quiet")
	}
	if th.paused("192.0.2.3", later) != 0 {
		t.Error("an unknown address is paused after the others went quiet")
	}
}

func TestThrottleKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"[::1]:5000", "::/64"},
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1"},
	}
	for _, tc := range tests {
		if got := throttleKey(tc.addr); got != tc.want {
			t.Errorf("throttleKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestLocalKeyAccepted(t *testing.T) {
	key := history.NewID() + history.NewID() // as app.go makes it
	a := newAPIServer(t, func(c *Config) { c.Token = testToken; c.LocalKey = key })
	if code, _, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+key); code != 200 {
		t.Errorf("Bearer LocalKey: %d %s", code, body)
	}
	if code, _, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+testToken); code != 200 {
		t.Errorf("Bearer token beside a LocalKey: %d %s", code, body)
	}
	code, hdr, body := a.do(t, "GET", "/api/settings", nil, "Authorization", "Bearer "+key[:len(key)-1])
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
	// The local key is not a token for the URL exchange.
	code, hdr, body = a.do(t, "GET", "/api/settings?token="+key, nil)
	apiWantError(t, code, hdr, body, http.StatusUnauthorized)
}

func TestCheckToken(t *testing.T) {
	for tok, ok := range map[string]bool{
		"":                 true,
		"s3cret":           false,
		"fifteen-chars-xx": true,
		"fifteen-chars-x":  false,
		"ثانزده‌حرف‌فارسی‌اس": true,
	} {
		err := CheckToken(tok)
		if (err == nil) != ok || err != nil && !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("checkToken(%q) = %v", tok, err)
		}
	}
	a := newAPIServer(t, func(c *Config) { c.Token = "short" })
	if err := a.ListenAndServe(t.Context(), "127.0.0.1:0", nil); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("ListenAndServe with a short token = %v, want ErrBadInput", err)
	}
}
