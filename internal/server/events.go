package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"ollama-model-downloader/internal/fault"
	"ollama-model-downloader/internal/queue"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxEventStreams caps concurrent /api/events streams (issue 18: 1,000
	// streams that never read took the server from 80 MB to 3.2 GB). A
	// page holds one; past the cap the answer is 503 with Retry-After.
	maxEventStreams = 32
	// eventWriteTimeout drops a stream whose client does not read: one
	// event must leave within it.
	eventWriteTimeout = 10 * time.Second
	// maxEventLag drops a stream that has fallen this many events behind
	// (a client that reads, but slower than events come): its reconnection
	// gets the changes since its last event id in one event instead.
	maxEventLag = 30
)

// downloadsResponse is the body of GET /api/downloads and of each event of
// /api/events: the manager's delta (everything when Full) with the
// queue-wide figures.
type downloadsResponse struct {
	Rev         uint64             `json:"rev"`
	Full        bool               `json:"full"` // Downloads is the whole queue, not only what changed
	Downloads   []queue.JobView    `json:"downloads"`
	Removed     []string           `json:"removed"`
	Order       []string           `json:"order"` // every id in queue order when the order changed, else null
	Concurrency int                `json:"concurrency"`
	TotalSpeed  float64            `json:"total_speed"` // bytes per second, all downloads together
	Summary     queue.Summary      `json:"summary"`
	Schedule    queue.ScheduleView `json:"schedule"`
}

// downloads is the answer for a client at rev since (0: everything).
func (s *Server) downloads(since uint64) downloadsResponse {
	m := s.cfg.Manager
	d := m.ListSince(since)
	sum := m.Summary()
	return downloadsResponse{
		Rev: d.Rev, Full: d.Full, Downloads: d.Downloads, Removed: d.Removed, Order: d.Order,
		Concurrency: m.Concurrency(), TotalSpeed: sum.Speed, Summary: sum, Schedule: m.Schedule(),
	}
}

// sameAs reports whether an update tells a client at the previous one
// nothing new.
func (r *downloadsResponse) sameAs(prev *downloadsResponse) bool {
	return prev != nil && !r.Full && len(r.Downloads) == 0 && len(r.Removed) == 0 && r.Order == nil &&
		r.Concurrency == prev.Concurrency && r.Summary == prev.Summary && r.Schedule.Start == prev.Schedule.Start &&
		r.Schedule.End == prev.Schedule.End && r.Schedule.Open == prev.Schedule.Open && r.Schedule.NextStart.Equal(prev.Schedule.NextStart) &&
		r.Schedule.TimeZone == prev.Schedule.TimeZone && r.Schedule.UTCOffset == prev.Schedule.UTCOffset
}

func encodeDownloads(r downloadsResponse) ([]byte, error) {
	if r.Downloads == nil {
		r.Downloads = []queue.JobView{}
	}
	if r.Removed == nil {
		r.Removed = []string{}
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding downloads: %w", err) // e.g. a NaN speed
	}
	return append(body, '\n'), nil
}

// sinceParam reads ?since=N (a rev from an earlier answer); "" is 0.
func sinceParam(v string) (uint64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fault.BadInputf("since must be the rev of an earlier answer (a whole number), not %q", v)
	}
	return n, nil
}

// fullBody is the whole list, encoded (and gzipped, on demand) once and
// shared by every poller for pollCacheTTL unless the manager changed in
// between: hundreds of downloads under dozens of pollers cost one listing
// and one encoding per TTL.
type fullBody struct {
	plain   []byte
	gzipped []byte // nil until a client asks for it
	at      time.Time
	changed <-chan struct{}
}

func (s *Server) fullDownloadsBody(gzipped bool) ([]byte, error) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c := s.cache
	if c == nil || s.now().Sub(c.at) >= s.pollCacheTTL || isClosed(c.changed) {
		// Take the change signal before listing, so a change during the
		// listing invalidates what is about to be cached.
		changed := s.cfg.Manager.Changed()
		plain, err := encodeDownloads(s.downloads(0))
		if err != nil {
			return nil, err
		}
		c = &fullBody{plain: plain, at: s.now(), changed: changed}
		s.cache = c
	}
	if !gzipped {
		return c.plain, nil
	}
	if c.gzipped == nil {
		c.gzipped = s.gzipBytes(c.plain)
	}
	return c.gzipped, nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// handleDownloads answers the whole list, or with ?since=N only what
// changed after rev N (everything, "full": true, when N is too old).
func (s *Server) handleDownloads(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(r.URL.Query().Get("since"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if since > 0 {
		body, err := encodeDownloads(s.downloads(since))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeBody(w, http.StatusOK, body)
		return
	}
	gz := acceptsGzip(r)
	body, err := s.fullDownloadsBody(gz)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if gz {
		// Already compressed: the gzip layer of serveHTTP passes it on.
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
	}
	s.writeBody(w, http.StatusOK, body)
}

// eventHub encodes each downloads update once, in one goroutine, and hands
// the same bytes to every /api/events stream (issue 18: each stream used to
// list and encode the whole queue itself). The updates form a chain of
// frames that each stream follows at its own pace. The broadcaster runs
// while at least one stream is open.
type eventHub struct {
	mu      sync.Mutex
	streams int
	gen     int                // which broadcaster is current
	stop    context.CancelFunc // ends the current broadcaster
	rev     uint64             // the rev the latest frame brings a client to
	prev    *downloadsResponse // the latest update, to tell whether the next says anything
	latest  *sseFrame          // the end of the chain: a stream waits on its ready
	seq     uint64             // frames published
	first   []byte             // the whole list as an event, shared until the next frame; nil until asked
}

// sseFrame is one event as bytes, and the link to the next.
type sseFrame struct {
	data  []byte
	seq   uint64
	next  *sseFrame
	ready chan struct{} // closed once next is set
}

// errTooManyStreams is the 503 past maxEventStreams.
func (s *Server) errTooManyStreams() error {
	return &httpError{http.StatusServiceUnavailable, fmt.Sprintf("too many open event streams (at most %d): close other tabs of this page, or poll GET /api/downloads?since=<rev>", s.maxStreams)}
}

// sseEvent is one "downloads" event with its rev as the id, which a
// reconnecting EventSource sends back as Last-Event-ID.
func sseEvent(rev uint64, body []byte) []byte {
	body = []byte(strings.TrimSuffix(string(body), "\n"))
	return fmt.Appendf(nil, "id: %d\nevent: downloads\ndata: %s\n\n", rev, body)
}

// join opens a stream for a client at rev since: its first event (the
// changes since, or everything) and the frame after which it follows the
// chain. The first event is made under the hub's lock, so every later
// frame is newer than it.
func (s *Server) joinEvents(since uint64) (first []byte, at *sseFrame, err error) {
	h := &s.events
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams >= s.maxStreams {
		return nil, nil, s.errTooManyStreams()
	}
	// A broadcaster about to start waits on the change after this
	// snapshot, taken before it: a change between the snapshot and the
	// broadcaster's first look (a busy machine) would otherwise be missed.
	changed := s.cfg.Manager.Changed()
	if since == 0 && h.first != nil {
		// The whole list: encoded once per frame, however many join.
		first = h.first
	} else {
		resp := s.downloads(since)
		body, err := encodeDownloads(resp)
		if err != nil {
			return nil, nil, err
		}
		first = sseEvent(resp.Rev, body)
		if resp.Full {
			h.first = first
		}
		if h.streams == 0 {
			// No broadcaster yet: it starts from this client's rev.
			h.rev, h.prev = resp.Rev, &resp
		}
	}
	if h.streams == 0 {
		h.latest = &sseFrame{seq: h.seq, ready: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		h.gen++
		h.stop = cancel
		go s.broadcast(ctx, h.gen, changed)
	}
	h.streams++
	return first, h.latest, nil
}

// leaveEvents closes a stream; the last one stops the broadcaster.
func (s *Server) leaveEvents() {
	h := &s.events
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams--
	if h.streams == 0 {
		h.stop()
		h.gen++
		h.first, h.prev = nil, nil
	}
}

// broadcast publishes an update after each change, and every
// eventInterval while a download moves (progress is not reported as a
// change), but never more than once per eventInterval.
//
// changed is the manager's change channel from before the first event the
// streams were sent; each later one is taken before publishing.
func (s *Server) broadcast(ctx context.Context, gen int, changed <-chan struct{}) {
	h := &s.events
	for {
		// Never sooner than eventInterval: a burst of changes is one event.
		if !s.waitInterval(ctx) {
			return
		}
		h.mu.Lock()
		active := h.prev != nil && h.prev.Summary.Running > 0
		h.mu.Unlock()
		if !active {
			select {
			case <-ctx.Done():
				return
			case <-s.stopping:
				return
			case <-changed:
			}
		}
		changed = s.cfg.Manager.Changed()
		if !s.publish(gen) {
			return
		}
	}
}

// waitInterval waits one eventInterval, unless the stream or the server
// ends first (false).
func (s *Server) waitInterval(ctx context.Context) bool {
	if s.eventTimer == nil {
		return s.sleep(ctx, s.eventInterval)
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.stopping:
		return false
	case <-s.eventTimer(s.eventInterval):
		return true
	}
}

// publish encodes the changes since the latest frame, once, and appends
// them to the chain. It reports false when this broadcaster is no longer
// the current one.
func (s *Server) publish(gen int) bool {
	h := &s.events
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen {
		return false
	}
	resp := s.downloads(h.rev)
	if resp.sameAs(h.prev) {
		return true
	}
	body, err := encodeDownloads(resp)
	if err != nil {
		s.log.Error("event stream", "err", err)
		return true
	}
	h.seq++
	f := &sseFrame{data: sseEvent(resp.Rev, body), seq: h.seq, ready: make(chan struct{})}
	h.latest.next = f
	close(h.latest.ready)
	h.latest = f
	h.rev, h.prev, h.first = resp.Rev, &resp, nil
	return true
}

// handleEvents streams downloads updates as server-sent events: the first
// event is the whole list (or, after ?since=N or a reconnection's
// Last-Event-ID, the changes since that rev), then each update as the
// changes since the one before; a comment every keepAlive keeps proxies
// from closing it. Not compressed: each stream would need its own
// compressor (hundreds of KB), and the updates are small deltas.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(cmp.Or(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("since")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	first, cur, err := s.joinEvents(since)
	if err != nil {
		if statusFor(err) == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "10")
		}
		s.writeError(w, r, err)
		return
	}
	defer s.leaveEvents()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		// A client that does not read fills the socket's buffers; the
		// deadline then ends the write, and the stream.
		rc.SetWriteDeadline(time.Now().Add(s.eventWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(first) {
		return
	}
	keepAlive := time.NewTicker(s.keepAlive)
	defer keepAlive.Stop()
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		case <-cur.ready:
			cur = cur.next
			if s.eventsBehind(cur) > maxEventLag {
				return // the reconnection catches up in one event
			}
			if !send(cur.data) {
				return
			}
		}
	}
}

// eventsBehind is how many frames were published after f.
func (s *Server) eventsBehind(f *sseFrame) uint64 {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	return s.events.seq - f.seq
}
