package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"ollama-model-downloader/internal/disk"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// changedLocked wakes everyone waiting on Changed.
func (m *Manager) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// markLocked notes that j changed: its rev moves on (ListSince reports
// it) and it is written to the store with the next write.
func (m *Manager) markLocked(j *managerJob) {
	m.rev++
	j.rev = m.rev
	m.pending[j.ID] = j
}

// removedLocked notes that j left the queue.
func (m *Manager) removedLocked(j *managerJob) {
	m.rev++
	m.orderRev = m.rev
	delete(m.pending, j.ID)
	m.pendingDel = append(m.pendingDel, j.ID)
	m.removed = append(m.removed, removal{id: j.ID, rev: m.rev})
	if over := len(m.removed) - maxRemovals; over > 0 {
		m.removedFrom = m.removed[over-1].rev
		m.removed = slices.Delete(m.removed, 0, over)
	}
	if m.own != nil {
		delete(m.own, j.ID)
	}
	m.dropHeaderLocked(j)
}

// writeLocked writes the pending changes to the store's journal, in the
// order they were made (the lock keeps it), and folds the journal into a
// new queue.json when it has grown past the queue. It does not wait for
// the disk: save does.
func (m *Manager) writeLocked() {
	if len(m.pending) == 0 && len(m.pendingDel) == 0 {
		return
	}
	// Each line carries its job's rank, so the order of the lines does
	// not matter; walking the pending set, not the queue, keeps a change
	// O(1) with 10,000 jobs queued.
	puts := make([]*managerJob, 0, len(m.pending))
	for _, j := range m.pending {
		puts = append(puts, m.storedCopy(j))
	}
	err := m.store.write(puts, m.pendingDel)
	if err == nil && m.store.needsSnapshot(len(m.jobs)) {
		all := make([]*managerJob, len(m.jobs))
		for i, j := range m.jobs {
			all[i] = m.storedCopy(j)
		}
		err = m.store.snapshot(all)
	}
	if m.noteSaveLocked(err) {
		clear(m.pending)
		m.pendingDel = m.pendingDel[:0]
	}
}

// storedCopy is j as the store keeps it: paths relative to the output
// folder when inside it.
func (m *Manager) storedCopy(j *managerJob) *managerJob {
	c := *j
	c.Path = m.viewPath(j.Path)
	c.Output = m.viewPath(j.Output)
	c.Previous = m.viewPath(j.Previous)
	c.run, c.limiter, c.layers, c.header = nil, nil, nil, nil
	return &c
}

// noteSaveLocked logs a save error once (a full disk fails every save
// until space is freed: one line, not a cascade) and reports success.
func (m *Manager) noteSaveLocked(err error) bool {
	if err == nil {
		if m.saveErr != "" {
			m.log.Info("saving the download queue works again")
			m.saveErr = ""
		}
		return true
	}
	if msg := err.Error(); msg != m.saveErr {
		m.log.Error("saving download queue", "path", m.statePath, "err", err)
		m.saveErr = msg
	}
	return false
}

// save writes what changed and returns once it is on disk. Callers that
// save at the same moment share one fsync (the journal's group commit):
// 200 files finishing cost a handful of fsyncs, not 200.
func (m *Manager) save() {
	m.mu.Lock()
	m.writeLocked()
	failed := m.saveErr != ""
	m.mu.Unlock()
	if failed {
		return
	}
	if err := m.store.Sync(); err != nil {
		m.mu.Lock()
		m.noteSaveLocked(err)
		m.mu.Unlock()
	}
}

// queueFileVersion 2 adds seq and each job's rank; version 1 files (no
// journal, order by position) are read too.
const queueFileVersion = 2

// queueStore keeps the download queue in <output-dir>/.state: queue.json,
// every job in queue order, and queue.journal, one line per job changed
// (or removed) since. A change a person makes, a download's start or end,
// costs one short line and a share of one fsync — not a rewrite of every
// job, which with 10,000 queued was 2 MB per change (issue 18). Progress
// is not written here at all: each .part's sidecar holds the truth, and a
// job's figures are saved with its next change. The journal is folded into
// a new queue.json once it holds more lines than there are jobs (twice
// over), so its cost stays linear.
type queueStore struct {
	path    string // queue.json
	journal *disk.Journal
	log     *slog.Logger
	seq     uint64 // last operation written
	lines   int    // journal lines since queue.json was written
	exists  bool   // queue.json is there
}

// queueFile is the content of queue.json.
type queueFile struct {
	Version int           `json:"version"`
	Seq     uint64        `json:"seq,omitempty"` // last journal operation it includes
	Jobs    []*managerJob `json:"jobs"`
}

// queueOp is one line of queue.journal: a job as it is now, or the ID of
// one removed.
type queueOp struct {
	Seq uint64      `json:"seq"`
	Put *managerJob `json:"put,omitempty"`
	Del string      `json:"del,omitempty"`
}

// openQueueStore reads queue.json and replays its journal. It returns the
// jobs in queue order, unchecked (the manager validates them), and where
// an unreadable file was moved ("" if none was).
func openQueueStore(path string, log *slog.Logger, now time.Time) (*queueStore, []*managerJob, string, error) {
	dir := filepath.Dir(path)
	if err := disk.MakePrivateDir(dir); err != nil {
		return nil, nil, "", fmt.Errorf("creating state folder: %w", err)
	}
	// A crash between writing a temporary file and renaming it leaves the
	// temporary file; the rename never happened, so it is garbage.
	if stale, err := filepath.Glob(filepath.Join(dir, filepath.Base(path)+".tmp-*")); err == nil {
		for _, p := range stale {
			os.Remove(p)
		}
	}
	s := &queueStore{path: path, log: log}
	var recovered string
	jobs, err := s.readSnapshot()
	if err != nil {
		aside, merr := disk.MoveAside(path, now)
		if merr != nil {
			return nil, nil, "", fmt.Errorf("moving aside unreadable download queue %s: %w", path, merr)
		}
		log.Warn("download queue was unreadable; moved aside, starting with an empty queue",
			"path", path, "moved_to", aside, "err", err)
		recovered, jobs = aside, nil
	}
	j, lines, err := disk.OpenJournal(journalPath(path))
	if err != nil {
		return nil, nil, "", err
	}
	s.journal = j
	jobs, bad, err := s.replay(jobs, lines)
	if bad > 0 {
		// The bad lines were skipped and the others applied. The journal
		// is kept for a person to look at, and the queue it describes
		// becomes queue.json now: left in memory until a clean stop, a
		// second crash would lose what the lines after the bad one hold.
		aside, cerr := disk.CopyAside(journalPath(path), now)
		if cerr != nil {
			j.Close()
			return nil, nil, "", fmt.Errorf("keeping the unreadable queue journal: %w", cerr)
		}
		if serr := s.snapshot(jobs); serr != nil {
			j.Close()
			return nil, nil, "", serr
		}
		log.Warn("unreadable lines of the queue journal were skipped; the journal is kept aside",
			"lines", bad, "kept_as", aside, "err", err)
		if recovered == "" {
			recovered = aside
		}
	}
	return s, jobs, recovered, nil
}

// journalPath is the journal beside a queue file.
func journalPath(queuePath string) string {
	return queuePath[:len(queuePath)-len(filepath.Ext(queuePath))] + ".journal"
}

func (s *queueStore) readSnapshot() ([]*managerJob, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.exists = true
	var qf queueFile
	if err := json.Unmarshal(data, &qf); err != nil {
		return nil, err
	}
	switch qf.Version {
	case 1:
		for i, j := range qf.Jobs {
			if j != nil {
				j.Rank = int64(i)
			}
		}
	case queueFileVersion:
	default:
		return nil, fmt.Errorf("unknown queue file version %d", qf.Version)
	}
	s.seq = qf.Seq
	return qf.Jobs, nil
}

// replay applies the journal's operations newer than queue.json, in order,
// and sorts the result by rank. A line that does not parse (garbage from a
// failing disk, a hand edit) is skipped: bad counts them, and err is the
// first one's; each line carries a whole job, so the lines after it still
// apply. A torn last line was already cut by openJournal.
func (s *queueStore) replay(jobs []*managerJob, lines [][]byte) (_ []*managerJob, bad int, err error) {
	base := s.seq
	for n, line := range lines {
		var op queueOp
		if uerr := json.Unmarshal(line, &op); uerr != nil || (op.Put == nil) == (op.Del == "") {
			if uerr == nil {
				uerr = errors.New("neither a put nor a del")
			}
			if bad == 0 {
				err = fmt.Errorf("queue journal line %d: %w", n+1, uerr)
			}
			bad++
			continue
		}
		s.lines++
		if op.Seq <= base {
			continue // queue.json holds it already
		}
		s.seq = max(s.seq, op.Seq)
		id := op.Del
		if op.Put != nil {
			id = op.Put.ID
		}
		i := slices.IndexFunc(jobs, func(j *managerJob) bool { return j != nil && j.ID == id })
		switch {
		case op.Put != nil && i >= 0:
			jobs[i] = op.Put
		case op.Put != nil:
			jobs = append(jobs, op.Put)
		case i >= 0:
			jobs = slices.Delete(jobs, i, i+1)
		}
	}
	slices.SortStableFunc(jobs, func(a, b *managerJob) int {
		if a == nil || b == nil {
			return 0
		}
		return int(min(max(a.Rank-b.Rank, -1), 1))
	})
	return jobs, bad, err
}

// write appends the changed jobs and the removed IDs to the journal. The
// caller holds the manager's lock, which keeps the file in the order of
// the changes; Sync, outside it, makes them durable. puts are copies the
// caller made under its lock.
func (s *queueStore) write(puts []*managerJob, dels []string) error {
	lines := make([][]byte, 0, len(puts)+len(dels))
	seq := s.seq
	for _, j := range puts {
		seq++
		line, err := json.Marshal(queueOp{Seq: seq, Put: j})
		if err != nil {
			return fmt.Errorf("encoding download %s: %w", j.ID, err)
		}
		lines = append(lines, line)
	}
	for _, id := range dels {
		seq++
		line, _ := json.Marshal(queueOp{Seq: seq, Del: id})
		lines = append(lines, line)
	}
	if err := s.journal.Write(lines...); err != nil {
		return err
	}
	s.seq = seq
	s.lines += len(lines)
	return nil
}

// needsSnapshot reports whether the journal has grown past the queue it
// describes (twice its jobs, and at least 1,024 lines).
func (s *queueStore) needsSnapshot(jobs int) bool {
	return s.lines >= max(1024, 2*jobs)
}

// snapshot writes every job (copies, in queue order) to queue.json and
// empties the journal.
func (s *queueStore) snapshot(jobs []*managerJob) error {
	err := disk.WriteFileAtomic(s.path, disk.PrivateFileMode, func(w io.Writer) error {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		if err := enc.Encode(queueFile{Version: queueFileVersion, Seq: s.seq, Jobs: jobs}); err != nil {
			return err
		}
		_, err := w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return fmt.Errorf("saving download queue: %w", err)
	}
	s.lines, s.exists = 0, true
	if err := s.journal.Reset(); err != nil {
		s.log.Warn("emptying queue journal", "err", err)
	}
	return nil
}

// Sync makes every write so far durable.
func (s *queueStore) Sync() error { return s.journal.Sync() }

// Close syncs and closes the journal.
func (s *queueStore) Close() error { return s.journal.Close() }

// readQueueState reads queue.json and its journal without changing either:
// the queue as a restart would find it, for tests and for a person's
// scripts (another process may be writing; a line still being written is
// left out, as a restart would cut it).
func readQueueState(path string) ([]*managerJob, error) {
	s := &queueStore{path: path}
	jobs, err := s.readSnapshot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(journalPath(path))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var lines [][]byte
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		for line := range bytes.SplitSeq(data[:i], []byte("\n")) {
			if len(line) > 0 {
				lines = append(lines, line)
			}
		}
	}
	jobs, _, _ = s.replay(jobs, lines) // a restart skips bad lines too
	return jobs, nil
}
