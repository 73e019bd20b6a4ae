package queue

import (
	"context"
	"ollama-model-downloader/internal/history"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQueueJournalBadLineSkipped: garbage on one line in the middle of
// queue.journal costs that line only: every job of the other lines comes
// back, the journal as it was is kept for a person (Recovered), and the
// queue read is written out at once, so that a second crash before any
// clean stop loses nothing either (issue 25: 1 of 3 jobs came back, and
// the rest lived only in memory).
func TestQueueJournalBadLineSkipped(t *testing.T) {
	dir := t.TempDir()
	m := newTestManager(t, dir, 1, nil)
	var ids []string
	for _, u := range []string{"https://example.com/a", "https://example.com/b", "https://example.com/c"} {
		ids = append(ids, mustAdd(t, m, u).ID)
	}
	m.Close() // a kill: the journal holds the adds, queue.json nothing
	journal := filepath.Join(dir, ".state", "queue.journal")
	data, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) < 3 {
		t.Fatalf("journal has %d lines, want one per add", len(lines))
	}
	bad := lines[0] + "\x00\x00garbage{\n" + strings.Join(lines[1:], "")
	if err := os.WriteFile(journal, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}

	listIDs := func(m *Manager) []string {
		var got []string
		for _, v := range m.List() {
			got = append(got, v.ID)
		}
		return got
	}
	m2 := newTestManager(t, dir, 1, nil)
	if got := listIDs(m2); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("after the bad line: jobs %v, want %v", got, ids)
	}
	if kept, err := os.ReadFile(m2.Recovered()); err != nil || string(kept) != bad {
		t.Errorf("the journal as it was: Recovered() = %q (%v)", m2.Recovered(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".state", "queue.json")); err != nil {
		t.Errorf("the queue read was not written out: %v", err)
	}
	m2.Close() // a second kill, before any clean stop

	m3 := newTestManager(t, dir, 1, nil)
	defer m3.Close()
	if got := listIDs(m3); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("after a second crash: jobs %v, want %v", got, ids)
	}
	if m3.Recovered() != "" {
		t.Errorf("the second start recovered %q again", m3.Recovered())
	}
}

// TestCleanStopFoldsTheJournalForTheWebUIOnly pins what docs/MANAGER.md
// says of a clean stop: the web UI's leaves queue.json whole and the
// journal empty; a command's (OwnJobsOnly) leaves its few lines in the
// journal, without a queue.json, and the next start reads them.
func TestCleanStopFoldsTheJournalForTheWebUIOnly(t *testing.T) {
	for _, own := range []bool{false, true} {
		dir := t.TempDir()
		f := newFakeEngine(t)
		m, err := New(Config{OutputDir: dir, Concurrency: 1, OwnJobsOnly: own})
		if err != nil {
			t.Fatal(err)
		}
		m.download = f.download
		stop := runManager(t, m)
		id := mustAdd(t, m, "https://example.com/a").ID
		f.waitStarted("https://example.com/a")
		stop()
		journal, _ := os.ReadFile(filepath.Join(dir, ".state", "queue.journal"))
		_, qerr := os.Stat(filepath.Join(dir, ".state", "queue.json"))
		if !own && (len(journal) != 0 || qerr != nil) {
			t.Errorf("web UI: a clean stop left %d journal bytes, queue.json: %v", len(journal), qerr)
		}
		if own && (len(journal) == 0 || qerr == nil) {
			t.Errorf("command: a clean stop left %d journal bytes and queue.json (%v); want its lines only", len(journal), qerr)
		}
		m2 := newTestManager(t, dir, 1, nil)
		if v, err := m2.Get(id); err != nil || v.State != "queued" {
			t.Errorf("own=%v: after the clean stop the download is %+v (%v), want queued", own, v, err)
		}
		m2.Close()
	}
}

// TestFailedHistoryRecordMakesTheEndDurable: a job's end is normally left
// unsynced in the queue's journal, because its history record is fsynced
// and a restart settles the job from it. When that record cannot be
// written (a full disk), the queue's journal must hold the end durably
// before Wait hears of it.
func TestFailedHistoryRecordMakesTheEndDurable(t *testing.T) {
	for _, historyFails := range []bool{false, true} {
		dir := t.TempDir()
		f := newFakeEngine(t)
		m := newTestManager(t, dir, 1, f)
		m.saveEvery = time.Hour
		records := 0
		m.addHistory = func(history.Record) error {
			records++
			if historyFails {
				return &os.PathError{Op: "write", Path: "history.journal", Err: syscall.ENOSPC}
			}
			return nil
		}
		runManager(t, m)
		waitStarted(t, m) // Run's own first save is behind it
		id := mustAdd(t, m, "https://example.com/a").ID
		f.waitStarted("https://example.com/a")
		f.finishTransfer("https://example.com/a", nil)
		ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
		if err := m.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
		cancel()
		m.mu.Lock()
		unsynced := m.store.journal.Unsynced()
		m.mu.Unlock()
		switch {
		case records != 1:
			t.Errorf("history failing=%v: %d history writes, want 1", historyFails, records)
		case historyFails && unsynced != 0:
			t.Errorf("the history record failed, and the job's end is not durable in the queue: %d bytes unsynced", unsynced)
		case !historyFails && unsynced == 0:
			t.Errorf("with the history record written, the end was synced in the queue too: the control proves nothing")
		}
	}
}
