package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Files under <output-dir>/.history/ (SPEC §7).
//
// history.json is a snapshot, always replaced whole: temp file in the same
// folder, fsync, rename, fsync of the folder. Rewriting 100,000 records
// (~40 MB) on every Add would cost a tenth of a second or more, so each Add
// appends one line to history.journal instead and returns once it is
// fsynced (adds made at the same moment share one fsync), and the journal is
// folded into a new snapshot once it holds a quarter as many operations as
// the snapshot has records (amortised: a few records re-encoded per Add).
// Every operation carries a sequence number and the snapshot records the
// last one it includes, so a crash between writing the snapshot and
// emptying the journal replays nothing twice.
const (
	historyDirName      = ".history"
	historyFileName     = "history.json"
	historyJournalName  = "history.journal"
	historyTempPattern  = historyFileName + ".tmp-*"
	historyMaxRecords   = 100_000 // newest kept; older records are dropped at the next snapshot
	historyDefaultLimit = 50
	historyMaxLimit     = 1000
	historyDays         = 30 // days in historyStats.Daily
)

// historyStore keeps one record per finished download in
// <output-dir>/.history, in memory and on disk. It is safe for concurrent
// use; one process at a time owns the folder.
type historyStore struct {
	dir          string
	log          *slog.Logger
	maxRecords   int // newest records kept
	compactEvery int // journal operations that trigger a snapshot, at least

	journalSync groupSync // Add's journal fsyncs, shared

	mu         sync.Mutex
	records    []historyEntry // oldest first
	ids        map[string]struct{}
	seq        int64 // last operation number written
	journalOps int   // operations in the journal since the last snapshot
	recovered  string
}

// historyEntry is a record plus its lower-cased search text, computed once
// so that a search over 100,000 records allocates nothing per record.
type historyEntry struct {
	rec    historyRecord
	search string
}

type historyRecord struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`   // "file" or "model"
	Source       string    `json:"source"` // URL (redacted) or model name
	FileName     string    `json:"file_name"`
	Path         string    `json:"path"`
	Size         int64     `json:"size"`
	StartedAt    time.Time `json:"started_at"` // RFC 3339 UTC
	FinishedAt   time.Time `json:"finished_at"`
	Duration     float64   `json:"duration_seconds"`
	AverageSpeed float64   `json:"average_speed"` // bytes per second
	Status       string    `json:"status"`        // completed, failed, canceled
	Error        string    `json:"error,omitempty"`
	Domain       string    `json:"domain"`
	FileType     string    `json:"file_type"`
}

// historyQuery selects a page of records, newest first. Limit <= 0 means
// 50 and is capped at 1000; a negative Offset is bad input; an Offset past
// the end gives an empty page with the right Total. Status is "" or one of
// completed, failed, canceled; Search matches source or file name,
// ignoring case.
type historyQuery struct {
	Limit, Offset  int
	Status, Search string
}

type historyPage struct {
	Total   int             `json:"total"`
	Records []historyRecord `json:"records"`
}

// historyStats is GET /api/statistics. Counts include every record
// (completed, failed, canceled); bytes and the average speed count
// completed downloads only, because a failed record's size says nothing
// reliable about what reached the disk.
type historyStats struct {
	TotalFiles    int               `json:"total_files"`
	TotalBytes    int64             `json:"total_bytes"`
	Completed     int               `json:"completed"`
	Failed        int               `json:"failed"`
	Canceled      int               `json:"canceled"`
	AverageSpeed  float64           `json:"average_speed"` // completed bytes / completed seconds
	Domains       []historyDomain   `json:"domains"`       // by bytes, largest first
	FileTypes     []historyFileType `json:"file_types"`    // by bytes, largest first
	Daily         []historyDay      `json:"daily"`         // last 30 UTC days, oldest first
	RecoveredFrom string            `json:"recovered_from"`
}

type historyDomain struct {
	Domain string `json:"domain"`
	Count  int    `json:"count"`
	Bytes  int64  `json:"bytes"`
}

type historyFileType struct {
	Type  string `json:"type"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

type historyDay struct {
	Date  string `json:"date"` // YYYY-MM-DD, UTC
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

// historySnapshot is the content of history.json. A plain JSON array of
// records is read too (sequence 0).
type historySnapshot struct {
	Version int             `json:"version"`
	Seq     int64           `json:"seq"`
	Records []historyRecord `json:"records"`
}

// historyOp is one line of history.journal.
type historyOp struct {
	Seq    int64          `json:"seq"`
	Op     string         `json:"op"` // "add" or "delete"
	Record *historyRecord `json:"record,omitempty"`
	ID     string         `json:"id,omitempty"`
}

// openHistory loads <outputDir>/.history. A snapshot or journal that cannot
// be read or parsed is renamed to <name>.corrupt-<UTC time>, logged and
// reported by Recovered; the records that could be read are kept.
func openHistory(outputDir string, log *slog.Logger) (*historyStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &historyStore{
		dir:          filepath.Join(outputDir, historyDirName),
		log:          log,
		maxRecords:   historyMaxRecords,
		compactEvery: 1024,
		ids:          make(map[string]struct{}),
	}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating history folder: %w", err)
	}
	// A temp file is a snapshot that never got renamed: the crash happened
	// before the rename, so history.json still holds the previous state.
	if stray, err := filepath.Glob(filepath.Join(h.dir, historyTempPattern)); err == nil {
		for _, p := range stray {
			if err := os.Remove(p); err != nil {
				h.log.Warn("removing stray history temp file", "path", p, "err", err)
			}
		}
	}
	snapSeq, err := h.loadSnapshot()
	if err != nil {
		return nil, err
	}
	dirty, err := h.loadJournal(snapSeq)
	if err != nil {
		return nil, err
	}
	if dirty || h.recovered != "" || len(h.records) > h.maxRecords {
		if err := h.compact(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *historyStore) path(name string) string { return filepath.Join(h.dir, name) }

// loadSnapshot reads history.json and returns the last sequence number it
// includes.
func (h *historyStore) loadSnapshot() (int64, error) {
	data, err := os.ReadFile(h.path(historyFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	var snap historySnapshot
	if err == nil {
		err = decodeSnapshot(data, &snap)
	}
	if err != nil {
		if err := h.moveAside(historyFileName, err); err != nil {
			return 0, err
		}
		return 0, nil
	}
	for i, rec := range snap.Records {
		if _, dup := h.ids[rec.ID]; rec.ID == "" || dup {
			rec.ID = "h-0-" + strconv.Itoa(i) // a hand-edited or older file
		}
		h.insert(rec)
	}
	h.seq = snap.Seq
	return snap.Seq, nil
}

func decodeSnapshot(data []byte, snap *historySnapshot) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return json.Unmarshal(trimmed, &snap.Records)
	}
	if err := json.Unmarshal(trimmed, snap); err != nil {
		return err
	}
	if snap.Version != 1 {
		return fmt.Errorf("unknown history version %d", snap.Version)
	}
	return nil
}

// loadJournal replays the operations newer than the snapshot. It reports
// whether the journal holds anything, so that openHistory folds it into a
// fresh snapshot. A last line without its newline is a write cut short by
// a crash: that operation was never acknowledged and is dropped.
func (h *historyStore) loadJournal(snapSeq int64) (bool, error) {
	data, err := os.ReadFile(h.path(historyJournalName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, h.moveAside(historyJournalName, err)
	}
	if len(data) == 0 {
		return false, nil
	}
	if i := bytes.LastIndexByte(data, '\n'); i != len(data)-1 {
		h.log.Warn("dropping an incomplete last history journal line", "bytes", len(data)-i-1)
		data = data[:i+1]
	}
	for n, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var op historyOp
		if err := json.Unmarshal(line, &op); err != nil || (op.Op == "add" && op.Record == nil) {
			if err == nil {
				err = errors.New("add without a record")
			}
			return true, h.moveAside(historyJournalName, fmt.Errorf("line %d: %w", n+1, err))
		}
		if op.Seq <= snapSeq {
			continue // already in the snapshot
		}
		switch op.Op {
		case "add":
			if _, dup := h.ids[op.Record.ID]; !dup {
				h.insert(*op.Record)
			}
		case "delete":
			h.remove(op.ID)
		}
		h.seq = max(h.seq, op.Seq)
	}
	return true, nil
}

// moveAside renames a file that cannot be used, so that a person can look
// at it, and starts without it. Never silently emptied (SPEC §7).
func (h *historyStore) moveAside(name string, cause error) error {
	from := h.path(name)
	stamp := time.Now().UTC().Format("20060102T150405Z")
	to := from + ".corrupt-" + stamp
	for i := 2; i < 100; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = from + ".corrupt-" + stamp + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("moving aside unreadable history file %s (%v): %w", from, cause, err)
	}
	h.log.Error("history file was unreadable; moved aside and started afresh", "path", from, "moved_to", to, "err", cause)
	if h.recovered == "" {
		h.recovered = to
	}
	return nil
}

// insert appends rec to memory and drops the oldest records beyond
// maxRecords.
func (h *historyStore) insert(rec historyRecord) {
	h.ids[rec.ID] = struct{}{}
	h.records = append(h.records, historyEntry{
		rec:    rec,
		search: strings.ToLower(rec.Source + "\n" + rec.FileName),
	})
	if over := len(h.records) - h.maxRecords; over > 0 {
		for _, e := range h.records[:over] {
			delete(h.ids, e.rec.ID)
		}
		h.records = h.records[over:]
	}
}

// Get returns the record with this ID, looking from the newest.
func (h *historyStore) Get(id string) (historyRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; !ok {
		return historyRecord{}, false
	}
	for i := len(h.records) - 1; i >= 0; i-- {
		if h.records[i].rec.ID == id {
			return h.records[i].rec, true
		}
	}
	return historyRecord{}, false
}

func (h *historyStore) remove(id string) bool {
	if _, ok := h.ids[id]; !ok {
		return false
	}
	delete(h.ids, id)
	for i := len(h.records) - 1; i >= 0; i-- {
		if h.records[i].rec.ID == id {
			h.records = append(h.records[:i], h.records[i+1:]...)
			break
		}
	}
	return true
}

// Add records a finished download. It fills an empty ID, Domain (from a
// URL source), FileType, Duration and AverageSpeed, and stores times in UTC.
// An ID already present gets a "-2", "-3"… suffix: a download retried after
// a failure has two outcomes, and both are history.
func (h *historyStore) Add(rec historyRecord) error { return h.add(rec, false) }

// AddOnce is Add for a record whose ID says what it records (one attempt
// of one download): when that ID is already in the history it writes
// nothing. A download that completed just before a kill, and completes
// again from its finished file on restart, is recorded once.
func (h *historyStore) AddOnce(rec historyRecord) error { return h.add(rec, true) }

func (h *historyStore) add(rec historyRecord, once bool) error {
	switch rec.Status {
	case "completed", "failed", "canceled":
	default:
		return badInputf("history status must be completed, failed or canceled, got %q", rec.Status)
	}
	rec.StartedAt = rec.StartedAt.UTC()
	rec.FinishedAt = rec.FinishedAt.UTC()
	if rec.Duration == 0 && !rec.StartedAt.IsZero() && rec.FinishedAt.After(rec.StartedAt) {
		rec.Duration = rec.FinishedAt.Sub(rec.StartedAt).Seconds()
	}
	if rec.AverageSpeed == 0 && rec.Duration > 0 && rec.Status == "completed" {
		rec.AverageSpeed = float64(rec.Size) / rec.Duration
	}
	if rec.Domain == "" && rec.Kind != "model" {
		rec.Domain = domainOf(rec.Source)
	}
	if rec.FileType == "" {
		rec.FileType = fileTypeOf(rec.Kind, rec.FileName)
	}

	h.mu.Lock()
	if rec.ID == "" {
		rec.ID = "h-" + strconv.FormatInt(h.seq+1, 10)
	}
	if _, dup := h.ids[rec.ID]; dup && once {
		h.mu.Unlock()
		return nil // already recorded: a crash came between this and the queue save
	}
	if _, dup := h.ids[rec.ID]; dup {
		base := rec.ID
		for i := 2; ; i++ {
			rec.ID = base + "-" + strconv.Itoa(i)
			if _, dup := h.ids[rec.ID]; !dup {
				break
			}
		}
	}
	if err := h.appendOp(historyOp{Seq: h.seq + 1, Op: "add", Record: &rec}, false); err != nil {
		h.mu.Unlock()
		return err
	}
	h.insert(rec)
	h.afterOp()
	h.mu.Unlock()
	// The line is written; its fsync is shared with the adds made
	// meanwhile (many downloads finishing at once). Add returns once the
	// record is durable. Should that fsync fail, the record stays listed
	// but may not survive a power cut, and Add says so.
	return h.journalSync.do(h.syncJournal)
}

// syncJournal fsyncs history.journal. After a compaction emptied it, the
// snapshot (written and synced first) holds what it held.
func (h *historyStore) syncJournal() error {
	f, err := os.OpenFile(h.path(historyJournalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("syncing history journal: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing history journal: %w", err)
	}
	return nil
}

// Delete removes one record; errNotFound if there is none with that id.
func (h *historyStore) Delete(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; !ok {
		return fmt.Errorf("history record %q: %w", id, errNotFound)
	}
	if err := h.appendOp(historyOp{Seq: h.seq + 1, Op: "delete", ID: id}, true); err != nil {
		return err
	}
	h.remove(id)
	h.afterOp()
	return nil
}

// Clear removes every record by writing an empty snapshot.
func (h *historyStore) Clear() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, oldIDs := h.records, h.ids
	h.records, h.ids = nil, make(map[string]struct{})
	if err := h.compact(); err != nil {
		h.records, h.ids = old, oldIDs
		return err
	}
	return nil
}

// afterOp counts a journal operation and folds the journal into a new
// snapshot when it has grown. The operation is already durable, so a
// failed snapshot is only logged: the next one retries.
func (h *historyStore) afterOp() {
	h.seq++
	h.journalOps++
	if h.journalOps < max(h.compactEvery, len(h.records)/4) {
		return
	}
	if err := h.compact(); err != nil {
		h.log.Warn("writing history snapshot", "err", err)
	}
}

// appendOp writes one journal line and, with durable, fsyncs it. On failure
// the journal is cut back to its previous length, so a half-written line
// cannot glue itself to the next one.
func (h *historyStore) appendOp(op historyOp, durable bool) error {
	line, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("encoding history record: %w", err)
	}
	line = append(line, '\n')
	f, err := os.OpenFile(h.path(historyJournalName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening history journal: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Write(line)
		if err == nil && durable {
			err = f.Sync()
		}
		if err != nil {
			f.Truncate(fi.Size())
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing history journal: %w", err)
	}
	if fi.Size() == 0 {
		// A new journal file must survive a power cut too.
		if err := syncFolder(h.dir); err != nil {
			return fmt.Errorf("writing history journal: %w", err)
		}
	}
	return nil
}

// compact writes every record to a new history.json and empties the
// journal. Called with h.mu held.
func (h *historyStore) compact() error {
	if err := h.writeSnapshot(); err != nil {
		return err
	}
	// From here on the snapshot holds everything. Journal lines left behind
	// (a crash, or a failed truncation) carry numbers the snapshot already
	// covers, and are skipped when loading: only log a failure.
	h.journalOps = 0
	f, err := os.OpenFile(h.path(historyJournalName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		h.log.Warn("emptying history journal", "err", err)
	}
	return nil
}

func (h *historyStore) writeSnapshot() (err error) {
	tmp, err := os.CreateTemp(h.dir, historyTempPattern)
	if err != nil {
		return fmt.Errorf("writing history snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing history snapshot: %w", err)
		}
	}()
	w := bufio.NewWriterSize(tmp, 256<<10)
	fmt.Fprintf(w, "{\"version\":1,\"seq\":%d,\"records\":[", h.seq)
	for i, e := range h.records {
		line, err := json.Marshal(e.rec)
		if err != nil {
			return err
		}
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
		w.Write(line)
	}
	w.WriteString("\n]}\n")
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), h.path(historyFileName)); err != nil {
		return err
	}
	return syncFolder(h.dir)
}

// syncFolder makes a rename or a new file in dir durable. Windows cannot
// fsync a folder (and NTFS journals the rename itself).
func syncFolder(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// List returns one page of records, newest first.
func (h *historyStore) List(q historyQuery) (historyPage, error) {
	if q.Offset < 0 {
		return historyPage{}, badInputf("offset must be 0 or more, got %d", q.Offset)
	}
	if q.Limit <= 0 {
		q.Limit = historyDefaultLimit
	}
	q.Limit = min(q.Limit, historyMaxLimit)
	status := strings.ToLower(strings.TrimSpace(q.Status))
	switch status {
	case "", "completed", "failed", "canceled":
	default:
		return historyPage{}, badInputf("status must be completed, failed or canceled, got %q", q.Status)
	}
	search := strings.ToLower(strings.TrimSpace(q.Search))

	h.mu.Lock()
	defer h.mu.Unlock()
	page := historyPage{Records: []historyRecord{}}
	if status == "" && search == "" {
		page.Total = len(h.records)
		for i := len(h.records) - 1 - q.Offset; i >= 0 && len(page.Records) < q.Limit; i-- {
			page.Records = append(page.Records, h.records[i].rec)
		}
		return page, nil
	}
	for i := len(h.records) - 1; i >= 0; i-- {
		e := &h.records[i]
		if status != "" && e.rec.Status != status {
			continue
		}
		if search != "" && !strings.Contains(e.search, search) {
			continue
		}
		if page.Total >= q.Offset && len(page.Records) < q.Limit {
			page.Records = append(page.Records, e.rec)
		}
		page.Total++
	}
	return page, nil
}

// Stats computes the statistics at now (the daily chart ends at now's UTC
// day). Counts include every record; bytes only completed ones.
func (h *historyStore) Stats(now time.Time) historyStats {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	first := today.AddDate(0, 0, -(historyDays - 1))
	st := historyStats{
		Domains:   []historyDomain{},
		FileTypes: []historyFileType{},
		Daily:     make([]historyDay, historyDays),
	}
	for i := range st.Daily {
		st.Daily[i].Date = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	domains := map[string]*historyDomain{}
	types := map[string]*historyFileType{}
	var seconds float64

	h.mu.Lock()
	st.RecoveredFrom = h.recovered
	for i := range h.records {
		r := &h.records[i].rec
		var size int64
		switch r.Status {
		case "completed":
			st.Completed++
			size = r.Size
			seconds += r.Duration
		case "failed":
			st.Failed++
		case "canceled":
			st.Canceled++
		}
		st.TotalFiles++
		st.TotalBytes += size

		domain := cmp.Or(r.Domain, "unknown")
		d := domains[domain]
		if d == nil {
			d = &historyDomain{Domain: domain}
			domains[domain] = d
		}
		d.Count++
		d.Bytes += size

		ft := cmp.Or(r.FileType, "other")
		t := types[ft]
		if t == nil {
			t = &historyFileType{Type: ft}
			types[ft] = t
		}
		t.Count++
		t.Bytes += size

		fin := r.FinishedAt.UTC()
		day := time.Date(fin.Year(), fin.Month(), fin.Day(), 0, 0, 0, 0, time.UTC)
		if !day.Before(first) && !day.After(today) {
			k := int(day.Sub(first).Hours()/24 + 0.5)
			st.Daily[k].Count++
			st.Daily[k].Bytes += size
		}
	}
	h.mu.Unlock()

	if seconds > 0 {
		st.AverageSpeed = float64(st.TotalBytes) / seconds
	}
	for _, d := range domains {
		st.Domains = append(st.Domains, *d)
	}
	sortLargestFirst(st.Domains, func(d historyDomain) (int64, int, string) { return d.Bytes, d.Count, d.Domain })
	for _, t := range types {
		st.FileTypes = append(st.FileTypes, *t)
	}
	sortLargestFirst(st.FileTypes, func(t historyFileType) (int64, int, string) { return t.Bytes, t.Count, t.Type })
	return st
}

// sortLargestFirst orders statistics rows by bytes, then count, largest
// first, then by name.
func sortLargestFirst[T any](rows []T, key func(T) (bytes int64, count int, name string)) {
	slices.SortFunc(rows, func(a, b T) int {
		ab, ac, an := key(a)
		bb, bc, bn := key(b)
		return cmp.Or(cmp.Compare(bb, ab), cmp.Compare(bc, ac), strings.Compare(an, bn))
	})
}

// Recovered is the path a corrupt history file was moved to when the
// store was opened, or "".
func (h *historyStore) Recovered() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recovered
}

// domainOf is the lower-case host name (without port) of a URL source, or
// "" when source is not an http(s) URL (a model name, for instance).
func domainOf(source string) string {
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// fileTypeOf is the lower-case extension of name without its dot, "model"
// for models and "other" when there is no usable extension.
func fileTypeOf(kind, name string) string {
	if kind == "model" {
		return "model"
	}
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(name), "."))
	if ext == "" || len(ext) > 16 || strings.ContainsFunc(ext, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	}) {
		return "other"
	}
	return ext
}
