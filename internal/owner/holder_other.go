//go:build !linux

package owner

import "net/netip"

// lockHolders: only Linux lists who holds a lock (/proc/locks).
func lockHolders(string) ([]int, bool) { return nil, false }

// listenerUID: only Linux lists who serves a port without privileges.
func listenerUID([]netip.Addr, int) (int, bool) { return 0, false }
