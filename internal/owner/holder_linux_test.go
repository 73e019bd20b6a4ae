package owner

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseProcLocks(t *testing.T) {
	const locks = `1: POSIX  ADVISORY  WRITE 811 00:19:1234 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 08:02:131090 0 EOF
2: -> FLOCK  ADVISORY  WRITE 5151 08:02:131090 0 EOF
3: FLOCK  ADVISORY  WRITE 77 08:02:131091 0 EOF
4: OFDLCK ADVISORY  READ  -1 103:05:131090 0 EOF
`
	dev := uint64(8<<8 | 2) // 08:02, as stat's st_dev encodes it
	if got := parseProcLocks(strings.NewReader(locks), dev, 131090); len(got) != 1 || got[0] != 4242 {
		t.Errorf("holders of 08:02:131090 = %v, want [4242] (not the waiter 5151)", got)
	}
	big := uint64(0x103<<8 | 5) // a major above 255: 103:05
	if got := parseProcLocks(strings.NewReader(locks), big, 131090); len(got) != 1 || got[0] != -1 {
		t.Errorf("holders of 103:05:131090 = %v, want [-1]", got)
	}
	if got := parseProcLocks(strings.NewReader(locks), dev, 999); len(got) != 0 {
		t.Errorf("holders of an unlocked file = %v", got)
	}
}

// TestLockHoldersSeesThisProcess: on this machine's /proc/locks, the
// folder a test claims is held by the test's pid.
func TestLockHoldersSeesThisProcess(t *testing.T) {
	dir := t.TempDir()
	o, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Release()
	pids, ok := lockHolders(filepath.Join(dir, ".state", lockName))
	if !ok {
		t.Skip("no /proc/locks here")
	}
	if len(pids) == 0 {
		t.Skip("this file system's locks are not listed by inode (overlayfs)")
	}
	if !containsInt(pids, os.Getpid()) {
		t.Errorf("holders %v lack this process %d", pids, os.Getpid())
	}
}

func TestParseProcNetTCP(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000  2000        0 22222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000  3000        0 33333 1 0000000000000000 100 0 0 10 0
   3: 0501A8C0:1F93 00000000:0000 0A 00000000:00000000 00:00000000 00000000  4000        0 44444 1 0000000000000000 100 0 0 10 0
`
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for _, tc := range []struct {
		port int
		at   []netip.Addr
		uid  int
		ok   bool
	}{
		{8080, lo, 1000, true}, // 127.0.0.1:8080 listening
		{8081, lo, 0, false},   // established, not listening
		{8082, lo, 3000, true}, // 0.0.0.0:8082: every address
		{8083, lo, 0, false},   // 192.168.1.5:8083 is not loopback
		{8083, []netip.Addr{netip.MustParseAddr("192.168.1.5")}, 4000, true},
		{9999, lo, 0, false},
	} {
		uid, ok := parseProcNetTCP(strings.NewReader(tcp), tc.at, tc.port)
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("port %d at %v: uid %d, %v; want %d, %v", tc.port, tc.at, uid, ok, tc.uid, tc.ok)
		}
	}
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1234        0 55555 1 0000000000000000 100 0 0 10 0
`
	if uid, ok := parseProcNetTCP(strings.NewReader(tcp6), []netip.Addr{netip.IPv6Loopback()}, 8080); uid != 1234 || !ok {
		t.Errorf("[::1]:8080: uid %d, %v; want 1234", uid, ok)
	}
}

// TestListenerUIDSeesThisProcess: a port this test listens on is this
// user's on this machine's /proc/net/tcp.
func TestListenerUIDSeesThisProcess(t *testing.T) {
	srv := newFakeOwnerServer(t, "k")
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	uid, ok := listenerUID([]netip.Addr{ap.Addr()}, int(ap.Port()))
	if !ok {
		t.Skip("no /proc/net/tcp here")
	}
	if uid != os.Geteuid() {
		t.Errorf("uid of this test's listener = %d, want %d", uid, os.Geteuid())
	}
}

// TestOwnedByUs: rule 1 on a file's owner and mode, with the stat a
// file of another user would have (a test cannot chown without root).
func TestOwnedByUs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, nil, 0o600)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := *fi.Sys().(*syscall.Stat_t)
	for _, tc := range []struct {
		uid  uint32
		mode os.FileMode
		ok   bool
	}{
		{1000, 0o600, true}, {1000, 0o644, true}, {1000, 0o700, true},
		{0, 0o600, true}, // root's
		{2000, 0o600, false}, {1000, 0o620, false}, {1000, 0o602, false}, {1000, 0o666, false},
	} {
		s := st
		s.Uid = tc.uid
		err := ownedByUs(p, fakeInfo{fi, tc.mode, &s}, 1000)
		if (err == nil) != tc.ok {
			t.Errorf("uid %d mode %v: %v, want ok=%v", tc.uid, tc.mode, err, tc.ok)
		}
	}
}

type fakeInfo struct {
	os.FileInfo
	mode os.FileMode
	sys  *syscall.Stat_t
}

func (f fakeInfo) Mode() os.FileMode { return f.mode }
func (f fakeInfo) Sys() any          { return f.sys }
