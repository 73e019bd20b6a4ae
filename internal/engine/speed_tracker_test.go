package engine

import (
	"math"
	"testing"
	"time"
)

func TestSpeedTrackerSteadyRate(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	for i := 0; i <= 30; i++ {
		s.Sample(start.Add(time.Duration(i)*time.Second), int64(i)*1000)
	}
	if got := s.Speed(); got != 1000 {
		t.Errorf("Speed() = %v, want 1000", got)
	}
	if got, want := s.ETA(5000), 5*time.Second; got != want {
		t.Errorf("ETA(5000) = %v, want %v", got, want)
	}
}

func TestSpeedTrackerWindowForgetsOldRate(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	var total int64
	// 20 s at 10 kB/s, then 10 s at 1 kB/s: only the last 10 s count.
	for i := 0; i <= 30; i++ {
		s.Sample(start.Add(time.Duration(i)*time.Second), total)
		if i < 20 {
			total += 10000
		} else {
			total += 1000
		}
	}
	if got := s.Speed(); got != 1000 {
		t.Errorf("Speed() after slowdown = %v, want 1000", got)
	}
}

func TestSpeedTrackerSubSecondSamples(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	s.Sample(start, 0)
	s.Sample(start.Add(500*time.Millisecond), 500)
	if got := s.Speed(); got != 1000 {
		t.Errorf("Speed() after half a second = %v, want 1000", got)
	}
}

func TestSpeedTrackerUnknown(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		samples   []int64 // bytes at 0 s, 1 s, 2 s, ...
		remaining int64
	}{
		{"no samples", nil, 100},
		{"one sample", []int64{10}, 100},
		{"no progress", []int64{10, 10, 10}, 100},
		{"unknown size", []int64{0, 100, 200}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSpeedTracker(10)
			for i, b := range tc.samples {
				s.Sample(start.Add(time.Duration(i)*time.Second), b)
			}
			if got := s.ETA(tc.remaining); got != -1 {
				t.Errorf("ETA = %v, want -1", got)
			}
		})
	}
}

func TestSpeedTrackerResetIgnoresResumedBytes(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	s.Reset(start, 1<<30) // 1 GiB already on disk
	s.Sample(start.Add(2*time.Second), 1<<30+4000)
	if got := s.Speed(); got != 2000 {
		t.Errorf("Speed() = %v, want 2000", got)
	}
}

// TestSpeedTrackerConcurrentUse: a transfer samples while the UI reads.
// The bytes grow at exactly 10 B/s, so every read taken whole is 0 (before
// two instants are known) or 10 B/s, and every ETA for 100 bytes -1 or
// 10 s: a read that mixed two samples would see another speed. (-race
// checks the locking itself.)
func TestSpeedTrackerConcurrentUse(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	const samples = 20000
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range samples {
			s.Sample(start.Add(time.Duration(i)*100*time.Millisecond), int64(i))
		}
	}()
	reads, moving := 0, 0
	for running := true; running && reads < 10_000_000; {
		select {
		case <-finished:
			running = false
		default:
		}
		speed, eta := s.Speed(), s.ETA(100)
		reads++
		if speed != 0 {
			moving++
		}
		if speed != 0 && math.Abs(speed-10) > 1e-9 {
			t.Fatalf("read %d: speed %v B/s, want 0 or 10", reads, speed)
		}
		if eta != -1 && eta != 10*time.Second {
			t.Fatalf("read %d: ETA %v, want -1 or 10s", reads, eta)
		}
	}
	<-finished
	if got := s.Speed(); math.Abs(got-10) > 1e-9 {
		t.Errorf("after the last sample: %v B/s, want 10", got)
	}
	if moving == 0 {
		t.Error("no read saw the speed: the test proves nothing")
	}
}

func BenchmarkSpeedTrackerSample(b *testing.B) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	for i := 0; b.Loop(); i++ {
		s.Sample(start.Add(time.Duration(i)*time.Millisecond), int64(i)*1024)
		_ = s.Speed()
	}
}
