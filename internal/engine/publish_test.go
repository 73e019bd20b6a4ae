package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ollama-model-downloader/internal/testkit"
)

// TestPublishNeedsItsFolderSynced: a download is reported complete only
// once the rename that published it is durable. When the folder cannot be
// synced (EIO), the download fails and says so; the verified file stays.
// A folder is synced after the rename, never skipped.
func TestPublishNeedsItsFolderSynced(t *testing.T) {
	o := testkit.NewOrigin(t, testkit.WithSize(32<<10))
	dir := t.TempDir()
	d := testDownloader(t)
	var synced []string
	d.folders.SyncDir = func(p string) error {
		synced = append(synced, p)
		if _, err := os.Stat(filepath.Join(p, "data.bin")); err != nil {
			t.Errorf("the folder was synced before the file was renamed into it: %v", err)
		}
		return &os.PathError{Op: "sync", Path: p, Err: syscall.EIO}
	}
	_, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir})
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "power cut") {
		t.Fatalf("err = %v, want the failed folder sync", err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Errorf("folders synced: %v, want %s once", synced, dir)
	}
	if n := o.Gets.Load(); n != 1 {
		t.Errorf("%d GETs: a failed folder sync must not fetch the file again", n)
	}
	if got := testkit.ReadFile(t, filepath.Join(dir, "data.bin")); string(got) != string(o.Content()) {
		t.Error("the verified file did not stay")
	}

	// The same with a folder that syncs: complete, synced once.
	synced = nil
	d.folders.SyncDir = func(p string) error { synced = append(synced, p); return nil }
	dir2 := t.TempDir()
	if _, err := d.Download(t.Context(), Request{URL: o.FileURL(), Dir: dir2}); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != dir2 {
		t.Errorf("folders synced: %v, want %s once", synced, dir2)
	}
}
