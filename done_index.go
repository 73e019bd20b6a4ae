package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// doneIndex remembers, per URL, the file a finished download left and the
// validators the server gave it (ETag, Last-Modified, size), so that the
// same URL again is checked with the server instead of fetched again as
// "name (1).ext" (issue 14). One small file per URL under
// <output-dir>/.state/done, named after the URL's SHA-256: a lookup costs
// one read whatever the size of the history. Losing an entry (a power cut
// before the OS wrote it) only means fetching that file again, so entries
// are not fsynced.
type doneIndex struct {
	dir string
}

// doneEntry is what the index keeps for one URL.
type doneEntry struct {
	URL          string    `json:"url"`  // redacted, for a person reading the file
	Path         string    `json:"path"` // relative to the output folder when inside it
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	FinishedAt   time.Time `json:"finished_at"`
}

func (d doneIndex) file(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:16])+".json")
}

// lookup returns the entry for rawURL; an unreadable one counts as absent.
func (d doneIndex) lookup(rawURL string) (doneEntry, bool) {
	data, err := os.ReadFile(d.file(rawURL))
	if err != nil {
		return doneEntry{}, false
	}
	var e doneEntry
	if json.Unmarshal(data, &e) != nil || e.Path == "" {
		return doneEntry{}, false
	}
	return e, true
}

// remember records rawURL's finished file: written to a temp file and
// renamed, so a reader sees the old entry or the new one.
func (d doneIndex) remember(rawURL string, e doneEntry) error {
	e.URL = redactURL(rawURL)
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	return replaceFile(d.file(rawURL), 0o644, data)
}

// validators are the entry's, for rangeDownloader.CheckUnchanged.
func (e doneEntry) validators() fileValidators {
	return fileValidators{Size: e.Size, ETag: e.ETag, LastModified: e.LastModified}
}
