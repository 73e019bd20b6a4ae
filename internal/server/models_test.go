package server

import (
	"encoding/json"
	"net"
	"net/http"
	"ollama-model-downloader/internal/models"
	"ollama-model-downloader/internal/models/modelstest"
	"ollama-model-downloader/internal/testkit"
	"sync/atomic"
	"testing"
)

// TestShowAPI: GET /api/model/show answers what show prints, 400 for a
// bad name, 404 for an unknown model.
func TestShowAPI(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	digest, _, size := testkit.AddShowModel(f)
	c := modelstest.NewPuller(t, f.URL)
	a := newAPIServerWith(t, c)
	code, _, body := a.do(t, "GET", "/api/model/show?name=qwen:0.5b", nil)
	var got models.ModelInfo
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Digest != digest || got.Size != size || len(got.Layers) != 5 {
		t.Errorf("GET /api/model/show: %d %s", code, body)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{{"name=bad%20name!", 400}, {"", 400}, {"name=nosuch:latest", 404}} {
		if code, _, body := a.do(t, "GET", "/api/model/show?"+tc.query, nil); code != tc.code {
			t.Errorf("GET /api/model/show?%s: %d %s, want %d", tc.query, code, body, tc.code)
		}
	}
}

// TestShowRefusesCrossSite: a preview makes the server connect to the
// registry its name points at, so another site's page must not get one:
// a GET marked cross-site, or with a foreign Origin, is refused before
// any connection is made; the page's own request still gets through.
func TestShowRefusesCrossSite(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	testkit.AddShowModel(f)
	a := newAPIServerWith(t, modelstest.NewPuller(t, f.URL))
	// Where a hostile page would send the server: a listener that counts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	path := "/api/model/show?name=" + ln.Addr().String() + "/x/y:z"
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
	} {
		code, h, body := a.do(t, "GET", path, nil, hdr...)
		apiWantError(t, code, h, body, http.StatusForbidden)
	}
	// The page's own requests: same-origin, or a script without Origin.
	// Only these reach out (and find nothing there).
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "same-origin"}, {}} {
		if code, _, body := a.do(t, "GET", path, nil, hdr...); code == http.StatusForbidden {
			t.Errorf("%v: %d %s, want the preview tried", hdr, code, body)
		}
	}
	if n := dialed.Load(); n == 0 {
		t.Error("the allowed previews never reached the listener: the test proves nothing")
	}
	before := dialed.Load()
	a.do(t, "GET", path, nil, "Sec-Fetch-Site", "cross-site")
	if code, _, body := a.do(t, "GET", "/api/model/show?name=qwen:0.5b", nil, "Sec-Fetch-Site", "same-origin"); code != http.StatusOK {
		t.Errorf("same-origin preview: %d %s", code, body)
	}
	if n := dialed.Load(); n != before {
		t.Errorf("a cross-site preview made %d connections", n-before)
	}
}
