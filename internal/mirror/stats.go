package mirror

import (
	"io"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// clientWindow is how long a client counts as pulling after its last
// request ended: Ollama fetches blobs one after another, with short gaps.
const clientWindow = 10 * time.Second

// mirrorStats is what a mirror has done since it started, for the web
// UI's panel: bytes sent to clients and fetched upstream, and the
// clients pulling now.
type mirrorStats struct {
	served   atomic.Int64 // bytes of blobs and manifests sent to clients
	upstream atomic.Int64 // bytes fetched from the upstream registry

	mu      sync.Mutex
	clients map[netip.Addr]*clientActivity
}

type clientActivity struct {
	inflight int
	last     time.Time
}

// StatsView is the "stats" object of GET /api/mirror.
type StatsView struct {
	CachedModels  int   `json:"cached_models"`
	BytesServed   int64 `json:"bytes_served"`
	BytesUpstream int64 `json:"bytes_upstream"`
	BytesSaved    int64 `json:"bytes_saved"` // served but not fetched upstream: what the clients did not pull from the Internet
	Clients       int   `json:"clients"`     // distinct addresses with a request now or within clientWindow
}

func newMirrorStats() *mirrorStats {
	return &mirrorStats{clients: map[netip.Addr]*clientActivity{}}
}

// begin counts a request of addr until the returned function is called.
func (s *mirrorStats) begin(addr netip.Addr, now time.Time) func(time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[addr]
	if c == nil {
		c = &clientActivity{}
		s.clients[addr] = c
	}
	c.inflight++
	c.last = now
	return func(end time.Time) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c.inflight--
		c.last = end
	}
}

// view sums up the counters; clients who left long ago are forgotten.
func (s *mirrorStats) view(now time.Time, cachedModels int) StatsView {
	s.mu.Lock()
	active := 0
	for addr, c := range s.clients {
		switch {
		case c.inflight > 0 || now.Sub(c.last) < clientWindow:
			active++
		default:
			delete(s.clients, addr)
		}
	}
	s.mu.Unlock()
	served, upstream := s.served.Load(), s.upstream.Load()
	return StatsView{
		CachedModels:  cachedModels,
		BytesServed:   served,
		BytesUpstream: upstream,
		BytesSaved:    max(served-upstream, 0),
		Clients:       active,
	}
}

// countingWriter counts the body bytes a handler sends. It keeps the
// response's ReadFrom, so http.ServeContent still sends a cached file with
// sendfile, and its Flush, so a blob that is still arriving goes out as it
// comes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.n.Add(n)
	return n, err
}

func (c countingWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real response.
func (c countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
