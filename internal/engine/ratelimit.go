package engine

import (
	"context"
	"io"
	"ollama-model-downloader/internal/fault"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RateLimiter is a token bucket in bytes per second, shared by every
// connection that draws on it, and changeable while they run (the -limit-rate
// flag, the API and the UI). A nil *rateLimiter or a rate of 0 is unlimited.
type RateLimiter struct {
	// limit mirrors rate for the readers that only ask whether there is a
	// limit: every read of every connection does, mostly to learn there is
	// none, and should not queue on mu for it.
	limit atomic.Int64

	mu     sync.Mutex
	rate   float64 // bytes per second; 0 = unlimited
	tokens float64 // may go negative: a debt the next callers wait out
	last   time.Time
}

func NewRateLimiter(bytesPerSecond int64) *RateLimiter {
	l := &RateLimiter{}
	l.SetRate(bytesPerSecond)
	return l
}

// SetRate changes the limit; 0 or less removes it.
func (l *RateLimiter) SetRate(bytesPerSecond int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = float64(max(bytesPerSecond, 0))
	l.limit.Store(int64(l.rate))
	l.tokens = 0
	l.last = time.Now()
}

// Rate is the current limit in bytes per second, 0 when unlimited.
func (l *RateLimiter) Rate() int64 {
	if l == nil {
		return 0
	}
	return l.limit.Load()
}

// chunk is how many bytes a reader should take at once under this limit,
// so that one wait stays short (well below the stall timeout).
func (l *RateLimiter) chunk(n int) int {
	rate := l.Rate()
	if rate <= 0 {
		return n
	}
	return int(min(max(rate/10, 1<<10), int64(n)))
}

// WaitN takes n bytes from the bucket, sleeping as long as the limit needs.
func (l *RateLimiter) WaitN(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := time.Now()
	// At most half a second of unused allowance is kept, so a pause does
	// not turn into a burst far above the limit.
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate/2)
	l.last = now
	l.tokens -= float64(n)
	wait := time.Duration(0)
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	return Sleep(ctx, wait)
}

// ParseRate reads a rate like curl's --limit-rate: "500K", "2M", "1.5m",
// "100000" (bytes per second; K, M, G are powers of 1024; "0" = none).
func ParseRate(s string) (int64, error) {
	v := strings.TrimSpace(strings.ToUpper(s))
	v = strings.TrimSuffix(strings.TrimSuffix(v, "/S"), "B")
	mult := 1.0
	if v != "" {
		switch v[len(v)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			v = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 || n*mult > 1<<50 {
		return 0, fault.BadInputf("invalid rate %q: use bytes per second like 500K, 2M or 0 for no limit", s)
	}
	return int64(n * mult), nil
}

// Writer is w paced by l, for bytes that do not come through a transfer
// (an export copying from disk): each write waits for its bytes, taken
// in pieces small enough that one wait stays short, so the limit can
// change while it runs. A nil l gives w itself.
func (l *RateLimiter) Writer(ctx context.Context, w io.Writer) io.Writer {
	if l == nil {
		return w
	}
	return limitedWriter{ctx: ctx, w: w, l: l}
}

type limitedWriter struct {
	ctx context.Context
	w   io.Writer
	l   *RateLimiter
}

func (lw limitedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := lw.l.chunk(len(p))
		if err := lw.l.WaitN(lw.ctx, n); err != nil {
			return written, err
		}
		m, err := lw.w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
