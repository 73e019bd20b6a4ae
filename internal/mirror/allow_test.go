package mirror

import (
	"errors"
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
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	resp, body, err := testkit.GetBody(t, srv.URL+"/v2/", "")
	if err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "DENIED") || !strings.Contains(string(body), "-allow") {
		t.Errorf("client outside -allow: %v %v %s", err, resp, body)
	}
	m.Allow, _ = ParseAllowList("127.0.0.1", false)
	if resp, _, err := testkit.GetBody(t, srv.URL+"/v2/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("client inside -allow: %v %v", err, resp)
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
