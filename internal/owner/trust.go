package owner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

// ErrUntrusted means owner.json names a process a follower must not talk
// to: anyone who can write .state (another user, a shared folder, a FAT32
// stick) could otherwise collect the downloads handed over, and with an
// earlier version the person's own token (issue 25).
var ErrUntrusted = errors.New("the folder's owner.json cannot be trusted")

// untrustedError is ErrUntrusted with the reason, for one line a person
// can act on.
type untrustedError struct {
	file   string
	reason string
}

func (e *untrustedError) Error() string {
	return fmt.Sprintf("not talking to the process named in %s: %s; stop the other program using this folder, or use another -output-dir", e.file, e.reason)
}

func (e *untrustedError) Is(target error) bool { return target == ErrUntrusted }

// Reach returns a client for the owner that owner.json (read as info from
// outputDir) names, once it passes the trust rules (docs/MANAGER.md, "What
// a follower trusts"):
//
//  1. owner.json is a regular file, not a link; on Unix it and .state
//     belong to this user (or root) and no one else may write them;
//  2. its URL is http:// on a loopback address or one of this machine's
//     own, with a port and nothing else;
//  3. it gives a key, and the key is the only credential ever sent (the
//     person's token never is);
//  4. where the system can tell (Linux): the process holding the folder's
//     lock is the pid owner.json names, and the port is served by this
//     user;
//  5. the process at the URL proves it knows the key before anything is
//     sent: GET /api/owner answers, to the key only, with that same pid
//     and kind.
//
// A failed rule is an error matching ErrUntrusted; an owner that does not
// answer is ErrGone.
func Reach(ctx context.Context, outputDir string, info Info) (*Client, error) {
	if err := CheckAnnouncement(outputDir, info); err != nil {
		return nil, err
	}
	file := filepath.Join(outputDir, ".state", InfoName)
	if err := checkHolder(outputDir, info); err != nil {
		return nil, &untrustedError{file, err.Error()}
	}
	c := NewClient(info)
	var who struct {
		PID  int    `json:"pid"`
		Kind string `json:"kind"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/owner", nil, &who); err != nil {
		if errors.Is(err, ErrGone) || ctx.Err() != nil {
			return nil, err
		}
		return nil, &untrustedError{file, fmt.Sprintf("the process at %s does not prove it wrote the file (%v)", info.URL, err)}
	}
	if who.PID != info.PID || who.Kind != info.Kind {
		return nil, &untrustedError{file, fmt.Sprintf("the process at %s is pid %d (%s), the file names pid %d (%s)", info.URL, who.PID, who.Kind, info.PID, info.Kind)}
	}
	return c, nil
}

// CheckAnnouncement applies the rules that need no connection (1 to 3 of
// Reach): what a web UI starting checks before it prints, or opens in the
// browser, the address of one that already serves the folder.
func CheckAnnouncement(outputDir string, info Info) error {
	state := filepath.Join(outputDir, ".state")
	file := filepath.Join(state, InfoName)
	for _, p := range []string{state, file} {
		fi, err := os.Lstat(p)
		if err != nil {
			return &untrustedError{file, err.Error()}
		}
		if err := trustedFile(p, fi); err != nil {
			return &untrustedError{file, err.Error()}
		}
	}
	if _, err := checkOwnerURL(info.URL, localAddrs()); err != nil {
		return &untrustedError{file, err.Error()}
	}
	if info.Key == "" {
		return &untrustedError{file, "it gives no key, and a command sends no other credential to a folder's owner"}
	}
	return nil
}

// trustedFile is rule 1 for one path: a folder or a regular file, not a
// link, that only this user (or root) can change.
func trustedFile(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link", path)
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	}
	return ownedByUs(path, fi, os.Geteuid())
}

// checkOwnerURL is rule 2: the URL an owner announced, parsed, when it
// leads to this machine only (own are this machine's addresses).
func checkOwnerURL(raw string, own []netip.Addr) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("its URL %q does not parse", raw)
	}
	if u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, fmt.Errorf("its URL %q is not the plain http://host:port/ an owner announces", raw)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("its URL %q has no port", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("its URL %q names a host, not this machine's address (a command talks to a folder's owner on this machine only)", raw)
	}
	a = a.Unmap()
	if a.IsLoopback() {
		return u, nil
	}
	if containsAddr(own, a) && !a.IsUnspecified() {
		return u, nil
	}
	return nil, fmt.Errorf("its URL %q is not on this machine (a command talks to a folder's owner on this machine only)", raw)
}

// localAddrs are this machine's own addresses (nil when unknown).
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// checkHolder is rule 4, where the system can tell who holds the folder's
// lock and who serves a port; elsewhere it passes.
func checkHolder(outputDir string, info Info) error {
	lockPath := filepath.Join(outputDir, ".state", lockName)
	if pids, ok := lockHolders(lockPath); ok && len(pids) > 0 && !containsInt(pids, info.PID) {
		return fmt.Errorf("pid %d holds the folder, not pid %d that the file names", pids[0], info.PID)
	}
	u, err := url.Parse(info.URL)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(u.Port())
	var at []netip.Addr
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		at = append(at, a.Unmap())
	} else { // localhost
		at = append(at, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
	}
	if uid, ok := listenerUID(at, port); ok && uid != os.Geteuid() {
		return fmt.Errorf("port %d is served by another user (uid %d)", port, uid)
	}
	return nil
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
