package disk

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestSmallFileSyncsShare: small files finishing together share syncs of
// their file system; each returns only once its data is on disk, and a
// big file is fsynced on its own.
func TestSmallFileSyncsShare(t *testing.T) {
	dir := t.TempDir()
	var s SmallFileSyncs
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			f, err := os.Create(filepath.Join(dir, "f"+string(rune('a'+i))))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			f.Write(make([]byte, 4096))
			errs <- s.Sync(f, dir, 4096)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if haveSyncfs {
		g := s.folders.folders[dir]
		if g == nil || g.synced != 32 {
			t.Fatalf("the folder's group covered %v requests, want 32", g)
		}
	}
	big := &countingSyncer{}
	if err := s.Sync(big, dir, smallFileMax+1); err != nil || big.n != 1 {
		t.Errorf("a big file: %d fsyncs of its own, %v; want 1", big.n, err)
	}
}

type countingSyncer struct{ n int }

func (c *countingSyncer) Sync() error { c.n++; return nil }
