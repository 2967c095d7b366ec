package proxy

import "net/netip"

// clientACL is the set of source prefixes served (Config.Clients).
type clientACL []netip.Prefix

// allows reports whether the client at a may use the proxy.
func (acl clientACL) allows(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range acl {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
