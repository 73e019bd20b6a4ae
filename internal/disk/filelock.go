package disk

import (
	"errors"
	"fmt"
	"os"
)

// ErrLocked means another process holds a file lock.
var ErrLocked = errors.New("locked by another process")

// Lock is an exclusive advisory lock on a file, held through an open
// descriptor: flock on Unix, LockFileEx on Windows. The kernel drops it
// when the process dies, however it dies, so a crash never leaves a stale
// lock behind (a PID file would).
type Lock struct {
	f *os.File
}

// TryLock takes the lock on path without waiting, creating the file
// when missing. It returns an error matching errLocked when another
// process holds it.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := lockFileNonBlocking(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Close releases the lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the lock
	l.f = nil
	return err
}
