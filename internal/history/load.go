package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"ollama-model-downloader/internal/disk"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// loadSnapshot reads history.json into the recent records.
func (h *Store) loadSnapshot() (historySnapshot, error) {
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
func (h *Store) loadLines(data []byte) (snap historySnapshot, ok bool) {
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
		entries = append(entries, historyEntry{rec: Record{ID: id}, raw: line, lazy: true, archive: -1})
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
func (h *Store) parseAllLocked() {
	if h.lazy == 0 {
		return
	}
	for i := range h.records {
		h.parseLocked(i)
	}
}

func (h *Store) parseLocked(i int) {
	e := &h.records[i]
	if !e.lazy {
		return
	}
	h.lazy--
	var rec Record
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
// the records of the newest archives are loaded, up to loadMax. It
// reports whether history.json must be written again.
func (h *Store) loadArchives(snap historySnapshot) (bool, error) {
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
	loaded := make(map[int][]Record)
	held := len(h.records)
	for i := len(h.archives) - 1; i >= 0 && held < h.loadMax; i-- {
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
func (h *Store) statArchive(name string) (fs.FileInfo, error) {
	if !h.all {
		return nil, nil
	}
	return os.Stat(h.path(name))
}

// readArchive reads one archive file; an unreadable one is moved aside.
func (h *Store) readArchive(name string) ([]Record, error) {
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
// reports whether the journal held any. A line that does not parse is
// skipped and the lines after it still apply (each holds a whole record);
// the journal as it was is copied aside for a person to look at, and the
// caller writes history.json at once, so that what was read is durable
// before the journal is emptied.
func (h *Store) replay(lines [][]byte, snapSeq int64) (bool, error) {
	bad := 0
	for n, line := range lines {
		var op historyOp
		if err := json.Unmarshal(line, &op); err != nil || (op.Op == "add" && op.Record == nil) {
			if err == nil {
				err = errors.New("add without a record")
			}
			if bad == 0 {
				if err := h.copyAside(historyJournalName, fmt.Errorf("line %d: %w", n+1, err)); err != nil {
					return true, err
				}
			}
			bad++
			continue
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

// copyAside keeps a copy of a file some of which cannot be used, so that
// a person can look at it; the file stays, for what can be used.
func (h *Store) copyAside(name string, cause error) error {
	to, err := disk.CopyAside(h.path(name), time.Now())
	if err != nil {
		return fmt.Errorf("keeping unreadable history file %s (%v): %w", name, cause, err)
	}
	h.log.Error("history file partly unreadable; the unreadable parts were skipped and the file copied aside", "path", h.path(name), "copied_to", to, "err", cause)
	if h.recovered == "" {
		h.recovered = to
	}
	return nil
}

// moveAside renames a file that cannot be used, so that a person can look
// at it, and starts without it. Never silently emptied (SPEC §7).
func (h *Store) moveAside(name string, cause error) error {
	to, err := disk.MoveAside(h.path(name), time.Now())
	if err != nil {
		return fmt.Errorf("moving aside unreadable history file %s (%v): %w", name, cause, err)
	}
	h.log.Error("history file was unreadable; moved aside and started afresh", "path", h.path(name), "moved_to", to, "err", cause)
	if h.recovered == "" {
		h.recovered = to
	}
	return nil
}
