package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"ollama-model-downloader/internal/disk"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errRangesBroken means a helper connection got something other than the
// range it asked for (a 200, a 416, another range, another total): the
// server cannot be trusted with ranges, or the file changed. The transfer
// starts over on a single connection.
var errRangesBroken = errors.New("server does not serve byte ranges reliably")

// segment is a byte range [pos, end) still to be fetched; pos advances as
// bytes are written, end shrinks when another connection takes a part.
// Its connection asks for it a chunk at a time, [pos, reqEnd): a part
// another connection takes is never one already asked for, so no request
// is cut short and no byte is sent twice (issue 22: a takeover that cut a
// running request threw away what was in flight, 2–4 MB each on a fast
// link).
type segment struct {
	pos, end int64
	reqEnd   int64 // end of the bytes the running request asked for (≤ pos: none asked)
	owned    bool  // a connection is fetching it

	// For the endgame (takeTailLocked): the running request's cancel, and
	// whether this range was itself taken over (it is not taken again).
	cancel    context.CancelCauseFunc
	takenOver bool
	lastWrite time.Time // when its request last delivered (or began)
	local     bool      // its connection waits on the disk or the speed limit, not on the server
}

// errRangeTaken stops a request whose range another connection took over.
var errRangeTaken = errors.New("range taken over by an idle connection")

// endgameIdle is how long a request must have delivered nothing before an
// idle connection takes its range over: a request that is streaming has
// bytes in flight, and dropping it would fetch them twice.
//
// It is a second, not less: a connection whose reader was not scheduled
// for a few hundred milliseconds (a busy machine) or that sits in a
// server's pacing pause (nginx's limit_rate sends in lumps) has bytes in
// flight, and taking it over threw them away — 1–2 MB a time in the
// capped-CDN bench (issue 22). A real stall is still caught in a second,
// not the stall timeout.
const endgameIdle = time.Second

// rateSpan is how often the transfer's speed, which sizes the requests
// (chunkSize), is measured again.
const rateSpan = 500 * time.Millisecond

// endgameMaxSplit bounds the endgame (takeTailLocked) to ranges of at most
// this many split sizes.
const endgameMaxSplit = 4

// segmentedTransfer fetches one file over several connections into one
// preallocated .part with offset writes, as aria2 and IDM do: connections
// are added while they make the whole faster, and a connection that
// finishes its range takes half of the largest range left.
type segmentedTransfer struct {
	d        *Downloader
	t        *transfer
	size     int64
	maxConns int
	host     string
	minSplit int64

	mu      sync.Mutex
	segs    []*segment
	workers int
	waiting int // workers in takeOrWait, with no range of their own

	// localWait is the time connections spent waiting on the disk and the
	// speed limit. A slow link is a reason to open more connections; a
	// slow disk or a speed limit is not, so that time is not the link's.
	localWait waitClock

	rate atomic.Int64 // bytes/s over every connection, as of the last look: it sizes requests

	hashed   int64      // t.hash covers [0, hashed); only the hasher goroutine touches both
	hashDone chan error // the hasher's result once it has hashed the whole file
	hashErr  error
	hashOver bool // hashDone was read
}

// waitHash waits for the hasher goroutine to end, once.
func (s *segmentedTransfer) waitHash() error {
	if !s.hashOver {
		s.hashErr = <-s.hashDone
		s.hashOver = true
	}
	return s.hashErr
}

// hostSlots caps the connections to one host across all downloads. Every
// download gets its first connection; extra ones only while under the cap.
type hostSlots struct {
	limit int
	mu    sync.Mutex
	used  map[string]int
}

func newHostSlots(limit int) *hostSlots {
	return &hostSlots{limit: limit, used: map[string]int{}}
}

func (h *hostSlots) acquire(host string, force bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !force && h.used[host] >= h.limit {
		return false
	}
	h.used[host]++
	return true
}

func (h *hostSlots) release(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.used[host]--; h.used[host] <= 0 {
		delete(h.used, host)
	}
}

// SetLimit changes the per-host cap for connections opened from now on.
func (h *hostSlots) SetLimit(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limit = max(n, 1)
}

// canSplit says whether the rest of the file should be fetched over
// several connections: the server must claim or prove Range support, the
// size must be known, and there must be enough left to share.
func (d *Downloader) canSplit(t *transfer, resp *http.Response) bool {
	ranges := resp.StatusCode == http.StatusPartialContent || strings.EqualFold(resp.Header.Get("Accept-Ranges"), "bytes")
	return t.req.Connections > 1 && ranges && !t.noSplit && !t.noRange && t.state.Size > 0 &&
		t.state.Size-t.offset >= 2*d.splitSize()
}

// splitSize is the smallest range worth a connection of its own. It is
// never below the read buffer: a split must not cut under a pending write.
func (d *Downloader) splitSize() int64 {
	return max(d.MinSegment, int64(d.BufferSize))
}

// resumeSegments picks up a multi-connection .part after a restart.
func (d *Downloader) resumeSegments(t *transfer, st PartState, fileSize int64) error {
	remaining := int64(0)
	valid := st.Size > 0 && fileSize == st.Size
	for _, s := range st.Segments {
		if s[0] < 0 || s[0] > s[1] || s[1] > st.Size {
			valid = false
		}
		remaining += s[1] - s[0]
	}
	if !valid {
		t.state = PartState{URL: t.req.URL, Size: -1}
		return d.restart(t)
	}
	t.state = st
	t.offset = 0
	t.resumed = st.Size - remaining
	d.log.Info("resuming", "file", t.path, "have", t.resumed, "ranges", len(st.Segments))
	if t.req.Written != nil { // what the gaps between the missing ranges hold
		missing := slices.Clone(st.Segments)
		slices.SortFunc(missing, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
		at := int64(0)
		for _, m := range missing {
			if m[0] > at {
				t.told(at, m[0])
			}
			at = max(at, m[1])
		}
		if at < st.Size {
			t.told(at, st.Size)
		}
	}
	return nil
}

// fetchSegments runs the multi-connection transfer until every byte is
// on disk. first, when given, is the response already streaming from
// t.offset (or from 0 for a 200) up to firstEnd; it becomes the first
// connection.
//
// A connection that fails without moving its range forward gives the
// range back and ends, while the others go on: a server that takes only
// so many connections, or one connection that stalls, costs nothing more.
// When the last one ends so (the network is down), the transfer returns
// that failure and the caller waits it out (Retrier) and resumes here.
func (d *Downloader) fetchSegments(ctx context.Context, t *transfer, first *http.Response, firstEnd int64) error {
	conns := t.req.Connections
	s := &segmentedTransfer{d: d, t: t, size: t.state.Size, maxConns: conns, minSplit: d.splitSize()}
	if u, err := url.Parse(t.req.URL); err == nil {
		s.host = u.Host
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errc := make(chan error, conns+len(t.state.Segments)+1)

	if first != nil {
		// Preallocate, then record the switch to segments before any
		// offset write, so a crash never mistakes holes for data.
		if err := t.file.Truncate(s.size); err != nil {
			return writeFailure(err, t.path, "preallocating")
		}
		s.hashed = t.offset
		seg := &segment{pos: t.offset, end: s.size, reqEnd: firstEnd, owned: true}
		s.segs = []*segment{seg}
		if err := s.checkpoint(); err != nil {
			return err
		}
		s.launch(ctx, errc, seg, first, true)
	} else {
		// A resumed .part is sparse where ranges are missing: they need
		// room, checked before the first request.
		missing := int64(0)
		for _, r := range t.state.Segments {
			missing += max(r[1]-r[0], 0)
		}
		if err := d.checkSpace(t, missing); err != nil {
			return err
		}
		if t.hashed > 0 {
			s.hashed = t.hashed // an earlier attempt of this call hashed that much: not read again
		} else {
			t.hash.Reset()
		}
		for _, r := range t.state.Segments {
			if r[1] > r[0] {
				s.segs = append(s.segs, &segment{pos: r[0], end: r[1]})
			}
		}
		// Decide every starting connection before the first one runs:
		// once running, a connection may take and split ranges itself.
		var start []*segment
		for i, seg := range s.segs {
			if i >= conns || !d.hosts.acquire(s.host, i == 0) {
				break // unowned segments are taken by connections that finish
			}
			seg.owned = true
			start = append(start, seg)
		}
		for _, seg := range start {
			s.launch(ctx, errc, seg, nil, false)
		}
	}
	hashCtx, stopHash := context.WithCancel(ctx)
	s.hashDone = make(chan error, 1)
	go func() { s.hashDone <- s.followHash(hashCtx) }()
	// Whatever happens next, the hasher has let go of the file and the hash
	// before the caller (which may restart the transfer) sees them again.
	defer func() {
		stopHash()
		s.waitHash()
		t.hashed = s.hashed
	}()
	if s.workers == 0 && len(s.segs) == 0 {
		return s.finish(ctx)
	}

	var fatal, lost error
	ticker := time.NewTicker(min(100*time.Millisecond, d.growEvery))
	defer ticker.Stop()
	started, startDone := time.Now(), s.doneBytes()
	lastCheckpoint, grown := started, false
	lastLook, lookDone, lookWait := started, startDone, int64(0)
	rateAt, rateDone := started, startDone
	for s.running() > 0 {
		select {
		case err := <-errc:
			s.mu.Lock()
			s.workers--
			s.mu.Unlock()
			var gone *connectionGone
			switch {
			case errors.As(err, &gone):
				lost = gone.err // its range waits for another connection
				d.log.Debug("connection ended", "url", RedactURL(t.req.URL), "error", gone.err)
			case err != nil && fatal == nil && ctx.Err() == nil:
				fatal = err
				cancel(err)
			}
		case now := <-ticker.C:
			done := s.doneBytes()
			if t.req.Progress != nil {
				t.req.Progress(done, s.size)
			}
			if now.Sub(lastCheckpoint) >= d.CheckpointEvery {
				if err := s.checkpoint(); err != nil {
					if errors.Is(err, disk.ErrNoSpace) && fatal == nil && ctx.Err() == nil {
						fatal = err // the disk is full: stop every connection now
						cancel(err)
					}
					d.logCheckpointFailure("saving resume state", t, err)
				}
				lastCheckpoint = now
			}
			if span := now.Sub(rateAt); span >= rateSpan {
				s.rate.Store(int64(float64(done-rateDone) / span.Seconds()))
				rateAt, rateDone = now, done
			}
			if grown || now.Sub(lastLook) < d.growEvery || ctx.Err() != nil {
				continue
			}
			// Each look at the first connection decides anew. Slower than a
			// local disk can write means a capped connection (a throttled
			// server, a CDN, a long path): open every connection now, as
			// aria2, axel and Ollama do. Faster means the disk is the limit
			// and more connections only add overhead, until a later look
			// finds the link slower (a server that caps after a fast start).
			// A connection held up by the disk (a writeback stall) or by
			// the speed limit for half the time says nothing about the link.
			wait := s.localWait.total(now)
			span, waited := now.Sub(lastLook), time.Duration(wait-lookWait)
			rate := float64(done-lookDone) / span.Seconds()
			lastLook, lookDone, lookWait = now, done, wait
			if s.rate.Load() == 0 {
				s.rate.Store(int64(rate))
			}
			if rate < d.FastLink && waited < span/2 {
				grown = true
				s.shareOut(s.maxConns, startDone, done)
				s.grow(ctx, errc)
			}
		}
	}
	if err := s.checkpoint(); err != nil {
		d.logCheckpointFailure("saving resume state", t, err)
	}
	if fatal != nil || ctx.Err() != nil {
		stopHash()
		s.waitHash() // the hash and the file are ours alone again
	}
	if fatal != nil {
		if errors.Is(fatal, errRangesBroken) {
			d.log.Info("falling back to one connection", "url", RedactURL(t.req.URL), "reason", fatal)
			t.noSplit = true
			if err := d.restart(t); err != nil {
				return err
			}
			return &retryNowError{fatal}
		}
		return fatal
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if lost != nil && s.remaining() > 0 {
		return lost // every connection failed: the caller waits, then resumes
	}
	return s.finish(ctx)
}

// finish waits for the hasher, which has followed the written prefix all
// along, and leaves the transfer ready to publish.
func (s *segmentedTransfer) finish(ctx context.Context) error {
	if left := s.remaining(); left > 0 {
		return fmt.Errorf("%d bytes still missing after all connections ended", left)
	}
	if err := s.waitHash(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("hashing %s: %w", PartPath(s.t.path), err)
	}
	s.t.offset = s.size
	s.t.state.Segments = nil
	return nil
}

// followHash hashes the file front to back while the connections fill it:
// everything below the lowest missing byte is on disk, so it is read back
// (from the page cache) and hashed on another core while the rest arrives.
// Verifying then costs no extra pass at the end.
func (s *segmentedTransfer) followHash(ctx context.Context) error {
	if _, skip := s.t.hash.(noHash); skip {
		s.hashed = s.size // nothing to verify: no need to read the file back
		return nil
	}
	buf := make([]byte, 1<<20)
	for s.hashed < s.size {
		end := s.prefixEnd()
		if end <= s.hashed {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for s.hashed < end {
			n := min(int64(len(buf)), end-s.hashed)
			if _, err := s.t.file.ReadAt(buf[:n], s.hashed); err != nil {
				return err
			}
			s.t.hash.Write(buf[:n])
			s.hashed += n
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// prefixEnd is the first byte not yet on disk (the size when all are).
func (s *segmentedTransfer) prefixEnd() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := s.size
	for _, seg := range s.segs {
		if seg.pos < seg.end {
			end = min(end, seg.pos)
		}
	}
	return end
}

func (s *segmentedTransfer) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers
}

func (s *segmentedTransfer) remaining() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var left int64
	for _, seg := range s.segs {
		left += seg.end - seg.pos
	}
	return left
}

func (s *segmentedTransfer) doneBytes() int64 { return s.size - s.remaining() }

// checkpoint syncs the file, then records the ranges still missing as they
// were before the sync, so the record never claims bytes not on disk.
func (s *segmentedTransfer) checkpoint() error {
	s.mu.Lock()
	ranges := make([][2]int64, 0, len(s.segs))
	for _, seg := range s.segs {
		if seg.end > seg.pos {
			ranges = append(ranges, [2]int64{seg.pos, seg.end})
		}
	}
	s.mu.Unlock()
	if err := s.t.file.Sync(); err != nil {
		return writeFailure(err, s.t.path, "syncing")
	}
	s.t.mu.Lock()
	s.t.state.Segments = ranges
	st := s.t.state
	s.t.mu.Unlock()
	return writePartState(s.t.path, st)
}

// waitClock adds up the time during which at least one connection waited,
// including a wait still going on: a look at the link must not miss a
// long wait on the speed limit.
type waitClock struct {
	sum     atomic.Int64 // nanoseconds of finished waits
	since   atomic.Int64 // unix nanoseconds when the current wait began; 0 when none
	waiters atomic.Int64
}

func (w *waitClock) start() {
	if w.waiters.Add(1) == 1 {
		w.since.Store(time.Now().UnixNano())
	}
}

func (w *waitClock) stop() {
	if w.waiters.Add(-1) == 0 {
		if began := w.since.Swap(0); began != 0 {
			w.sum.Add(time.Now().UnixNano() - began)
		}
	}
}

func (w *waitClock) total(now time.Time) int64 {
	t := w.sum.Load()
	if began := w.since.Load(); began != 0 {
		t += now.UnixNano() - began
	}
	return t
}
