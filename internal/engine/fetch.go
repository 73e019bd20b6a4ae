package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"strings"
	"time"
)

// told passes a written range of the .part to the request's Written.
func (t *transfer) told(start, end int64) {
	if t.req.Written != nil {
		t.req.Written(start, end)
	}
}

// rangeRequest sends a GET for bytes [start, end) of the file (end < 0:
// to the end; start 0 and end < 0: no Range at all). After a redirect the
// final URL is reused; credentials never go to another host.
func (d *Downloader) rangeRequest(ctx context.Context, t *transfer, start, end int64) (*http.Response, string, error) {
	t.mu.Lock()
	target := t.req.URL
	if t.resolved != "" {
		target = t.resolved
	}
	etag, lastModified := t.state.ETag, t.state.LastModified
	t.mu.Unlock()
	extra := http.Header{"Accept-Encoding": {"identity"}}
	if start > 0 || end >= 0 {
		if end >= 0 {
			extra.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end-1))
		} else {
			extra.Set("Range", fmt.Sprintf("bytes=%d-", start))
		}
		// If-Range makes a changed file come back whole (200) instead of
		// spliced. RFC 9110 §13.1.5: only a strong ETag may be used.
		if etag != "" && !strings.HasPrefix(etag, "W/") {
			extra.Set("If-Range", etag)
		} else if lastModified != "" {
			extra.Set("If-Range", lastModified)
		}
	}
	headers := t.req.Header
	if !sameHost(target, t.req.URL) {
		headers = withoutAuth(headers) // never hand the origin's credentials to the CDN
	}
	resp, err := d.send(ctx, http.MethodGet, target, headers, extra)
	if err != nil {
		return nil, target, err
	}
	if final := resp.Request.URL.String(); final != target {
		t.mu.Lock()
		if t.resolved == "" {
			t.resolved = final
		}
		t.mu.Unlock()
	}
	return resp, target, nil
}

// changed reports a 206 from another version of the file than the one
// the .part holds: a server that ignores If-Range still sends the new
// validators, and splicing two versions is what must never happen.
func (t *transfer) changed(resp *http.Response) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if etag := resp.Header.Get("ETag"); t.state.ETag != "" && etag != "" {
		return etag != t.state.ETag
	}
	if lm := resp.Header.Get("Last-Modified"); t.state.LastModified != "" && lm != "" {
		return lm != t.state.LastModified
	}
	return false
}

// unwanted turns an unexpected status into an error; a presigned CDN URL
// that expired (403/404/410 on the redirect target) is forgotten so the
// next attempt resolves the original URL again.
func (t *transfer) unwanted(resp *http.Response, target string) error {
	err := StatusErrorFrom(resp)
	expired := resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 410
	if !expired || target == t.req.URL {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.resolved == target { // another connection may have re-resolved already
		t.resolved = ""
	}
	return &retryNowError{err}
}

// fetch makes one request and copies its body into the .part. When the
// server proves it can serve ranges and the file is large, the transfer
// continues over several connections (segments.go). A download without a
// path yet is named by this first answer (adoptName): one round trip per
// file, no HEAD before the GET (issue 22).
func (d *Downloader) fetch(ctx context.Context, t *transfer) error {
	if t.state.Segments != nil {
		return d.fetchSegments(ctx, t, nil, 0)
	}
	start := t.offset
	if t.noRange {
		start = 0
	}
	end := int64(-1)
	if d.mayChunk(t, start) {
		// A file that may be split is asked for a chunk at a time, so
		// that no request is ever cut short: a small one comes whole.
		end = start + d.firstChunk()
	}
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, target, err := d.rangeRequest(reqCtx, t, start, end)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if t.path == "" && (resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
		if err := d.adoptName(ctx, t, resp); err != nil {
			return err
		}
		if t.offset > 0 || t.state.Segments != nil {
			// Our own interrupted download, under the name the server
			// gives: resume it instead of taking this answer from byte 0.
			resp.Body.Close()
			return d.fetch(ctx, t)
		}
	}

	respEnd := int64(-1) // where this answer's bytes end, when it says
	switch resp.StatusCode {
	case http.StatusOK:
		if t.offset > 0 {
			d.log.Info("server sent the whole file instead of a range; starting over", "url", RedactURL(t.req.URL))
			if err := d.restart(t); err != nil {
				return err
			}
		}
		t.noRange = false
		if err := d.adopt(t, resp, resp.ContentLength); err != nil {
			return err
		}
	case http.StatusPartialContent:
		cr, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || cr.start != t.offset || (t.state.Size >= 0 && cr.total >= 0 && cr.total != t.state.Size) || t.changed(resp) {
			// Never splice bytes we did not ask for: start over without Range.
			t.noRange = true
			if rerr := d.restart(t); rerr != nil {
				return rerr
			}
			return &retryNowError{fmt.Errorf("server answered %q to a request for bytes %d-: starting over", resp.Header.Get("Content-Range"), t.offset)}
		}
		if t.state.Size < 0 && cr.total >= 0 {
			if err := d.checkSize(t, cr.total); err != nil {
				return err
			}
			t.state.Size = cr.total
		}
		if t.offset == 0 && t.state.ETag == "" && t.state.LastModified == "" {
			t.state.ETag, t.state.LastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		}
		respEnd = cr.end + 1
	case http.StatusRequestedRangeNotSatisfiable:
		total := int64(-1)
		if cr, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			total = cr.total
		}
		if total < 0 {
			total = t.state.Size
		}
		if total >= 0 && t.offset == total {
			t.state.Size = total
			return nil // we already have every byte (or the file is empty)
		}
		if start == 0 {
			t.noRange = true // a server that refuses a range of a file it has
		}
		if err := d.restart(t); err != nil {
			return err
		}
		return &retryNowError{fmt.Errorf("server refused to resume at byte %d (file size %d): starting over", t.offset, total)}
	default:
		return t.unwanted(resp, target)
	}
	// The size is known from here on: refuse before the first body byte
	// is read (and before a multi-connection .part is preallocated).
	if t.state.Size >= 0 {
		if err := d.checkSpace(t, t.state.Size-t.offset); err != nil {
			return err
		}
	}
	if d.canSplit(t, resp) {
		if respEnd < 0 {
			respEnd = t.state.Size
		}
		return d.fetchSegments(ctx, t, resp, respEnd)
	}
	if err := d.copyBody(reqCtx, cancel, t, resp.Body, respEnd); err != nil {
		return err
	}
	if respEnd >= 0 && t.offset < t.state.Size {
		return &retryNowError{fmt.Errorf("the server sent bytes %d-%d of %d: asking for the rest", start, respEnd-1, t.state.Size)}
	}
	return nil
}

// mayChunk says whether the request from start should ask for the first
// chunk only: the file may be split over several connections, and is not
// known to be small.
func (d *Downloader) mayChunk(t *transfer, start int64) bool {
	return t.req.Connections > 1 && !t.noSplit && !t.noRange &&
		(t.state.Size < 0 || t.state.Size-start > d.firstChunk())
}

// adopt takes the size and validators of a fresh 200 response.
func (d *Downloader) adopt(t *transfer, resp *http.Response, size int64) error {
	if size >= 0 {
		if err := d.checkSize(t, size); err != nil {
			return err
		}
	}
	t.state.Size = size
	t.state.ETag = resp.Header.Get("ETag")
	t.state.LastModified = resp.Header.Get("Last-Modified")
	if t.state.Committed == 0 {
		// Not written yet: a sidecar that claims no bytes has nothing to
		// guard, and the first checkpoint writes it whole. A small file
		// is done before that, which saves a file creation per download.
		return nil
	}
	return writePartState(t.path, t.state)
}

// checkSize compares the server's size with the one the caller expects.
func (d *Downloader) checkSize(t *transfer, size int64) error {
	if t.req.Size > 0 && size != t.req.Size {
		return fmt.Errorf("server says %s is %d bytes, expected %d: %w", RedactURL(t.req.URL), size, t.req.Size, fault.ErrChecksumMismatch)
	}
	return nil
}

// copyBody streams the body into the .part, hashing as it writes, dropping
// the connection when no byte arrives for stallTimeout, and making progress
// durable every checkpointEvery. end is where the answer's bytes end (-1:
// at the end of the file).
func (d *Downloader) copyBody(ctx context.Context, cancel context.CancelCauseFunc, t *transfer, body io.Reader, end int64) error {
	watchdog := d.watchStall(cancel)
	defer watchdog.stop()
	hasher := d.newAsyncHasher(t.hash)
	buf := hasher.next()
	defer func() { hasher.close(buf) }()
	defer t.waitCheckpoint()
	lastCheckpoint := time.Now()
	limit := int64(-1)
	if t.state.Size >= 0 {
		limit = t.state.Size
	}
	for {
		n, rerr := body.Read(buf[:d.readSize(t)])
		if n > 0 {
			if err := d.throttle(ctx, watchdog, t, n); err != nil {
				return err
			}
			watchdog.got(n)
			if limit >= 0 && t.offset+int64(n) > limit {
				return fmt.Errorf("server sent more than the %d bytes it announced for %s", limit, RedactURL(t.req.URL))
			}
			if _, err := t.file.Write(buf[:n]); err != nil {
				return writeFailure(err, t.path, "writing")
			}
			t.told(t.offset, t.offset+int64(n))
			hasher.add(buf[:n])
			buf = hasher.next()
			t.offset += int64(n)
			t.moved.Add(int64(n))
			t.retry.Alive()
			if t.req.Progress != nil {
				t.req.Progress(t.offset, t.state.Size)
			}
			if time.Since(lastCheckpoint) >= d.CheckpointEvery {
				if err := d.checkpointAsync(t); err != nil {
					return err
				}
				lastCheckpoint = time.Now()
			}
		}
		if rerr == io.EOF {
			if limit >= 0 && t.offset < limit && (end < 0 || t.offset < end) {
				return connectionLost(t.offset, io.ErrUnexpectedEOF)
			}
			return nil
		}
		if rerr != nil {
			if cause := context.Cause(ctx); errors.Is(cause, fault.ErrStalled) {
				return fmt.Errorf("less than %d bytes in %s at byte %d: %w", d.lowSpeedBytes, d.StallTimeout, t.offset, fault.ErrStalled)
			}
			return connectionLost(t.offset, rerr)
		}
	}
}

func (d *Downloader) getBuffer() []byte {
	if p, ok := d.buffers.Get().(*[]byte); ok && len(*p) == d.BufferSize {
		return *p
	}
	return make([]byte, d.BufferSize)
}

func (d *Downloader) putBuffer(b []byte) {
	if len(b) == d.BufferSize {
		d.buffers.Put(&b)
	}
}

// readSize keeps reads small under a speed limit, so each wait is short.
func (d *Downloader) readSize(t *transfer) int {
	n := d.limiter.chunk(d.BufferSize)
	if t.req.Limiter != nil {
		n = min(n, t.req.Limiter.chunk(d.BufferSize))
	}
	return n
}

// throttle waits for the global and per-download limits. The stall
// watchdog is paused meanwhile: waiting on our own limit is not a stall.
func (d *Downloader) throttle(ctx context.Context, watchdog *stallWatch, t *transfer, n int) error {
	if d.limiter.Rate() <= 0 && t.req.Limiter.Rate() <= 0 {
		return nil
	}
	watchdog.pause()
	defer watchdog.resume()
	if err := d.limiter.WaitN(ctx, n); err != nil {
		return err
	}
	return t.req.Limiter.WaitN(ctx, n)
}

// stallWatch drops a connection that delivers fewer than lowSpeedBytes in
// stallTimeout, like curl's --speed-limit/--speed-time: a dead connection
// and a trickle of a byte a second are both stalls, retried elsewhere.
type stallWatch struct {
	timer    *time.Timer
	timeout  time.Duration
	minBytes int64
	received int64
}

func (d *Downloader) watchStall(cancel context.CancelCauseFunc) *stallWatch {
	return &stallWatch{
		timer:    time.AfterFunc(d.StallTimeout, func() { cancel(fault.ErrStalled) }),
		timeout:  d.StallTimeout,
		minBytes: max(d.lowSpeedBytes, 1),
	}
}

func (w *stallWatch) got(n int) {
	w.received += int64(n)
	if w.received >= w.minBytes {
		w.timer.Reset(w.timeout)
		w.received = 0
	}
}

func (w *stallWatch) pause() { w.timer.Stop() }

func (w *stallWatch) resume() {
	w.received = 0
	w.timer.Reset(w.timeout)
}

func (w *stallWatch) stop() { w.timer.Stop() }
