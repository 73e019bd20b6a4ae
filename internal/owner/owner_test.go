package owner

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"ollama-model-downloader/internal/disk"
)

// TestClaimAnnounceRead: one owner at a time; what it announces is what
// others read, from a 0600 file in a 0700 .state; a stale announcement is
// gone once the next owner claims the folder, and Release lets it go.
func TestClaimAnnounceRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Read of a folder nobody owns: %v, want ErrUnknown", err)
	}
	o, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(dir); !errors.Is(err, disk.ErrLocked) {
		t.Fatalf("a second claim: %v, want ErrLocked", err)
	}
	if _, err := Read(dir); !errors.Is(err, ErrUnknown) {
		t.Errorf("Read before the announcement: %v, want ErrUnknown", err)
	}
	want := Info{Kind: KindCLI, URL: "http://127.0.0.1:4321/", Key: "k-0123456789"}
	if err := o.Announce(want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil || got.Kind != want.Kind || got.URL != want.URL || got.Key != want.Key || got.PID != os.Getpid() || got.Started.IsZero() {
		t.Errorf("Read = %+v, %v; want %+v with this pid and a start time", got, err, want)
	}
	if runtime.GOOS != "windows" {
		for p, mode := range map[string]os.FileMode{filepath.Join(dir, ".state"): 0o700, filepath.Join(dir, ".state", InfoName): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, mode)
			}
		}
	}
	o.Withdraw()
	if _, err := Read(dir); !errors.Is(err, ErrUnknown) {
		t.Errorf("Read after Withdraw: %v, want ErrUnknown", err)
	}
	o.Announce(want)
	if err := o.Release(); err != nil {
		t.Fatal(err)
	}
	// A kill -9 leaves owner.json; the next claim removes it.
	data, _ := json.Marshal(want)
	os.WriteFile(filepath.Join(dir, ".state", InfoName), data, 0o600)
	o2, err := Claim(dir)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	defer o2.Release()
	if _, err := Read(dir); !errors.Is(err, ErrUnknown) {
		t.Errorf("a stale owner.json survived the claim: %v", err)
	}
}

// TestReadGarbage: an owner.json that does not parse or names no URL is
// "not said yet", not an error to stop at.
func TestReadGarbage(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".state"), 0o700)
	for _, body := range []string{"", "{", `{"kind":"web"}`, `[1,2]`} {
		os.WriteFile(filepath.Join(dir, ".state", InfoName), []byte(body), 0o600)
		if _, err := Read(dir); !errors.Is(err, ErrUnknown) {
			t.Errorf("owner.json %q: %v, want ErrUnknown", body, err)
		}
	}
}
