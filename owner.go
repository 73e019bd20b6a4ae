package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Files under <output-dir>/.state that say who owns the folder.
const (
	ownerLockName = "owner.lock"
	ownerInfoName = "owner.json"
)

// folderOwner is this process's claim on an output folder (issue 14): one
// process at a time writes a folder's queue, history and .part files. The
// claim is an OS lock on .state/owner.lock, which the kernel drops when the
// process dies however it dies, so the next process takes over at once — a
// PID file would outlive a kill -9. owner.json says how other processes
// reach the owner's API, to hand it their downloads.
type folderOwner struct {
	lock     *fileLock
	infoPath string
}

// ownerInfo is owner.json: where the owner's API listens and the key a
// process of the same user sends to use it. The file is 0600, so the key
// reaches no other user.
type ownerInfo struct {
	PID     int       `json:"pid"`
	Kind    string    `json:"kind"` // "web" (the web UI) or "cli" (a command-line run)
	URL     string    `json:"url"`  // the API's base URL, on loopback
	Key     string    `json:"key"`  // Authorization: Bearer <key>
	Started time.Time `json:"started"`
}

const (
	ownerWeb = "web"
	ownerCLI = "cli"
)

// claimFolder takes the folder's lock. It returns an error matching
// errLocked when another process owns the folder.
func claimFolder(outputDir string) (*folderOwner, error) {
	state := filepath.Join(outputDir, ".state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, fmt.Errorf("creating state folder: %w", err)
	}
	lock, err := tryLockFile(filepath.Join(state, ownerLockName))
	if err != nil {
		return nil, err
	}
	o := &folderOwner{lock: lock, infoPath: filepath.Join(state, ownerInfoName)}
	// What a previous owner announced is stale now: it died or left
	// without cleaning up.
	os.Remove(o.infoPath)
	return o, nil
}

// Announce publishes how to reach this owner, once its API listens.
func (o *folderOwner) Announce(info ownerInfo) error {
	info.PID = os.Getpid()
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	// Not fsynced: after a power cut there is no owner to reach anyway.
	return replaceFile(o.infoPath, 0o600, data)
}

// Withdraw takes the announcement back while the folder is still held:
// the owner is stopping, and others should wait for the lock rather
// than call it.
func (o *folderOwner) Withdraw() {
	if o != nil {
		os.Remove(o.infoPath)
	}
}

// Release withdraws the announcement and lets the folder go.
func (o *folderOwner) Release() error {
	if o == nil || o.lock == nil {
		return nil
	}
	os.Remove(o.infoPath)
	err := o.lock.Close()
	o.lock = nil
	return err
}

// errOwnerUnknown means the folder is owned but owner.json does not (yet)
// say how to reach the owner: it is starting, or it is an older version.
var errOwnerUnknown = errors.New("the process that owns this folder has not said how to reach it")

// readOwner reads owner.json. Only meaningful while the lock is held by
// someone: a file left by a dead owner is removed by the next claim.
func readOwner(outputDir string) (ownerInfo, error) {
	data, err := os.ReadFile(filepath.Join(outputDir, ".state", ownerInfoName))
	if errors.Is(err, os.ErrNotExist) {
		return ownerInfo{}, errOwnerUnknown
	}
	if err != nil {
		return ownerInfo{}, fmt.Errorf("reading %s: %w", ownerInfoName, err)
	}
	var info ownerInfo
	if err := json.Unmarshal(data, &info); err != nil || info.URL == "" {
		return ownerInfo{}, errOwnerUnknown
	}
	return info, nil
}

// handleYield is POST /api/owner/yield: a web UI starting on a folder a
// command-line run owns asks for it. The run stops its queue (running
// downloads keep their .part) and follows its downloads in the web UI.
func (s *server) handleYield(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Yield == nil {
		s.writeError(w, r, fmt.Errorf("this server does not hand its folder over: it is a web UI: %w", errConflict))
		return
	}
	s.cfg.Yield()
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
