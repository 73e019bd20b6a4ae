package owner

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolders lists the pids holding a lock on the file at lockPath, as
// the kernel lists them in /proc/locks; ok is false when it cannot tell.
func lockHolders(lockPath string) (pids []int, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(lockPath, &st); err != nil {
		return nil, false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	return parseProcLocks(f, uint64(st.Dev), st.Ino), true
}

// parseProcLocks reads /proc/locks ("1: FLOCK  ADVISORY  WRITE 1234
// 08:02:131090 0 EOF", a waiting lock with "->" after the number) and
// returns the pids of the locks held on the file dev:ino (a stat's
// st_dev).
func parseProcLocks(r io.Reader, dev, ino uint64) []int {
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	var pids []int
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && fields[1] == "->" {
			continue // waiting, not holding
		}
		for i := 1; i < len(fields); i++ {
			if fields[i] == want {
				if pid, err := strconv.Atoi(fields[i-1]); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// listenerUID is the user owning the socket that listens on port at one of
// addrs (or on every address), from /proc/net/tcp and tcp6; ok is false
// when it cannot tell.
func listenerUID(addrs []netip.Addr, port int) (uid int, ok bool) {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if uid, ok := parseProcNetTCP(bytes.NewReader(data), addrs, port); ok {
			return uid, true
		}
	}
	return 0, false
}

// parseProcNetTCP finds a listening socket (state 0A) on port at one of
// addrs or on the wildcard address in /proc/net/tcp's format, and returns
// its uid.
func parseProcNetTCP(r io.Reader, addrs []netip.Addr, port int) (int, bool) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[3] != "0A" {
			continue
		}
		hexAddr, hexPort, found := strings.Cut(f[1], ":")
		if !found {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		a, ok := procAddr(hexAddr)
		if !ok || !(a.IsUnspecified() || containsAddr(addrs, a)) {
			continue
		}
		if uid, err := strconv.Atoi(f[7]); err == nil {
			return uid, true
		}
	}
	return 0, false
}

// procAddr decodes an address of /proc/net/tcp: hex of the kernel's
// 32-bit words, each in the machine's byte order.
func procAddr(h string) (netip.Addr, bool) {
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, false
	}
	out := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(out[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	a, ok := netip.AddrFromSlice(out)
	return a.Unmap(), ok
}
