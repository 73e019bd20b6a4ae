package units

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0 s"}, {400 * time.Millisecond, "0 s"}, {20 * time.Second, "20 s"}, {time.Minute, "1 min"},
		{185 * time.Second, "3 min 5 s"}, {time.Hour, "1 h"}, {2*time.Hour + 10*time.Minute + 5*time.Second, "2 h 10 min"},
		{-time.Second, "0 s"},
	}
	for _, tc := range tests {
		if got := Duration(tc.in); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
