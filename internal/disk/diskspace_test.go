package disk

import (
	"errors"
	"fmt"
	"ollama-model-downloader/internal/units"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheckFreeSpace(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeSpace(dir)
	if err != nil {
		t.Skipf("free space unknown here: %v", err)
	}
	if err := CheckFreeSpace(dir, 1); err != nil {
		t.Fatalf("one byte: %v", err)
	}
	// A folder not made yet is checked on its nearest existing parent.
	if err := CheckFreeSpace(filepath.Join(dir, "not", "yet"), 1); err != nil {
		t.Fatalf("one byte into a folder to be made: %v", err)
	}
	err = CheckFreeSpace(dir, free+1<<40)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("more than the disk has: got %v, want errNoSpace", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "not enough free space on /") || !strings.Contains(msg, "need ") || !strings.Contains(msg, " free") {
		t.Fatalf("message %q does not say where, what is needed and what is free", msg)
	}
}

func TestDiskFullError(t *testing.T) {
	dir := t.TempDir()
	err := FullError(fmt.Errorf("writing x.part: %w", syscall.ENOSPC), filepath.Join(dir, "x.part"))
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("ENOSPC: got %v", err)
	}
	other := errors.New("permission denied")
	if got := FullError(other, filepath.Join(dir, "x")); got != other {
		t.Fatalf("another error changed: %v", got)
	}
}

func TestSizeText(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{999, "999 B"}, {1000, "1.0 kB"}, {4_700_000_000, "4.7 GB"}, {1_200_000_000, "1.2 GB"}} {
		if got := units.Decimal(tc.n); got != tc.want {
			t.Errorf("sizeText(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
