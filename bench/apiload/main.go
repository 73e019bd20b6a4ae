// Command apiload measures the REST API of a running ollama-model-downloader
// under a big queue (issues 6 and 18):
//
//   - -fill N puts N downloads in the queue first (files of its own slow
//     origin on 127.0.0.1, so they stay queued or crawl), in requests of
//     1,000 lines, and cancels and clears them at the end;
//   - -add N times one more request of N new URLs, and with -pid the bytes
//     the server process wrote for it (/proc/PID/io write_bytes; Linux);
//   - GET /api/downloads is timed whole (plain and gzip) and as the changes
//     since the last answer (?since=rev);
//   - -pollers N polls GET /api/downloads for -duration, the way open pages
//     do, and reports latency percentiles.
//
// Example, the figures of issue 18:
//
//	ollama-model-downloader -no-browser -port 18080 -output-dir /tmp/omd & pid=$!
//	go run ./bench/apiload -server http://127.0.0.1:18080 -pid $pid -fill 10000 -add 500
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxPerRequest is the server's cap on URLs per add request.
const maxPerRequest = 1000

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "base URL of the running server")
	token := flag.String("token", os.Getenv("OMD_TOKEN"), "access token, when the server needs one (env OMD_TOKEN)")
	pid := flag.Int("pid", 0, "the server's process id, to report the bytes it writes for an add (Linux)")
	fill := flag.Int("fill", 0, "downloads to queue first (cancelled and cleared at the end)")
	add := flag.Int("add", 500, "URLs in the one add request that is timed (0 = none)")
	samples := flag.Int("samples", 20, "requests per GET /api/downloads figure")
	pollers := flag.Int("pollers", 0, "concurrent pollers of GET /api/downloads after the single figures (0 = none)")
	interval := flag.Duration("interval", 0, "pause between one poller's requests (0 = back to back; the UI uses 1s)")
	duration := flag.Duration("duration", 10*time.Second, "how long the pollers run")
	flag.Parse()

	b := &bench{server: strings.TrimSuffix(*server, "/"), token: *token, pid: *pid,
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: max(*pollers, 4), DisableCompression: true},
			Timeout:   60 * time.Second, // whole JSON answers only; a stuck server fails the run
		}}
	if err := b.run(*fill, *add, *samples, *pollers, *interval, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

type bench struct {
	server, token string
	pid           int
	client        *http.Client
}

// do sends one request; the body comes back as sent (gzip not undone).
func (b *bench) do(method, path string, form url.Values, hdr ...string) (int, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.server+path, body)
	if err != nil {
		return 0, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func (b *bench) run(fill, add, samples, pollers int, interval, duration time.Duration) error {
	origin, err := slowOrigin()
	if err != nil {
		return err
	}
	defer origin.Close()
	next := 0
	urls := func(n int) string {
		lines := make([]string, n)
		for i := range lines {
			lines[i] = fmt.Sprintf("http://%s/apiload-%d-%d.bin", origin.Addr(), os.Getpid(), next)
			next++
		}
		return strings.Join(lines, "\n")
	}
	if fill > 0 || add > 0 {
		defer func() {
			b.do("POST", "/api/downloads/cancel-all", url.Values{})
			b.do("POST", "/api/downloads/clear-finished", url.Values{})
		}()
	}

	if fill > 0 {
		start := time.Now()
		for done := 0; done < fill; {
			n := min(maxPerRequest, fill-done)
			code, body, err := b.do("POST", "/api/download/add", url.Values{"url": {urls(n)}})
			if err != nil || code != http.StatusCreated {
				return fmt.Errorf("filling the queue (%d of %d added): %d %s %v", done, fill, code, body, err)
			}
			done += n
		}
		fmt.Printf("fill: %d downloads in %d requests of at most %d: %v\n", fill, (fill+maxPerRequest-1)/maxPerRequest, maxPerRequest, time.Since(start).Round(time.Millisecond))
	}

	if add > 0 {
		form := url.Values{"url": {urls(add)}}
		w0, werr := writeBytes(b.pid)
		start := time.Now()
		code, body, err := b.do("POST", "/api/download/add", form)
		took := time.Since(start)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("adding %d: %d %s %v", add, code, body, err)
		}
		line := fmt.Sprintf("add: %d URLs (%d KiB body) into a queue of %d: %v", add, len(form.Encode())>>10, fill, took.Round(time.Millisecond))
		// The writes of the add itself: the save is durable when the
		// answer comes; give the group fsync a moment to be counted.
		time.Sleep(200 * time.Millisecond)
		if w1, err := writeBytes(b.pid); werr == nil && err == nil {
			line += fmt.Sprintf(", server wrote %s (%s per URL; includes whatever else it wrote in those %v)",
				sizeText(w1-w0), sizeText((w1-w0)/int64(add)), (took + 200*time.Millisecond).Round(time.Millisecond))
		} else if b.pid != 0 {
			line += fmt.Sprintf(" (write_bytes unreadable: %v %v)", werr, err)
		}
		fmt.Println(line)
	}

	var rev uint64
	for _, c := range []struct {
		name  string
		since bool
		hdr   []string
	}{
		{"whole list", false, nil},
		{"whole list, gzip", false, []string{"Accept-Encoding", "gzip"}},
		{"changes since the answer before (?since=rev)", true, nil},
	} {
		var lat []time.Duration
		size, count := 0, 0
		for range samples {
			path := "/api/downloads"
			if c.since {
				path += "?since=" + strconv.FormatUint(rev, 10)
			}
			t0 := time.Now()
			code, body, err := b.do("GET", path, nil, c.hdr...)
			d := time.Since(t0)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("GET %s: %d %v", path, code, err)
			}
			lat = append(lat, d)
			size = len(body)
			var resp struct {
				Rev       uint64            `json:"rev"`
				Downloads []json.RawMessage `json:"downloads"`
			}
			if err := json.Unmarshal(unzip(body), &resp); err != nil {
				return fmt.Errorf("GET %s: %v", path, err)
			}
			rev, count = resp.Rev, len(resp.Downloads)
		}
		slices.Sort(lat)
		fmt.Printf("GET /api/downloads, %s: median %v, max %v, %s per answer, %d downloads in it\n",
			c.name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), sizeText(int64(size)), count)
	}

	if pollers > 0 {
		return b.poll(pollers, interval, duration)
	}
	return nil
}

// poll runs pollers against GET /api/downloads and prints the latencies.
func (b *bench) poll(pollers int, interval, duration time.Duration) error {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
	)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range pollers {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				code, _, err := b.do("GET", "/api/downloads", nil, "Accept-Encoding", "gzip")
				if err != nil || code != http.StatusOK {
					bad++
				} else {
					mine = append(mine, time.Since(t0))
				}
				if interval > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(interval):
					}
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			failures += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return errors.New("no request succeeded")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Printf("%d pollers (gzip), %v: %d requests (%.0f/s), %d failed\n",
		pollers, duration, len(latencies), float64(len(latencies))/elapsed.Seconds(), failures)
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  max %v\n",
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond))
	return nil
}

// unzip undoes gzip when the body is gzip (its magic number), else returns it.
func unzip(body []byte) []byte {
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return body
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return body
	}
	return out
}

// writeBytes is what a process has caused to be written to storage
// (/proc/PID/io write_bytes).
func writeBytes(pid int) (int64, error) {
	if pid == 0 {
		return 0, errors.New("no -pid")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no write_bytes line")
}

func sizeText(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// slowOrigin serves 64 MiB files at a trickle on 127.0.0.1, so that the
// added downloads stay in the queue while the figures are taken.
func slowOrigin() (*originServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	const size = 64 << 20
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Header().Set("Accept-Ranges", "bytes")
		if r.Method == http.MethodHead {
			return
		}
		chunk := make([]byte, 4<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})}
	go srv.Serve(ln)
	return &originServer{srv: srv, ln: ln}, nil
}

type originServer struct {
	srv *http.Server
	ln  net.Listener
}

func (o *originServer) Addr() string { return o.ln.Addr().String() }
func (o *originServer) Close()       { o.srv.Close() }
