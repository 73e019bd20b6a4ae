package mirror

import (
	"net"
	"net/netip"
	"ollama-model-downloader/internal/fault"
	"strings"
)

// PrivateNetworks is who a mirror listening beyond loopback serves when
// no -allow is given: the machine itself and the private address ranges a
// LAN uses (RFC 1918, link-local, IPv6 unique-local). Ollama cannot send a
// token, so the address is the only gate; a public address must be let in
// on purpose, with -allow.
const PrivateNetworks = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,fc00::/7,fe80::/10"

// DefaultAllowText names the default in messages and the banner.
const DefaultAllowText = "this machine and private networks (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, link-local, fc00::/7)"

// AllowList is the set of client addresses a mirror answers. A nil list
// lets every client in (a loopback listener, or -allow any).
type AllowList []netip.Prefix

// ParseAllowList reads -allow: addresses and CIDR ranges separated by
// commas or spaces; "any" (or 0.0.0.0/0 with ::/0) lets everyone in. An
// empty value gives the default: nil for a loopback listener (only this
// machine can connect anyway), privateNetworks otherwise.
func ParseAllowList(s string, loopback bool) (AllowList, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		if loopback {
			return nil, nil
		}
		fields = strings.Split(PrivateNetworks, ",")
	}
	var list AllowList
	for _, f := range fields {
		if strings.EqualFold(f, "any") || strings.EqualFold(f, "all") {
			return nil, nil
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fault.BadInputf("-allow %q: want addresses or CIDR ranges separated by commas, e.g. 192.168.1.0/24,10.0.0.7, or \"any\"", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		list = append(list, p.Masked())
	}
	return list, nil
}

// allows reports whether a client at remoteAddr ("ip:port") may pull.
func (l AllowList) allows(addr netip.Addr) bool {
	if l == nil {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// String lists the ranges, for the banner.
func (l AllowList) String() string {
	if l == nil {
		return "any address"
	}
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// remoteAddr is the client's address of a request (zero when unknown).
func remoteAddr(hostport string) netip.Addr {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
