package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errFetchFailed ends a client's transfer when the upstream fetch it
// follows fails or throws its bytes away (a digest mismatch): the bytes
// already sent are not the blob, so the connection is cut.
var errFetchFailed = errors.New("the upstream fetch of this blob failed")

// blobFetch is one upstream download of a blob into the cache, through the
// file engine, which any number of clients follow while it arrives: each
// request reads the ranges the engine has written into the .part. The
// last bytes (holdback) are released only once the engine has verified
// the whole blob against its digest, so no client ever receives a
// complete blob that was not verified; on a mismatch the clients'
// connections are cut instead.
type blobFetch struct {
	digest string
	size   int64
	part   string        // the engine's .part file
	done   chan struct{} // closed when the fetch has ended

	mu       sync.Mutex
	gen      int      // bumped whenever the .part is emptied: ranges told before are void
	have     rangeSet // ranges of this generation written into the .part
	changed  chan struct{}
	verified bool   // the engine matched the whole .part to the digest
	path     string // the verified blob, once the fetch succeeded
	err      error  // why the fetch failed, once it ended
	finished time.Time
}

func newBlobFetch(digest string, size int64, part string) *blobFetch {
	return &blobFetch{digest: digest, size: size, part: part, done: make(chan struct{}), changed: make(chan struct{})}
}

// written is the engine's Written hook (Request.Written).
func (f *blobFetch) written(start, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if start < 0 {
		f.newGenerationLocked()
		return
	}
	f.have.add(start, end)
	f.wakeLocked()
}

// newGeneration voids everything told so far: the engine starts the blob
// over (a digest mismatch, a server that changed the file).
func (f *blobFetch) newGeneration() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.newGenerationLocked()
}

func (f *blobFetch) newGenerationLocked() {
	f.gen++
	f.have = nil
	f.verified = false
	f.wakeLocked()
}

// verify is the engine's Verified hook: the .part holds the blob, its
// digest checked; the held-back end may go out while the engine syncs.
func (f *blobFetch) verify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified = true
	f.wakeLocked()
}

func (f *blobFetch) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// finish records the outcome: the path of the verified blob, or the error.
func (f *blobFetch) finish(path string, err error, now time.Time) {
	f.mu.Lock()
	f.path, f.err, f.finished = path, err, now
	f.wakeLocked()
	f.mu.Unlock()
	close(f.done)
}

// failed reports the error of a fetch that ended badly and when it ended.
func (f *blobFetch) failed() (error, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err, f.finished
}

// fetchView is what a reader sees of the fetch at one moment.
type fetchView struct {
	gen      int
	readable int64 // bytes from the asked position that may be sent now
	path     string
	err      error
	changed  <-chan struct{}
}

// view reports how far from pos the bytes are written and may be sent:
// never the last holdback bytes before the blob is verified.
func (f *blobFetch) view(pos, holdback int64) fetchView {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := fetchView{gen: f.gen, path: f.path, err: f.err, changed: f.changed, readable: pos}
	switch {
	case f.path != "" || f.verified && f.err == nil:
		v.readable = f.size
	case f.err == nil:
		v.readable = max(pos, min(f.have.reach(pos), f.size-holdback))
	}
	return v
}

// generation is the current generation number.
func (f *blobFetch) generation() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// copyRange writes bytes [start, end) of the blob to w as they arrive. It
// returns errFetchFailed (wrapped) when the fetch failed or restarted
// after some of the range was sent, and the context's error when the
// client went away. began is called once, before the first byte, so
// that the caller can still answer an error instead when nothing is sent.
func (f *blobFetch) copyRange(ctx context.Context, w io.Writer, start, end, holdback int64, buf []byte, began func()) (int64, error) {
	var file *os.File
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	fileGen, pos, started := -1, start, false
	for pos < end {
		v := f.view(pos, holdback)
		if v.err != nil {
			return pos - start, fmt.Errorf("%w: %v", errFetchFailed, v.err)
		}
		if fileGen >= 0 && v.gen != fileGen && pos > start {
			return pos - start, fmt.Errorf("%w: it started over after %d bytes were sent", errFetchFailed, pos-start)
		}
		if v.readable <= pos {
			// Whatever a response buffer holds goes out before the wait:
			// the client's stall timer counts bytes, not intentions.
			if fl, ok := w.(http.Flusher); ok && pos > start {
				fl.Flush()
			}
			select {
			case <-ctx.Done():
				return pos - start, ctx.Err()
			case <-v.changed:
			}
			continue
		}
		if file == nil || v.gen != fileGen {
			if file != nil {
				file.Close()
				file = nil
			}
			name := v.path
			if name == "" {
				name = f.part
			}
			opened, err := os.Open(name)
			if errors.Is(err, fs.ErrNotExist) && v.path == "" {
				// Between two attempts: the next one creates it.
				select {
				case <-ctx.Done():
					return pos - start, ctx.Err()
				case <-v.changed:
				}
				continue
			}
			if err != nil {
				return pos - start, fmt.Errorf("opening the cached blob: %w", err)
			}
			// The generation must not have changed while opening: the
			// file would then be another attempt's.
			if f.generation() != v.gen {
				opened.Close()
				continue
			}
			file, fileGen = opened, v.gen
		}
		want := min(v.readable, end) - pos
		if !started && began != nil {
			started = true
			began()
		}
		if rf, ok := w.(io.ReaderFrom); ok {
			// The response's ReadFrom sends a file with sendfile: no copy
			// through this process. The bytes cannot be looked at before
			// they go; only an engine restart (a server that broke its
			// ranges) could change them meanwhile, and the next turn of
			// the loop then cuts the connection.
			if _, err := file.Seek(pos, io.SeekStart); err != nil {
				return pos - start, fmt.Errorf("reading the cached blob: %w", err)
			}
			n, err := rf.ReadFrom(io.LimitReader(file, want))
			pos += n
			if err != nil {
				return pos - start, err
			}
			if n == 0 {
				return pos - start, fmt.Errorf("reading the cached blob: %w", io.ErrUnexpectedEOF)
			}
			continue
		}
		n, err := file.ReadAt(buf[:min(int64(len(buf)), want)], pos)
		if n == 0 && err != nil {
			return pos - start, fmt.Errorf("reading the cached blob: %w", err)
		}
		// Bytes read while the engine emptied the .part may be zeros:
		// they are sent only if the generation still holds.
		if f.generation() != fileGen {
			continue
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return pos - start, err
		}
		pos += int64(n)
	}
	return pos - start, nil
}

// rangeSet is a sorted list of disjoint byte ranges [start, end).
type rangeSet [][2]int64

// add merges [start, end) into the set.
func (s *rangeSet) add(start, end int64) {
	if end <= start {
		return
	}
	r := *s
	i := 0
	for i < len(r) && r[i][1] < start {
		i++
	}
	j := i
	for j < len(r) && r[j][0] <= end {
		start = min(start, r[j][0])
		end = max(end, r[j][1])
		j++
	}
	merged := append(r[:i:i], [2]int64{start, end})
	*s = append(merged, r[j:]...)
}

// reach is the end of the range holding pos, or pos when none does.
func (s rangeSet) reach(pos int64) int64 {
	for _, r := range s {
		if r[0] <= pos && pos < r[1] {
			return r[1]
		}
	}
	return pos
}

// parseSingleRange reads a Range header asking for one range of a
// resource of size bytes: "bytes=a-b", "bytes=a-" or "bytes=-n". ok is
// false for anything else (no header, several ranges, garbage), which is
// then answered with the whole blob, as RFC 9110 allows.
func parseSingleRange(h string, size int64) (start, end int64, ok, unsatisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, false, true
		}
		return max(size-n, 0), size, true, false
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, false, false
	}
	if a >= size {
		return 0, 0, false, true
	}
	if last == "" {
		return a, size, true, false
	}
	b, err := strconv.ParseInt(last, 10, 64)
	if err != nil || b < a {
		return 0, 0, false, false
	}
	return a, min(b+1, size), true, false
}

// serveFetch answers a GET for a blob that is still arriving, following
// the fetch. A client that asks for a range gets 206; others get the
// whole blob. When the fetch fails after bytes were sent, the connection
// is cut (http.ErrAbortHandler): the client must not take what it got
// for the blob.
func serveFetch(w http.ResponseWriter, r *http.Request, f *blobFetch, holdback int64, buf []byte) (int64, error) {
	start, end, partial, unsatisfiable := parseSingleRange(r.Header.Get("Range"), f.size)
	h := w.Header()
	if unsatisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
		registryError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UNKNOWN", "range not satisfiable")
		return 0, nil
	}
	if !partial {
		start, end = 0, f.size
	}
	began := func() {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(end-start, 10))
		if partial {
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, f.size))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.WriteHeader(http.StatusOK)
		}
	}
	if start == end { // an empty blob: nothing to wait for but the verdict
		select {
		case <-f.done:
		case <-r.Context().Done():
			return 0, r.Context().Err()
		}
		if err, _ := f.failed(); err != nil {
			return 0, fmt.Errorf("%w: %v", errFetchFailed, err)
		}
		began()
		return 0, nil
	}
	sent := false
	n, err := f.copyRange(r.Context(), w, start, end, holdback, buf, func() { sent = true; began() })
	if err != nil && !sent && errors.Is(err, errFetchFailed) {
		return n, err // nothing sent: the caller answers with the error
	}
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	return n, nil
}
