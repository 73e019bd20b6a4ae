//go:build unix

package disk

import (
	"errors"
	"os"
	"syscall"
)

// lockFileNonBlocking takes flock(LOCK_EX|LOCK_NB) on f. flock locks belong
// to the open file description, so two opens in one process exclude each
// other too, as two processes do.
func lockFileNonBlocking(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrLocked
		default:
			return err
		}
	}
}
