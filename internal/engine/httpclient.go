package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/fault"
	"os"
	"strings"
	"time"
)

// NewHTTPClient builds the one client the process uses. It has dial, TLS
// and header timeouts but no Client.Timeout: that would include reading the
// body and cut off a 20 GB blob. Stalls are caught by the downloader's
// watchdog instead. proxy "" means proxies from the environment.
func NewHTTPClient(proxy string) (*http.Client, error) {
	proxyFunc, err := ProxyFor(proxy, os.Getenv)
	if err != nil {
		return nil, err
	}
	return BuildHTTPClient(proxyFunc), nil
}

// BuildHTTPClient is newHTTPClient with the proxy selection given.
func BuildHTTPClient(proxyFunc func(*http.Request) (*url.URL, error)) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 proxyFunc,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   20 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   32,
		// A few KiB is normal; far more is a broken or hostile server
		// (curl refuses beyond 300 KB). Per connection, up to 16 per file.
		MaxResponseHeaderBytes: 1 << 20,
		// We ask for identity encoding ourselves: a transparently gunzipped
		// body would not match Content-Length or a Range offset.
		DisableCompression: true,
		// A proxy that will not open the tunnel answers CONNECT with a
		// status; net/http turns it into a bare "Bad Gateway". proxyError
		// says it was the proxy, which status, and classifies (fault.Code).
		OnProxyConnectResponse: func(_ context.Context, proxy *url.URL, connect *http.Request, resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			return &fault.ProxyError{Proxy: RedactURL(proxy.String()), Target: connect.Host, Code: resp.StatusCode}
		},
	}
	return &http.Client{Transport: transport, CheckRedirect: CheckRedirect}
}

// CheckRedirect stops redirect loops and drops credentials whenever a
// redirect leaves the original host:port. net/http already does this for a
// different host name, but keeps them for another port of the same host.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects: %w", fault.ErrRedirectLoop)
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
	}
	return nil
}

// ProxyFor returns the proxy selection: the -proxy flag when given, else
// HTTPS_PROXY / HTTP_PROXY by scheme, else ALL_PROXY, minus NO_PROXY hosts
// — as curl reads them. http://, https:// and socks5:// proxies work
// (net/http speaks SOCKS5 itself).
func ProxyFor(flag string, getenv func(string) string) (func(*http.Request) (*url.URL, error), error) {
	env := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	parse := func(raw, source string) (*url.URL, error) {
		if raw == "" {
			return nil, nil
		}
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw // curl's default for a bare host:port
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fault.BadInputf("invalid proxy %q in %s: want e.g. http://host:3128 or socks5://host:1080", raw, source)
		}
		switch u.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return nil, fault.BadInputf("invalid proxy %q in %s: scheme must be http, https or socks5", raw, source)
		}
		return u, nil
	}
	if flag != "" {
		u, err := parse(flag, "-proxy")
		if err != nil {
			return nil, err
		}
		return http.ProxyURL(u), nil
	}
	httpsProxy, err := parse(env("HTTPS_PROXY", "https_proxy"), "HTTPS_PROXY")
	if err != nil {
		return nil, err
	}
	httpProxy, err := parse(env("HTTP_PROXY", "http_proxy"), "HTTP_PROXY")
	if err != nil {
		return nil, err
	}
	allProxy, err := parse(env("ALL_PROXY", "all_proxy"), "ALL_PROXY")
	if err != nil {
		return nil, err
	}
	noProxy := env("NO_PROXY", "no_proxy")
	return func(req *http.Request) (*url.URL, error) {
		if bypassProxy(req.URL.Hostname(), noProxy) {
			return nil, nil
		}
		chosen := httpProxy
		if req.URL.Scheme == "https" {
			chosen = httpsProxy
		}
		if chosen == nil {
			chosen = allProxy
		}
		return chosen, nil
	}, nil
}

// bypassProxy applies NO_PROXY: "*", exact hosts, and domain suffixes
// (".example.com" or "example.com" both match sub.example.com).
func bypassProxy(host, noProxy string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for entry := range strings.SplitSeq(noProxy, ",") {
		entry = strings.ToLower(strings.TrimSpace(entry))
		if entry == "" {
			continue
		}
		if entry == "*" {
			return true
		}
		if h, _, err := net.SplitHostPort(entry); err == nil {
			entry = h
		}
		entry = strings.TrimPrefix(entry, "*")
		entry = strings.TrimPrefix(entry, ".")
		if host == entry || strings.HasSuffix(host, "."+entry) {
			return true
		}
	}
	return false
}

func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsURL is SPEC §3's detection: http:// or https:// is a file URL,
// anything else a model reference.
func IsURL(s string) bool {
	lower := strings.ToLower(s)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}
