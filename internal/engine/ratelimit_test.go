package engine

import (
	"bytes"
	"context"
	"ollama-model-downloader/internal/testkit"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"100000", 100000, true}, {"500K", 500 << 10, true}, {"500k", 500 << 10, true},
		{"2M", 2 << 20, true}, {"1.5M", 3 << 19, true}, {"1G", 1 << 30, true}, {"2MB/s", 2 << 20, true},
		{"", 0, false}, {"fast", 0, false}, {"-1K", 0, false}, {"1T", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRateLimiterNilAndZeroAreUnlimited(t *testing.T) {
	var nilLimiter *RateLimiter
	if err := nilLimiter.WaitN(t.Context(), 1<<30); err != nil {
		t.Fatal(err)
	}
	l := NewRateLimiter(0)
	done := make(chan error, 1)
	go func() { done <- l.WaitN(t.Context(), 1<<30) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("an unlimited limiter made the caller wait")
	}
}

func TestRateLimiterWaitsForDebt(t *testing.T) {
	l := NewRateLimiter(100 << 10) // 100 KiB/s
	start := time.Now()
	for range 5 {
		if err := l.WaitN(t.Context(), 10<<10); err != nil {
			t.Fatal(err)
		}
	}
	// 50 KiB at 100 KiB/s takes about half a second.
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("50 KiB passed in %v under a 100 KiB/s limit", elapsed)
	}
}

func TestRateLimiterCancelledWait(t *testing.T) {
	l := NewRateLimiter(1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := l.WaitN(ctx, 1<<20); err == nil {
		t.Fatal("a cancelled wait returned no error")
	}
}

func TestDownloadHonoursRateLimit(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(96<<10))
	d := testDownloader(t)
	d.limiter.SetRate(128 << 10)
	start := time.Now()
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
		t.Errorf("96 KiB at 128 KiB/s took %v, want ≥ 0.5 s", elapsed)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
}

func TestSegmentsHonourPerDownloadLimit(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(256<<10))
	d := splittingDownloader(t)
	start := time.Now()
	res, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: t.TempDir(), Limiter: NewRateLimiter(512 << 10)})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("256 KiB at 512 KiB/s over several connections took %v, want ≥ 0.3 s", elapsed)
	}
	if !bytes.Equal(testkit.ReadFile(t, res.Path), o.Content()) {
		t.Error("bytes differ")
	}
}
