package mirror

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/testkit"
	"strings"
	"testing"
)

func TestParseAllowList(t *testing.T) {
	tests := []struct {
		in       string
		loopback bool
		allowed  []string
		denied   []string
		err      bool
		any      bool
	}{
		{in: "", loopback: true, any: true},
		{in: "", allowed: []string{"127.0.0.1", "::1", "10.1.2.3", "172.20.0.9", "192.168.1.50", "fe80::1", "fd00::5", "::ffff:192.168.1.50"},
			denied: []string{"8.8.8.8", "172.32.0.1", "100.64.0.1", "2001:db8::1"}},
		{in: "192.168.1.0/24", allowed: []string{"192.168.1.7", "::ffff:192.168.1.7"}, denied: []string{"192.168.2.7", "127.0.0.1"}},
		{in: "10.0.0.7, 2001:db8::/32", allowed: []string{"10.0.0.7", "2001:db8::99"}, denied: []string{"10.0.0.8"}},
		{in: "any", any: true},
		{in: "10.0.0.0/8,any", any: true},
		{in: "::ffff:10.0.0.0/104", allowed: []string{"10.9.9.9"}, denied: []string{"11.0.0.1"}},
		{in: "192.168.1.0/33", err: true},
		{in: "lan", err: true},
		{in: "192.168.1.300", err: true},
	}
	for _, tc := range tests {
		l, err := ParseAllowList(tc.in, tc.loopback)
		if tc.err {
			if !errors.Is(err, fault.ErrBadInput) || !strings.Contains(err.Error(), "-allow") {
				t.Errorf("parseAllowList(%q) = %v, want a bad-input error naming -allow", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseAllowList(%q): %v", tc.in, err)
			continue
		}
		if (l == nil) != tc.any {
			t.Errorf("parseAllowList(%q) = %v, any = %v", tc.in, l, tc.any)
		}
		for _, a := range tc.allowed {
			if !l.allows(netip.MustParseAddr(a)) {
				t.Errorf("%q does not allow %s", tc.in, a)
			}
		}
		for _, a := range tc.denied {
			if l.allows(netip.MustParseAddr(a)) {
				t.Errorf("%q allows %s", tc.in, a)
			}
		}
	}
}

// TestMirrorRefusesClientsNotAllowed: a client outside -allow gets a
// registry error it can read, before anything else is looked at.
func TestMirrorRefusesClientsNotAllowed(t *testing.T) {
	m := newModelMirror([]string{t.TempDir()}, nil)
	m.Allow, _ = ParseAllowList("10.0.0.0/8", false)
	get := func(client string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://192.0.2.1:11435/v2/", nil)
		r.RemoteAddr = client
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		return w
	}
	if w := get("203.0.113.9:40000"); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "DENIED") || !strings.Contains(w.Body.String(), "-allow") {
		t.Errorf("client outside -allow: %d %s", w.Code, w.Body)
	}
	if w := get("10.1.2.3:40000"); w.Code != http.StatusOK {
		t.Errorf("client inside -allow: %d %s", w.Code, w.Body)
	}
}

// TestMirrorAlwaysServesThisMachine: whatever -allow names, this machine
// is served (issue 25: -allow 192.168.1.0/24 refused 127.0.0.1 and the
// machine's own LAN address, which the docs say are always allowed).
func TestMirrorAlwaysServesThisMachine(t *testing.T) {
	m := newModelMirror([]string{t.TempDir()}, nil)
	m.Allow, _ = ParseAllowList("10.99.0.0/16", false)
	m.AnyHost = true
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	if resp, body, err := testkit.GetBody(t, srv.URL+"/v2/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("loopback client with -allow 10.99.0.0/16: %v %v %s", err, resp, body)
	}
	// One of this machine's own non-loopback addresses, as the client of
	// a connection (nothing listens beyond loopback here).
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	own := ""
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			own = ipn.IP.String()
			break
		}
	}
	if own == "" {
		t.Skip("this machine has no address beyond loopback")
	}
	r := httptest.NewRequest("GET", "http://"+net.JoinHostPort(own, "11435")+"/v2/", nil)
	r.RemoteAddr = net.JoinHostPort(own, "40000")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("this machine's own address %s with -allow 10.99.0.0/16: %d %s", own, w.Code, w.Body)
	}
}

func TestRemoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.5:1234":     "192.168.1.5",
		"[::ffff:10.0.0.1]:80": "10.0.0.1",
		"[fe80::1%eth0]:80":    "fe80::1%eth0",
		"[2001:db8::1]:443":    "2001:db8::1",
		"garbage":              "invalid IP",
	} {
		if got := remoteAddr(in).String(); got != want {
			t.Errorf("remoteAddr(%q) = %s, want %s", in, got, want)
		}
	}
}
