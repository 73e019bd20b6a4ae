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
	"sync/atomic"
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
	Retries         int           // failed attempts in a row (moving nothing) allowed, when the request does not say; < 0 = no count
	RetryFor        time.Duration // longest run of failures without progress before giving up; 0 = no limit
	Backoff         time.Duration // first retry delay; doubled each time, with jitter
	MaxBackoff      time.Duration
	MaxRetryAfter   time.Duration // cap on a server's Retry-After
	StallTimeout    time.Duration // fewer than lowSpeedBytes in this long drops the connection
	lowSpeedBytes   int64
	progressBytes   int64         // an attempt that moved this many bytes before failing made progress (madeProgress)
	headBelowFree   int64         // a download named by its server asks with a HEAD first when its folder has less free
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
	recovered   *Signal              // fired when a transfer that waited out a failure moves again
}

// Request describes one file transfer. See docs/ARCHITECTURE.md.
type Request struct {
	URL    string
	Dir    string      // folder for a name derived from the server (used when Path is "")
	Path   string      // explicit destination file; wins over Dir
	SHA256 string      // expected lower-case hex; "" = not checked
	Size   int64       // expected size when known in advance; 0 = unknown
	Header http.Header // extra request headers
	// Retries is how many failed attempts in a row that moved nothing are
	// retried (the downloader's RetryFor applies too); < 0 = the
	// downloader's Retries.
	Retries int
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
	// Waiting, when set, hears when the transfer starts waiting out a
	// transient failure (the network is down, the server busy) and, with
	// the zero Wait, when it tries again.
	Waiting func(Wait)
	// TryNow, when set, ends such a wait at once when it fires.
	TryNow *Signal
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
		Retries:         -1,
		RetryFor:        DefaultRetryFor,
		Backoff:         time.Second,
		MaxBackoff:      30 * time.Second,
		MaxRetryAfter:   5 * time.Minute,
		StallTimeout:    30 * time.Second,
		lowSpeedBytes:   1 << 10,
		progressBytes:   64 << 10,
		headBelowFree:   1 << 30,
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
		recovered:       &Signal{},
	}
}

// DefaultRetryFor is how long a download waits out failures that may pass
// (the network is down, the server busy) before it gives up, unless told
// otherwise (-retry-for): a night's outage is waited out (issue 22).
const DefaultRetryFor = 24 * time.Hour

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
	retry     *Retrier
	moved     atomic.Int64 // bytes written into the .part by this call
	hashed    int64        // a segmented attempt left hash covering [0, hashed): the next one goes on from there
	claimed   bool         // this call created the empty .part that reserves the name
	claimFile *os.File     // that .part, open, for openPart

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
	t := &transfer{req: req, probed: probeInfo{size: -1}, state: PartState{URL: req.URL, Size: -1}}
	t.retry = d.NewRetrier(req.Retries, req.Waiting, req.TryNow)
	t.path = req.Path
	if t.path == "" {
		t.path = d.ownPart(t)
	}
	if t.path == "" && d.lowOnSpace(t) {
		// A disk nearly full: a HEAD first, so that a body that cannot
		// be kept is not sent at all (the GET-first way would have the
		// server send a first chunk before its size is known).
		info, err := d.probe(ctx, t)
		if err != nil {
			return Result{}, fault.OneLine(err)
		}
		t.probed = info
		if err := d.choosePath(t, info.name); err != nil {
			return Result{}, fault.OneLine(err)
		}
	}
	if t.path == "" {
		// The first answer names the file (adoptName): one request for
		// a small file, no HEAD before it.
		if req.Size > 0 {
			if err := disk.CheckFreeSpace(t.dir(), req.Size); err != nil {
				return Result{}, err
			}
		}
	} else if res, done, err := d.prepare(ctx, t); done || err != nil {
		return res, fault.OneLine(err)
	}
	res, err := d.run(ctx, t)
	if t.file != nil {
		t.file.Close()
	}
	if err != nil && t.claimed && t.req.Region == nil && t.moved.Load() == 0 {
		// This call named the file and kept none of it: the name is not
		// held for nothing (a rerun would become "name (1).ext").
		_ = RemovePartial(t.path)
	}
	return res, fault.OneLine(err)
}

// prepare readies a transfer whose path is known: a finished file there
// ends it (alreadyDone), a known size must fit, the .part is opened.
func (d *Downloader) prepare(ctx context.Context, t *transfer) (Result, bool, error) {
	if t.req.OnPath != nil {
		t.req.OnPath(t.path)
	}
	if t.req.Region == nil { // a region's owner knows what is done and checked the space for it
		if done, res, err := d.alreadyDone(ctx, t); done || err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(PartPath(t.path))
			}
			return res, true, err
		}
		if err := d.checkSpaceAhead(t); err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(PartPath(t.path)) // a name reserved for nothing
			}
			return Result{}, true, err
		}
	}
	return Result{}, false, d.openPart(t)
}

// lowOnSpace says whether the folder a download is named into has less
// than headBelowFree free (or cannot say).
func (d *Downloader) lowOnSpace(t *transfer) bool {
	free, err := disk.FreeSpace(t.dir())
	return err == nil && free < d.headBelowFree
}

// dir is the folder a download without a path is named into.
func (t *transfer) dir() string {
	if t.req.Dir == "" {
		return "."
	}
	return t.req.Dir
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

// ownPart finds this URL's own interrupted download under the name the
// URL suggests ("name.ext", "name (1).ext"…), by the URL its sidecar
// keeps: a rerun resumes it with a Range request instead of fetching
// from byte 0. "" when there is none (the first answer then names the
// file).
func (d *Downloader) ownPart(t *transfer) string {
	u, err := url.Parse(t.req.URL)
	if err != nil {
		return ""
	}
	name := fileNameFrom("", u, t.req.URL)
	for i := 0; i < 1000; i++ {
		candidate := filepath.Join(t.dir(), NumberedName(name, i))
		if !exists(PartPath(candidate)) {
			if !exists(candidate) {
				return "" // names are taken in order: none further
			}
			continue
		}
		if st, err := ReadPartState(candidate); err == nil && st.URL == t.req.URL && !exists(candidate) {
			return candidate
		}
	}
	return ""
}

// adoptName names a download from the server's first answer
// (Content-Disposition, else the final URL), claims the name and opens
// the .part. An existing different file is never overwritten: "name
// (1).ext" is used; this URL's own interrupted download under that name is
// resumed.
func (d *Downloader) adoptName(ctx context.Context, t *transfer, resp *http.Response) error {
	name := fileNameFrom(resp.Header.Get("Content-Disposition"), resp.Request.URL, t.req.URL)
	if size := answerSize(resp); size > 0 {
		if err := disk.CheckFreeSpace(t.dir(), size); err != nil {
			return err // before the name is claimed: nothing is left behind
		}
	}
	if err := d.choosePath(t, name); err != nil {
		return fault.OneLine(err)
	}
	if t.req.OnPath != nil {
		t.req.OnPath(t.path)
	}
	return d.openPart(t)
}

// answerSize is the size of the file an answer is part of (-1: unknown).
func answerSize(resp *http.Response) int64 {
	if resp.StatusCode == http.StatusPartialContent {
		if cr, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			return cr.total
		}
		return -1
	}
	return resp.ContentLength
}

// choosePath picks the file name in the download's folder: name, or the
// first "name (n).ext" that is free (or this URL's own .part), claimed
// with an empty .part before any byte is written.
func (d *Downloader) choosePath(t *transfer, name string) error {
	dir := t.dir()
	for i := 0; i < 1000; i++ {
		candidate := filepath.Join(dir, NumberedName(name, i))
		if exists(candidate) {
			continue // a finished file is never overwritten
		}
		// Claim the name before any byte is written: two downloads whose
		// servers name them alike must never share a .part. The common
		// case, a free name, costs this one open.
		f, err := claimPart(candidate)
		switch {
		case err == nil:
			t.path, t.claimed, t.claimFile = candidate, true, f
			return nil
		case errors.Is(err, os.ErrExist):
			if st, err := ReadPartState(candidate); err == nil && st.URL == t.req.URL {
				t.path = candidate // our own interrupted download: resume it
				return nil
			}
		case disk.IsNoSpace(err):
			return disk.FullError(err, candidate)
		default:
			return fmt.Errorf("reserving %s: %w", candidate, err)
		}
	}
	return fmt.Errorf("choosing a file name for %s: too many files named %q in %s", RedactURL(t.req.URL), name, dir)
}

// NumberedName gives "name.ext", then "name (1).ext", "name (2).ext"…
func NumberedName(name string, i int) string {
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

// run transfers until the file is complete, then publishes it. A failure
// that may pass is waited out (Retrier); progress is made durable first,
// so a kill during a long wait loses nothing.
func (d *Downloader) run(ctx context.Context, t *transfer) (Result, error) {
	t.retry = d.NewRetrier(t.req.Retries, t.req.Waiting, t.req.TryNow)
	for {
		before := t.moved.Load()
		err := d.fetch(ctx, t)
		if err == nil {
			t.retry.Alive()
			return d.publish(ctx, t)
		}
		d.checkpoint(t)
		if err := t.retry.Failed(ctx, err, d.madeProgress(t.moved.Load()-before, err)); err != nil {
			return Result{}, err
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
		// "Completed" must mean the rename survives a power cut. The file
		// is complete and verified and stays; only the promise fails.
		if err := d.folders.Sync(filepath.Dir(t.path)); err != nil {
			return Result{}, &diskError{fmt.Errorf("%s is complete, but its folder could not be synced, so it may not survive a power cut: %w", t.path, err)}
		}
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
		return nil, DescribeNetError(target, err)
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
