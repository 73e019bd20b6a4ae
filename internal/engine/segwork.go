package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"time"
)

// connectionGone ends one connection of a segmented transfer that failed
// without moving its range forward: the range is given back for the
// others; only when no connection is left does the transfer fail with err.
type connectionGone struct{ err error }

func (e *connectionGone) Error() string { return e.err.Error() }

func (e *connectionGone) Unwrap() error { return e.err }

// chunkTime is how long one request of a segmented transfer should last
// at the connection's speed: long enough that the round trip between two
// requests costs little, short enough that a connection that is done can
// soon take the part of a range nobody has asked for yet.
const chunkTime = 4 * time.Second

// chunkSize is how many bytes one request asks for: chunkTime at the
// speed each connection has had, between 2 and 64 split sizes (4 before
// the speed is known).
func (s *segmentedTransfer) chunkSizeLocked() int64 {
	rate := s.rate.Load()
	if rate <= 0 {
		return 4 * s.minSplit
	}
	per := rate / int64(max(s.workers-s.waiting, 1))
	return min(max(per*int64(chunkTime/time.Second), 2*s.minSplit), 64*s.minSplit)
}

// firstChunk is what the first request for a file that may be split asks
// for: a small file comes whole in that one answer, which also tells the
// size; a large one goes on in ranges that are never cut short.
func (d *Downloader) firstChunk() int64 { return 4 * d.splitSize() }

// askNextLocked decides the bytes seg's next request asks for: the rest
// of the range, or a chunk of it when the rest is much larger (the part
// beyond stays free for a connection that runs out of work).
func (s *segmentedTransfer) askNextLocked(seg *segment) int64 {
	chunk := s.chunkSizeLocked()
	if seg.end-seg.pos <= chunk+chunk/2 || s.t.noSplit {
		seg.reqEnd = seg.end
	} else {
		seg.reqEnd = seg.pos + chunk
	}
	return seg.reqEnd
}

// grow adds connections until total connections are running (within the
// per-host cap), each taking the next range (take).
func (s *segmentedTransfer) grow(ctx context.Context, errc chan error) {
	s.mu.Lock()
	want := s.maxConns - s.workers
	s.mu.Unlock()
	for range want {
		if !s.d.hosts.acquire(s.host, false) {
			break
		}
		seg := s.take(nil)
		if seg == nil {
			s.d.hosts.release(s.host)
			break
		}
		s.launch(ctx, errc, seg, nil, false)
	}
}

// take marks finished as done (when given) and returns the next range for
// a connection: an unowned one, else a stalled tail (takeTailLocked), else
// the upper half of the largest range, taken only from the part its
// connection has not asked for yet.
func (s *segmentedTransfer) take(finished *segment) *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if finished != nil {
		finished.owned = false
		for i, seg := range s.segs {
			if seg == finished && seg.pos >= seg.end {
				s.segs = append(s.segs[:i], s.segs[i+1:]...)
				break
			}
		}
	}
	for _, seg := range s.segs {
		if !seg.owned && seg.end > seg.pos {
			seg.owned = true
			return seg
		}
	}
	if s.t.noSplit {
		return nil
	}
	if seg := s.takeTailLocked(); seg != nil {
		return seg
	}
	var victim *segment
	var cut, free int64
	for _, seg := range s.segs {
		mid := max(seg.reqEnd, seg.pos+(seg.end-seg.pos)/2)
		if seg.end-mid > free {
			victim, cut, free = seg, mid, seg.end-mid
		}
	}
	if victim == nil || free < s.minSplit {
		return nil
	}
	half := &segment{pos: cut, end: victim.end, owned: true}
	victim.end = cut
	s.segs = append(s.segs, half)
	return half
}

// shareOut cuts the first connection's range into conns ranges before the
// other connections open, so that each connection has an equal share of
// what was left when the first one started (from startDone; done is now).
// The first has already fetched part of its share, so it keeps that much
// less: split by bytes alone it would finish last, alone, at the end. The
// cut is never inside what the first connection's request asked for.
func (s *segmentedTransfer) shareOut(conns int, startDone, done int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) != 1 || conns < 2 || s.t.noSplit {
		return
	}
	first := s.segs[0]
	share := (s.size - startDone) / int64(conns)
	keep := max(share-(done-startDone), s.minSplit)
	cut := max(first.pos+keep, first.reqEnd)
	rest := first.end - cut
	n := min(int64(conns-1), rest/s.minSplit)
	if n < 1 {
		return // too little left: take splits ranges as connections ask
	}
	first.end = cut
	for i := range n {
		start, end := cut+rest*i/n, cut+rest*(i+1)/n
		s.segs = append(s.segs, &segment{pos: start, end: end})
	}
}

// takeTailLocked is the endgame: a connection left with nothing to do
// takes over the largest range of at most endgameMaxSplit split sizes whose
// request has delivered nothing for endgameIdle, and that request is
// dropped. A stalled tail is then fetched at once instead of after the
// stall timeout. A range is taken over once at most, so two idle
// connections never pass one back and forth. Both requests carry the same
// validators (If-Range), so a write still in flight from the old one puts
// the same bytes where the new one will. A connection held up by the disk
// or the speed limit is not stalled: its bytes are in flight, and taking
// its range over would throw them away.
func (s *segmentedTransfer) takeTailLocked() *segment {
	var victim *segment
	for _, seg := range s.segs {
		left := seg.end - seg.pos
		if !seg.owned || seg.cancel == nil || seg.takenOver || seg.local || left <= 0 || left > endgameMaxSplit*s.minSplit ||
			time.Since(seg.lastWrite) < endgameIdle {
			continue
		}
		if victim == nil || left > victim.end-victim.pos {
			victim = seg
		}
	}
	if victim == nil {
		return nil
	}
	taken := &segment{pos: victim.pos, end: victim.end, owned: true, takenOver: true}
	victim.end = victim.pos
	victim.cancel(errRangeTaken)
	s.segs = append(s.segs, taken)
	return taken
}

// takeOrWait is take for a connection that finished its range. With
// nothing left to take while other connections still run, it looks again
// every 50 ms: one of them may end and give its range back, or stall
// (endgameIdle), and its range is then this connection's to take.
func (s *segmentedTransfer) takeOrWait(ctx context.Context, finished *segment) *segment {
	seg := s.take(finished)
	if seg != nil {
		return seg
	}
	s.mu.Lock()
	s.waiting++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}()
	for seg == nil && s.fetching() > 0 {
		if Sleep(ctx, 50*time.Millisecond) != nil {
			return nil
		}
		seg = s.take(nil)
	}
	return seg
}

// fetching is how many connections are fetching a range, not waiting.
func (s *segmentedTransfer) fetching() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers - s.waiting
}

// release gives a range back unowned, for another connection to take.
func (s *segmentedTransfer) release(seg *segment) {
	s.mu.Lock()
	seg.owned = false
	seg.reqEnd = seg.pos
	s.mu.Unlock()
}

func (s *segmentedTransfer) launch(ctx context.Context, errc chan error, seg *segment, resp *http.Response, first bool) {
	s.mu.Lock()
	s.workers++
	s.mu.Unlock()
	if first {
		s.d.hosts.acquire(s.host, true)
	}
	go func() {
		defer s.d.hosts.release(s.host)
		errc <- s.work(ctx, seg, resp)
	}()
}

// work is one connection: it fetches its range a request at a time, then
// takes another, until none is left. A connection cut after it delivered
// is opened again at once (a server or proxy that cuts every few MiB); one
// that fails without delivering gives its range back and ends
// (connectionGone): the transfer waits only when none is left.
func (s *segmentedTransfer) work(ctx context.Context, seg *segment, resp *http.Response) error {
	buf := s.d.getBuffer()
	defer s.d.putBuffer(buf)
	for seg != nil {
		reqCtx, cancelReq := context.WithCancelCause(ctx)
		s.mu.Lock()
		seg.cancel, seg.lastWrite = cancelReq, time.Now()
		s.mu.Unlock()
		var err error
		if resp == nil {
			resp, err = s.open(reqCtx, seg)
		} else {
			// The first response was opened under the caller's context:
			// closing its body is what interrupts a read on stall or stop.
			body := resp.Body
			stop := context.AfterFunc(reqCtx, func() { body.Close() })
			defer stop()
		}
		before := s.posOf(seg)
		if err == nil {
			err = s.copy(reqCtx, cancelReq, seg, resp.Body, buf)
			resp.Body.Close()
		}
		resp = nil
		s.mu.Lock()
		seg.cancel = nil
		s.mu.Unlock()
		taken := errors.Is(context.Cause(reqCtx), errRangeTaken) || errors.Is(err, errRangeTaken)
		cancelReq(nil)
		if err == nil || taken && ctx.Err() == nil {
			if !taken && !s.full(seg) {
				continue // the request got its chunk: ask for the next one
			}
			seg = s.takeOrWait(ctx, seg)
			continue
		}
		if ctx.Err() != nil {
			s.release(seg)
			return nil // the coordinator knows why
		}
		if errors.Is(err, errRangesBroken) || !fault.Transient(err) {
			s.release(seg)
			return err
		}
		if s.d.madeProgress(s.posOf(seg)-before, err) {
			s.d.log.Debug("connection cut; opening it again", "url", RedactURL(s.t.req.URL), "at", s.posOf(seg), "error", err)
			continue
		}
		s.release(seg)
		return &connectionGone{err}
	}
	return nil
}

func (s *segmentedTransfer) full(seg *segment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seg.pos >= seg.end
}

func (s *segmentedTransfer) posOf(seg *segment) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seg.pos
}

// open requests the next chunk of a connection's range and checks the
// answer strictly: only a 206 for exactly that start, of a file of exactly
// the known size.
func (s *segmentedTransfer) open(ctx context.Context, seg *segment) (*http.Response, error) {
	s.mu.Lock()
	if seg.pos >= seg.end {
		s.mu.Unlock()
		return nil, errRangeTaken // taken over before it was asked for
	}
	start, end := seg.pos, s.askNextLocked(seg)
	s.mu.Unlock()
	resp, target, err := s.d.rangeRequest(ctx, s.t, start, end)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && cr.start == start && cr.total == s.size && !s.t.changed(resp) {
			s.mu.Lock()
			seg.reqEnd = cr.end + 1 // what this answer holds, if the server chose another end
			s.mu.Unlock()
			return resp, nil
		}
		resp.Body.Close()
		return nil, fmt.Errorf("asked for bytes %d-%d, got %q: %w", start, end-1, resp.Header.Get("Content-Range"), errRangesBroken)
	case http.StatusOK, http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, fmt.Errorf("asked for bytes %d-%d, got HTTP %d: %w", start, end-1, resp.StatusCode, errRangesBroken)
	default:
		err := s.t.unwanted(resp, target)
		resp.Body.Close()
		return nil, err
	}
}

// copy writes the body at the range's position until the request's bytes
// are in. The range's end may shrink meanwhile (its tail was taken over):
// writes are clamped to it.
func (s *segmentedTransfer) copy(ctx context.Context, cancel context.CancelCauseFunc, seg *segment, body io.Reader, buf []byte) error {
	watchdog := s.d.watchStall(cancel)
	defer watchdog.stop()
	for {
		n, rerr := body.Read(buf[:s.d.readSize(s.t)])
		if n > 0 {
			s.localWait.start()
			s.mu.Lock()
			seg.local = true
			s.mu.Unlock()
			if err := s.d.throttle(ctx, watchdog, s.t, n); err != nil {
				s.localWait.stop()
				s.setLocal(seg, false)
				return err
			}
			watchdog.got(n)
			s.mu.Lock()
			pos, end := seg.pos, min(seg.end, max(seg.reqEnd, seg.pos))
			s.mu.Unlock()
			n = int(min(int64(n), end-pos))
			if n > 0 {
				if _, err := s.t.file.WriteAt(buf[:n], pos); err != nil {
					s.localWait.stop()
					s.setLocal(seg, false)
					return writeFailure(err, s.t.path, "writing")
				}
				s.t.told(pos, pos+int64(n))
				s.t.moved.Add(int64(n))
				s.t.retry.Alive()
			}
			s.localWait.stop()
			s.mu.Lock()
			seg.local = false
			// The range may have been taken over during the write: then
			// end is below pos+n and the bytes are the new request's.
			seg.pos = min(seg.pos+int64(n), max(seg.end, seg.pos))
			seg.lastWrite = time.Now()
			done := seg.pos >= seg.end || seg.pos >= seg.reqEnd
			s.mu.Unlock()
			if done {
				return nil
			}
		}
		if rerr == io.EOF {
			if s.requestDone(seg) {
				return nil
			}
			return connectionLost(s.posOf(seg), io.ErrUnexpectedEOF)
		}
		if rerr != nil {
			if errors.Is(context.Cause(ctx), fault.ErrStalled) {
				return fmt.Errorf("less than %d bytes in %s at byte %d: %w", s.d.lowSpeedBytes, s.d.StallTimeout, s.posOf(seg), fault.ErrStalled)
			}
			return connectionLost(s.posOf(seg), rerr)
		}
	}
}

func (s *segmentedTransfer) setLocal(seg *segment, on bool) {
	s.mu.Lock()
	seg.local = on
	s.mu.Unlock()
}

// requestDone reports whether seg's request has delivered all it asked for.
func (s *segmentedTransfer) requestDone(seg *segment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seg.pos >= seg.end || seg.pos >= seg.reqEnd
}
