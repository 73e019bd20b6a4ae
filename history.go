package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path"
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
// history.json is the record scripts read: it is replaced whole (temp file,
// fsync, rename) within historyFlushDelay of every finished download and
// at exit, so a reader never sees half a file and never misses a finish.
// It holds the newest records, at least historySegment of them; older ones
// move, historySegment at a time, into archive/NNNNNN.json files that
// never change again and that history.json lists (with their record
// counts). A CLI run with 100,000 records behind it therefore reads and
// rewrites one segment, not the whole history.
//
// Each Add first appends one line to history.journal and returns once that
// line is fsynced (adds made at the same moment share one fsync); the next
// flush folds the journal into history.json and empties it. Every operation
// carries a sequence number and history.json records the last one it
// includes, so a crash between the two replays nothing twice.
const (
	historyDirName      = ".history"
	historyFileName     = "history.json"
	historyJournalName  = "history.journal"
	historyArchiveDir   = "archive"
	historyFileVersion  = 2
	historySegment      = 1000    // newest records history.json keeps, at least
	historyLoadMax      = 100_000 // records the web UI holds in memory (History tab, statistics)
	historyFlushDelay   = 500 * time.Millisecond
	historyDefaultLimit = 50
	historyMaxLimit     = 1000
	historyDays         = 30 // days in historyStats.Daily
)

// historyStore keeps one record per finished download in
// <output-dir>/.history. It is safe for concurrent use; one process at a
// time owns the folder (see folderOwner). Opened with all, it also loads
// the archives (up to historyLoadMax records), for the History tab and the
// statistics; a CLI run opens only the newest segment.
type historyStore struct {
	dir        string
	log        *slog.Logger
	all        bool
	segment    int           // tests lower it
	flushDelay time.Duration // tests lower it
	journal    *journal

	mu        sync.Mutex
	records   []historyEntry // oldest first: loaded archives, then history.json's
	recent    int            // index of the first record of history.json
	ids       map[string]struct{}
	archives  []historyArchive
	seq       int64 // last operation number
	flushedAt int64 // last operation in history.json
	timer     *time.Timer
	lazy      int // records loaded as lines, not parsed yet
	closed    bool
	recovered string
}

// historyEntry is a record plus its lower-cased search text, computed once
// so that a search over 100,000 records allocates nothing per record.
type historyEntry struct {
	rec     historyRecord
	search  string
	archive int // index in archives, -1 for history.json
	// raw is the record's line as history.json holds it. A CLI run loads
	// history.json without parsing its records (lazy: rec has only its
	// ID) and writes the lines back as they were: recording one download
	// costs no decoding and encoding of a thousand others.
	raw  []byte
	lazy bool
}

// historyArchive is one archive file as history.json lists it.
type historyArchive struct {
	File    string `json:"file"` // relative to .history, forward slashes
	Records int    `json:"records"`
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
	ErrorCode    string    `json:"error_code,omitempty"`
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

// historySnapshot is the content of history.json and of an archive file
// (which has only Version and Records). Version 1 files (no archives) and
// a plain JSON array of records are read too.
type historySnapshot struct {
	Version  int              `json:"version"`
	Seq      int64            `json:"seq,omitempty"`
	Total    int              `json:"total,omitempty"` // records in history.json and its archives
	Archives []historyArchive `json:"archives,omitempty"`
	Records  []historyRecord  `json:"records"`
}

// historyOp is one line of history.journal.
type historyOp struct {
	Seq    int64          `json:"seq"`
	Op     string         `json:"op"` // "add" or "delete"
	Record *historyRecord `json:"record,omitempty"`
	ID     string         `json:"id,omitempty"`
}

// openHistory opens <outputDir>/.history with its archives, for the web
// UI. A file that cannot be read or parsed is renamed to
// <name>.corrupt-<UTC time>, logged and reported by Recovered; the records
// that could be read are kept.
func openHistory(outputDir string, log *slog.Logger) (*historyStore, error) {
	return openHistoryStore(outputDir, log, true)
}

// openRecentHistory opens only history.json and its journal: what a CLI
// run needs to add its records, whatever the size of the archives.
func openRecentHistory(outputDir string, log *slog.Logger) (*historyStore, error) {
	return openHistoryStore(outputDir, log, false)
}

func openHistoryStore(outputDir string, log *slog.Logger, all bool) (*historyStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &historyStore{
		dir:        filepath.Join(outputDir, historyDirName),
		log:        log,
		all:        all,
		segment:    historySegment,
		flushDelay: historyFlushDelay,
		ids:        make(map[string]struct{}),
	}
	if err := os.MkdirAll(filepath.Join(h.dir, historyArchiveDir), 0o755); err != nil {
		return nil, fmt.Errorf("creating history folder: %w", err)
	}
	// A temp file is a snapshot that never got renamed: the crash happened
	// before the rename, so the file it would have replaced still holds
	// the previous state.
	for _, pattern := range []string{historyFileName + ".tmp-*", filepath.Join(historyArchiveDir, "*.tmp-*")} {
		stray, _ := filepath.Glob(filepath.Join(h.dir, pattern))
		for _, p := range stray {
			if err := os.Remove(p); err != nil {
				h.log.Warn("removing stray history temp file", "path", p, "err", err)
			}
		}
	}
	snap, err := h.loadSnapshot()
	if err != nil {
		return nil, err
	}
	migrate, err := h.loadArchives(snap)
	if err != nil {
		return nil, err
	}
	j, lines, err := openJournal(h.path(historyJournalName))
	if err != nil {
		return nil, err
	}
	h.journal = j
	replayed, err := h.replay(lines, snap.Seq)
	if err != nil {
		j.Close()
		return nil, err
	}
	if replayed || migrate || h.recovered != "" || len(h.records)-h.recent >= 2*h.segment {
		h.mu.Lock()
		err := h.flushLocked()
		h.mu.Unlock()
		if err != nil {
			j.Close()
			return nil, err
		}
	}
	return h, nil
}

func (h *historyStore) path(name string) string {
	return filepath.Join(h.dir, filepath.FromSlash(name))
}

// loadSnapshot reads history.json into the recent records.
func (h *historyStore) loadSnapshot() (historySnapshot, error) {
	var snap historySnapshot
	data, err := os.ReadFile(h.path(historyFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return snap, nil
	}
	if err == nil && !h.all {
		if snap, ok := h.loadLines(data); ok {
			h.seq, h.flushedAt = snap.Seq, snap.Seq
			return snap, nil
		}
	}
	if err == nil {
		err = decodeSnapshot(data, &snap)
	}
	if err != nil {
		if err := h.moveAside(historyFileName, err); err != nil {
			return historySnapshot{}, err
		}
		return historySnapshot{}, nil
	}
	for i, rec := range snap.Records {
		if _, dup := h.ids[rec.ID]; rec.ID == "" || dup {
			rec.ID = "h-0-" + strconv.Itoa(i) // a hand-edited or older file
		}
		h.insert(rec, -1)
	}
	h.seq, h.flushedAt = snap.Seq, snap.Seq
	return snap, nil
}

// loadLines is loadSnapshot for a CLI run: history.json as writeRecords
// lays it out (a header line, then one record per line) is split into
// lines and only each record's ID is read. Anything else (an older or
// hand-edited file) is left to the full parse: ok is false.
func (h *historyStore) loadLines(data []byte) (snap historySnapshot, ok bool) {
	head, rest, found := bytes.Cut(data, []byte("\n"))
	if !found || !bytes.HasSuffix(head, []byte(`"records":[`)) {
		return snap, false
	}
	if json.Unmarshal(append(bytes.Clone(head), "]}"...), &snap) != nil || snap.Version != historyFileVersion {
		return snap, false
	}
	n := bytes.Count(rest, []byte("\n"))
	entries := make([]historyEntry, 0, n)
	ids := make(map[string]struct{}, n)
	for line := range bytes.Lines(rest) {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte(","))
		if bytes.Equal(line, []byte("]}")) {
			h.records = append(h.records, entries...)
			h.lazy += len(entries)
			maps.Copy(h.ids, ids)
			return snap, true
		}
		id, ok := leadingID(line)
		if _, dup := ids[id]; !ok || dup {
			return snap, false
		}
		ids[id] = struct{}{}
		entries = append(entries, historyEntry{rec: historyRecord{ID: id}, raw: line, lazy: true, archive: -1})
	}
	return snap, false
}

// leadingID reads the ID of a record line that starts {"id":"…", as
// json.Marshal writes a historyRecord; an ID with escapes is not read.
func leadingID(line []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !ok || !bytes.HasSuffix(line, []byte("}")) {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}

// parseAllLocked parses the records a CLI run loaded lazily, before
// anything reads more than their IDs.
func (h *historyStore) parseAllLocked() {
	if h.lazy == 0 {
		return
	}
	for i := range h.records {
		h.parseLocked(i)
	}
}

func (h *historyStore) parseLocked(i int) {
	e := &h.records[i]
	if !e.lazy {
		return
	}
	h.lazy--
	var rec historyRecord
	if json.Unmarshal(e.raw, &rec) == nil {
		rec.ID = e.rec.ID
		raw := e.raw
		*e = newHistoryEntry(rec, e.archive)
		e.raw = raw // unchanged: written back as it was
		return
	}
	e.lazy = false // kept as it was written; only its ID is known
}

func decodeSnapshot(data []byte, snap *historySnapshot) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return json.Unmarshal(trimmed, &snap.Records)
	}
	if err := json.Unmarshal(trimmed, snap); err != nil {
		return err
	}
	if snap.Version != 1 && snap.Version != historyFileVersion {
		return fmt.Errorf("unknown history version %d", snap.Version)
	}
	return nil
}

// loadArchives learns the archive files: those history.json lists, and any
// it does not, which a crash left between writing an archive and the
// history.json that drops its records (they are dropped now). With all,
// the records of the newest archives are loaded, up to historyLoadMax. It
// reports whether history.json must be written again.
func (h *historyStore) loadArchives(snap historySnapshot) (bool, error) {
	listed := make(map[string]bool)
	rewrite := false
	for _, a := range snap.Archives {
		// A CLI run reads no archive: it need not check them either.
		if _, err := h.statArchive(a.File); err != nil {
			h.log.Warn("a history archive listed in history.json is missing", "file", a.File, "err", err)
			rewrite = true
			continue
		}
		listed[a.File] = true
		h.archives = append(h.archives, a)
	}
	found, _ := filepath.Glob(filepath.Join(h.dir, historyArchiveDir, "*.json"))
	slices.Sort(found)
	for _, p := range found {
		name := historyArchiveDir + "/" + filepath.Base(p)
		if listed[name] {
			continue
		}
		recs, err := h.readArchive(name)
		if err != nil {
			continue // moved aside
		}
		drop := make(map[string]bool, len(recs))
		for _, r := range recs {
			drop[r.ID] = true
		}
		h.records = slices.DeleteFunc(h.records, func(e historyEntry) bool {
			if drop[e.rec.ID] {
				delete(h.ids, e.rec.ID)
				return true
			}
			return false
		})
		h.archives = append(h.archives, historyArchive{File: name, Records: len(recs)})
		rewrite = true
	}
	if !h.all {
		return rewrite, nil
	}
	// The newest archives first, until historyLoadMax records are held.
	// An unreadable archive is moved aside and dropped from the list.
	loaded := make(map[int][]historyRecord)
	held := len(h.records)
	for i := len(h.archives) - 1; i >= 0 && held < historyLoadMax; i-- {
		recs, err := h.readArchive(h.archives[i].File)
		if err != nil {
			rewrite = true
			loaded[i] = nil
			continue
		}
		loaded[i] = recs
		held += len(recs)
	}
	var kept []historyArchive
	var older []historyEntry
	for i, a := range h.archives {
		recs, ok := loaded[i]
		if ok && recs == nil {
			continue // unreadable, moved aside
		}
		kept = append(kept, a)
		for _, r := range recs {
			if _, dup := h.ids[r.ID]; dup || r.ID == "" {
				continue
			}
			h.ids[r.ID] = struct{}{}
			older = append(older, newHistoryEntry(r, len(kept)-1))
		}
	}
	h.archives = kept
	h.records = append(older, h.records...)
	h.recent = len(older)
	return rewrite, nil
}

// statArchive checks that a listed archive is there, when this store
// reads archives at all.
func (h *historyStore) statArchive(name string) (fs.FileInfo, error) {
	if !h.all {
		return nil, nil
	}
	return os.Stat(h.path(name))
}

// readArchive reads one archive file; an unreadable one is moved aside.
func (h *historyStore) readArchive(name string) ([]historyRecord, error) {
	data, err := os.ReadFile(h.path(name))
	var snap historySnapshot
	if err == nil {
		err = decodeSnapshot(data, &snap)
	}
	if err != nil {
		if merr := h.moveAside(name, err); merr != nil {
			return nil, merr
		}
		return nil, err
	}
	return snap.Records, nil
}

// replay applies the journal's operations newer than history.json. It
// reports whether the journal held any.
func (h *historyStore) replay(lines [][]byte, snapSeq int64) (bool, error) {
	for n, line := range lines {
		var op historyOp
		if err := json.Unmarshal(line, &op); err != nil || (op.Op == "add" && op.Record == nil) {
			if err == nil {
				err = errors.New("add without a record")
			}
			h.log.Error("history journal line unreadable; the lines after it are kept aside", "line", n+1, "err", err)
			if err := h.journal.Close(); err != nil {
				return true, err
			}
			if err := h.moveAside(historyJournalName, fmt.Errorf("line %d: %w", n+1, err)); err != nil {
				return true, err
			}
			j, _, err := openJournal(h.path(historyJournalName))
			if err != nil {
				return true, err
			}
			h.journal = j
			return true, nil
		}
		if op.Seq <= snapSeq {
			continue // already in history.json
		}
		switch op.Op {
		case "add":
			if _, dup := h.ids[op.Record.ID]; !dup {
				h.insert(*op.Record, -1)
			}
		case "delete":
			h.removeRecent(op.ID)
		}
		h.seq = max(h.seq, op.Seq)
	}
	return len(lines) > 0, nil
}

// moveAside renames a file that cannot be used, so that a person can look
// at it, and starts without it. Never silently emptied (SPEC §7).
func (h *historyStore) moveAside(name string, cause error) error {
	to, err := moveAsideFile(h.path(name), time.Now())
	if err != nil {
		return fmt.Errorf("moving aside unreadable history file %s (%v): %w", name, cause, err)
	}
	h.log.Error("history file was unreadable; moved aside and started afresh", "path", h.path(name), "moved_to", to, "err", cause)
	if h.recovered == "" {
		h.recovered = to
	}
	return nil
}

// moveAsideFile renames path to path.corrupt-<UTC time>, with a counter
// when that name is taken, and returns the new name.
func moveAsideFile(path string, now time.Time) (string, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	to := path + ".corrupt-" + stamp
	for i := 2; i < 100; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = path + ".corrupt-" + stamp + "-" + strconv.Itoa(i)
	}
	return to, os.Rename(path, to)
}

func newHistoryEntry(rec historyRecord, archive int) historyEntry {
	return historyEntry{rec: rec, search: strings.ToLower(rec.Source + "\n" + rec.FileName), archive: archive}
}

// insert appends rec to memory as a recent record.
func (h *historyStore) insert(rec historyRecord, archive int) {
	h.ids[rec.ID] = struct{}{}
	h.records = append(h.records, newHistoryEntry(rec, archive))
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
			h.parseLocked(i)
			return h.records[i].rec, true
		}
	}
	return historyRecord{}, false
}

// removeRecent drops a record of history.json from memory.
func (h *historyStore) removeRecent(id string) bool {
	if _, ok := h.ids[id]; !ok {
		return false
	}
	for i := len(h.records) - 1; i >= h.recent; i-- {
		if h.records[i].rec.ID == id {
			h.records = slices.Delete(h.records, i, i+1)
			delete(h.ids, id)
			return true
		}
	}
	return false
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
		rec.ID = "h-" + newRandomID()
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
	line, err := json.Marshal(historyOp{Seq: h.seq + 1, Op: "add", Record: &rec})
	if err == nil {
		err = h.journal.Write(line)
	}
	if err != nil {
		h.mu.Unlock()
		return fmt.Errorf("recording %s in the history: %w", rec.ID, err)
	}
	h.seq++
	h.insert(rec, -1)
	h.scheduleFlushLocked()
	h.mu.Unlock()
	// The line is written; its fsync is shared with the adds made
	// meanwhile (many downloads finishing at once). Add returns once the
	// record is durable.
	return h.journal.Sync()
}

// scheduleFlushLocked makes sure history.json is rewritten within
// flushDelay: a burst of finishes costs one rewrite.
func (h *historyStore) scheduleFlushLocked() {
	if h.timer != nil {
		return
	}
	h.timer = time.AfterFunc(h.flushDelay, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.timer = nil
		if h.closed {
			return
		}
		if err := h.flushLocked(); err != nil {
			h.log.Warn("writing history.json", "err", err)
		}
	})
}

// Flush writes history.json now if anything is not in it yet.
func (h *historyStore) Flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	if h.flushedAt == h.seq {
		return nil
	}
	return h.flushLocked()
}

// Close writes history.json and closes the journal. The store is not used
// afterwards.
func (h *historyStore) Close() error {
	err := h.Flush()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if cerr := h.journal.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete removes one record; errNotFound if there is none with that id.
func (h *historyStore) Delete(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; !ok {
		return fmt.Errorf("history record %q: %w", id, errNotFound)
	}
	i := slices.IndexFunc(h.records, func(e historyEntry) bool { return e.rec.ID == id })
	if i >= 0 && h.records[i].archive >= 0 {
		return h.deleteArchivedLocked(i)
	}
	line, err := json.Marshal(historyOp{Seq: h.seq + 1, Op: "delete", ID: id})
	if err == nil {
		err = h.journal.Write(line)
	}
	if err == nil {
		err = h.journal.Sync()
	}
	if err != nil {
		return fmt.Errorf("deleting history record %s: %w", id, err)
	}
	h.seq++
	h.removeRecent(id)
	h.scheduleFlushLocked()
	return nil
}

// deleteArchivedLocked rewrites the archive that holds records[i] without
// it: archives change only here.
func (h *historyStore) deleteArchivedLocked(i int) error {
	a := h.records[i].archive
	var keep []historyEntry
	for _, e := range h.records {
		if e.archive == a && e.rec.ID != h.records[i].rec.ID {
			keep = append(keep, e)
		}
	}
	if err := h.writeRecords(h.archives[a].File, historySnapshot{Version: historyFileVersion}, keep); err != nil {
		return err
	}
	delete(h.ids, h.records[i].rec.ID)
	h.records = slices.Delete(h.records, i, i+1)
	h.recent--
	h.archives[a].Records = len(keep)
	h.seq++ // history.json's archive counts change
	return h.flushLocked()
}

// Clear removes every record, archives included.
func (h *historyStore) Clear() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	oldRecords, oldIDs, oldRecent, oldArchives := h.records, h.ids, h.recent, h.archives
	h.records, h.ids, h.recent, h.archives = nil, make(map[string]struct{}), 0, nil
	h.seq++
	if err := h.flushLocked(); err != nil {
		h.records, h.ids, h.recent, h.archives = oldRecords, oldIDs, oldRecent, oldArchives
		return err
	}
	for _, a := range oldArchives {
		if err := os.Remove(h.path(a.File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.log.Warn("removing history archive", "file", a.File, "err", err)
		}
	}
	return nil
}

// flushLocked moves the oldest records to a new archive while history.json
// would hold twice a segment, writes history.json, and empties the
// journal. The archive is written before the history.json that drops its
// records, so a crash in between keeps both (loading drops the copies).
func (h *historyStore) flushLocked() error {
	for len(h.records)-h.recent >= 2*h.segment {
		name := fmt.Sprintf("%s/%06d.json", historyArchiveDir, h.nextArchiveNumber())
		chunk := h.records[h.recent : h.recent+h.segment]
		if err := h.writeRecords(name, historySnapshot{Version: historyFileVersion}, chunk); err != nil {
			return err
		}
		h.archives = append(h.archives, historyArchive{File: name, Records: len(chunk)})
		for k := range chunk {
			chunk[k].archive = len(h.archives) - 1
		}
		h.recent += h.segment
		if !h.all { // a CLI run does not keep archived records in memory
			for _, e := range h.records[:h.recent] {
				delete(h.ids, e.rec.ID)
			}
			h.records = slices.Delete(h.records, 0, h.recent)
			h.recent = 0
		}
	}
	total := len(h.records) - h.recent
	for _, a := range h.archives {
		total += a.Records
	}
	snap := historySnapshot{Version: historyFileVersion, Seq: h.seq, Total: total, Archives: h.archives}
	if err := h.writeRecords(historyFileName, snap, h.records[h.recent:]); err != nil {
		return err
	}
	h.flushedAt = h.seq
	// From here on history.json holds everything. Journal lines left
	// behind (a failed truncation) carry numbers it covers: only log.
	if err := h.journal.Reset(); err != nil {
		h.log.Warn("emptying history journal", "err", err)
	}
	return nil
}

// nextArchiveNumber is one more than the highest archive number in use.
func (h *historyStore) nextArchiveNumber() int {
	n := 0
	for _, a := range h.archives {
		if k, err := strconv.Atoi(strings.TrimSuffix(path.Base(a.File), ".json")); err == nil {
			n = max(n, k)
		}
	}
	return n + 1
}

// writeRecords writes a snapshot or archive file atomically, one record per
// line so that a person (or grep) can read it.
func (h *historyStore) writeRecords(name string, head historySnapshot, entries []historyEntry) error {
	return writeFileAtomic(h.path(name), 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		head.Records = nil
		hb, err := json.Marshal(head)
		if err != nil {
			return err
		}
		// {"version":2,…,"records":null} → open the records array by hand.
		hb = bytes.TrimSuffix(hb, []byte("null}"))
		bw.Write(hb)
		bw.WriteByte('[')
		for i, e := range entries {
			line := e.raw
			if line == nil {
				if line, err = json.Marshal(e.rec); err != nil {
					return err
				}
			}
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteByte('\n')
			bw.Write(line)
		}
		bw.WriteString("\n]}\n")
		return bw.Flush()
	})
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
	h.parseAllLocked()
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
	h.parseAllLocked()
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
