package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"ollama-model-downloader/internal/history"
	"ollama-model-downloader/internal/queue"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// closeWindow keeps every download queued: the daily window is closed now.
func closeWindow(t testing.TB, m *queue.Manager) {
	t.Helper()
	now := time.Now()
	start := now.Add(2 * time.Hour).Format("15:04")
	end := now.Add(3 * time.Hour).Format("15:04")
	if err := m.SetSchedule(start, end); err != nil {
		t.Fatal(err)
	}
}

// getDownloads is GET /api/downloads[?since=N] decoded.
func (a *apiServer) getDownloads(t *testing.T, query string) downloadsResponse {
	t.Helper()
	code, _, body := a.do(t, "GET", "/api/downloads"+query, nil)
	if code != 200 {
		t.Fatalf("GET /api/downloads%s = %d %s", query, code, body)
	}
	var resp downloadsResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return resp
}

func ids(views []queue.JobView) []string {
	out := make([]string, len(views))
	for i, v := range views {
		out[i] = v.ID
	}
	return out
}

// TestDownloadsSince: ?since=N answers only what changed after rev N.
func TestDownloadsSince(t *testing.T) {
	a := newAPIServer(t)
	closeWindow(t, a.cfg.Manager)
	added := a.addDownloads(t, "url", "https://example.com/a.bin\nhttps://example.com/b.bin\nhttps://example.com/c.bin")

	full := a.getDownloads(t, "")
	if !full.Full || len(full.Downloads) != 3 || full.Rev == 0 || full.Summary.Queued != 3 || full.Schedule.Open {
		t.Fatalf("full list = %+v", full)
	}
	same := a.getDownloads(t, "?since="+strconv.FormatUint(full.Rev, 10))
	if same.Full || len(same.Downloads) != 0 || len(same.Removed) != 0 || same.Order != nil || same.Rev != full.Rev {
		t.Errorf("nothing changed, but ?since= answers %+v", same)
	}

	code, _, body := a.do(t, "POST", "/api/download/"+added[1].ID+"/pause", nil)
	if code != 200 {
		t.Fatalf("pause = %d %s", code, body)
	}
	a.do(t, "POST", "/api/download/"+added[2].ID+"/cancel", nil)
	code, _, body = a.do(t, "POST", "/api/download/"+added[2].ID+"/remove", nil)
	if code != 200 {
		t.Fatalf("remove = %d %s", code, body)
	}
	d := a.getDownloads(t, "?since="+strconv.FormatUint(full.Rev, 10))
	if d.Full || strings.Join(ids(d.Downloads), ",") != added[1].ID || d.Downloads[0].State != "paused" {
		t.Errorf("after a pause: downloads %v, want only the paused %s", ids(d.Downloads), added[1].ID)
	}
	if strings.Join(d.Removed, ",") != added[2].ID || strings.Join(d.Order, ",") != added[0].ID+","+added[1].ID {
		t.Errorf("after a removal: removed %v order %v", d.Removed, d.Order)
	}
	if d.Summary.Queued != 1 || d.Summary.Paused != 1 {
		t.Errorf("summary %+v, want 1 queued and 1 paused", d.Summary)
	}
	if future := a.getDownloads(t, "?since="+strconv.FormatUint(d.Rev+1000, 10)); !future.Full || len(future.Downloads) != 2 {
		t.Errorf("a rev this server never had (a restart) must get everything: %+v", future)
	}
	code, hdr, body := a.do(t, "GET", "/api/downloads?since=yesterday", nil)
	apiWantError(t, code, hdr, body, http.StatusBadRequest)
}

// TestDownloadsGzip: JSON answers are compressed for a client that takes
// gzip, the shared list included; small answers and other clients get
// plain JSON.
func TestDownloadsGzip(t *testing.T) {
	a := newAPIServer(t)
	closeWindow(t, a.cfg.Manager)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("https://example.com/file-%d.bin", i))
	}
	a.addDownloads(t, "url", strings.Join(lines, "\n"))

	for _, path := range []string{"/api/downloads", "/api/downloads?since=1", "/api/history", "/api/settings"} {
		_, _, plain := a.do(t, "GET", path, nil)
		code, hdr, body := a.do(t, "GET", path, nil, "Accept-Encoding", "gzip")
		if code != 200 {
			t.Fatalf("%s = %d", path, code)
		}
		if !strings.Contains(hdr.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: Vary %q lacks Accept-Encoding", path, hdr.Get("Vary"))
		}
		if len(plain) < minGzipBytes {
			if hdr.Get("Content-Encoding") != "" {
				t.Errorf("%s: %d bytes compressed", path, len(plain))
			}
			continue
		}
		if hdr.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s (%d bytes): Content-Encoding %q, want gzip", path, len(plain), hdr.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var x, y downloadsResponse
		json.Unmarshal(got, &x)
		json.Unmarshal(plain, &y)
		if !json.Valid(got) || len(x.Downloads) != len(y.Downloads) || len(body) >= len(plain) {
			t.Errorf("%s: gzip body %d bytes unpacks to %d bytes (plain %d)", path, len(body), len(got), len(plain))
		}
	}
	if _, hdr, _ := a.do(t, "GET", "/api/downloads", nil, "Accept-Encoding", "gzip;q=0"); hdr.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
}

// sseStream reads one /api/events stream event by event, with the id.
type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

type sseEventData struct {
	id   string
	data string
}

func (a *apiServer) openEvents(t *testing.T, hdr ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", a.ts.URL+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event, skipping comments; it fails the test after
// within.
func (st *sseStream) next(t *testing.T, within time.Duration) sseEventData {
	t.Helper()
	got := make(chan sseEventData, 1)
	go func() {
		var ev sseEventData
		for {
			line, err := st.r.ReadString('\n')
			if err != nil {
				close(got)
				return
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimSpace(strings.TrimPrefix(line, "id: "))
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\n")
			case line == "\n" && ev.data != "":
				got <- ev
				return
			}
		}
	}()
	select {
	case ev, ok := <-got:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(within):
		st.resp.Body.Close()
		t.Fatalf("no event within %v", within)
		return sseEventData{}
	}
}

func decodeEvent(t *testing.T, ev sseEventData) downloadsResponse {
	t.Helper()
	var d downloadsResponse
	if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
		t.Fatalf("event %q: %v", ev.data, err)
	}
	if ev.id != strconv.FormatUint(d.Rev, 10) {
		t.Errorf("event id %q, rev %d: want the rev as id", ev.id, d.Rev)
	}
	return d
}

// TestEventsSendChanges: the first event is the whole list, the next ones
// only what changed, the same bytes to every stream; a reconnection with
// Last-Event-ID gets the changes since.
func TestEventsSendChanges(t *testing.T) {
	a := newAPIServer(t)
	a.eventInterval = 20 * time.Millisecond
	closeWindow(t, a.cfg.Manager)
	added := a.addDownloads(t, "url", "https://example.com/a.bin\nhttps://example.com/b.bin")

	streams := []*sseStream{a.openEvents(t), a.openEvents(t), a.openEvents(t)}
	var rev uint64
	for _, st := range streams {
		first := decodeEvent(t, st.next(t, 10*time.Second))
		if !first.Full || len(first.Downloads) != 2 {
			t.Fatalf("first event = %+v, want the whole list", first)
		}
		rev = first.Rev
	}
	if code, _, body := a.do(t, "POST", "/api/download/"+added[0].ID+"/pause", nil); code != 200 {
		t.Fatalf("pause = %d %s", code, body)
	}
	var data string
	for i, st := range streams {
		ev := st.next(t, 10*time.Second)
		d := decodeEvent(t, ev)
		if d.Full || strings.Join(ids(d.Downloads), ",") != added[0].ID {
			t.Errorf("stream %d: update = %+v, want only %s", i, d, added[0].ID)
		}
		if i > 0 && ev.data != data {
			t.Errorf("stream %d got other bytes than stream 0:\n%s\n%s", i, ev.data, data)
		}
		data = ev.data
	}
	a.events.mu.Lock()
	frames := a.events.seq
	a.events.mu.Unlock()
	if frames != 1 {
		t.Errorf("%d updates encoded for one change and three streams, want 1", frames)
	}

	again := a.openEvents(t, "Last-Event-ID", strconv.FormatUint(rev, 10))
	d := decodeEvent(t, again.next(t, 10*time.Second))
	if d.Full || strings.Join(ids(d.Downloads), ",") != added[0].ID {
		t.Errorf("reconnection from %d = %+v, want only the paused one", rev, d)
	}
	q := a.openEventsQuery(t, "?since="+strconv.FormatUint(rev, 10))
	if d := decodeEvent(t, q.next(t, 10*time.Second)); d.Full || len(d.Downloads) != 1 {
		t.Errorf("?since=%d = %+v, want only the paused one", rev, d)
	}
}

func (a *apiServer) openEventsQuery(t *testing.T, query string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", a.ts.URL+"/api/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// waitStreams waits until the server counts n open event streams.
func (a *apiServer) waitStreams(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		a.events.mu.Lock()
		got := a.events.streams
		a.events.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%d event streams open, want %d", got, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestEventsCapped: past maxStreams a stream is refused with a JSON 503
// and Retry-After; a closed stream frees its place.
func TestEventsCapped(t *testing.T) {
	a := newAPIServer(t)
	a.maxStreams = 2
	one, two := a.openEvents(t), a.openEvents(t)
	one.next(t, 10*time.Second)
	two.next(t, 10*time.Second)
	over := a.openEvents(t)
	if over.resp.StatusCode == http.StatusOK {
		t.Fatalf("a stream past the cap was opened")
	}
	body, _ := io.ReadAll(over.resp.Body)
	code, hdr := over.resp.StatusCode, over.resp.Header
	msg := apiWantError(t, code, hdr, body, http.StatusServiceUnavailable)
	if hdr.Get("Retry-After") == "" || !strings.Contains(msg, "at most 2") {
		t.Errorf("503 with Retry-After %q, message %q", hdr.Get("Retry-After"), msg)
	}
	one.resp.Body.Close()
	a.waitStreams(t, 1)
	three := a.openEvents(t)
	three.next(t, 10*time.Second)
	two.resp.Body.Close()
	three.resp.Body.Close()
	a.waitStreams(t, 0)
}

// TestEventsDropClientThatDoesNotRead: a client that never reads fills the
// socket; the write deadline ends its stream, and its place is free again.
func TestEventsDropClientThatDoesNotRead(t *testing.T) {
	a := newAPIServer(t)
	a.eventWriteTimeout = 200 * time.Millisecond
	closeWindow(t, a.cfg.Manager)
	// A list of a few MB: more than the socket buffers hold.
	var reqs []queue.AddRequest
	for i := range 2000 {
		reqs = append(reqs, queue.AddRequest{Source: fmt.Sprintf("https://example.com/%d/%s.bin", i, strings.Repeat("x", 1000)), Retries: -1})
	}
	if _, err := a.cfg.Manager.AddAll(reqs); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", a.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/events HTTP/1.1\r\nHost: %s\r\n\r\n", a.ts.Listener.Addr())
	a.waitStreams(t, 1)
	a.waitStreams(t, 0) // never read a byte: dropped
	if code, _, body := a.do(t, "GET", "/api/settings", nil); code != 200 {
		t.Errorf("server after dropping the stream: %d %s", code, body)
	}
}

// BenchmarkEventStreamsMemory is issue 18's finding: 1,000 /api/events
// clients that never read, against a queue of 10,000 jobs (one of them
// downloading, so that updates flow). It reports the server's heap and
// RSS before the clients connect and after they have sat for a while.
// "uncapped" lifts the cap to show what the shared encoding alone costs
// per stream.
//
//	go test -run '^$' -bench EventStreamsMemory -benchtime 1x
func BenchmarkEventStreamsMemory(b *testing.B) {
	for _, capped := range []bool{true, false} {
		b.Run(map[bool]string{true: "capped", false: "uncapped"}[capped], func(b *testing.B) {
			for range b.N {
				benchEventStreams(b, 1000, 10000, capped)
			}
		})
	}
}

func benchEventStreams(b *testing.B, clients, jobs int, capped bool) {
	hold := make(chan struct{})
	defer close(hold)
	origin := holdingOrigin(b, hold)
	dir := b.TempDir()
	m, h, _ := newAPITestManager(b, dir, nil)
	m.SetConcurrency(1)
	reqs := make([]queue.AddRequest, jobs)
	for i := range reqs {
		reqs[i] = queue.AddRequest{Source: fmt.Sprintf("%s/bench-%d.bin", origin, i), Retries: -1}
	}
	if _, err := m.AddAll(reqs); err != nil {
		b.Fatal(err)
	}
	s, base := startBenchServer(b, m, h, dir)
	if !capped {
		s.maxStreams = clients
	}
	runtime.GC()
	heap0, rss0 := memFigures()

	var conns []net.Conn
	refused := 0
	for range clients {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "GET /api/events HTTP/1.1\r\nHost: %s\r\n\r\n", strings.TrimPrefix(base, "http://"))
		conns = append(conns, c)
	}
	// Let updates flow for a while: every second one (the download moves).
	time.Sleep(5 * time.Second)
	runtime.GC()
	heap1, rss1 := memFigures()
	s.events.mu.Lock()
	open := s.events.streams
	s.events.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	refused = clients - open
	b.ReportMetric(heap0/(1<<20), "heap-MB-before")
	b.ReportMetric(heap1/(1<<20), "heap-MB-after")
	b.ReportMetric(rss0/(1<<20), "rss-MB-before")
	b.ReportMetric(rss1/(1<<20), "rss-MB-after")
	b.ReportMetric(float64(open), "streams-open")
	b.ReportMetric(float64(refused), "streams-refused")
}

// holdingOrigin serves 1 MiB files that send 4 KiB and then hold on until
// hold is closed, so a download stays running.
func holdingOrigin(tb testing.TB, hold <-chan struct{}) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("ETag", `"held"`)
		if r.Method == http.MethodHead {
			return
		}
		w.Write(make([]byte, 4<<10))
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// startBenchServer serves m on a real loopback listener, as the command does.
func startBenchServer(tb testing.TB, m *queue.Manager, h *history.Store, dir string) (*Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := New(Config{Manager: m, History: h, OutputDir: dir, Addr: ln.Addr().String()})
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		s.stopOnce.Do(func() { close(s.stopping) })
		srv.Close()
	})
	return s, "http://" + ln.Addr().String()
}

// memFigures is the Go heap in use and the process's resident set, bytes.
func memFigures() (heap, rss float64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse), float64(residentBytes())
}

// residentBytes is the process's resident set from /proc (Linux), else 0.
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
