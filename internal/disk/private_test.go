package disk

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestStateIsPrivate: a state folder and a journal are the user's only,
// also when an earlier version left them readable by everyone.
func TestStateIsPrivate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows keeps access in ACLs, not modes")
	}
	dir := filepath.Join(t.TempDir(), ".state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.journal")
	if err := os.WriteFile(old, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	os.Chmod(old, 0o644)
	if err := MakePrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	wantMode(t, dir, PrivateDirMode)
	for _, name := range []string{"old.journal", "new.journal"} {
		j, _, err := OpenJournal(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		wantMode(t, filepath.Join(dir, name), PrivateFileMode)
	}
	nested := filepath.Join(t.TempDir(), "a", "b")
	if err := MakePrivateDir(nested); err != nil {
		t.Fatal(err)
	}
	wantMode(t, nested, PrivateDirMode)
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
	}
}
