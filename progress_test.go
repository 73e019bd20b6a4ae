package main

import (
	"bytes"
	"context"
	"ollama-model-downloader/internal/units"
	"strings"
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}, {1 << 40, "1.0 TiB"},
	}
	for _, tc := range tests {
		if got := units.Binary(tc.in); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatStatus(t *testing.T) {
	tests := []struct {
		name string
		in   transferStatus
		want string
	}{
		{"downloading", transferStatus{Name: "x.iso", State: "downloading", Done: 512 << 20, Total: 1 << 30, Speed: 2 << 20, ETA: 256 * time.Second},
			"x.iso   50.0%  512.0 MiB / 1.0 GiB  2.0 MiB/s  ETA 4m16s"},
		{"unknown size", transferStatus{Name: "y", State: "downloading", Done: 2048, Total: -1, Speed: 0, ETA: -1},
			"y  2.0 KiB  0 B/s"},
		{"completed", transferStatus{Name: "z", State: "completed", Done: 10, Total: 10},
			"z  100.0%  10 B / 10 B  completed"},
		{"an export copying", transferStatus{Name: "qwen2:0.5b", State: "copying", Done: 1 << 30, Total: 2 << 30, Speed: 256 << 20, ETA: 4 * time.Second},
			"qwen2:0.5b   50.0%  1.0 GiB / 2.0 GiB  256.0 MiB/s  ETA 4s  copying"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatStatus(tc.in, 0); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestProgressPrinterPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := newProgressPrinter(&out, func() []transferStatus {
		return []transferStatus{
			{Name: "a.bin", State: "downloading", Done: 1, Total: 2, ETA: -1, Running: true},
			{Name: "b.bin", State: "completed", Done: 2, Total: 2},
			{Name: "c:latest", State: "copying", Done: 1, Total: 4, ETA: -1, Running: true},
		}
	})
	p.every = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	p.Run(ctx)
	text := out.String()
	if !strings.Contains(text, "a.bin   50.0%") || !strings.Contains(text, "c:latest   25.0%") {
		t.Errorf("no progress line for the running transfers (an export copying too) in %q", text)
	}
	if strings.Contains(text, "b.bin") || strings.Contains(text, "\x1b[") {
		t.Errorf("plain output shows finished transfers or terminal codes: %q", text)
	}
}

func TestProgressPrinterTerminalRedraws(t *testing.T) {
	var out bytes.Buffer
	p := newProgressPrinter(&out, func() []transferStatus {
		return []transferStatus{{Name: "a", State: "downloading", Total: -1, ETA: -1}, {Name: "b", State: "queued", Total: -1}}
	})
	p.terminal = true
	p.draw(false)
	p.draw(false)
	if !strings.Contains(out.String(), "\x1b[2A") {
		t.Errorf("second draw did not move the cursor up two lines: %q", out.String())
	}
}
