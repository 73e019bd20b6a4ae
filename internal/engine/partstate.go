package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"ollama-model-downloader/internal/disk"
	"os"
	"path/filepath"
	"strings"
)

// PartState is the sidecar <path>.part.json: what the .part holds and which
// validators to send with If-Range, so a resume after a restart is safe.
type PartState struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"`      // -1 when the server did not say
	Committed    int64  `json:"committed"` // bytes synced to disk; the tail beyond is not trusted

	// Segments, when set, are the byte ranges [start, end) still missing
	// from a multi-connection download, as of the last sync.
	Segments [][2]int64 `json:"segments,omitempty"`
}

func PartPath(path string) string { return path + ".part" }

func SidecarPath(path string) string { return path + ".part.json" }

// RemovePartial deletes the partial data of path (its .part and sidecar);
// used when a download is cancelled.
func RemovePartial(path string) error {
	var first error
	var more []string
	for _, p := range []string{PartPath(path), SidecarPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			if first == nil {
				first = err
			} else {
				more = append(more, err.Error()) // one line: never errors.Join's
			}
		}
	}
	removeSidecarTemps(path)
	if len(more) > 0 {
		return fmt.Errorf("%w; %s", first, strings.Join(more, "; "))
	}
	return first
}

// removeSidecarTemps deletes the temp files (writeFileAtomic's
// "<sidecar>.tmp-<digits>") that a process killed while replacing path's
// sidecar left behind.
func removeSidecarTemps(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(SidecarPath(path))+".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// durableBytes is how much of path's .part a resume of url (a file of
// size bytes) will keep: what its sidecar vouches for.
func durableBytes(path, url string, size int64) int64 {
	st, err := ReadPartState(path)
	if err != nil || st.URL != url || (st.Size >= 0 && st.Size != size) {
		return 0
	}
	fi, err := os.Stat(PartPath(path))
	if err != nil {
		return 0
	}
	if st.Segments != nil {
		if fi.Size() != st.Size {
			return 0
		}
		return st.Saved()
	}
	return min(st.Committed, fi.Size())
}

// openPart opens (or creates) the .part and decides how much of it to keep:
// only what the sidecar says was synced, and only if it is for this URL.
func (d *Downloader) openPart(t *transfer) error {
	if t.claimed && t.req.Region == nil {
		// A new download: its .part was just made, empty. The sidecar is
		// written at the first checkpoint (until then the queue knows the
		// path): a small file that arrives within a second never has
		// one, which spares 2,000 small files a file creation each.
		t.file = t.claimFile
		t.hash = newFileHash(t.req.SHA256)
		if t.req.Hash != nil {
			t.hash = t.req.Hash
		}
		t.state = PartState{URL: t.req.URL, Size: -1}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return fmt.Errorf("creating folder for %s: %w", t.path, err)
	}
	if t.req.Region != nil || exists(PartPath(t.path)) {
		removeSidecarTemps(t.path) // an earlier run may have been killed mid-checkpoint
	}
	var f PartFile = t.req.Region
	if f == nil {
		file, err := os.OpenFile(PartPath(t.path), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			if disk.IsNoSpace(err) {
				return disk.FullError(err, t.path)
			}
			return fmt.Errorf("opening %s: %w", PartPath(t.path), err)
		}
		f = file
	}
	t.file = f
	t.hash = newFileHash(t.req.SHA256)
	if t.req.Hash != nil {
		t.hash = t.req.Hash
	}
	st, err := ReadPartState(t.path)
	fi, statErr := f.Stat()
	if err != nil || statErr != nil || st.URL != t.req.URL || (t.req.Size > 0 && st.Size != t.req.Size) {
		t.state = PartState{URL: t.req.URL, Size: -1}
		return d.restart(t)
	}
	if st.Segments != nil {
		return d.resumeSegments(t, st, fi.Size())
	}
	keep := min(st.Committed, fi.Size())
	if st.Size >= 0 {
		keep = min(keep, st.Size)
	}
	t.state = st
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("trimming %s: %w", PartPath(t.path), err)
	}
	// Reading the kept bytes into the hash also leaves the file offset at
	// keep, where the next write goes; without a hash, seek there.
	if _, skip := t.hash.(noHash); skip {
		if _, err := f.Seek(keep, io.SeekStart); err != nil {
			return fmt.Errorf("seeking in %s to resume: %w", PartPath(t.path), err)
		}
	} else if _, err := io.Copy(t.hash, io.LimitReader(f, keep)); err != nil {
		return fmt.Errorf("reading %s to resume: %w", PartPath(t.path), err)
	}
	t.offset = keep
	t.resumed = keep
	if keep > 0 {
		d.log.Info("resuming", "file", t.path, "from", keep)
		t.told(0, keep)
	}
	return nil
}

// restart throws the partial data away and starts again from byte 0.
func (d *Downloader) restart(t *transfer) error {
	t.told(-1, -1)
	if err := t.file.Truncate(0); err != nil {
		return fmt.Errorf("truncating %s: %w", PartPath(t.path), err)
	}
	if _, err := t.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding %s: %w", PartPath(t.path), err)
	}
	t.hash.Reset()
	t.offset = 0
	t.state.Committed = 0
	t.state.Segments = nil
	return writePartState(t.path, t.state)
}

// checkpoint syncs the .part and then records how much of it is good. The
// order matters: after a power cut the sidecar never claims unsynced bytes.
func (d *Downloader) checkpoint(t *transfer) {
	if t.file == nil || t.state.Committed == t.offset {
		return
	}
	if err := t.file.Sync(); err != nil {
		d.logCheckpointFailure("syncing partial file", t, err)
		return
	}
	t.state.Committed = t.offset
	if err := writePartState(t.path, t.state); err != nil {
		d.logCheckpointFailure("saving resume state", t, err)
	}
}

// logCheckpointFailure: the last checkpoint on a full disk fails as the
// download already did; its error says so once, the log does not repeat it.
func (d *Downloader) logCheckpointFailure(what string, t *transfer, err error) {
	level := slog.LevelWarn
	if errors.Is(err, disk.ErrNoSpace) || disk.IsNoSpace(err) {
		level = slog.LevelDebug
	}
	d.log.Log(context.Background(), level, what, "file", t.path, "error", err)
}

// checkpointAsync is checkpoint on another goroutine, so a slow disk sync
// does not stop the transfer: the sidecar records the offset taken before
// the sync began. At most one runs; callers wait for it (waitCheckpoint)
// before they touch the sidecar themselves.
//
// A previous checkpoint that failed for lack of space is returned: the
// download ends with that one error, the sidecar as of the last good one.
func (d *Downloader) checkpointAsync(t *transfer) error {
	if t.ckptDone != nil {
		select {
		case <-t.ckptDone:
			if err := t.ckptErr; err != nil && errors.Is(err, disk.ErrNoSpace) {
				return err
			}
		default:
			return nil // the previous one is still syncing
		}
	}
	offset, st, done := t.offset, t.state, make(chan struct{})
	t.ckptDone, t.ckptErr = done, nil
	go func() {
		defer close(done)
		if err := t.file.Sync(); err != nil {
			t.ckptErr = writeFailure(err, t.path, "syncing")
			d.logCheckpointFailure("syncing partial file", t, err)
			return
		}
		st.Committed = offset
		if err := writePartState(t.path, st); err != nil {
			t.ckptErr = err
			d.logCheckpointFailure("saving resume state", t, err)
		}
	}()
	return nil
}

func (t *transfer) waitCheckpoint() {
	if t.ckptDone != nil {
		<-t.ckptDone
		t.ckptDone = nil
	}
}

// Saved is how many bytes of the file the state vouches for.
func (st PartState) Saved() int64 {
	if st.Segments == nil {
		return st.Committed
	}
	missing := int64(0)
	for _, r := range st.Segments {
		missing += r[1] - r[0]
	}
	return st.Size - missing
}

func ReadPartState(path string) (PartState, error) {
	var st PartState
	data, err := os.ReadFile(SidecarPath(path))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("reading %s: %w", SidecarPath(path), err)
	}
	if st.URL == "" || st.Committed < 0 {
		return st, fmt.Errorf("reading %s: incomplete resume state", SidecarPath(path))
	}
	return st, nil
}

// claimPart creates the empty .part of a new download and returns it
// open, failing with os.ErrExist when another download already claimed
// the name.
func claimPart(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(PartPath(path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// writePartState replaces the sidecar atomically (temp file + rename).
func writePartState(path string, st PartState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// Not fsynced: the data it names is, and a sidecar lost to a power
	// cut only makes the state older (or unreadable: a restart from 0).
	err = disk.ReplaceFile(SidecarPath(path), 0o644, data)
	if err != nil && errors.Is(err, disk.ErrNoSpace) && overwriteInPlace(SidecarPath(path), data) == nil {
		return nil
	}
	return err
}

// overwriteInPlace rewrites a small existing file over its own blocks: a
// full disk has no room for a temp file, but the old sidecar's block is
// still ours. Nothing is truncated before the write (that would give the
// block away); a torn write only makes the state unreadable, which
// restarts the download, never corrupts it.
func overwriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
