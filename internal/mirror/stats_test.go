package mirror

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"ollama-model-downloader/internal/testkit"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMirrorStatsView(t *testing.T) {
	s := newMirrorStats()
	now := time.Now()
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	endA := s.begin(a, now)
	endB := s.begin(b, now)
	s.begin(a, now) // a second request of a, still running
	endB(now)
	s.served.Add(1000)
	s.upstream.Add(300)
	v := s.view(now.Add(time.Second), 4)
	if v != (StatsView{CachedModels: 4, BytesServed: 1000, BytesUpstream: 300, BytesSaved: 700, Clients: 2}) {
		t.Errorf("view = %+v", v)
	}
	endA(now)
	if v := s.view(now.Add(clientWindow+time.Second), 4); v.Clients != 1 {
		t.Errorf("clients after b left long ago = %d, want 1 (a still has a request)", v.Clients)
	}
	s.upstream.Add(5000)
	if v := s.view(now, 0); v.BytesSaved != 0 {
		t.Errorf("saved = %d when more came upstream than went out", v.BytesSaved)
	}
}

// TestCountingWriterKeepsSendfile: wrapping the response to count bytes
// keeps its ReadFrom (sendfile for a cached blob) and its Flush.
func TestCountingWriterKeepsSendfile(t *testing.T) {
	data := testkit.TestBytes(300<<10, 2)
	p := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(p, data, 0o644)
	stats := newMirrorStats()
	readFromUsed := false
	served := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served) // the count is final only once the handler returns
		cw := countingWriter{ResponseWriter: w, n: &stats.served}
		var _ io.ReaderFrom = cw
		var _ http.Flusher = cw
		f, _ := os.Open(p)
		defer f.Close()
		_, readFromUsed = cw.ResponseWriter.(io.ReaderFrom)
		http.ServeContent(cw, r, "", time.Time{}, f)
	}))
	t.Cleanup(srv.Close)
	resp, body, err := testkit.GetBody(t, srv.URL, "bytes=1000-")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[1000:]) {
		t.Fatalf("%v %v", err, resp)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return")
	}
	if !readFromUsed || stats.served.Load() != int64(len(data)-1000) {
		t.Errorf("counted %d bytes (ReaderFrom %v), want %d", stats.served.Load(), readFromUsed, len(data)-1000)
	}
}
