// Command apiload measures the latency of GET /api/downloads on a running
// ollama-model-downloader under many concurrent pollers, the way the web
// UI polls it (issue 6: hundreds of downloads, dozens of open pages).
//
// It can first fill the queue: -add N adds N downloads of files served by
// its own slow origin on 127.0.0.1, so they stay queued or downloading
// while it measures, and cancels and clears them afterwards.
//
//	ollama-model-downloader -no-browser -port 8080 -output-dir /tmp/omd &
//	go run ./bench/apiload -server http://127.0.0.1:8080 -add 500 -pollers 50 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "base URL of the running server")
	token := flag.String("token", os.Getenv("OMD_TOKEN"), "access token, when the server needs one")
	add := flag.Int("add", 0, "downloads to add first from a slow local origin (cancelled and cleared at the end)")
	pollers := flag.Int("pollers", 50, "concurrent pollers")
	interval := flag.Duration("interval", 0, "pause between one poller's requests (0 = back to back; the UI uses 1s)")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	flag.Parse()

	if err := run(*server, *token, *add, *pollers, *interval, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

func run(server, token string, add, pollers int, interval, duration time.Duration) error {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: pollers},
		Timeout:   30 * time.Second, // whole JSON answers only; a stuck server fails the run
	}
	do := func(method, path string, body url.Values) (int, []byte, error) {
		req, err := http.NewRequest(method, server+path, strings.NewReader(body.Encode()))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	if add > 0 {
		origin, err := slowOrigin()
		if err != nil {
			return err
		}
		defer origin.Close()
		var lines []string
		for i := range add {
			lines = append(lines, fmt.Sprintf("http://%s/apiload-%d.bin", origin.Addr(), i))
		}
		code, body, err := do("POST", "/api/download/add", url.Values{"url": {strings.Join(lines, "\n")}})
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("adding %d downloads: %d %s %v", add, code, body, err)
		}
		defer func() {
			do("POST", "/api/downloads/cancel-all", url.Values{})
			do("POST", "/api/downloads/clear-finished", url.Values{})
		}()
	}
	code, body, err := do("GET", "/api/downloads", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /api/downloads: %d %v", code, err)
	}
	fmt.Printf("GET /api/downloads: %d downloads present, %d bytes per answer\n", strings.Count(string(body), `"id":`), len(body))

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
				code, _, err := do("GET", "/api/downloads", nil)
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
	fmt.Printf("%d pollers, %v: %d requests (%.0f/s), %d failed\n",
		pollers, duration, len(latencies), float64(len(latencies))/elapsed.Seconds(), failures)
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  max %v\n",
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond))
	return nil
}

// slowOrigin serves 64 MiB files at a trickle on 127.0.0.1, so that the
// added downloads stay in the queue while the pollers measure.
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
