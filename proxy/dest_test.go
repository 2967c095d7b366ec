package proxy

import (
	"net/netip"
	"testing"
)

func TestDestPolicy(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow string // AllowDest prefix, "" for none
		ok    bool
	}{
		{"93.184.215.14", "", true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", "", true},
		{"0.0.0.0", "", false},
		{"0.1.2.3", "", false},
		{"10.1.2.3", "", false},
		{"100.64.0.1", "", false},
		{"100.127.255.254", "", false},
		{"100.128.0.1", "", true}, // just past CGNAT
		{"127.0.0.1", "", false},
		{"169.254.169.254", "", false}, // cloud metadata
		{"172.16.0.1", "", false},
		{"172.31.255.255", "", false},
		{"172.32.0.1", "", true},
		{"192.168.1.1", "", false},
		{"192.0.2.1", "", false},
		{"198.18.0.1", "", false},
		{"224.0.0.1", "", false},
		{"240.0.0.1", "", false},
		{"255.255.255.255", "", false},
		{"::", "", false},
		{"::1", "", false},
		{"::ffff:127.0.0.1", "", false},    // IPv4-mapped
		{"::ffff:93.184.215.14", "", true}, // IPv4-mapped, public
		{"::127.0.0.1", "", false},         // IPv4-compatible
		{"64:ff9b::a00:1", "", false},      // NAT64 of 10.0.0.1
		{"64:ff9b::5db8:d70e", "", true},   // NAT64 of a public address
		{"64:ff9b:1::1", "", false},        // local-use NAT64
		{"2002:a9fe:a9fe::1", "", false},   // 6to4 of 169.254.169.254
		{"2002:5db8:d70e::1", "", true},    // 6to4 of a public address
		{"2001::1", "", false},             // Teredo
		{"2001:db8::1", "", false},
		{"fc00::1", "", false},
		{"fd12:3456::1", "", false},
		{"fe80::1", "", false},
		{"fe80::1%eth0", "", false},
		{"ff02::1", "", false},
		{"127.0.0.1", "127.0.0.0/8", true},
		{"::ffff:127.0.0.1", "127.0.0.0/8", true},
		{"2002:7f00:1::1", "127.0.0.0/8", true},
		{"10.1.2.3", "127.0.0.0/8", false},
		{"fd00::5", "fd00::/8", true},
	} {
		t.Run(tc.addr+"/"+tc.allow, func(t *testing.T) {
			var p destPolicy
			if tc.allow != "" {
				p.allow = []netip.Prefix{netip.MustParsePrefix(tc.allow)}
			}
			if got := p.permits(netip.MustParseAddr(tc.addr)); got != tc.ok {
				t.Errorf("permits(%s) with allow %q = %v, want %v", tc.addr, tc.allow, got, tc.ok)
			}
		})
	}
}

func TestClientACL(t *testing.T) {
	acl := clientACL(DefaultClients())
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"10.9.8.7", true}, {"172.20.0.1", true},
		{"192.168.0.5", true}, {"fd00::1", true}, {"fe80::1%eth0", true}, {"::ffff:10.0.0.1", true},
		{"93.184.215.14", false}, {"100.64.0.1", false}, {"2606:2800::1", false},
	} {
		if got := acl.allows(netip.MustParseAddr(tc.addr)); got != tc.ok {
			t.Errorf("allows(%s) = %v, want %v", tc.addr, got, tc.ok)
		}
	}
}
