package queue

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"ollama-model-downloader/internal/disk"
	"ollama-model-downloader/internal/engine"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// doneIndex remembers, per URL, the file a finished download left and the
// validators the server gave it (ETag, Last-Modified, size), so that the
// same URL again is checked with the server instead of fetched again as
// "name (1).ext" (issue 14).
//
// It lives in <output-dir>/.state/done/ as 256 bucket files of JSON lines,
// chosen by the first byte of the URL's SHA-256: a lookup reads one bucket
// (1/256 of the index, whatever the size of the history), and remembering
// appends one line to one — no new file per download, which cost 2,000
// small files a file creation and a rename each (issue 18). A later line
// for the same URL wins. A bucket that has grown past bucketMax keeps
// only the newest line per URL. Lines are not fsynced: losing one (a power
// cut) only means fetching that file once more, and a torn line is
// skipped.
type doneIndex struct {
	dir string

	mu sync.Mutex // appends and compactions of this process
}

// doneBucketMax is the size past which a bucket is compacted.
const doneBucketMax = 256 << 10

// doneEntry is what the index keeps for one URL.
type doneEntry struct {
	Key          string    `json:"key"`  // hex SHA-256 of the URL (first 16 bytes)
	URL          string    `json:"url"`  // redacted, for a person reading the file
	Path         string    `json:"path"` // relative to the output folder when inside it
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	FinishedAt   time.Time `json:"finished_at"`
}

func newDoneIndex(dir string) *doneIndex { return &doneIndex{dir: dir} }

// key and bucket of a URL.
func (d *doneIndex) locate(rawURL string) (key, bucket string) {
	sum := sha256.Sum256([]byte(rawURL))
	key = hex.EncodeToString(sum[:16])
	return key, filepath.Join(d.dir, key[:2]+".jsonl")
}

// lookup returns the newest entry for rawURL.
func (d *doneIndex) lookup(rawURL string) (doneEntry, bool) {
	key, bucket := d.locate(rawURL)
	data, err := os.ReadFile(bucket)
	if err != nil {
		return doneEntry{}, false
	}
	var found doneEntry
	ok := false
	needle := []byte(`"key":"` + key + `"`)
	for line := range bytes.Lines(data) {
		if !bytes.Contains(line, needle) {
			continue
		}
		var e doneEntry
		if json.Unmarshal(line, &e) == nil && e.Key == key && e.Path != "" {
			found, ok = e, true
		}
	}
	return found, ok
}

// remember records rawURL's finished file: one appended line.
func (d *doneIndex) remember(rawURL string, e doneEntry) error {
	key, bucket := d.locate(rawURL)
	e.Key, e.URL = key, engine.RedactURL(rawURL)
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(bucket, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(line)
	fi, serr := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("remembering %s: %w", e.URL, err)
	}
	if serr == nil && fi.Size() > doneBucketMax {
		return d.compact(bucket)
	}
	return nil
}

// compact rewrites a bucket with the newest line of each URL, in order.
func (d *doneIndex) compact(bucket string) error {
	data, err := os.ReadFile(bucket)
	if err != nil {
		return err
	}
	newest := make(map[string]int)
	var lines [][]byte
	for line := range bytes.Lines(data) {
		var e doneEntry
		if json.Unmarshal(line, &e) != nil || e.Key == "" {
			continue
		}
		if i, seen := newest[e.Key]; seen {
			lines[i] = nil
		}
		newest[e.Key] = len(lines)
		lines = append(lines, line)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, l := range lines {
		w.Write(l)
	}
	w.Flush()
	return disk.ReplaceFile(bucket, 0o644, buf.Bytes())
}

// validators are the entry's, for Downloader.CheckUnchanged.
func (e doneEntry) validators() engine.Validators {
	return engine.Validators{Size: e.Size, ETag: e.ETag, LastModified: e.LastModified}
}
