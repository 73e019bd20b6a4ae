package server

import (
	"encoding/json"
	"maps"
	"net/http"
	"ollama-model-downloader/internal/mirror"
	"ollama-model-downloader/internal/testkit"
	"slices"
	"strings"
	"testing"
)

// TestMirrorAPICache: the web UI starts the mirror as a cache of an
// upstream; GET /api/mirror has exactly the panel's shape, with live
// statistics; bad values are 400 with a message; a folder another
// process caches into is 409.
func TestMirrorAPICache(t *testing.T) {
	f := testkit.NewFakeRegistry(t)
	m := testkit.TinyModel(f, "tiny", "latest")
	a := newAPIServer(t)
	t.Cleanup(a.stopMirror)

	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"upstream", "ftp://x"}, "registry"},
		{[]string{"upstream", f.URL, "cache_max", "lots"}, "cache size"},
		{[]string{"cache_max", "10G"}, "upstream"},
		{[]string{"upstream", f.URL, "allow", "the lan"}, "-allow"},
		{[]string{"listen", "nope"}, "listen"},
	} {
		body, k, v := apiForm(append([]string{"listen", "127.0.0.1:0"}, tc.kv...)...)
		if tc.kv[0] == "listen" {
			body, k, v = apiForm(tc.kv...)
		}
		code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
		if msg := apiWantError(t, code, hdr, resp, http.StatusBadRequest); !strings.Contains(msg, tc.want) {
			t.Errorf("%v: message %q lacks %q", tc.kv, msg, tc.want)
		}
	}

	// JSON works too.
	code, _, resp := a.do(t, "POST", "/api/mirror/start",
		strings.NewReader(`{"listen":"127.0.0.1:0","upstream":"`+f.URL+`","cache_max":"2G"}`), "Content-Type", "application/json")
	if code != http.StatusOK {
		t.Fatalf("start: %d %s", code, resp)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp, &raw); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(raw)); strings.Join(got, ",") != "address,cache_max,pull_command,running,stats,upstream" {
		t.Errorf("keys = %v", got)
	}
	var stats map[string]json.RawMessage
	json.Unmarshal(raw["stats"], &stats)
	if got := slices.Sorted(maps.Keys(stats)); strings.Join(got, ",") != "bytes_saved,bytes_served,bytes_upstream,cache_bytes,cached_models,clients" {
		t.Errorf("stats keys = %v", got)
	}
	var st mirrorResponse
	json.Unmarshal(resp, &st)
	host := strings.TrimPrefix(st.Address, "http://")
	if !st.Running || st.Upstream != f.URL || st.CacheMax != 2<<30 || st.PullCommand != "ollama pull --insecure "+host+"/library/<model>:<tag>" {
		t.Errorf("status = %+v", st)
	}

	got := testkit.PullLikeOllama(t, st.Address, "library/tiny", "latest")
	if string(got["manifest"]) != string(m.Manifest) {
		t.Error("manifest through the UI's cache differs")
	}
	code, _, resp = a.do(t, "GET", "/api/mirror", nil)
	json.Unmarshal(resp, &st)
	if code != 200 || st.Stats.BytesUpstream == 0 || st.Stats.BytesServed < st.Stats.BytesUpstream || st.Stats.Clients != 1 {
		t.Errorf("live stats = %d %+v", code, st.Stats)
	}

	// The folder is locked while the UI's cache runs.
	if _, err := mirror.Start(mirror.Options{OutputDir: a.dir, Upstream: f.URL}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second cache on the UI's folder: %v", err)
	}
	a.stopMirror()
	again, err := mirror.Start(mirror.Options{OutputDir: a.dir, Upstream: f.URL})
	if err != nil {
		t.Fatalf("the folder stayed locked after stop: %v", err)
	}
	// …and a UI start on a folder another process caches into is a conflict.
	body, k, v := apiForm("listen", "127.0.0.1:0", "upstream", f.URL)
	code, hdr, resp := a.do(t, "POST", "/api/mirror/start", body, k, v)
	if msg := apiWantError(t, code, hdr, resp, http.StatusConflict); !strings.Contains(msg, "in use") {
		t.Errorf("conflict message %q", msg)
	}
	again.Close()
}
