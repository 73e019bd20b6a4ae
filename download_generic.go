package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// httpDoer is the one method the downloader needs from an HTTP client.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// rangeDownloader fetches one HTTP(S) resource into <path>.part, resuming
// with Range requests, and publishes it by rename once its size and digest
// are verified (SPEC §5). Every field a test may want to change is here.
type rangeDownloader struct {
	client          httpDoer
	log             *slog.Logger
	userAgent       string
	retries         int           // attempts after the first, when the request does not say
	backoff         time.Duration // first retry delay; doubled each time, with jitter
	maxBackoff      time.Duration
	maxRetryAfter   time.Duration // cap on a server's Retry-After
	stallTimeout    time.Duration // fewer than lowSpeedBytes in this long drops the connection
	lowSpeedBytes   int64
	checkpointEvery time.Duration // how often a running transfer makes its progress durable
	bufferSize      int

	connections int             // most connections per download, when the request does not say
	minSegment  int64           // no connection gets less than this many bytes to fetch
	growEvery   time.Duration   // how long the first connection is watched before more are opened
	fastLink    float64         // bytes/s above which one connection is kept (the disk is the limit)
	hosts       *hostSlots      // per-host connection cap shared by all downloads
	limiter     *rateLimiter    // global speed limit over every download
	buffers     *sync.Pool      // *[]byte of bufferSize, so memory does not grow with connections
	folders     *folderSyncs    // renames in one folder share their fsync of it
	smallSyncs  *smallFileSyncs // small files finishing together share one syncfs
}

// fileRequest describes one file transfer. See docs/ARCHITECTURE.md.
type fileRequest struct {
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
	Limiter *rateLimiter
	// Progress is called with the bytes on disk and the total (-1 when
	// unknown), from one goroutine at a time; it must be cheap.
	Progress func(done, total int64)
	OnPath   func(path string)
	// Region, when set, receives the bytes instead of Path+".part": a part
	// of another file (a blob's entry inside the model zip, zipplan.go).
	// Path then names only the resume sidecar; nothing is renamed, and an
	// existing file at Path is not taken for the download.
	Region partFile
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

// partFile is what a transfer writes into: the .part file or a Region.
type partFile interface {
	io.ReadWriteSeeker
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
	Stat() (os.FileInfo, error)
}

// fileResult is what a finished transfer produced.
type fileResult struct {
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

// fileValidators identify a published version of a URL's file: what
// CheckUnchanged compares with the server's answer.
type fileValidators struct {
	Size               int64
	ETag, LastModified string
}

// partState is the sidecar <path>.part.json: what the .part holds and which
// validators to send with If-Range, so a resume after a restart is safe.
type partState struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"`      // -1 when the server did not say
	Committed    int64  `json:"committed"` // bytes synced to disk; the tail beyond is not trusted

	// Segments, when set, are the byte ranges [start, end) still missing
	// from a multi-connection download, as of the last sync.
	Segments [][2]int64 `json:"segments,omitempty"`
}

func newRangeDownloader(client httpDoer, log *slog.Logger) *rangeDownloader {
	return &rangeDownloader{
		client:          client,
		log:             log,
		userAgent:       "ollama-model-downloader",
		retries:         3,
		backoff:         time.Second,
		maxBackoff:      30 * time.Second,
		maxRetryAfter:   5 * time.Minute,
		stallTimeout:    30 * time.Second,
		lowSpeedBytes:   1 << 10,
		checkpointEvery: time.Second,
		bufferSize:      256 << 10,
		connections:     16,
		minSegment:      1 << 20,
		growEvery:       50 * time.Millisecond,
		fastLink:        200 << 20,
		hosts:           newHostSlots(16),
		limiter:         newRateLimiter(0),
		buffers:         &sync.Pool{},
		folders:         &folderSyncs{},
		smallSyncs:      &smallFileSyncs{},
	}
}

// withClient is the same engine — settings, buffers, host cap and speed
// limit shared — sending through another client (the registry's, which
// adds its token only for the registry host).
func (d *rangeDownloader) withClient(client httpDoer) *rangeDownloader {
	c := *d
	c.client = client
	return &c
}

func partPath(path string) string    { return path + ".part" }
func sidecarPath(path string) string { return path + ".part.json" }
func sha256Hex(h hash.Hash) string   { return hex.EncodeToString(h.Sum(nil)) }

// newFileHash is what a transfer feeds its bytes to: SHA-256 when a
// checksum is to be verified (model blobs, -sha256), else nothing. Hashing
// costs a core at 1.7 GB/s, and an unchecked sum would only be thrown away.
func newFileHash(want string) hash.Hash {
	if want == "" {
		return noHash{}
	}
	return sha256.New()
}

// noHash is a hash.Hash that ignores its input; its sum is empty.
type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }
func (noHash) Sum(b []byte) []byte         { return b }
func (noHash) Reset()                      {}
func (noHash) Size() int                   { return 0 }
func (noHash) BlockSize() int              { return sha256.BlockSize }
func isHex64(s string) bool                { _, err := hex.DecodeString(s); return err == nil && len(s) == 64 }
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// removePartial deletes the partial data of path (its .part and sidecar);
// used when a download is cancelled.
func removePartial(path string) error {
	var first error
	var more []string
	for _, p := range []string{partPath(path), sidecarPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			if first == nil {
				first = err
			} else {
				more = append(more, err.Error()) // one line: never errors.Join's
			}
		}
	}
	removeSidecarTemps(path)
	if len(more) > 0 {
		return fmt.Errorf("%w; %s", first, strings.Join(more, "; "))
	}
	return first
}

// removeSidecarTemps deletes the temp files (writeFileAtomic's
// "<sidecar>.tmp-<digits>") that a process killed while replacing path's
// sidecar left behind.
func removeSidecarTemps(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(sidecarPath(path))+".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// transfer is the state of one Download call.
type transfer struct {
	req     fileRequest
	path    string
	state   partState
	file    partFile
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
func (d *rangeDownloader) Download(ctx context.Context, req fileRequest) (fileResult, error) {
	if err := checkDownloadURL(req.URL); err != nil {
		return fileResult{}, err
	}
	if req.SHA256 != "" {
		req.SHA256 = strings.ToLower(req.SHA256)
		if !isHex64(req.SHA256) {
			return fileResult{}, badInputf("sha256 must be 64 hexadecimal characters, got %q", req.SHA256)
		}
	}
	if req.Retries < 0 {
		req.Retries = d.retries
	}
	if req.Connections <= 0 {
		req.Connections = d.connections
	}
	t := &transfer{req: req, probed: probeInfo{size: -1}}
	if err := d.choosePath(ctx, t); err != nil {
		return fileResult{}, oneLine(err)
	}
	if req.OnPath != nil {
		req.OnPath(t.path)
	}
	if req.Region == nil { // a region's owner knows what is done and checked the space for it
		if done, res, err := d.alreadyDone(ctx, t); done || err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(partPath(t.path))
			}
			return res, oneLine(err)
		}
		if err := d.checkSpaceAhead(t); err != nil {
			if t.claimed {
				t.claimFile.Close()
				_ = os.Remove(partPath(t.path)) // a name reserved for nothing
			}
			return fileResult{}, err
		}
	}
	if err := d.openPart(t); err != nil {
		return fileResult{}, oneLine(err)
	}
	res, err := d.run(ctx, t)
	if t.file != nil {
		t.file.Close()
	}
	return res, oneLine(err)
}

// checkSpaceAhead refuses, before the first request for the body, a file
// whose size is already known (the caller's, or the HEAD's) that does not
// fit: it needs its size minus what the .part already holds for good.
func (d *rangeDownloader) checkSpaceAhead(t *transfer) error {
	size := t.req.Size
	if size <= 0 {
		size = t.probed.size
	}
	if size <= 0 {
		return nil
	}
	return checkFreeSpace(filepath.Dir(t.path), size-durableBytes(t.path, t.req.URL, size))
}

// durableBytes is how much of path's .part a resume of url (a file of
// size bytes) will keep: what its sidecar vouches for.
func durableBytes(path, url string, size int64) int64 {
	st, err := readPartState(path)
	if err != nil || st.URL != url || (st.Size >= 0 && st.Size != size) {
		return 0
	}
	fi, err := os.Stat(partPath(path))
	if err != nil {
		return 0
	}
	if st.Segments != nil {
		if fi.Size() != st.Size {
			return 0
		}
		return st.saved()
	}
	return min(st.Committed, fi.Size())
}

// checkSpace refuses to fetch need more bytes of t's body into a file
// system that cannot hold them (need <= 0: nothing to check).
func (d *rangeDownloader) checkSpace(t *transfer, need int64) error {
	return checkFreeSpace(filepath.Dir(t.path), need)
}

// checkDownloadURL refuses anything but an absolute http(s) URL with a host.
func checkDownloadURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return badURLf("invalid URL %q: %v", redactURL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return badURLf("invalid URL %q: only http:// and https:// are supported", redactURL(raw))
	}
	if u.Host == "" || u.Hostname() == "" {
		return badURLf("invalid URL %q: no host name", redactURL(raw))
	}
	return nil
}

// choosePath decides where the file goes. An explicit Path is used as is;
// otherwise the server names it (Content-Disposition, else the URL), and an
// existing different file is never overwritten: "name (1).ext" is used.
func (d *rangeDownloader) choosePath(ctx context.Context, t *transfer) error {
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
		if st, err := readPartState(candidate); err == nil {
			if st.URL == t.req.URL {
				t.path = candidate // our own interrupted download: resume it
				return nil
			}
			continue
		}
		if exists(candidate) || exists(partPath(candidate)) {
			continue
		}
		// Claim the name before any byte is written: two downloads whose
		// servers name them alike must never share a .part.
		f, err := claimPart(candidate)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if isNoSpace(err) {
				return diskFullError(err, candidate)
			}
			return fmt.Errorf("reserving %s: %w", candidate, err)
		}
		t.path, t.claimed, t.claimFile = candidate, true, f
		return nil
	}
	return fmt.Errorf("choosing a file name for %s: too many files named %q in %s", redactURL(t.req.URL), name, dir)
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

// probeInfo is what a HEAD (or a 0-0 range GET) says about a resource.
type probeInfo struct {
	name               string
	size               int64 // -1 when unknown
	etag, lastModified string
	notModified        bool // a conditional request was answered 304
}

// probe asks the server for the name and size without fetching the body.
func (d *rangeDownloader) probe(ctx context.Context, t *transfer) (probeInfo, error) {
	return d.ask(ctx, t.req.URL, t.req.Header, t.req.Retries, nil)
}

// ask sends a HEAD (with the conditional headers cond, if any), retrying
// as a download does and honouring a Retry-After. Some servers refuse HEAD
// (405, 403 from presigned URLs signed for GET): then a GET for the first
// byte answers the same questions, and its body is not read.
func (d *rangeDownloader) ask(ctx context.Context, rawURL string, header http.Header, retries int, cond http.Header) (probeInfo, error) {
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, d.retryDelay(attempt, lastErr)); err != nil {
				return probeInfo{}, fmt.Errorf("asking %s about the file: %w", redactURL(rawURL), err)
			}
		}
		info, err := d.askOnce(ctx, rawURL, header, cond)
		if err == nil {
			return info, nil
		}
		if ctx.Err() != nil {
			return probeInfo{}, fmt.Errorf("asking %s about the file: %w", redactURL(rawURL), ctx.Err())
		}
		lastErr = err
		if !retryable(err) {
			break
		}
	}
	return probeInfo{}, lastErr
}

func (d *rangeDownloader) askOnce(ctx context.Context, rawURL string, header, cond http.Header) (probeInfo, error) {
	resp, err := d.send(ctx, http.MethodHead, rawURL, header, cond)
	if err == nil && resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		resp.Body.Close()
		if asksToWait(resp) {
			// "Come back later", not "no HEAD here": the next request,
			// HEAD or GET, waits as long as the server asked.
			return probeInfo{}, statusErrorFrom(resp)
		}
		resp = nil
	}
	if resp == nil {
		extra := http.Header{"Range": {"bytes=0-0"}, "Accept-Encoding": {"identity"}}
		for k, v := range cond {
			extra[k] = v
		}
		resp, err = d.send(ctx, http.MethodGet, rawURL, header, extra)
		if err != nil {
			return probeInfo{}, err
		}
	}
	defer resp.Body.Close()
	info := probeInfo{size: -1, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	switch resp.StatusCode {
	case http.StatusOK:
		// For a GET that ignored Range this is the whole body; it is closed unread.
		info.size = resp.ContentLength
	case http.StatusPartialContent:
		if cr, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			info.size = cr.total
		}
	case http.StatusNotModified:
		if cond == nil {
			return probeInfo{}, statusErrorFrom(resp)
		}
		info.notModified = true
	default:
		if resp.StatusCode/100 == 2 {
			break // 203, 204…: an answer, without a size
		}
		return probeInfo{}, statusErrorFrom(resp)
	}
	info.name = fileNameFrom(resp.Header.Get("Content-Disposition"), resp.Request.URL, rawURL)
	return info, nil
}

// asksToWait reports an answer that says "try again later" and when.
func asksToWait(resp *http.Response) bool {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	_, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return ok
}

// CheckUnchanged asks the server whether rawURL still serves the version
// that was published with the validators prev, without fetching a byte of
// the body: a conditional HEAD (a GET of byte 0 when HEAD is refused), with
// the downloader's retries, Retry-After, proxies and redirects. Unchanged
// is a 304, the same ETag (weak comparison), or else the same
// Last-Modified and size, or, when there are no validators at all, the
// same size. A failure to ask is returned; the caller decides.
func (d *rangeDownloader) CheckUnchanged(ctx context.Context, rawURL string, prev fileValidators) (bool, error) {
	if err := checkDownloadURL(rawURL); err != nil {
		return false, err
	}
	cond := http.Header{}
	if prev.ETag != "" {
		cond.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		cond.Set("If-Modified-Since", prev.LastModified)
	}
	info, err := d.ask(ctx, rawURL, nil, d.retries, cond)
	if err != nil {
		return false, oneLine(fmt.Errorf("checking whether %s changed: %w", redactURL(rawURL), err))
	}
	return info.notModified || prev.sameAs(info), nil
}

// sameAs compares a published version with what the server says now.
func (prev fileValidators) sameAs(now probeInfo) bool {
	sizeKnownSame := now.size >= 0 && now.size == prev.Size
	switch {
	case prev.ETag != "" && now.etag != "":
		return weakETag(prev.ETag) == weakETag(now.etag) && (now.size < 0 || now.size == prev.Size)
	case prev.LastModified != "" && now.lastModified != "":
		return prev.LastModified == now.lastModified && sizeKnownSame
	case prev.ETag == "" && prev.LastModified == "" && now.etag == "" && now.lastModified == "":
		return sizeKnownSame
	}
	return false // one side has a validator the other cannot match
}

// weakETag is an entity tag without its weakness flag: RFC 9110 §8.8.3.2's
// weak comparison, the one If-None-Match uses.
func weakETag(tag string) string { return strings.TrimPrefix(strings.TrimSpace(tag), "W/") }

// alreadyDone reports whether the destination already holds the complete,
// verified file (a rerun after success, or a crash between rename and the
// caller's bookkeeping). A different file there is an error, never
// overwritten.
func (d *rangeDownloader) alreadyDone(ctx context.Context, t *transfer) (bool, fileResult, error) {
	st, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, fileResult{}, nil
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return true, fileResult{}, fmt.Errorf("cannot write %s: a file stands where a folder is needed: %w", t.path, err)
	}
	if err != nil {
		return true, fileResult{}, fmt.Errorf("checking %s: %w", t.path, err)
	}
	if !st.Mode().IsRegular() {
		return true, fileResult{}, fmt.Errorf("%s exists and is not a regular file", t.path)
	}
	size := t.req.Size
	if size <= 0 {
		info, err := d.probe(ctx, t)
		if err != nil {
			return true, fileResult{}, err
		}
		t.probed = info
		size = info.size
	}
	differs := fmt.Errorf("%s already exists and differs from %s: %w (move it away or choose another output path)",
		t.path, redactURL(t.req.URL), errConflict)
	if size < 0 || st.Size() != size {
		return true, fileResult{}, differs
	}
	sum := ""
	if t.req.SHA256 != "" {
		if sum, err = hashFile(ctx, t.path, st.Size()); err != nil {
			return true, fileResult{}, err
		}
		if sum != t.req.SHA256 {
			return true, fileResult{}, differs
		}
	}
	_ = removePartial(t.path)
	if t.req.Progress != nil {
		t.req.Progress(st.Size(), st.Size())
	}
	return true, fileResult{Path: t.path, Size: st.Size(), SHA256: sum, Resumed: st.Size(),
		ETag: t.probed.etag, LastModified: t.probed.lastModified}, nil
}

// hashFile returns the SHA-256 of the first n bytes of path.
func hashFile(ctx context.Context, path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(ctxReader{ctx, f}, n)); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return sha256Hex(h), nil
}

// ctxReader stops a long local read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// openPart opens (or creates) the .part and decides how much of it to keep:
// only what the sidecar says was synced, and only if it is for this URL.
func (d *rangeDownloader) openPart(t *transfer) error {
	if t.claimed && t.req.Region == nil {
		// A new download: its .part was just made, empty. The sidecar is
		// written at the first checkpoint (until then the queue knows the
		// path): a small file that arrives within a second never has
		// one, which spares 2,000 small files a file creation each.
		t.file = t.claimFile
		t.hash = newFileHash(t.req.SHA256)
		if t.req.Hash != nil {
			t.hash = t.req.Hash
		}
		t.state = partState{URL: t.req.URL, Size: -1}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return fmt.Errorf("creating folder for %s: %w", t.path, err)
	}
	if t.req.Region != nil || exists(partPath(t.path)) {
		removeSidecarTemps(t.path) // an earlier run may have been killed mid-checkpoint
	}
	var f partFile = t.req.Region
	if f == nil {
		file, err := os.OpenFile(partPath(t.path), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			if isNoSpace(err) {
				return diskFullError(err, t.path)
			}
			return fmt.Errorf("opening %s: %w", partPath(t.path), err)
		}
		f = file
	}
	t.file = f
	t.hash = newFileHash(t.req.SHA256)
	if t.req.Hash != nil {
		t.hash = t.req.Hash
	}
	st, err := readPartState(t.path)
	fi, statErr := f.Stat()
	if err != nil || statErr != nil || st.URL != t.req.URL || (t.req.Size > 0 && st.Size != t.req.Size) {
		t.state = partState{URL: t.req.URL, Size: -1}
		return d.restart(t)
	}
	if st.Segments != nil {
		return d.resumeSegments(t, st, fi.Size())
	}
	keep := min(st.Committed, fi.Size())
	if st.Size >= 0 {
		keep = min(keep, st.Size)
	}
	t.state = st
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("trimming %s: %w", partPath(t.path), err)
	}
	// Reading the kept bytes into the hash also leaves the file offset at
	// keep, where the next write goes; without a hash, seek there.
	if _, skip := t.hash.(noHash); skip {
		if _, err := f.Seek(keep, io.SeekStart); err != nil {
			return fmt.Errorf("seeking in %s to resume: %w", partPath(t.path), err)
		}
	} else if _, err := io.Copy(t.hash, io.LimitReader(f, keep)); err != nil {
		return fmt.Errorf("reading %s to resume: %w", partPath(t.path), err)
	}
	t.offset = keep
	t.resumed = keep
	if keep > 0 {
		d.log.Info("resuming", "file", t.path, "from", keep)
		t.told(0, keep)
	}
	return nil
}

// told passes a written range of the .part to the request's Written.
func (t *transfer) told(start, end int64) {
	if t.req.Written != nil {
		t.req.Written(start, end)
	}
}

// restart throws the partial data away and starts again from byte 0.
func (d *rangeDownloader) restart(t *transfer) error {
	t.told(-1, -1)
	if err := t.file.Truncate(0); err != nil {
		return fmt.Errorf("truncating %s: %w", partPath(t.path), err)
	}
	if _, err := t.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding %s: %w", partPath(t.path), err)
	}
	t.hash.Reset()
	t.offset = 0
	t.state.Committed = 0
	t.state.Segments = nil
	return writePartState(t.path, t.state)
}

// run transfers with retries until the file is complete, then publishes it.
func (d *rangeDownloader) run(ctx context.Context, t *transfer) (fileResult, error) {
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
			return fileResult{}, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		if !retryable(err) {
			d.checkpoint(t)
			return fileResult{}, err
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
			return fileResult{}, fmt.Errorf("giving up after %s: %w", attemptsText(failures), lastErr)
		}
		delay := d.retryDelay(max(failures, 1), err)
		d.log.Warn("retrying", "url", redactURL(t.req.URL), "after", delay.Round(time.Millisecond), "error", err)
		if err := sleepCtx(ctx, delay); err != nil {
			d.checkpoint(t)
			return fileResult{}, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
	}
}

// rangeRequest sends a GET for bytes [start, end) of the file (end < 0:
// to the end; start 0 and end < 0: no Range at all). After a redirect the
// final URL is reused; credentials never go to another host.
func (d *rangeDownloader) rangeRequest(ctx context.Context, t *transfer, start, end int64) (*http.Response, string, error) {
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
	err := statusErrorFrom(resp)
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
// continues over several connections (segments.go).
func (d *rangeDownloader) fetch(ctx context.Context, t *transfer) error {
	if t.state.Segments != nil {
		return d.fetchSegments(ctx, t, nil)
	}
	start := t.offset
	if t.noRange {
		start = 0
	}
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, target, err := d.rangeRequest(reqCtx, t, start, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
		if t.offset > 0 {
			d.log.Info("server sent the whole file instead of a range; starting over", "url", redactURL(t.req.URL))
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
	case http.StatusRequestedRangeNotSatisfiable:
		total := int64(-1)
		if cr, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			total = cr.total
		}
		if total < 0 {
			total = t.state.Size
		}
		if total >= 0 && t.offset == total {
			return nil // we already have every byte
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
		return d.fetchSegments(ctx, t, resp)
	}
	return d.copyBody(reqCtx, cancel, t, resp.Body)
}

// adopt takes the size and validators of a fresh 200 response.
func (d *rangeDownloader) adopt(t *transfer, resp *http.Response, size int64) error {
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
func (d *rangeDownloader) checkSize(t *transfer, size int64) error {
	if t.req.Size > 0 && size != t.req.Size {
		return fmt.Errorf("server says %s is %d bytes, expected %d: %w", redactURL(t.req.URL), size, t.req.Size, errChecksumMismatch)
	}
	return nil
}

// copyBody streams the body into the .part, hashing as it writes, dropping
// the connection when no byte arrives for stallTimeout, and making progress
// durable every checkpointEvery.
func (d *rangeDownloader) copyBody(ctx context.Context, cancel context.CancelCauseFunc, t *transfer, body io.Reader) error {
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
				return fmt.Errorf("server sent more than the %d bytes it announced for %s", limit, redactURL(t.req.URL))
			}
			if _, err := t.file.Write(buf[:n]); err != nil {
				return writeFailure(err, t.path, "writing")
			}
			t.told(t.offset, t.offset+int64(n))
			hasher.add(buf[:n])
			buf = hasher.next()
			t.offset += int64(n)
			if t.req.Progress != nil {
				t.req.Progress(t.offset, t.state.Size)
			}
			if time.Since(lastCheckpoint) >= d.checkpointEvery {
				if err := d.checkpointAsync(t); err != nil {
					return err
				}
				lastCheckpoint = time.Now()
			}
		}
		if rerr == io.EOF {
			if limit >= 0 && t.offset < limit {
				return fmt.Errorf("connection closed at byte %d of %d: %w", t.offset, limit, io.ErrUnexpectedEOF)
			}
			return nil
		}
		if rerr != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
				return fmt.Errorf("less than %d bytes in %s at byte %d: %w", d.lowSpeedBytes, d.stallTimeout, t.offset, errStalled)
			}
			return withKind(errTransport, fmt.Errorf("connection lost at byte %d: %w", t.offset, rerr))
		}
	}
}

// asyncHasher hashes what was written on another goroutine, so receiving
// and hashing overlap on two cores instead of taking turns. Buffers
// circulate between the reader and the hasher: no copies, bounded memory.
type asyncHasher struct {
	h    hash.Hash
	d    *rangeDownloader
	work chan []byte
	free chan []byte
	done chan struct{}
}

func (d *rangeDownloader) newAsyncHasher(h hash.Hash) *asyncHasher {
	depth := 3
	if _, skip := h.(noHash); skip {
		depth = 0 // nothing to hash: one buffer, no goroutine to hand it to
	}
	a := &asyncHasher{h: h, d: d, work: make(chan []byte, depth), free: make(chan []byte, depth+1), done: make(chan struct{})}
	for range max(depth, 1) {
		a.free <- d.getBuffer()
	}
	if depth == 0 {
		close(a.done)
		return a
	}
	go func() {
		defer close(a.done)
		for b := range a.work {
			a.h.Write(b)
			a.free <- b[:cap(b)]
		}
	}()
	return a
}

// next is an empty buffer to read into.
func (a *asyncHasher) next() []byte { return <-a.free }

// add hands a filled buffer over; it comes back through next.
func (a *asyncHasher) add(b []byte) {
	if cap(a.work) == 0 {
		a.free <- b[:cap(b)] // nothing to hash: the buffer is free again
		return
	}
	a.work <- b
}

// close waits until everything added is hashed, and returns the buffers.
func (a *asyncHasher) close(held []byte) {
	close(a.work)
	<-a.done
	a.free <- held[:cap(held)]
	for len(a.free) > 0 {
		a.d.putBuffer(<-a.free)
	}
}

func (d *rangeDownloader) getBuffer() []byte {
	if p, ok := d.buffers.Get().(*[]byte); ok && len(*p) == d.bufferSize {
		return *p
	}
	return make([]byte, d.bufferSize)
}

func (d *rangeDownloader) putBuffer(b []byte) {
	if len(b) == d.bufferSize {
		d.buffers.Put(&b)
	}
}

// readSize keeps reads small under a speed limit, so each wait is short.
func (d *rangeDownloader) readSize(t *transfer) int {
	n := d.limiter.chunk(d.bufferSize)
	if t.req.Limiter != nil {
		n = min(n, t.req.Limiter.chunk(d.bufferSize))
	}
	return n
}

// throttle waits for the global and per-download limits. The stall
// watchdog is paused meanwhile: waiting on our own limit is not a stall.
func (d *rangeDownloader) throttle(ctx context.Context, watchdog *stallWatch, t *transfer, n int) error {
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

func (d *rangeDownloader) watchStall(cancel context.CancelCauseFunc) *stallWatch {
	return &stallWatch{
		timer:    time.AfterFunc(d.stallTimeout, func() { cancel(errStalled) }),
		timeout:  d.stallTimeout,
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

// SetRateLimit changes the global speed limit (bytes/s, 0 = none) for every
// running and future download.
func (d *rangeDownloader) SetRateLimit(bytesPerSecond int64) { d.limiter.SetRate(bytesPerSecond) }

// RateLimit is the global speed limit in bytes/s, 0 when unlimited.
func (d *rangeDownloader) RateLimit() int64 { return d.limiter.Rate() }

// checkpoint syncs the .part and then records how much of it is good. The
// order matters: after a power cut the sidecar never claims unsynced bytes.
func (d *rangeDownloader) checkpoint(t *transfer) {
	if t.file == nil || t.state.Committed == t.offset {
		return
	}
	if err := t.file.Sync(); err != nil {
		d.logCheckpointFailure("syncing partial file", t, err)
		return
	}
	t.state.Committed = t.offset
	if err := writePartState(t.path, t.state); err != nil {
		d.logCheckpointFailure("saving resume state", t, err)
	}
}

// logCheckpointFailure: the last checkpoint on a full disk fails as the
// download already did; its error says so once, the log does not repeat it.
func (d *rangeDownloader) logCheckpointFailure(what string, t *transfer, err error) {
	level := slog.LevelWarn
	if errors.Is(err, errNoSpace) || isNoSpace(err) {
		level = slog.LevelDebug
	}
	d.log.Log(context.Background(), level, what, "file", t.path, "error", err)
}

// checkpointAsync is checkpoint on another goroutine, so a slow disk sync
// does not stop the transfer: the sidecar records the offset taken before
// the sync began. At most one runs; callers wait for it (waitCheckpoint)
// before they touch the sidecar themselves.
//
// A previous checkpoint that failed for lack of space is returned: the
// download ends with that one error, the sidecar as of the last good one.
func (d *rangeDownloader) checkpointAsync(t *transfer) error {
	if t.ckptDone != nil {
		select {
		case <-t.ckptDone:
			if err := t.ckptErr; err != nil && errors.Is(err, errNoSpace) {
				return err
			}
		default:
			return nil // the previous one is still syncing
		}
	}
	offset, st, done := t.offset, t.state, make(chan struct{})
	t.ckptDone, t.ckptErr = done, nil
	go func() {
		defer close(done)
		if err := t.file.Sync(); err != nil {
			t.ckptErr = writeFailure(err, t.path, "syncing")
			d.logCheckpointFailure("syncing partial file", t, err)
			return
		}
		st.Committed = offset
		if err := writePartState(t.path, st); err != nil {
			t.ckptErr = err
			d.logCheckpointFailure("saving resume state", t, err)
		}
	}()
	return nil
}

func (t *transfer) waitCheckpoint() {
	if t.ckptDone != nil {
		<-t.ckptDone
		t.ckptDone = nil
	}
}

// publish verifies the finished .part and renames it into place.
func (d *rangeDownloader) publish(ctx context.Context, t *transfer) (fileResult, error) {
	want := t.req.Size
	if want <= 0 {
		want = t.state.Size
	}
	if want >= 0 && t.offset != want {
		return fileResult{}, fmt.Errorf("downloaded %d bytes of %s, expected %d: %w", t.offset, redactURL(t.req.URL), want, errChecksumMismatch)
	}
	sum := sha256Hex(t.hash)
	if t.req.SHA256 != "" && sum != t.req.SHA256 {
		t.file.Close()
		t.file = nil
		_ = removePartial(t.path)
		return fileResult{}, fmt.Errorf("verifying %s: got sha256 %s, expected %s: %w", redactURL(t.req.URL), sum, t.req.SHA256, errChecksumMismatch)
	}
	if t.req.Verified != nil {
		t.req.Verified()
	}
	syncStart := time.Now()
	var err error
	if t.req.Region == nil {
		err = d.smallSyncs.sync(t.file, filepath.Dir(t.path), t.offset)
	} else {
		err = t.file.Sync()
	}
	if err != nil {
		return fileResult{}, writeFailure(err, t.path, "syncing")
	}
	d.log.Debug("synced before publishing", "file", partPath(t.path), "took", time.Since(syncStart).Round(time.Millisecond))
	if err := t.file.Close(); err != nil {
		return fileResult{}, writeFailure(err, t.path, "closing")
	}
	t.file = nil
	if ctx.Err() != nil {
		return fileResult{}, context.Cause(ctx)
	}
	if t.req.Region == nil {
		if err := os.Rename(partPath(t.path), t.path); err != nil {
			return fileResult{}, fmt.Errorf("publishing %s: %w", t.path, err)
		}
		_ = d.folders.sync(filepath.Dir(t.path))
	}
	_ = os.Remove(sidecarPath(t.path))
	if t.req.Progress != nil {
		t.req.Progress(t.offset, t.offset)
	}
	return fileResult{Path: t.path, Size: t.offset, SHA256: sum, Resumed: t.resumed,
		ETag: t.state.ETag, LastModified: t.state.LastModified}, nil
}

// send makes one request with our User-Agent and the given headers.
func (d *rangeDownloader) send(ctx context.Context, method, target string, headers, extra http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, badURLf("invalid URL %q: %v", redactURL(target), err)
	}
	for k, vs := range headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", d.userAgent)
	}
	d.log.Debug("request", "method", method, "url", redactURL(target), "range", req.Header.Get("Range"))
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, describeNetError(target, err)
	}
	d.log.Debug("response", "status", resp.StatusCode, "url", redactURL(resp.Request.URL.String()),
		"length", resp.ContentLength, "content-range", resp.Header.Get("Content-Range"))
	return resp, nil
}

// describeNetError turns a transport error into a sentence that says
// what failed in plain words (a host that does not resolve, often a
// blocked CDN; a refused connection; an untrusted certificate; the proxy),
// marked errTransport for errorCode.
func describeNetError(target string, err error) error {
	// *url.Error repeats the whole URL, signed query string included.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errRedirectLoop) {
		return err
	}
	host := target
	if u, perr := url.Parse(target); perr == nil {
		host = u.Host
	}
	var (
		dnsErr *net.DNSError
		proxy  *proxyError
		what   string
	)
	switch {
	case errors.As(err, &proxy):
		return withKind(errTransport, err) // it says it all
	case isProxyFailure(err):
		what = fmt.Sprintf("connecting to %s through the proxy: the proxy cannot be reached or failed", host)
	case errors.As(err, &dnsErr):
		what = fmt.Sprintf("cannot resolve host %q (check the network, DNS or proxy)", dnsErr.Name)
	case isErrno(err, syscall.ECONNREFUSED, 10061):
		what = fmt.Sprintf("connecting to %s: the connection was refused (no server listening there?)", host)
	case isTLSFailure(err):
		what = fmt.Sprintf("connecting to %s: secure connection (TLS) failed", host)
	case isTimeout(err):
		what = fmt.Sprintf("connecting to %s: no answer in time", host)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		what = fmt.Sprintf("connecting to %s: the server closed the connection without an answer", host)
	default:
		what = fmt.Sprintf("connecting to %s", host)
	}
	return withKind(errTransport, fmt.Errorf("%s: %w", what, err))
}

// statusErrorFrom reads a little of an unwanted answer for the person.
func statusErrorFrom(resp *http.Response) *statusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	text := strings.Join(strings.Fields(string(body)), " ")
	if strings.Contains(resp.Header.Get("Content-Type"), "html") {
		text = "" // an error page's markup helps nobody on a terminal
	}
	if len(text) > 300 {
		text = strings.ToValidUTF8(text[:300], "") + "…"
	}
	return &statusError{
		Code:       resp.StatusCode,
		URL:        redactURL(resp.Request.URL.String()),
		Body:       text,
		retryAfter: resp.Header.Get("Retry-After"),
	}
}

// retryNowError is a failure that is worth retrying at once (the state was
// already repaired, e.g. the .part was reset).
type retryNowError struct{ err error }

func (e *retryNowError) Error() string { return e.err.Error() }
func (e *retryNowError) Unwrap() error { return e.err }

// diskError is a local write failure: retrying the network does not help,
// so it is not retried; the .part is kept for later.
type diskError struct{ err error }

func (e *diskError) Error() string { return e.err.Error() }
func (e *diskError) Unwrap() error { return e.err }

// writeFailure is the error of a failed write, sync or preallocation of
// path's .part: a full disk is the one-line diskFullError (errNoSpace),
// anything else a diskError. Neither is retried.
func writeFailure(err error, path, doing string) error {
	if isNoSpace(err) {
		return diskFullError(err, path)
	}
	return &diskError{fmt.Errorf("%s %s: %w", doing, partPath(path), err)}
}

// attemptsText is "1 attempt", "3 attempts".
func attemptsText(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

// madeProgress says whether an attempt that fetched n bytes before failing
// with err earned a fresh set of retries.
func madeProgress(n int64, err error) bool {
	return n >= 64<<10 && !errors.Is(err, errStalled)
}

// retryable says whether another attempt may succeed.
func retryable(err error) bool {
	var now *retryNowError
	if errors.As(err, &now) {
		return true
	}
	var diskErr *diskError
	if errors.As(err, &diskErr) || errorsIsAny(err, errBadInput, errConflict, errChecksumMismatch, errNoSpace, errRedirectLoop) {
		return false
	}
	var proxy *proxyError
	if errors.As(err, &proxy) {
		return proxy.Code >= 500 // a tunnel the proxy could not open may open later; a 403/407 will not
	}
	var se *statusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusRequestTimeout, http.StatusTooManyRequests:
			return true
		}
		return se.Code >= 500
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	return true // network errors, dropped connections, stalls
}

// retryDelay is exponential backoff with jitter, or the server's
// Retry-After when it gave one (429/503), capped.
func (d *rangeDownloader) retryDelay(attempt int, err error) time.Duration {
	var now *retryNowError
	if errors.As(err, &now) {
		return 0
	}
	var se *statusError
	if errors.As(err, &se) && se.retryAfter != "" {
		if wait, ok := parseRetryAfter(se.retryAfter, time.Now()); ok {
			return min(wait, d.maxRetryAfter)
		}
	}
	delay := d.backoff << min(attempt-1, 20)
	if delay > d.maxBackoff || delay <= 0 {
		delay = d.maxBackoff
	}
	// Full jitter over the upper half keeps many clients from retrying in step.
	return delay/2 + rand.N(delay/2+1)
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
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

// saved is how many bytes of the file the state vouches for.
func (st partState) saved() int64 {
	if st.Segments == nil {
		return st.Committed
	}
	missing := int64(0)
	for _, r := range st.Segments {
		missing += r[1] - r[0]
	}
	return st.Size - missing
}

func readPartState(path string) (partState, error) {
	var st partState
	data, err := os.ReadFile(sidecarPath(path))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("reading %s: %w", sidecarPath(path), err)
	}
	if st.URL == "" || st.Committed < 0 {
		return st, fmt.Errorf("reading %s: incomplete resume state", sidecarPath(path))
	}
	return st, nil
}

// claimPart creates the empty .part of a new download and returns it
// open, failing with os.ErrExist when another download already claimed
// the name.
func claimPart(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(partPath(path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// writePartState replaces the sidecar atomically (temp file + rename).
func writePartState(path string, st partState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// Not fsynced: the data it names is, and a sidecar lost to a power
	// cut only makes the state older (or unreadable: a restart from 0).
	err = replaceFile(sidecarPath(path), 0o644, data)
	if err != nil && errors.Is(err, errNoSpace) && overwriteInPlace(sidecarPath(path), data) == nil {
		return nil
	}
	return err
}

// overwriteInPlace rewrites a small existing file over its own blocks: a
// full disk has no room for a temp file, but the old sidecar's block is
// still ours. Nothing is truncated before the write (that would give the
// block away); a torn write only makes the state unreadable, which
// restarts the download, never corrupts it.
func overwriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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

// redactURL hides credentials and query strings: presigned CDN URLs carry
// their signature in the query, which is a secret.
func redactURL(raw string) string {
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
