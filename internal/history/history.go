package history

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/fault"
	"os"
	"path"
	"path/filepath"
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
	historyDirName     = ".history"
	historyFileName    = "history.json"
	historyJournalName = "history.journal"
	historyArchiveDir  = "archive"
	historyFileVersion = 2
	historySegment     = 1000    // newest records history.json keeps, at least
	historyLoadMax     = 100_000 // records the web UI holds in memory (History tab, statistics)
	historyFlushDelay  = 500 * time.Millisecond
	DefaultLimit       = 50
	MaxLimit           = 1000
	historyDays        = 30 // days in historyStats.Daily
)

// Store keeps one record per finished download in
// <output-dir>/.history. It is safe for concurrent use; one process at a
// time owns the folder (see owner.Owner). Opened with all, it also loads
// the archives (up to historyLoadMax records), for the History tab and the
// statistics; a CLI run opens only the newest segment.
type Store struct {
	dir        string
	log        *slog.Logger
	all        bool
	segment    int           // tests lower it
	flushDelay time.Duration // tests lower it
	journal    *disk.Journal

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
	rec     Record
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

type Record struct {
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

// historySnapshot is the content of history.json and of an archive file
// (which has only Version and Records). Version 1 files (no archives) and
// a plain JSON array of records are read too.
type historySnapshot struct {
	Version  int              `json:"version"`
	Seq      int64            `json:"seq,omitempty"`
	Total    int              `json:"total,omitempty"` // records in history.json and its archives
	Archives []historyArchive `json:"archives,omitempty"`
	Records  []Record         `json:"records"`
}

// historyOp is one line of history.journal.
type historyOp struct {
	Seq    int64   `json:"seq"`
	Op     string  `json:"op"` // "add" or "delete"
	Record *Record `json:"record,omitempty"`
	ID     string  `json:"id,omitempty"`
}

// Open opens <outputDir>/.history with its archives, for the web
// UI. A file that cannot be read or parsed is renamed to
// <name>.corrupt-<UTC time>, logged and reported by Recovered; the records
// that could be read are kept.
func Open(outputDir string, log *slog.Logger) (*Store, error) {
	return openHistoryStore(outputDir, log, true)
}

// OpenRecent opens only history.json and its journal: what a CLI
// run needs to add its records, whatever the size of the archives.
func OpenRecent(outputDir string, log *slog.Logger) (*Store, error) {
	return openHistoryStore(outputDir, log, false)
}

func openHistoryStore(outputDir string, log *slog.Logger, all bool) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Store{
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
	j, lines, err := disk.OpenJournal(h.path(historyJournalName))
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

func (h *Store) path(name string) string {
	return filepath.Join(h.dir, filepath.FromSlash(name))
}

func newHistoryEntry(rec Record, archive int) historyEntry {
	return historyEntry{rec: rec, search: strings.ToLower(rec.Source + "\n" + rec.FileName), archive: archive}
}

// insert appends rec to memory as a recent record.
func (h *Store) insert(rec Record, archive int) {
	h.ids[rec.ID] = struct{}{}
	h.records = append(h.records, newHistoryEntry(rec, archive))
}

// Get returns the record with this ID, looking from the newest.
func (h *Store) Get(id string) (Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; !ok {
		return Record{}, false
	}
	for i := len(h.records) - 1; i >= 0; i-- {
		if h.records[i].rec.ID == id {
			h.parseLocked(i)
			return h.records[i].rec, true
		}
	}
	return Record{}, false
}

// removeRecent drops a record of history.json from memory.
func (h *Store) removeRecent(id string) bool {
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
func (h *Store) Add(rec Record) error { return h.add(rec, false) }

// AddOnce is Add for a record whose ID says what it records (one attempt
// of one download): when that ID is already in the history it writes
// nothing. A download that completed just before a kill, and completes
// again from its finished file on restart, is recorded once.
func (h *Store) AddOnce(rec Record) error { return h.add(rec, true) }

func (h *Store) add(rec Record, once bool) error {
	switch rec.Status {
	case "completed", "failed", "canceled":
	default:
		return fault.BadInputf("history status must be completed, failed or canceled, got %q", rec.Status)
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
		rec.Domain = DomainOf(rec.Source)
	}
	if rec.FileType == "" {
		rec.FileType = FileTypeOf(rec.Kind, rec.FileName)
	}

	h.mu.Lock()
	if rec.ID == "" {
		rec.ID = "h-" + NewID()
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
func (h *Store) scheduleFlushLocked() {
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
func (h *Store) Flush() error {
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
func (h *Store) Close() error {
	err := h.Flush()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if cerr := h.journal.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete removes one record; ErrNotFound if there is none with that id.
func (h *Store) Delete(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; !ok {
		return fmt.Errorf("history record %q: %w", id, fault.ErrNotFound)
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
func (h *Store) deleteArchivedLocked(i int) error {
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
func (h *Store) Clear() error {
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
func (h *Store) flushLocked() error {
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
func (h *Store) nextArchiveNumber() int {
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
func (h *Store) writeRecords(name string, head historySnapshot, entries []historyEntry) error {
	return disk.WriteFileAtomic(h.path(name), 0o644, func(w io.Writer) error {
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

// Recovered is the path a corrupt history file was moved to when the
// store was opened, or "".
func (h *Store) Recovered() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recovered
}

// NewID is 12 hex digits from the system's random source.
func NewID() string {
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
