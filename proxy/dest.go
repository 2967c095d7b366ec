package proxy

import (
	"net/netip"
)

// refusedV4 are IPv4 destinations never dialed unless Config.AllowDest
// lists them: this network, private, shared (CGNAT), loopback, link-local
// (cloud metadata at 169.254.169.254 included), IETF protocol assignments,
// documentation, 6to4 relay, benchmarking, multicast, reserved and
// broadcast (RFC 6890 and the IANA special-purpose registry).
var refusedV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, and 255.255.255.255
}

// IPv6 ranges that carry an IPv4 address, which is checked in their place.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: v4 in the last 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: v4 in bits 16-47
)

// globalV6 is the only IPv6 space dialed (RFC 4291 global unicast). It
// excludes at once ::/128, ::1, IPv4-compatible ::/96, 64:ff9b:1::/48,
// 100::/64 discard, fc00::/7, fe80::/10, fec0::/10 and ff00::/8.
var globalV6 = netip.MustParsePrefix("2000::/3")

// refusedV6 are the special ranges inside 2000::/3.
var refusedV6 = []netip.Prefix{
	netip.MustParsePrefix("2001::/32"),     // Teredo: embeds an obfuscated v4 address
	netip.MustParsePrefix("2001:2::/48"),   // benchmarking
	netip.MustParsePrefix("2001:10::/28"),  // ORCHID
	netip.MustParsePrefix("2001:20::/28"),  // ORCHIDv2
	netip.MustParsePrefix("2001:db8::/32"), // documentation
	netip.MustParsePrefix("3fff::/20"),     // documentation (RFC 9637)
}

// destPolicy decides which addresses may be dialed.
type destPolicy struct {
	allow []netip.Prefix // Config.AllowDest
}

// permits reports whether a may be dialed: it is public unicast, or
// AllowDest lists it (or the IPv4 address it embeds).
func (p destPolicy) permits(a netip.Addr) bool {
	if a.Zone() != "" {
		return false // a zone only makes sense on link-local addresses
	}
	a = a.Unmap()
	v4, embeds := embeddedV4(a)
	for _, pre := range p.allow {
		if pre.Contains(a) || embeds && pre.Contains(v4) {
			return true
		}
	}
	if embeds {
		a = v4
	}
	if a.Is4() {
		for _, pre := range refusedV4 {
			if pre.Contains(a) {
				return false
			}
		}
		return true
	}
	if !globalV6.Contains(a) {
		return false
	}
	for _, pre := range refusedV6 {
		if pre.Contains(a) {
			return false
		}
	}
	return true
}

// embeddedV4 returns the IPv4 address an NAT64 or 6to4 address carries.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
