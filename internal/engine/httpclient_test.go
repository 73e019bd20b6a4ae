package engine

import (
	"net/http"
	"net/http/httptest"
	"ollama-model-downloader/internal/fault"
	"testing"
)

func TestProxyForEnvironment(t *testing.T) {
	env := map[string]string{
		"HTTPS_PROXY": "http://secure-proxy:3128",
		"http_proxy":  "plain-proxy:8080",
		"ALL_PROXY":   "socks5://socks:1080",
		"NO_PROXY":    "internal.example, .corp.example,10.1.2.3",
	}
	proxy, err := ProxyFor("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ url, want string }{
		{"https://registry.ollama.ai/v2/", "http://secure-proxy:3128"},
		{"http://files.example/x", "http://plain-proxy:8080"},
		{"http://internal.example/x", ""},
		{"https://a.internal.example/x", ""},
		{"https://b.corp.example/x", ""},
		{"http://10.1.2.3/x", ""},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		u, err := proxy(req)
		got := ""
		if u != nil {
			got = u.String()
		}
		if err != nil || got != tc.want {
			t.Errorf("proxy for %s = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

func TestProxyForAllProxyFallback(t *testing.T) {
	proxy, err := ProxyFor("", func(k string) string {
		if k == "ALL_PROXY" {
			return "socks5://127.0.0.1:1080"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://h/x", nil)
	if u, _ := proxy(req); u == nil || u.Scheme != "socks5" {
		t.Errorf("got %v, want the socks5 ALL_PROXY", u)
	}
}

func TestProxyForRejectsBadProxies(t *testing.T) {
	for _, p := range []string{"ftp://p:21", "http://", "::"} {
		if _, err := ProxyFor(p, func(string) string { return "" }); err == nil {
			t.Errorf("proxyFor(%q) accepted it", p)
		}
	}
	if _, err := ProxyFor("", func(k string) string {
		if k == "HTTPS_PROXY" {
			return "gopher://x:70"
		}
		return ""
	}); err == nil {
		t.Error("a bad HTTPS_PROXY was accepted")
	}
}

func TestRedirectDropsCredentialsForAnotherPort(t *testing.T) {
	var gotAuth string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
	}))
	defer first.Close()
	req, _ := http.NewRequest(http.MethodGet, first.URL, nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := BuildHTTPClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotAuth != "" {
		t.Errorf("credentials reached another host:port: %q", gotAuth)
	}
}

func TestRedirectLoopStops(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
	}))
	defer srv.Close()
	_, err := testDownloader(t).Download(t.Context(), Request{URL: srv.URL + "/a", Dir: t.TempDir(), Retries: 5})
	if err == nil || fault.Transient(err) {
		t.Fatalf("err = %v; want a redirect loop reported and not retried", err)
	}
}
