package history

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"ollama-model-downloader/internal/fault"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var historyT0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// testRecords makes n distinct finished downloads, oldest first, one
// minute apart, cycling through statuses and hosts.
func testRecords(n int) []Record {
	statuses := []string{"completed", "completed", "failed", "canceled"}
	recs := make([]Record, n)
	for i := range recs {
		start := historyT0.Add(time.Duration(i) * time.Minute)
		recs[i] = Record{
			ID:         fmt.Sprintf("d-%d", i),
			Kind:       "file",
			Source:     fmt.Sprintf("https://host%d.example/files/file-%d.iso", i%3, i),
			FileName:   fmt.Sprintf("file-%d.iso", i),
			Path:       fmt.Sprintf("file-%d.iso", i),
			Size:       int64(1000 + i),
			StartedAt:  start,
			FinishedAt: start.Add(10 * time.Second),
			Status:     statuses[i%len(statuses)],
		}
	}
	return recs
}

// writeHistorySnapshot puts a snapshot with recs straight on disk, the way
// the store writes one, so that tests can start from many records fast.
func writeHistorySnapshot(t testing.TB, outputDir string, recs []Record) {
	t.Helper()
	dir := filepath.Join(outputDir, historyDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(historySnapshot{Version: 1, Seq: int64(len(recs)), Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, historyFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustOpenHistory(t testing.TB, outputDir string) *Store {
	t.Helper()
	h, err := Open(outputDir, nil)
	if err != nil {
		t.Fatalf("openHistory: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// crash stops h as a kill -9 would: no flush, the journal file just closed.
func crash(h *Store) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.closed = true
	// What a kill leaves: the journal's lines, written, in the file.
	h.journal.Close()
}

func listAll(t *testing.T, h *Store) []Record {
	t.Helper()
	page, err := h.List(Query{Limit: MaxLimit})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if page.Total > MaxLimit {
		t.Fatalf("listAll used with %d records", page.Total)
	}
	return page.Records
}

func recordIDs(recs []Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func TestHistoryRoundTripAcrossReopen(t *testing.T) {
	for _, segment := range []int{1, 3, 1000} {
		t.Run(fmt.Sprintf("segment=%d", segment), func(t *testing.T) {
			dir := t.TempDir()
			h := mustOpenHistory(t, dir)
			h.segment = segment
			recs := testRecords(7)
			for _, r := range recs {
				if err := h.Add(r); err != nil {
					t.Fatalf("Add: %v", err)
				}
			}
			if err := h.Delete("d-2"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			before := listAll(t, h)
			crash(h) // the journal alone must bring it back

			h2 := mustOpenHistory(t, dir)
			h2.segment = segment
			after := listAll(t, h2)
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("after reopen:\n got %+v\nwant %+v", after, before)
			}
			want := []string{"d-6", "d-5", "d-4", "d-3", "d-1", "d-0"}
			if got := recordIDs(after); !reflect.DeepEqual(got, want) {
				t.Errorf("ids = %v, want %v", got, want)
			}
			// Every field survives, times in UTC.
			if got, want := after[0], recs[6]; got.Source != want.Source || got.Size != want.Size ||
				!got.StartedAt.Equal(want.StartedAt) || got.FinishedAt.Location() != time.UTC || got.Duration != 10 {
				t.Errorf("record = %+v, from %+v", got, want)
			}

			// New records after a reopen keep going, then Clear survives a reopen.
			if err := h2.Add(Record{Source: "llama3:latest", Kind: "model", Status: "completed"}); err != nil {
				t.Fatalf("Add after reopen: %v", err)
			}
			h2.Flush()
			if got := listAll(t, mustOpenHistory(t, dir)); len(got) != 7 || got[0].Source != "llama3:latest" {
				t.Fatalf("after add and reopen: %v", recordIDs(got))
			}
			if err := h2.Clear(); err != nil {
				t.Fatalf("Clear: %v", err)
			}
			if got := listAll(t, mustOpenHistory(t, dir)); len(got) != 0 {
				t.Fatalf("after Clear and reopen: %v", recordIDs(got))
			}
		})
	}
}

func TestHistoryAddFillsDerivedFields(t *testing.T) {
	h := mustOpenHistory(t, t.TempDir())
	tehran := time.FixedZone("IRST", 3*3600+1800)
	in := Record{
		ID:         "d-1",
		Kind:       "file",
		Source:     "https://Mirror.Example.COM:8443/dl/Ubuntu.ISO?token=x",
		FileName:   "Ubuntu.ISO",
		Size:       4000,
		StartedAt:  historyT0.In(tehran),
		FinishedAt: historyT0.Add(4 * time.Second).In(tehran),
		Status:     "completed",
	}
	if err := h.Add(in); err != nil {
		t.Fatal(err)
	}
	if err := h.Add(in); err != nil { // the same job finishing twice (retry)
		t.Fatal(err)
	}
	if err := h.Add(Record{Status: "done"}); !errors.Is(err, fault.ErrBadInput) {
		t.Errorf("Add with status done: %v, want ErrBadInput", err)
	}
	got := listAll(t, h)
	if ids := recordIDs(got); !reflect.DeepEqual(ids, []string{"d-1-2", "d-1"}) {
		t.Fatalf("ids = %v", ids)
	}
	r := got[1]
	if r.Domain != "mirror.example.com" || r.FileType != "iso" || r.Duration != 4 || r.AverageSpeed != 1000 ||
		r.StartedAt.Location() != time.UTC || !r.StartedAt.Equal(historyT0) {
		t.Errorf("derived fields: %+v", r)
	}
}

func TestHistoryListPaging(t *testing.T) {
	dir := t.TempDir()
	writeHistorySnapshot(t, dir, testRecords(1200))
	h := mustOpenHistory(t, dir)
	tests := []struct {
		name      string
		q         Query
		total     int
		first     string // id of the first record on the page, "" = empty page
		n         int
		wantError error
	}{
		{name: "default", q: Query{}, total: 1200, first: "d-1199", n: 50},
		{name: "limit 0 is the default", q: Query{Limit: 0, Offset: 10}, total: 1200, first: "d-1189", n: 50},
		{name: "negative limit is the default", q: Query{Limit: -5}, total: 1200, first: "d-1199", n: 50},
		{name: "huge limit is capped", q: Query{Limit: 1 << 30}, total: 1200, first: "d-1199", n: 1000},
		{name: "last partial page", q: Query{Limit: 50, Offset: 1180}, total: 1200, first: "d-19", n: 20},
		{name: "offset at the end", q: Query{Offset: 1200}, total: 1200, n: 0},
		{name: "offset far past the end", q: Query{Offset: 1 << 62}, total: 1200, n: 0},
		{name: "negative offset", q: Query{Offset: -1}, wantError: fault.ErrBadInput},
		{name: "unknown status", q: Query{Status: "done"}, wantError: fault.ErrBadInput},
		{name: "status failed", q: Query{Status: "Failed", Limit: 2}, total: 300, first: "d-1198", n: 2},
		{name: "status past the end", q: Query{Status: "canceled", Offset: 300}, total: 300, n: 0},
		{name: "search ignores case", q: Query{Search: "FILE-119"}, total: 11, first: "d-1199", n: 11},
		{name: "search host and status", q: Query{Search: "host2.example", Status: "completed", Limit: 1000}, total: 200, first: "d-1196", n: 200},
		{name: "search nothing", q: Query{Search: "nothing-like-this"}, total: 0, n: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := h.List(tc.q)
			if tc.wantError != nil {
				if !errors.Is(err, tc.wantError) {
					t.Fatalf("List(%+v) error = %v, want %v", tc.q, err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("List(%+v): %v", tc.q, err)
			}
			if page.Total != tc.total || len(page.Records) != tc.n {
				t.Fatalf("List(%+v) = total %d, %d records; want %d, %d", tc.q, page.Total, len(page.Records), tc.total, tc.n)
			}
			if page.Records == nil {
				t.Errorf("Records is nil, want [] in JSON")
			}
			if tc.n > 0 && page.Records[0].ID != tc.first {
				t.Errorf("first id = %s, want %s", page.Records[0].ID, tc.first)
			}
			for i := 1; i < len(page.Records); i++ {
				if !page.Records[i].FinishedAt.Before(page.Records[i-1].FinishedAt) {
					t.Fatalf("records not newest first at %d", i)
				}
			}
		})
	}
}

func TestHistoryDelete(t *testing.T) {
	dir := t.TempDir()
	writeHistorySnapshot(t, dir, testRecords(3))
	h := mustOpenHistory(t, dir)
	if err := h.Delete("d-9"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("Delete(unknown) = %v, want ErrNotFound", err)
	}
	if err := h.Delete("d-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete("d-1"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if got := recordIDs(listAll(t, mustOpenHistory(t, dir))); !reflect.DeepEqual(got, []string{"d-2", "d-0"}) {
		t.Errorf("after reopen ids = %v", got)
	}
}

func TestHistoryConcurrentAdds(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	h.segment = 16                  // archives are written while others append
	h.flushDelay = time.Millisecond // and history.json is rewritten often
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				errs <- h.Add(Record{
					ID:       "same-id", // collisions must still give distinct ids
					Source:   fmt.Sprintf("https://h/%d-%d.bin", w, i),
					FileName: fmt.Sprintf("%d-%d.bin", w, i),
					Status:   "completed",
				})
				if _, err := h.List(Query{Search: "bin"}); err != nil {
					errs <- err
				}
				h.Stats(historyT0)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("concurrent Adds did not finish in 30 s")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One store at a time owns a folder (the folder lock sees to it): the
	// live one is closed before the folder is opened again.
	check := func(name string, store *Store) {
		t.Helper()
		page, err := store.List(Query{Limit: MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != workers*each {
			t.Errorf("%s: total = %d, want %d", name, page.Total, workers*each)
		}
		seen := map[string]bool{}
		for _, r := range page.Records {
			if seen[r.ID] {
				t.Errorf("%s: duplicate id %s", name, r.ID)
			}
			seen[r.ID] = true
		}
	}
	check("live", h)
	h.Close()
	check("reopened", mustOpenHistory(t, dir))
}

func TestHistoryCorruptFileIsMovedAside(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"garbage", "this is not json \x00\xff"},
		{"truncated", `{"version":1,"seq":2,"records":[{"id":"a","status":"completed"},{"id":"b"`},
		{"unknown version", `{"version":7,"seq":2,"records":[]}`},
		{"wrong type", `{"version":1,"seq":"two","records":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, historyDirName, historyFileName)
			os.MkdirAll(filepath.Dir(file), 0o755)
			if err := os.WriteFile(file, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			h := mustOpenHistory(t, dir)
			moved := h.Recovered()
			if !strings.HasPrefix(moved, file+".corrupt-") {
				t.Fatalf("Recovered() = %q, want %s.corrupt-<time>", moved, file)
			}
			if kept, err := os.ReadFile(moved); err != nil || string(kept) != tc.data {
				t.Fatalf("moved-aside file = %q, %v; want the original bytes", kept, err)
			}
			if got := h.Stats(historyT0).RecoveredFrom; got != moved {
				t.Errorf("Stats().RecoveredFrom = %q, want %q", got, moved)
			}
			// A fresh, valid history was started and works.
			if err := h.Add(testRecords(1)[0]); err != nil {
				t.Fatal(err)
			}
			h2 := mustOpenHistory(t, dir)
			if h2.Recovered() != "" || len(listAll(t, h2)) != 1 {
				t.Errorf("after recovery and reopen: recovered %q, %d records", h2.Recovered(), len(listAll(t, h2)))
			}
		})
	}
}

func TestHistoryUnreadableFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, historyDirName, historyFileName)
	if err := os.MkdirAll(file, 0o755); err != nil { // a folder where the file should be
		t.Fatal(err)
	}
	h := mustOpenHistory(t, dir)
	if fi, err := os.Stat(h.Recovered()); err != nil || !fi.IsDir() {
		t.Fatalf("Recovered() = %q (%v), want the folder moved aside", h.Recovered(), err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("no fresh history file: %v", err)
	}
}

func TestHistoryCorruptJournalKeepsEarlierRecords(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	for _, r := range testRecords(3) {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	crash(h)
	journal := filepath.Join(dir, historyDirName, historyJournalName)
	data, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	bad := lines[0] + "{broken\n" + strings.Join(lines[1:], "")
	if err := os.WriteFile(journal, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := mustOpenHistory(t, dir)
	if kept, err := os.ReadFile(h2.Recovered()); err != nil || string(kept) != bad {
		t.Fatalf("moved-aside journal %q = %q, %v", h2.Recovered(), kept, err)
	}
	if got := recordIDs(listAll(t, h2)); !reflect.DeepEqual(got, []string{"d-0"}) {
		t.Errorf("ids = %v, want the record before the broken line", got)
	}
}

// A crash while a snapshot is being written leaves a temp file beside the
// previous history.json, which must win.
func TestHistoryCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	for _, r := range testRecords(4) {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	want := listAll(t, h)
	crash(h)
	stray := filepath.Join(dir, historyDirName, "history.json.tmp-123456")
	if err := os.WriteFile(stray, []byte(`{"version":1,"seq":9,"records":[{"id":"half`), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := mustOpenHistory(t, dir)
	if got := listAll(t, h2); !reflect.DeepEqual(got, want) {
		t.Errorf("after crash:\n got %v\nwant %v", recordIDs(got), recordIDs(want))
	}
	if h2.Recovered() != "" {
		t.Errorf("Recovered() = %q, want nothing to recover", h2.Recovered())
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("stray temp file still there: %v", err)
	}
}

// A crash after the snapshot's rename but before the journal was emptied
// leaves journal lines the snapshot already holds: nothing happens twice.
func TestHistoryCrashBeforeJournalTruncate(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	for _, r := range testRecords(4) {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Delete("d-1"); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, historyDirName, historyJournalName)
	old, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	crash(h)
	if err := os.WriteFile(journal, old, 0o644); err != nil { // undo the truncation
		t.Fatal(err)
	}
	want := listAll(t, h)
	if got := listAll(t, mustOpenHistory(t, dir)); !reflect.DeepEqual(got, want) {
		t.Errorf("after replay:\n got %v\nwant %v", recordIDs(got), recordIDs(want))
	}
}

// A power cut in the middle of an append leaves a last line without its
// newline: that Add never returned, so dropping it loses nothing promised.
func TestHistoryTornJournalLine(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	for _, r := range testRecords(2) {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	journal := filepath.Join(dir, historyDirName, historyJournalName)
	crash(h)
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":3,"op":"add","record":{"id":"torn","sta`)
	f.Close()

	h2 := mustOpenHistory(t, dir)
	if got := recordIDs(listAll(t, h2)); !reflect.DeepEqual(got, []string{"d-1", "d-0"}) {
		t.Errorf("ids = %v", got)
	}
	if h2.Recovered() != "" {
		t.Errorf("Recovered() = %q for a torn last line", h2.Recovered())
	}
	if err := h2.Add(Record{ID: "next", Status: "failed"}); err != nil {
		t.Fatal(err)
	}
	crash(h2)
	if got := recordIDs(listAll(t, mustOpenHistory(t, dir))); !reflect.DeepEqual(got, []string{"next", "d-1", "d-0"}) {
		t.Errorf("after another Add and reopen: ids = %v", got)
	}
}

func TestHistoryLegacyArrayFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, historyDirName, historyFileName)
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte(`[{"id":"a","status":"completed","size":5},{"status":"failed"}]`), 0o644)
	h := mustOpenHistory(t, dir)
	if got := recordIDs(listAll(t, h)); !reflect.DeepEqual(got, []string{"h-0-1", "a"}) {
		t.Errorf("ids = %v", got)
	}
}

// TestHistoryArchives: history.json keeps the newest records and moves
// older ones to archive files it lists; the web UI sees all of them, a CLI
// run only history.json; an archived record can be deleted; a crash
// between writing an archive and the history.json that drops its records
// duplicates nothing.
func TestHistoryArchives(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	h.segment = 2
	recs := testRecords(7)
	for _, r := range recs {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	var snap historySnapshot
	data, err := os.ReadFile(filepath.Join(dir, historyDirName, historyFileName))
	if err != nil || json.Unmarshal(data, &snap) != nil {
		t.Fatalf("history.json: %v %s", err, data)
	}
	if got := recordIDs(snap.Records); !slices.Equal(got, []string{"d-4", "d-5", "d-6"}) || snap.Total != 7 || len(snap.Archives) != 2 {
		t.Fatalf("history.json holds %v, total %d, archives %+v", got, snap.Total, snap.Archives)
	}
	for _, a := range snap.Archives {
		if _, err := os.Stat(filepath.Join(dir, historyDirName, a.File)); err != nil || a.Records != 2 {
			t.Errorf("archive %+v: %v", a, err)
		}
	}
	want := []string{"d-6", "d-5", "d-4", "d-3", "d-2", "d-1", "d-0"}
	if got := recordIDs(listAll(t, h)); !slices.Equal(got, want) {
		t.Errorf("live: %v", got)
	}
	if err := h.Delete("d-1"); err != nil {
		t.Fatalf("deleting an archived record: %v", err)
	}
	h.Close()

	full := mustOpenHistory(t, dir)
	want = []string{"d-6", "d-5", "d-4", "d-3", "d-2", "d-0"}
	if got := recordIDs(listAll(t, full)); !slices.Equal(got, want) {
		t.Errorf("reopened with archives: %v, want %v", got, want)
	}
	full.Close()

	recent, err := OpenRecent(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(listAll(t, recent)); !slices.Equal(got, []string{"d-6", "d-5", "d-4"}) {
		t.Errorf("a CLI run sees %v, want only history.json's records", got)
	}
	recent.Close()

	// A crash after an archive was written but before history.json
	// dropped its records: the archive wins, nothing is listed twice.
	extra := filepath.Join(dir, historyDirName, historyArchiveDir, "000099.json")
	dup, _ := json.Marshal(historySnapshot{Version: historyFileVersion, Records: recs[4:6]})
	if err := os.WriteFile(extra, dup, 0o644); err != nil {
		t.Fatal(err)
	}
	again := mustOpenHistory(t, dir)
	if got := recordIDs(listAll(t, again)); len(got) != 6 || got[0] != "d-6" {
		t.Errorf("after an unlisted archive: %v", got)
	}
	again.Close()
	data, _ = os.ReadFile(filepath.Join(dir, historyDirName, historyFileName))
	snap = historySnapshot{}
	json.Unmarshal(data, &snap)
	if got := recordIDs(snap.Records); !slices.Equal(got, []string{"d-6"}) || snap.Total != 6 {
		t.Errorf("history.json after the crash repair: %v, total %d", got, snap.Total)
	}
}

// TestHistoryJSONIsCurrent: history.json holds a record within about a
// second of its Add, and at Close, without waiting for anything else.
func TestHistoryJSONIsCurrent(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	file := filepath.Join(dir, historyDirName, historyFileName)
	holds := func(id string) bool {
		data, err := os.ReadFile(file)
		return err == nil && strings.Contains(string(data), `"id":"`+id+`"`)
	}
	if err := h.Add(Record{ID: "soon", Status: "completed"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !holds("soon") {
		if time.Now().After(deadline) {
			t.Fatal("history.json does not hold the record 3 s after Add")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.flushDelay = time.Hour
	if err := h.Add(Record{ID: "at-exit", Status: "failed"}); err != nil {
		t.Fatal(err)
	}
	if holds("at-exit") {
		t.Fatal("flushed before the delay: the test does not test Close")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if !holds("at-exit") {
		t.Fatal("history.json does not hold the last record after Close")
	}
}

func TestHistoryStats(t *testing.T) {
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	day := func(daysAgo int) time.Time { return now.AddDate(0, 0, -daysAgo).Add(-time.Hour) }
	recs := []Record{
		{Kind: "file", Source: "https://a.example/x.iso", FileName: "x.iso", Size: 1000, Duration: 10, FinishedAt: day(0), Status: "completed"},
		{Kind: "file", Source: "https://a.example/y.ISO", FileName: "y.ISO", Size: 3000, Duration: 10, FinishedAt: day(0), Status: "completed"},
		{Kind: "file", Source: "https://b.example/z.zip", FileName: "z.zip", Size: 500, Duration: 5, FinishedAt: day(2), Status: "failed"},
		{Kind: "file", Source: "https://b.example/readme", FileName: "readme", Size: 100, Duration: 1, FinishedAt: day(29), Status: "completed"},
		{Kind: "model", Source: "llama3:latest", FileName: "llama3-latest.zip", Domain: "registry.ollama.ai", Size: 10000, Duration: 20, FinishedAt: day(1), Status: "completed"},
		{Kind: "model", Source: "qwen:0.5b", FileName: "qwen-0.5b.zip", Domain: "registry.ollama.ai", Size: 7, FinishedAt: day(1), Status: "canceled"},
		{Kind: "file", Source: "https://c.example/old.tar.gz", FileName: "old.tar.gz", Size: 900, Duration: 9, FinishedAt: day(30), Status: "completed"},
	}
	h := mustOpenHistory(t, t.TempDir())
	for _, r := range recs {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	got := h.Stats(now)

	daily := make([]historyDay, historyDays)
	for i := range daily {
		daily[i].Date = now.AddDate(0, 0, i-(historyDays-1)).Format(time.DateOnly)
	}
	daily[0] = historyDay{Date: "2026-10-27", Count: 1, Bytes: 100}
	daily[27] = historyDay{Date: "2026-11-23", Count: 1, Bytes: 0}
	daily[28] = historyDay{Date: "2026-11-24", Count: 2, Bytes: 10000}
	daily[29] = historyDay{Date: "2026-11-25", Count: 2, Bytes: 4000}
	want := Stats{
		TotalFiles:   7,
		TotalBytes:   1000 + 3000 + 100 + 10000 + 900,
		Completed:    5,
		Failed:       1,
		Canceled:     1,
		AverageSpeed: float64(1000+3000+100+10000+900) / (10 + 10 + 1 + 20 + 9),
		Domains: []historyDomain{
			{Domain: "registry.ollama.ai", Count: 2, Bytes: 10000},
			{Domain: "a.example", Count: 2, Bytes: 4000},
			{Domain: "c.example", Count: 1, Bytes: 900},
			{Domain: "b.example", Count: 2, Bytes: 100},
		},
		FileTypes: []historyFileType{
			{Type: "model", Count: 2, Bytes: 10000},
			{Type: "iso", Count: 2, Bytes: 4000},
			{Type: "gz", Count: 1, Bytes: 900},
			{Type: "other", Count: 1, Bytes: 100},
			{Type: "zip", Count: 1, Bytes: 0},
		},
		Daily: daily,
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("Stats:\n got %s\nwant %s", g, w)
	}

	empty := mustOpenHistory(t, t.TempDir()).Stats(now)
	data, _ := json.Marshal(empty)
	for _, key := range []string{`"domains":[]`, `"file_types":[]`, `"recovered_from":""`, `"date":"2026-10-27"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("empty stats JSON lacks %s: %s", key, data)
		}
	}
}

func TestDomainOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Example.COM/x.iso", "example.com"},
		{"http://127.0.0.1:8080/a", "127.0.0.1"},
		{"https://[::1]:9/a", "::1"},
		{"https://user:pw@host.example/a?sig=1", "host.example"},
		{"llama3:latest", ""},
		{"ftp://host/x", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := DomainOf(tc.in); got != tc.want {
			t.Errorf("domainOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFileTypeOf(t *testing.T) {
	tests := []struct{ kind, name, want string }{
		{"file", "x.ISO", "iso"},
		{"file", "a.tar.gz", "gz"},
		{"file", "README", "other"},
		{"file", "", "other"},
		{"file", "trailing.", "other"},
		{"file", "فایل.pdf", "pdf"},
		{"file", "x.پی‌دی‌اف", "other"},
		{"model", "llama3-latest.zip", "model"},
	}
	for _, tc := range tests {
		if got := FileTypeOf(tc.kind, tc.name); got != tc.want {
			t.Errorf("fileTypeOf(%q, %q) = %q, want %q", tc.kind, tc.name, got, tc.want)
		}
	}
}

const benchHistoryRecords = 100_000

func benchHistory(b *testing.B) *Store {
	b.Helper()
	dir := b.TempDir()
	writeHistorySnapshot(b, dir, testRecords(benchHistoryRecords))
	return mustOpenHistory(b, dir)
}

// BenchmarkHistoryRecord records one finished download into a history
// that already holds 100,000 records (99 archive files and history.json):
// one journal line and its fsync; history.json is rewritten behind it, at
// most twice a second. It reports the median and the 99th percentile.
func BenchmarkHistoryRecord(b *testing.B) {
	h := benchHistory(b)
	rec := testRecords(1)[0]
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		rec.ID = fmt.Sprintf("bench-%d", i)
		start := time.Now()
		if err := h.Add(rec); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkHistoryBurst: 200 small downloads finishing within one second
// (16 at a time, as -concurrency 16 runs them), recorded into a history of
// 100,000: the bytes the process writes for them (journal lines and
// history.json rewrites, from /proc/self/io) over that second, until
// history.json holds them all.
func BenchmarkHistoryBurst(b *testing.B) {
	h := benchHistory(b)
	recs := testRecords(200)
	for i := range recs {
		recs[i].Source = fmt.Sprintf("https://burst.example/f%03d.bin", i)
	}
	var written int64
	for n := 0; b.Loop(); n++ {
		before := writtenBytes(b)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < len(recs); i += 16 {
					// Spread over the second, as the files finish.
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / 200)))
					r := recs[i]
					r.ID = fmt.Sprintf("burst-%d-%d", n, i)
					if err := h.Add(r); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if err := h.Flush(); err != nil {
			b.Fatal(err)
		}
		written += writtenBytes(b) - before
	}
	b.ReportMetric(float64(written)/float64(b.N)/1e6, "MB/s")
}

// writtenBytes is what this process has passed to write calls so far.
func writtenBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}

// historyFixture, when set, makes TestHistoryFixture write an output
// folder whose history holds 100,000 records: bench/run.sh times one tiny
// CLI download against it.
var historyFixture = flag.String("history-fixture", "", "write a 100,000-record history into this output folder and stop")

func TestHistoryFixture(t *testing.T) {
	if *historyFixture == "" {
		t.Skip("only for bench/run.sh (-history-fixture DIR)")
	}
	writeHistorySnapshot(t, *historyFixture, testRecords(benchHistoryRecords))
	h, err := Open(*historyFixture, nil) // folds it into history.json and archives
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHistoryListPage reads pages of 50 from 100,000 records.
func BenchmarkHistoryListPage(b *testing.B) {
	h := benchHistory(b)
	for _, q := range []Query{
		{Limit: 50},
		{Limit: 50, Offset: 50_000},
		{Limit: 50, Status: "failed", Offset: 1000},
		{Limit: 50, Search: "HOST1.example/files/file-9"},
	} {
		b.Run(fmt.Sprintf("offset=%d,status=%q,search=%q", q.Offset, q.Status, q.Search), func(b *testing.B) {
			for b.Loop() {
				if _, err := h.List(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHistoryStats computes the statistics over 100,000 records.
func BenchmarkHistoryStats(b *testing.B) {
	h := benchHistory(b)
	for b.Loop() {
		h.Stats(historyT0)
	}
}

// BenchmarkHistorySnapshot rewrites history.json (its newest segment) in a
// history of 100,000 records: what one flush costs.
func BenchmarkHistorySnapshot(b *testing.B) {
	h := benchHistory(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	for b.Loop() {
		if err := h.flushLocked(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHistoryAddOnce: a record the manager writes again for the same
// attempt (a kill between the history write and the queue save, then a
// restart that finds the finished file) is kept once, across a reopen;
// Add still keeps both outcomes of a retried download.
func TestHistoryAddOnce(t *testing.T) {
	dir := t.TempDir()
	h := mustOpenHistory(t, dir)
	rec := testRecords(1)[0]
	rec.ID = "d-1-1"
	if err := h.AddOnce(rec); err != nil {
		t.Fatal(err)
	}
	crash(h)
	h = mustOpenHistory(t, dir) // the restart
	if err := h.AddOnce(rec); err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(listAll(t, h)); !slices.Equal(got, []string{"d-1-1"}) {
		t.Fatalf("after AddOnce twice: %q, want one record", got)
	}
	if err := h.Add(rec); err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(listAll(t, h)); len(got) != 2 {
		t.Fatalf("after Add of the same ID: %q, want two records", got)
	}
}
