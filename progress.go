package main

import (
	"context"
	"fmt"
	"io"
	"ollama-model-downloader/internal/units"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// transferStatus is one line of the CLI's progress display.
type transferStatus struct {
	Name  string
	State string // queued, downloading, verifying, packaging, completed, failed, canceled, paused
	Done  int64
	Total int64 // -1 when unknown
	Speed float64
	ETA   time.Duration // -1 when unknown
	// Running is a transfer at work: State may name its phase
	// ("copying") rather than a queue state.
	Running bool
}

// progressPrinter draws transfer progress on stderr: redrawn in place on a
// terminal, plain periodic lines otherwise (logs, pipes, CI).
type progressPrinter struct {
	out      io.Writer
	terminal bool
	width    int
	every    time.Duration // how often a plain line is logged per transfer
	snapshot func() []transferStatus
	drawn    int // lines drawn last time (terminal mode)
}

func newProgressPrinter(out io.Writer, snapshot func() []transferStatus) *progressPrinter {
	return &progressPrinter{out: out, terminal: isTerminal(out), width: 100, every: 5 * time.Second, snapshot: snapshot}
}

// isTerminal reports whether w is a character device (a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Run redraws until ctx is done, then draws the final state once.
func (p *progressPrinter) Run(ctx context.Context) {
	interval := p.every
	if p.terminal {
		interval = 250 * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			p.draw(true)
			return
		case <-ticker.C:
			p.draw(false)
		}
	}
}

func (p *progressPrinter) draw(final bool) {
	statuses := p.snapshot()
	if !p.terminal {
		if final {
			return // the summary follows
		}
		for _, s := range statuses {
			if s.Running {
				fmt.Fprintln(p.out, formatStatus(s, 0))
			}
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn) // back to the first line we drew
	}
	for _, s := range statuses {
		b.WriteString("\x1b[2K")
		b.WriteString(formatStatus(s, p.width))
		b.WriteByte('\n')
	}
	p.drawn = len(statuses)
	io.WriteString(p.out, b.String())
}

// formatStatus renders "name  45.0%  1.2 GiB / 2.6 GiB  12.3 MiB/s  ETA 1m52s".
func formatStatus(s transferStatus, width int) string {
	name := s.Name
	if width > 0 && utf8.RuneCountInString(name) > 40 {
		r := []rune(name)
		name = string(r[:18]) + "…" + string(r[len(r)-21:])
	}
	parts := []string{name}
	switch {
	case s.Total > 0:
		parts = append(parts, fmt.Sprintf("%5.1f%%", float64(s.Done)*100/float64(s.Total)),
			units.Binary(s.Done)+" / "+units.Binary(s.Total))
	default:
		parts = append(parts, units.Binary(s.Done))
	}
	if s.State == "downloading" || s.State == "copying" { // copying: an export, from disk
		parts = append(parts, units.Binary(int64(s.Speed))+"/s")
		if s.ETA >= 0 {
			parts = append(parts, "ETA "+s.ETA.Round(time.Second).String())
		}
	}
	if s.State != "downloading" {
		parts = append(parts, s.State)
	}
	return strings.Join(parts, "  ")
}
