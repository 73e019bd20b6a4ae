package testkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Origin is a fake HTTP file server for tests, built from options, serving
// deterministic bytes so digests are fixed. It records what it was asked.
type Origin struct {
	*httptest.Server
	t    *testing.T
	opts originOptions

	mu       sync.Mutex
	data     []byte
	etag     string
	ranges   []string // Range header of every GET, "" for none
	IfRanges []string // If-Range header of every GET
	auths    []string // Authorization header of every request
	log      []originRequest

	throttle    atomic.Int64 // nanoseconds to pause after each 8 KiB; changeable while serving
	Inflight    atomic.Int64
	MaxInflight atomic.Int64 // most GETs served at the same time
	Requests    atomic.Int64
	Gets        atomic.Int64
	BytesSent   atomic.Int64
}

// originRequest is one request as the origin saw it.
type originRequest struct {
	Method, Range      string
	IfNoneMatch, IfMod string // conditional headers
	At                 time.Time
	Status             int // what it answered
}

type originOptions struct {
	size        int
	path        string
	noRanges    bool   // ignore Range, always 200 with the whole body
	failFirst   int    // answer the first N GETs with failStatus
	failStatus  int    // e.g. 503
	retryAfter  string // Retry-After header on failures
	dropAfter   int64  // on the first dropTimes GETs, cut the connection after this many body bytes
	dropTimes   int
	stallAfter  int64 // on the first stallTimes GETs, stop sending after this many bytes
	stallTimes  int
	lieRange    bool   // answer range requests with the wrong Content-Range
	disposition string // Content-Disposition header
	noHead      bool   // HEAD answers 405
	chunked     bool   // no Content-Length
	noValidator bool   // no ETag / Last-Modified
	claimRanges bool   // with noRanges: still say Accept-Ranges: bytes (a lying server)
	throttle    time.Duration
	chunk       int // bytes written between throttle pauses; 8 KiB when 0

	headFailFirst  int    // answer the first N HEADs with headFailStatus
	headFailStatus int    // e.g. 503
	headRetryAfter string // Retry-After header on those
	lastModified   string // Last-Modified header
	noETag         bool   // no ETag (Last-Modified still sent when set)
	noConditional  bool   // ignore If-None-Match / If-Modified-Since (never 304)
}

type OriginOption func(*originOptions)

func WithSize(n int) OriginOption { return func(o *originOptions) { o.size = n } }

func WithPath(p string) OriginOption { return func(o *originOptions) { o.path = p } }

func WithRanges(on bool) OriginOption { return func(o *originOptions) { o.noRanges = !on } }

func WithDisposition(v string) OriginOption { return func(o *originOptions) { o.disposition = v } }

func WithoutHead() OriginOption { return func(o *originOptions) { o.noHead = true } }

func WithFalseAcceptRanges() OriginOption {
	return func(o *originOptions) { o.noRanges, o.claimRanges = true, true }
}

func WithChunked() OriginOption { return func(o *originOptions) { o.chunked = true } }

func WithLyingRanges() OriginOption { return func(o *originOptions) { o.lieRange = true } }

func WithThrottle(d time.Duration) OriginOption { return func(o *originOptions) { o.throttle = d } }

// WithTrickle sends n bytes, then pauses, forever: a connection that is
// alive but useless.
func WithTrickle(n int, every time.Duration) OriginOption {
	return func(o *originOptions) { o.chunk, o.throttle = n, every }
}

func FailFirst(n, status int, retryAfter string) OriginOption {
	return func(o *originOptions) { o.failFirst, o.failStatus, o.retryAfter = n, status, retryAfter }
}

func DropAfter(k int64, times int) OriginOption {
	return func(o *originOptions) { o.dropAfter, o.dropTimes = k, times }
}

func FailFirstHead(n, status int, retryAfter string) OriginOption {
	return func(o *originOptions) { o.headFailFirst, o.headFailStatus, o.headRetryAfter = n, status, retryAfter }
}

func WithLastModified(v string) OriginOption { return func(o *originOptions) { o.lastModified = v } }

func WithoutETag() OriginOption { return func(o *originOptions) { o.noETag = true } }

func WithoutValidators() OriginOption { return func(o *originOptions) { o.noValidator = true } }

func WithoutConditional() OriginOption { return func(o *originOptions) { o.noConditional = true } }

func StallAfter(k int64, times int) OriginOption {
	return func(o *originOptions) { o.stallAfter, o.stallTimes = k, times }
}

// TestBytes is n deterministic, non-repeating-looking bytes.
func TestBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func Sha256Of(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func NewOrigin(t *testing.T, opts ...OriginOption) *Origin {
	t.Helper()
	o := &Origin{t: t, opts: originOptions{size: 300 << 10, path: "/files/data.bin", failStatus: 503}}
	for _, opt := range opts {
		opt(&o.opts)
	}
	o.data = TestBytes(o.opts.size, 1)
	o.throttle.Store(int64(o.opts.throttle))
	o.etag = `"v1"`
	o.Server = httptest.NewServer(http.HandlerFunc(o.Serve))
	t.Cleanup(o.Close)
	return o
}

// URL of the served file.
func (o *Origin) FileURL() string { return o.Server.URL + o.opts.path }

// SetThrottle changes the pause after each 8 KiB for later requests.
func (o *Origin) SetThrottle(d time.Duration) { o.throttle.Store(int64(d)) }

// Replace changes the file's content and ETag, as a new upload would.
func (o *Origin) Replace(data []byte, etag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.data, o.etag = data, etag
}

func (o *Origin) Content() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.data
}

// RequestLog is every request so far, in arrival order.
func (o *Origin) RequestLog() []originRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]originRequest(nil), o.log...)
}

// SetLastModified changes the Last-Modified header for later requests.
func (o *Origin) SetLastModified(v string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opts.lastModified = v
}

func (o *Origin) SeenRanges() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ranges...)
}

func (o *Origin) Serve(w http.ResponseWriter, r *http.Request) {
	o.Requests.Add(1)
	sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	w = sw
	o.mu.Lock()
	data, etag, lastModified := o.data, o.etag, o.opts.lastModified
	heads := 0
	for _, l := range o.log {
		if l.Method == http.MethodHead {
			heads++
		}
	}
	o.log = append(o.log, originRequest{Method: r.Method, Range: r.Header.Get("Range"),
		IfNoneMatch: r.Header.Get("If-None-Match"), IfMod: r.Header.Get("If-Modified-Since"), At: time.Now()})
	entry := len(o.log) - 1
	o.auths = append(o.auths, r.Header.Get("Authorization"))
	if r.Method == http.MethodGet {
		o.ranges = append(o.ranges, r.Header.Get("Range"))
		o.IfRanges = append(o.IfRanges, r.Header.Get("If-Range"))
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.log[entry].Status = sw.status
		o.mu.Unlock()
	}()
	if r.URL.EscapedPath() != o.opts.path {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodHead && o.opts.noHead {
		http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodHead && heads < o.opts.headFailFirst {
		if o.opts.headRetryAfter != "" {
			w.Header().Set("Retry-After", o.opts.headRetryAfter)
		}
		w.WriteHeader(o.opts.headFailStatus)
		return
	}
	var n int64
	if r.Method == http.MethodGet {
		now := o.Inflight.Add(1)
		defer o.Inflight.Add(-1)
		for {
			peak := o.MaxInflight.Load()
			if now <= peak || o.MaxInflight.CompareAndSwap(peak, now) {
				break
			}
		}
		n = o.Gets.Add(1)
		if n <= int64(o.opts.failFirst) {
			if o.opts.retryAfter != "" {
				w.Header().Set("Retry-After", o.opts.retryAfter)
			}
			http.Error(w, "try again later", o.opts.failStatus)
			return
		}
	}
	if o.opts.disposition != "" {
		w.Header().Set("Content-Disposition", o.opts.disposition)
	}
	if !o.opts.noValidator && !o.opts.noETag {
		w.Header().Set("ETag", etag)
	}
	if !o.opts.noValidator && lastModified != "" {
		w.Header().Set("Last-Modified", lastModified)
	}
	if !o.opts.noConditional && notModified(r, w.Header()) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var out io.Writer = w
	if r.Method == http.MethodGet {
		cw := &cuttingWriter{w: w, sent: &o.BytesSent, limit: -1, throttle: &o.throttle, chunk: o.opts.chunk, ctx: r}
		if n <= int64(o.opts.dropTimes) {
			cw.limit, cw.action = o.opts.dropAfter, "drop"
		}
		if n <= int64(o.opts.stallTimes) {
			cw.limit, cw.action = o.opts.stallAfter, "stall"
		}
		out = cw
	}
	rw := writerOverride{ResponseWriter: w, w: out}
	switch {
	case o.opts.chunked:
		w.WriteHeader(http.StatusOK)
		for chunk := range slicesChunk(data, 16<<10) {
			rw.Write(chunk)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
	case o.opts.noRanges || r.Header.Get("Range") == "":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if !o.opts.noRanges || o.opts.claimRanges {
			w.Header().Set("Accept-Ranges", "bytes")
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			rw.Write(data)
		}
	case o.opts.lieRange:
		start := ParseRangeStart(r.Header.Get("Range"))
		wrong := min(start+10, int64(len(data)-1))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", wrong, len(data)-1, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-int(wrong)))
		w.WriteHeader(http.StatusPartialContent)
		rw.Write(data[wrong:])
	default:
		http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// notModified applies If-None-Match (weak comparison) and, without it,
// If-Modified-Since to a GET or HEAD, as RFC 9110 §13.2.2 orders them.
func notModified(r *http.Request, h http.Header) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		etag := h.Get("ETag")
		return etag != "" && strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(etag, "W/")
	}
	ims, lm := r.Header.Get("If-Modified-Since"), h.Get("Last-Modified")
	if ims == "" || lm == "" {
		return false
	}
	since, err1 := http.ParseTime(ims)
	modified, err2 := http.ParseTime(lm)
	return err1 == nil && err2 == nil && !modified.After(since)
}

// statusRecorder notes the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func ParseRangeStart(h string) int64 {
	v, _, _ := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// writerOverride sends the body through w while keeping the real
// ResponseWriter's headers.
type writerOverride struct {
	http.ResponseWriter
	w io.Writer
}

func (o writerOverride) Write(p []byte) (int, error) { return o.w.Write(p) }

// cuttingWriter drops or stalls the connection after limit body bytes.
type cuttingWriter struct {
	w        http.ResponseWriter
	sent     *atomic.Int64
	written  int64
	limit    int64
	action   string
	throttle *atomic.Int64 // read before each chunk: SetThrottle acts on requests being served
	chunk    int
	ctx      *http.Request
}

func (c *cuttingWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		size := c.chunk
		if size <= 0 {
			size = 8 << 10
		}
		throttle := time.Duration(c.throttle.Load())
		if throttle > 0 && len(chunk) > size {
			chunk = chunk[:size]
		}
		if c.limit >= 0 && c.written+int64(len(chunk)) > c.limit {
			chunk = chunk[:c.limit-c.written]
			n, _ := c.w.Write(chunk)
			c.sent.Add(int64(n))
			c.w.(http.Flusher).Flush()
			if c.action == "stall" {
				select {
				case <-c.ctx.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
		n, err := c.w.Write(chunk)
		c.sent.Add(int64(n))
		c.written += int64(n)
		total += n
		if err != nil {
			return total, err
		}
		p = p[len(chunk):]
		if throttle > 0 {
			c.w.(http.Flusher).Flush()
			select {
			case <-c.ctx.Context().Done():
				return total, c.ctx.Context().Err()
			case <-time.After(throttle):
			}
		}
	}
	return total, nil
}
