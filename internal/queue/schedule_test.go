package queue

import (
	"errors"
	"ollama-model-downloader/internal/fault"
	"testing"
	"time"
)

func TestParseTimeWindow(t *testing.T) {
	for _, tc := range []struct {
		start, end string
		ok         bool
	}{
		{"", "", true},
		{"02:00", "07:00", true},
		{"23:30", "06:00", true},
		{"2:05", "7:00", true},
		{"02:00", "", false},
		{"", "07:00", false},
		{"24:00", "07:00", false},
		{"02:60", "07:00", false},
		{"02:00", "02:00", false},
		{"two", "07:00", false},
		{"02:0", "07:00", false},
		{"-1:00", "07:00", false},
	} {
		_, err := ParseWindow(tc.start, tc.end)
		if (err == nil) != tc.ok {
			t.Errorf("ParseWindow(%q, %q) = %v, want ok=%v", tc.start, tc.end, err, tc.ok)
		}
		if err != nil && !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("ParseWindow(%q, %q): %v does not match ErrBadInput", tc.start, tc.end, err)
		}
	}
}

func TestScheduleFlag(t *testing.T) {
	w, err := ParseScheduleFlag("02:00-07:00")
	if err != nil || w.Start() != "02:00" || w.End() != "07:00" {
		t.Fatalf("got %v %v", w, err)
	}
	for _, bad := range []string{"02:00", "2am-7am", "02:00-02:00"} {
		if _, err := ParseScheduleFlag(bad); !errors.Is(err, fault.ErrBadInput) {
			t.Errorf("ParseScheduleFlag(%q) = %v, want ErrBadInput", bad, err)
		}
	}
}

func TestTimeWindowOpenAndNext(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 12, 4, h, m, 30, 0, time.Local) }
	night, _ := ParseWindow("23:00", "07:00")
	day, _ := ParseWindow("02:00", "07:00")
	for _, tc := range []struct {
		name string
		w    Window
		t    time.Time
		open bool
		next time.Time
	}{
		{"always", Window{}, at(12, 0), true, time.Time{}},
		{"inside", day, at(3, 0), true, at(7, 0).Truncate(time.Minute)},
		{"before", day, at(1, 59), false, at(2, 0).Truncate(time.Minute)},
		{"end is exclusive", day, at(7, 0), false, at(2, 0).AddDate(0, 0, 1).Truncate(time.Minute)},
		{"across midnight, late", night, at(23, 10), true, at(7, 0).AddDate(0, 0, 1).Truncate(time.Minute)},
		{"across midnight, early", night, at(6, 59), true, at(7, 0).Truncate(time.Minute)},
		{"across midnight, closed", night, at(12, 0), false, at(23, 0).Truncate(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Open(tc.t); got != tc.open {
				t.Errorf("Open = %v, want %v", got, tc.open)
			}
			if got := tc.w.NextChange(tc.t); !got.Equal(tc.next) {
				t.Errorf("NextChange = %v, want %v", got, tc.next)
			}
		})
	}
}
