package engine

import (
	"sync"
	"time"
)

// SpeedTracker turns a growing byte count into a speed over a rolling window
// of one-second samples (SPEC §5: the last 10), and an ETA from that speed.
// The caller passes the time in, so tests drive it by hand. It is safe for
// concurrent use: the transfer samples while the UI reads.
type SpeedTracker struct {
	mu      sync.Mutex
	window  int           // number of one-second intervals kept
	points  []speedSample // oldest first, at least one second apart
	current speedSample   // the latest sample, possibly < 1 s after the last point
}

type speedSample struct {
	at    time.Time
	bytes int64
}

func NewSpeedTracker(window int) *SpeedTracker {
	if window < 1 {
		window = 10
	}
	return &SpeedTracker{window: window}
}

// Reset forgets every sample and starts again from bytes at now. A resumed
// download calls it so the bytes already on disk do not count as speed.
func (s *SpeedTracker) Reset(now time.Time, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points = append(s.points[:0], speedSample{now, bytes})
	s.current = speedSample{now, bytes}
}

// Sample records that bytes have been transferred in total at now.
func (s *SpeedTracker) Sample(now time.Time, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = speedSample{now, bytes}
	if len(s.points) == 0 {
		s.points = append(s.points, s.current)
		return
	}
	if now.Sub(s.points[len(s.points)-1].at) < time.Second {
		return
	}
	s.points = append(s.points, s.current)
	if len(s.points) > s.window+1 {
		s.points = append(s.points[:0], s.points[len(s.points)-s.window-1:]...)
	}
}

// Speed is the average in bytes per second between the oldest kept sample
// and the latest one; 0 before two distinct instants are known.
func (s *SpeedTracker) Speed() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.points) == 0 {
		return 0
	}
	first := s.points[0]
	elapsed := s.current.at.Sub(first.at).Seconds()
	if elapsed <= 0 {
		return 0
	}
	delta := s.current.bytes - first.bytes
	if delta <= 0 {
		return 0
	}
	return float64(delta) / elapsed
}

// ETA is how long the remaining bytes take at the current speed, or -1
// when it cannot be known (unknown size or no speed yet).
func (s *SpeedTracker) ETA(remaining int64) time.Duration {
	speed := s.Speed()
	if remaining < 0 || speed <= 0 {
		return -1
	}
	return time.Duration(float64(remaining) / speed * float64(time.Second))
}
