package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"os"
	"strings"
	"syscall"
	"time"
)

// probeInfo is what a HEAD (or a 0-0 range GET) says about a resource.
type probeInfo struct {
	name               string
	size               int64 // -1 when unknown
	etag, lastModified string
	notModified        bool // a conditional request was answered 304
}

// probe asks the server for the name and size without fetching the body,
// waiting out failures as the transfer would.
func (d *Downloader) probe(ctx context.Context, t *transfer) (probeInfo, error) {
	return d.ask(ctx, t.req.URL, t.req.Header, t.retry, nil)
}

// checkRetries bounds CheckUnchanged: a rerun of a finished URL that
// cannot reach the server keeps the file it has ("unchecked") instead of
// waiting out an outage.
const checkRetries = 2

// ask sends a HEAD (with the conditional headers cond, if any), retrying
// as r says and honouring a Retry-After. Some servers refuse HEAD (405,
// 403 from presigned URLs signed for GET): then a GET for the first byte
// answers the same questions, and its body is not read.
func (d *Downloader) ask(ctx context.Context, rawURL string, header http.Header, r *Retrier, cond http.Header) (probeInfo, error) {
	for {
		info, err := d.askOnce(ctx, rawURL, header, cond)
		if err == nil {
			r.Alive()
			return info, nil
		}
		if err := r.Failed(ctx, err, false); err != nil {
			return probeInfo{}, err
		}
	}
}

func (d *Downloader) askOnce(ctx context.Context, rawURL string, header, cond http.Header) (probeInfo, error) {
	resp, err := d.send(ctx, http.MethodHead, rawURL, header, cond)
	if err == nil && resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		resp.Body.Close()
		if asksToWait(resp) {
			// "Come back later", not "no HEAD here": the next request,
			// HEAD or GET, waits as long as the server asked.
			return probeInfo{}, StatusErrorFrom(resp)
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
			return probeInfo{}, StatusErrorFrom(resp)
		}
		info.notModified = true
	default:
		if resp.StatusCode/100 == 2 {
			break // 203, 204…: an answer, without a size
		}
		return probeInfo{}, StatusErrorFrom(resp)
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
func (d *Downloader) CheckUnchanged(ctx context.Context, rawURL string, prev Validators) (bool, error) {
	if err := CheckDownloadURL(rawURL); err != nil {
		return false, err
	}
	cond := http.Header{}
	if prev.ETag != "" {
		cond.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		cond.Set("If-Modified-Since", prev.LastModified)
	}
	info, err := d.ask(ctx, rawURL, nil, d.NewRetrier(checkRetries, nil, nil), cond)
	if err != nil {
		return false, fault.OneLine(fmt.Errorf("checking whether %s changed: %w", RedactURL(rawURL), err))
	}
	return info.notModified || prev.sameAs(info), nil
}

// sameAs compares a published version with what the server says now.
func (prev Validators) sameAs(now probeInfo) bool {
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
func (d *Downloader) alreadyDone(ctx context.Context, t *transfer) (bool, Result, error) {
	st, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, Result{}, nil
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return true, Result{}, fmt.Errorf("cannot write %s: a file stands where a folder is needed: %w", t.path, err)
	}
	if err != nil {
		return true, Result{}, fmt.Errorf("checking %s: %w", t.path, err)
	}
	if !st.Mode().IsRegular() {
		return true, Result{}, fmt.Errorf("%s exists and is not a regular file", t.path)
	}
	size := t.req.Size
	if size <= 0 {
		info, err := d.probe(ctx, t)
		if err != nil {
			return true, Result{}, err
		}
		t.probed = info
		size = info.size
	}
	differs := fmt.Errorf("%s already exists and differs from %s: %w (move it away or choose another output path)",
		t.path, RedactURL(t.req.URL), fault.ErrConflict)
	if size < 0 || st.Size() != size {
		return true, Result{}, differs
	}
	sum := ""
	if t.req.SHA256 != "" {
		if sum, err = HashFile(ctx, t.path, st.Size()); err != nil {
			return true, Result{}, err
		}
		if sum != t.req.SHA256 {
			return true, Result{}, differs
		}
	}
	_ = RemovePartial(t.path)
	if t.req.Progress != nil {
		t.req.Progress(st.Size(), st.Size())
	}
	return true, Result{Path: t.path, Size: st.Size(), SHA256: sum, Resumed: st.Size(),
		ETag: t.probed.etag, LastModified: t.probed.lastModified}, nil
}
