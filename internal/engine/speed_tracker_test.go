package engine

import (
	"sync"
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

func TestSpeedTrackerConcurrentUse(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 1000 {
			s.Sample(start.Add(time.Duration(i)*time.Millisecond*100), int64(i))
		}
	}()
	go func() {
		defer wg.Done()
		for range 1000 {
			_ = s.ETA(100)
		}
	}()
	wg.Wait()
}

func BenchmarkSpeedTrackerSample(b *testing.B) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSpeedTracker(10)
	for i := 0; b.Loop(); i++ {
		s.Sample(start.Add(time.Duration(i)*time.Millisecond), int64(i)*1024)
		_ = s.Speed()
	}
}
