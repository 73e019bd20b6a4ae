package engine

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Doer is the one method the downloader needs from an HTTP client.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Downloader fetches one HTTP(S) resource into <path>.part, resuming
// with Range requests, and publishes it by rename once its size and digest
// are verified (SPEC §5). Every field a test may want to change is here.
type Downloader struct {
	Client          Doer
	log             *slog.Logger
	UserAgent       string
	Retries         int           // attempts after the first, when the request does not say
	Backoff         time.Duration // first retry delay; doubled each time, with jitter
	MaxBackoff      time.Duration
	MaxRetryAfter   time.Duration // cap on a server's Retry-After
	StallTimeout    time.Duration // fewer than lowSpeedBytes in this long drops the connection
	lowSpeedBytes   int64
	CheckpointEvery time.Duration // how often a running transfer makes its progress durable
	BufferSize      int

	Connections int                  // most connections per download, when the request does not say
	MinSegment  int64                // no connection gets less than this many bytes to fetch
	growEvery   time.Duration        // how long the first connection is watched before more are opened
	FastLink    float64              // bytes/s above which one connection is kept (the disk is the limit)
	hosts       *hostSlots           // per-host connection cap shared by all downloads
	limiter     *RateLimiter         // global speed limit over every download
	buffers     *sync.Pool           // *[]byte of bufferSize, so memory does not grow with connections
	folders     *disk.FolderSyncs    // renames in one folder share their fsync of it
	smallSyncs  *disk.SmallFileSyncs // small files finishing together share one syncfs
}

// Request describes one file transfer. See docs/ARCHITECTURE.md.
type Request struct {
	URL     string
	Dir     string      // folder for a name derived from the server (used when Path is "")
	Path    string      // explicit destination file; wins over Dir
	SHA256  string      // expected lower-case hex; "" = not checked
	Size    int64       // expected size when known in advance; 0 = unknown
	Header  http.Header // extra request headers
	Retries int         // attempts after the first; < 0 = the downloader's default
	// Connections caps parallel connections for this file; 0 = the
	// downloader's default, 1 = a single connection.
	Connections int
	// Limiter, when set, caps this download's speed (on top of the global
	// limit); the caller may change its rate while the download runs.
	Limiter *RateLimiter
	// Progress is called with the bytes on disk and the total (-1 when
	// unknown), from one goroutine at a time; it must be cheap.
	Progress func(done, total int64)
	OnPath   func(path string)
	// Region, when set, receives the bytes instead of Path+".part": a part
	// of another file (a blob's entry inside the model zip, zipplan.go).
	// Path then names only the resume sidecar; nothing is renamed, and an
	// existing file at Path is not taken for the download.
	Region PartFile
	// Hash, when set, is fed the bytes front to back instead of a plain
	// SHA-256 (on resume too); its Sum must be the SHA-256. The model zip
	// computes each entry's CRC-32 in that same pass.
	Hash hash.Hash
	// Written, when set, is told every range [start, end) of the .part
	// once its bytes are written there (not yet synced), from the
	// transfer's goroutines; start < 0 means the .part is about to be
	// emptied and every range told before is void. It lets a reader serve
	// the file while it arrives (the model cache); it must be cheap.
	Written func(start, end int64)
	// Verified, when set, is called once the whole file is in the .part
	// and matched the request's SHA-256, before it is synced and renamed:
	// what a reader held back may go out then.
	Verified func()
}

// PartFile is what a transfer writes into: the .part file or a Region.
type PartFile interface {
	io.ReadWriteSeeker
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
	Stat() (os.FileInfo, error)
}

// Result is what a finished transfer produced.
type Result struct {
	Path    string
	Size    int64
	SHA256  string // the verified sum; "" when the request named none
	Resumed int64  // bytes kept from an earlier, interrupted run

	// The server's validators of the published file ("" when it sent
	// none), kept so that a later run can ask whether it changed
	// (CheckUnchanged).
	ETag         string
	LastModified string
}

// Validators identify a published version of a URL's file: what
// CheckUnchanged compares with the server's answer.
type Validators struct {
	Size               int64
	ETag, LastModified string
}

func NewDownloader(client Doer, log *slog.Logger) *Downloader {
	return &Downloader{
		Client:          client,
		log:             log,
		UserAgent:       "ollama-model-downloader",
		Retries:         3,
		Backoff:         time.Second,
		MaxBackoff:      30 * time.Second,
		MaxRetryAfter:   5 * time.Minute,
		StallTimeout:    30 * time.Second,
		lowSpeedBytes:   1 << 10,
		CheckpointEvery: time.Second,
		BufferSize:      256 << 10,
		Connections:     16,
		MinSegment:      1 << 20,
		growEvery:       50 * time.Millisecond,
		FastLink:        200 << 20,
		hosts:           newHostSlots(16),
		limiter:         NewRateLimiter(0),
		buffers:         &sync.Pool{},
		folders:         &disk.FolderSyncs{},
		smallSyncs:      &disk.SmallFileSyncs{},
	}
}

// WithClient is the same engine — settings, buffers, host cap and speed
// limit shared — sending through another client (the registry's, which
// adds its token only for the registry host).
func (d *Downloader) WithClient(client Doer) *Downloader {
	c := *d
	c.Client = client
	return &c
}

// transfer is the state of one Download call.
type transfer struct {
	req     Request
	path    string
	state   PartState
	file    PartFile
	hash    hash.Hash
	offset  int64 // bytes in the .part that belong to the current state
	noRange bool  // the server gave a bad 206: fetch from 0 without Range
	noSplit bool  // ranges proved unreliable: one connection only

	ckptDone chan struct{} // closed when the background checkpoint ends
	ckptErr  error         // its failure; read only after ckptDone is closed

	probed    probeInfo // what a HEAD said, when one was sent (sizeKnown)
	claimed   bool      // this call created the empty .part that reserves the name
	claimFile *os.File  // that .part, open, for openPart

	mu       sync.Mutex // guards resolved and state while several connections run
	resolved string     // final URL after redirects, reused for Range requests
	resumed  int64
}

// Download fetches req.URL. A cancelled ctx keeps the .part for a later
// resume; a checksum mismatch deletes it.
func (d *Downloader) Download(ctx context.Context, req Request) (Result, error) {
	if err := CheckDownloadURL(req.URL); err != nil {
		return Result{}, err
	}
	if req.SHA256 != "" {
		req.SHA256 = strings.ToLower(req.SHA256)
		if !IsHex64(req.SHA256) {
			return Result{}, fault.BadInputf("sha256 must be 64 hexadecimal characters, got %q", req.SHA256)
		}
	}
	if req.Retries < 0 {
		req.Retries = d.Retries
	}
	if req.Connections <= 0 {
		req.Connections = d.Connections
	}
	t := &transfer{req: req, probed: probeInfo{size: -1}}
	if err := d.choosePath(ctx, t); err != nil {
		return Result{}, fault.OneLine(err)
	}
	if req.OnPath != nil {
		req.OnPath(t.path)
	}
	if req.Region == nil { // a region's owner knows what is done and checked the space for it
		if done, res, err := d.alreadyDone(ctx, t); done || err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(PartPath(t.path))
			}
			return res, fault.OneLine(err)
		}
		if err := d.checkSpaceAhead(t); err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(PartPath(t.path)) // a name reserved for nothing
			}
			return Result{}, err
		}
	}
	if err := d.openPart(t); err != nil {
		return Result{}, fault.OneLine(err)
	}
	res, err := d.run(ctx, t)
	if t.file != nil {
		t.file.Close()
	}
	return res, fault.OneLine(err)
}

// checkSpaceAhead refuses, before the first request for the body, a file
// whose size is already known (the caller's, or the HEAD's) that does not
// fit: it needs its size minus what the .part already holds for good.
func (d *Downloader) checkSpaceAhead(t *transfer) error {
	size := t.req.Size
	if size <= 0 {
		size = t.probed.size
	}
	if size <= 0 {
		return nil
	}
	return disk.CheckFreeSpace(filepath.Dir(t.path), size-durableBytes(t.path, t.req.URL, size))
}

// checkSpace refuses to fetch need more bytes of t's body into a file
// system that cannot hold them (need <= 0: nothing to check).
func (d *Downloader) checkSpace(t *transfer, need int64) error {
	return disk.CheckFreeSpace(filepath.Dir(t.path), need)
}

// CheckDownloadURL refuses anything but an absolute http(s) URL with a host.
func CheckDownloadURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fault.BadURLf("invalid URL %q: %v", RedactURL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fault.BadURLf("invalid URL %q: only http:// and https:// are supported", RedactURL(raw))
	}
	if u.Host == "" || u.Hostname() == "" {
		return fault.BadURLf("invalid URL %q: no host name", RedactURL(raw))
	}
	return nil
}

// choosePath decides where the file goes. An explicit Path is used as is;
// otherwise the server names it (Content-Disposition, else the URL), and an
// existing different file is never overwritten: "name (1).ext" is used.
func (d *Downloader) choosePath(ctx context.Context, t *transfer) error {
	if t.req.Path != "" {
		t.path = t.req.Path
		return nil
	}
	dir := t.req.Dir
	if dir == "" {
		dir = "."
	}
	info, err := d.probe(ctx, t)
	if err != nil {
		return err
	}
	t.probed = info
	name := info.name
	for i := 0; i < 1000; i++ {
		candidate := filepath.Join(dir, numberedName(name, i))
		if st, err := ReadPartState(candidate); err == nil {
			if st.URL == t.req.URL {
				t.path = candidate // our own interrupted download: resume it
				return nil
			}
			continue
		}
		if exists(candidate) || exists(PartPath(candidate)) {
			continue
		}
		// Claim the name before any byte is written: two downloads whose
		// servers name them alike must never share a .part.
		f, err := claimPart(candidate)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if disk.IsNoSpace(err) {
				return disk.FullError(err, candidate)
			}
			return fmt.Errorf("reserving %s: %w", candidate, err)
		}
		t.path, t.claimed, t.claimFile = candidate, true, f
		return nil
	}
	return fmt.Errorf("choosing a file name for %s: too many files named %q in %s", RedactURL(t.req.URL), name, dir)
}

// numberedName gives "name.ext", then "name (1).ext", "name (2).ext"…
func numberedName(name string, i int) string {
	if i == 0 {
		return name
	}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if strings.HasSuffix(strings.ToLower(base), ".tar") { // keep "x (1).tar.gz", not "x.tar (1).gz"
		ext = base[len(base)-4:] + ext
		base = base[:len(base)-4]
	}
	return fmt.Sprintf("%s (%d)%s", base, i, ext)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// run transfers with retries until the file is complete, then publishes it.
func (d *Downloader) run(ctx context.Context, t *transfer) (Result, error) {
	failures := 0
	var lastErr error
	for {
		before := t.offset
		err := d.fetch(ctx, t)
		if err == nil {
			return d.publish(ctx, t)
		}
		if ctx.Err() != nil {
			d.checkpoint(t)
			return Result{}, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		if !Retryable(err) {
			d.checkpoint(t)
			return Result{}, err
		}
		// A connection that moved the file forward is not a failure to
		// count: a flaky link that drops every few minutes still finishes.
		// A stall is always one, or a trickle would be retried forever.
		if madeProgress(t.offset-before, err) {
			failures = 0
		} else {
			failures++
		}
		lastErr = err
		if failures > t.req.Retries {
			d.checkpoint(t)
			return Result{}, fmt.Errorf("giving up after %s: %w", attemptsText(failures), lastErr)
		}
		delay := d.retryDelay(max(failures, 1), err)
		d.log.Warn("retrying", "url", RedactURL(t.req.URL), "after", delay.Round(time.Millisecond), "error", err)
		if err := Sleep(ctx, delay); err != nil {
			d.checkpoint(t)
			return Result{}, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
	}
}

// SetRateLimit changes the global speed limit (bytes/s, 0 = none) for every
// running and future download.
func (d *Downloader) SetRateLimit(bytesPerSecond int64) { d.limiter.SetRate(bytesPerSecond) }

// RateLimit is the global speed limit in bytes/s, 0 when unlimited.
func (d *Downloader) RateLimit() int64 { return d.limiter.Rate() }

// publish verifies the finished .part and renames it into place.
func (d *Downloader) publish(ctx context.Context, t *transfer) (Result, error) {
	want := t.req.Size
	if want <= 0 {
		want = t.state.Size
	}
	if want >= 0 && t.offset != want {
		return Result{}, fmt.Errorf("downloaded %d bytes of %s, expected %d: %w", t.offset, RedactURL(t.req.URL), want, fault.ErrChecksumMismatch)
	}
	sum := sha256Hex(t.hash)
	if t.req.SHA256 != "" && sum != t.req.SHA256 {
		t.file.Close()
		t.file = nil
		_ = RemovePartial(t.path)
		return Result{}, fmt.Errorf("verifying %s: got sha256 %s, expected %s: %w", RedactURL(t.req.URL), sum, t.req.SHA256, fault.ErrChecksumMismatch)
	}
	if t.req.Verified != nil {
		t.req.Verified()
	}
	syncStart := time.Now()
	var err error
	if t.req.Region == nil {
		err = d.smallSyncs.Sync(t.file, filepath.Dir(t.path), t.offset)
	} else {
		err = t.file.Sync()
	}
	if err != nil {
		return Result{}, writeFailure(err, t.path, "syncing")
	}
	d.log.Debug("synced before publishing", "file", PartPath(t.path), "took", time.Since(syncStart).Round(time.Millisecond))
	if err := t.file.Close(); err != nil {
		return Result{}, writeFailure(err, t.path, "closing")
	}
	t.file = nil
	if ctx.Err() != nil {
		return Result{}, context.Cause(ctx)
	}
	if t.req.Region == nil {
		if err := os.Rename(PartPath(t.path), t.path); err != nil {
			return Result{}, fmt.Errorf("publishing %s: %w", t.path, err)
		}
		_ = d.folders.Sync(filepath.Dir(t.path))
	}
	_ = os.Remove(SidecarPath(t.path))
	if t.req.Progress != nil {
		t.req.Progress(t.offset, t.offset)
	}
	return Result{Path: t.path, Size: t.offset, SHA256: sum, Resumed: t.resumed,
		ETag: t.state.ETag, LastModified: t.state.LastModified}, nil
}

// send makes one request with our User-Agent and the given headers.
func (d *Downloader) send(ctx context.Context, method, target string, headers, extra http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, fault.BadURLf("invalid URL %q: %v", RedactURL(target), err)
	}
	for k, vs := range headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", d.UserAgent)
	}
	if len(headers) > 0 && d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("request", "method", method, "url", RedactURL(target), "range", req.Header.Get("Range"), "headers", redactHeaders(headers))
	} else {
		d.log.Debug("request", "method", method, "url", RedactURL(target), "range", req.Header.Get("Range"))
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return nil, describeNetError(target, err)
	}
	d.log.Debug("response", "status", resp.StatusCode, "url", RedactURL(resp.Request.URL.String()),
		"length", resp.ContentLength, "content-range", resp.Header.Get("Content-Range"))
	return resp, nil
}

// contentRange is a parsed "bytes start-end/total" (total -1 for "*").
type contentRange struct{ start, end, total int64 }

// parseContentRange parses a Content-Range header (RFC 9110 §14.4),
// including the unsatisfied form "bytes */total".
func parseContentRange(v string) (contentRange, error) {
	bad := fmt.Errorf("invalid Content-Range %q", v)
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return contentRange{}, bad
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return contentRange{}, bad
	}
	cr := contentRange{start: -1, end: -1, total: -1}
	if total != "*" {
		n, err := strconv.ParseInt(total, 10, 64)
		if err != nil || n < 0 {
			return contentRange{}, bad
		}
		cr.total = n
	}
	if rng == "*" {
		if cr.total < 0 {
			return contentRange{}, bad
		}
		return cr, nil
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return contentRange{}, bad
	}
	var err1, err2 error
	cr.start, err1 = strconv.ParseInt(first, 10, 64)
	cr.end, err2 = strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || cr.start < 0 || cr.end < cr.start || (cr.total >= 0 && cr.end >= cr.total) {
		return contentRange{}, bad
	}
	return cr, nil
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host)
}

func withoutAuth(h http.Header) http.Header {
	out := h.Clone()
	if out != nil {
		out.Del("Authorization")
		out.Del("Cookie")
	}
	return out
}

// redactHeaders shows a download's own headers (a browser's cookies,
// referrer and user-agent) for a -v log line without their secrets: a
// cookie or an authorization is never written out, a referrer loses its
// query.
func redactHeaders(h http.Header) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		vs := h[k]
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		v := strings.Join(vs, ", ")
		switch k {
		case "Cookie", "Authorization", "Proxy-Authorization":
			v = fmt.Sprintf("[redacted, %d bytes]", len(v))
		case "Referer":
			v = RedactURL(v)
		}
		b.WriteString(k + ": " + v)
	}
	return b.String()
}

// RedactURL hides credentials and query strings: presigned CDN URLs carry
// their signature in the query, which is a secret.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}
