package disk

import (
	"sync"
	"time"
)

// groupSync lets many callers that each need "sync this file" share one
// fsync, the way a database commits many transactions with one: a caller
// that arrives while a sync runs waits for the next one, which covers
// every request made before it began. Twenty files finishing at once in
// one folder cost a couple of folder syncs, not twenty in a row.
type groupSync struct {
	syncing sync.Mutex // one sync at a time
	// gather is how long a sync waits for more requests before it starts,
	// once requests have come faster than that: a database's commit
	// delay. Many small files finishing at once then share a sync where
	// they would each have had their own.
	gather time.Duration

	mu        sync.Mutex
	requested uint64 // requests so far
	synced    uint64 // requests covered by the last finished sync
	err       error  // its result
}

// do returns once a call of syncFile that began after this request has
// finished, and returns that call's error.
func (g *groupSync) do(syncFile func() error) error {
	g.mu.Lock()
	g.requested++
	mine := g.requested
	g.mu.Unlock()

	g.syncing.Lock()
	defer g.syncing.Unlock()
	g.mu.Lock()
	if g.synced >= mine {
		err := g.err
		g.mu.Unlock()
		return err
	}
	busy := g.gather > 0 && g.requested-g.synced > 1
	g.mu.Unlock()
	if busy {
		time.Sleep(g.gather)
	}
	g.mu.Lock()
	covers := g.requested
	g.mu.Unlock()

	err := syncFile()
	g.mu.Lock()
	g.synced, g.err = covers, err
	g.mu.Unlock()
	return err
}

// FolderSyncs is a groupSync per folder, for the fsync that makes a rename
// in it durable.
type FolderSyncs struct {
	mu      sync.Mutex
	folders map[string]*groupSync
}

func (f *FolderSyncs) Sync(dir string) error {
	f.mu.Lock()
	if f.folders == nil {
		f.folders = make(map[string]*groupSync)
	}
	g := f.folders[dir]
	if g == nil {
		g = &groupSync{gather: time.Millisecond}
		f.folders[dir] = g
	}
	f.mu.Unlock()
	return g.do(func() error { return SyncDir(dir) })
}

// SmallFileSyncs makes small files durable in batches: one syncfs of the
// folder's file system covers every file written before it, so files
// finishing within a millisecond of each other share one (see
// syncFilesystem). Where there is no syncfs, each file is fsynced.
type SmallFileSyncs struct {
	folders FolderSyncs
}

// smallFileMax is the largest file that waits for a shared syncfs; a
// bigger one is fsynced alone (it was mostly written back by its
// checkpoints already, and a syncfs would also flush others' data).
const smallFileMax = 4 << 20

func (s *SmallFileSyncs) Sync(f interface{ Sync() error }, dir string, size int64) error {
	if !haveSyncfs || size > smallFileMax {
		return f.Sync()
	}
	s.folders.mu.Lock()
	if s.folders.folders == nil {
		s.folders.folders = make(map[string]*groupSync)
	}
	g := s.folders.folders[dir]
	if g == nil {
		g = &groupSync{gather: time.Millisecond}
		s.folders.folders[dir] = g
	}
	s.folders.mu.Unlock()
	return g.do(func() error { return syncFilesystem(dir) })
}
