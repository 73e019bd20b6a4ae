//go:build unix

package owner

import (
	"fmt"
	"io/fs"
	"syscall"
)

// ownedByUs is rule 1's Unix part: the file belongs to euid or to root,
// and neither its group nor others may write it (as ssh asks of its
// files). Who wrote owner.json is who a command would hand its downloads
// to.
func ownedByUs(path string, fi fs.FileInfo, euid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != euid && uid != 0 {
		return fmt.Errorf("%s belongs to another user (uid %d)", path, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s can be changed by other users (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}
