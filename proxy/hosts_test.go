package proxy

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadHosts(t *testing.T) {
	h, err := LoadHosts("testdata/hosts-good.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]netip.Addr{
		"api.example.com":    {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"api2.example.com":   {netip.MustParseAddr("127.0.0.1")},
		"mapped.example.org": {netip.MustParseAddr("127.0.0.2")},
	}
	if len(h) != len(want) {
		t.Errorf("LoadHosts = %v, want %v", h, want)
	}
	for name, addrs := range want {
		if !slices.Equal(h[name], addrs) {
			t.Errorf("LoadHosts[%q] = %v, want %v", name, h[name], addrs)
		}
	}
}

// TestLoadHostsErrors: each bad file, with the exact error (file:line).
func TestLoadHostsErrors(t *testing.T) {
	for _, tc := range []struct{ file, err string }{
		{"hosts-no-name.txt", `testdata/hosts-no-name.txt:1: address 127.0.0.1 has no name; write "127.0.0.1 name"`},
		{"hosts-bad-address.txt", `testdata/hosts-bad-address.txt:2: address "127.0.0.300" is not an IP address without zone`},
		{"hosts-bad-name.txt", `testdata/hosts-bad-name.txt:1: name: invalid host "bad..name": empty label`},
		{"hosts-zone.txt", `testdata/hosts-zone.txt:1: address "fe80::1%eth0" is not an IP address without zone`},
		{"missing.txt", "reading hosts file: open testdata/missing.txt"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadHosts(filepath.Join("testdata", tc.file))
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("LoadHosts(%s) error = %v, want %q", tc.file, err, tc.err)
			}
		})
	}
}
