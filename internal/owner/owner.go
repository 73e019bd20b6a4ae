package owner

import (
	"encoding/json"
	"errors"
	"fmt"
	"ollama-model-downloader/internal/disk"
	"os"
	"path/filepath"
	"time"
)

// Files under <output-dir>/.state that say who owns the folder.
const (
	lockName = "owner.lock"
	InfoName = "owner.json"
)

// Owner is this process's claim on an output folder (issue 14): one
// process at a time writes a folder's queue, history and .part files. The
// claim is an OS lock on .state/owner.lock, which the kernel drops when the
// process dies however it dies, so the next process takes over at once — a
// PID file would outlive a kill -9. owner.json says how other processes
// reach the owner's API, to hand it their downloads.
type Owner struct {
	lock     *disk.Lock
	infoPath string
}

// Info is owner.json: where the owner's API listens and the key a
// process of the same user sends to use it. The file is 0600, so the key
// reaches no other user.
type Info struct {
	PID     int       `json:"pid"`
	Kind    string    `json:"kind"` // "web" (the web UI) or "cli" (a command-line run)
	URL     string    `json:"url"`  // the API's base URL, on loopback
	Key     string    `json:"key"`  // Authorization: Bearer <key>
	Started time.Time `json:"started"`
}

const (
	KindWeb = "web"
	KindCLI = "cli"
)

// Claim takes the folder's lock. It returns an error matching
// errLocked when another process owns the folder.
func Claim(outputDir string) (*Owner, error) {
	state := filepath.Join(outputDir, ".state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, fmt.Errorf("creating state folder: %w", err)
	}
	lock, err := disk.TryLock(filepath.Join(state, lockName))
	if err != nil {
		return nil, err
	}
	o := &Owner{lock: lock, infoPath: filepath.Join(state, InfoName)}
	// What a previous owner announced is stale now: it died or left
	// without cleaning up.
	os.Remove(o.infoPath)
	return o, nil
}

// Announce publishes how to reach this owner, once its API listens.
func (o *Owner) Announce(info Info) error {
	info.PID = os.Getpid()
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	// Not fsynced: after a power cut there is no owner to reach anyway.
	return disk.ReplaceFile(o.infoPath, 0o600, data)
}

// Withdraw takes the announcement back while the folder is still held:
// the owner is stopping, and others should wait for the lock rather
// than call it.
func (o *Owner) Withdraw() {
	if o != nil {
		os.Remove(o.infoPath)
	}
}

// Release withdraws the announcement and lets the folder go.
func (o *Owner) Release() error {
	if o == nil || o.lock == nil {
		return nil
	}
	os.Remove(o.infoPath)
	err := o.lock.Close()
	o.lock = nil
	return err
}

// ErrUnknown means the folder is owned but owner.json does not (yet)
// say how to reach the owner: it is starting, or it is an older version.
var ErrUnknown = errors.New("the process that owns this folder has not said how to reach it")

// Read reads owner.json. Only meaningful while the lock is held by
// someone: a file left by a dead owner is removed by the next claim.
func Read(outputDir string) (Info, error) {
	data, err := os.ReadFile(filepath.Join(outputDir, ".state", InfoName))
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, ErrUnknown
	}
	if err != nil {
		return Info{}, fmt.Errorf("reading %s: %w", InfoName, err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil || info.URL == "" {
		return Info{}, ErrUnknown
	}
	return info, nil
}
