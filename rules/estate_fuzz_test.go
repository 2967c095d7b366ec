package rules

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzEstateFile feeds arbitrary bytes to the estate-file loader: it never
// panics, an error always names the file, and a file that loads gives an
// estate whose verdicts are defined.
func FuzzEstateFile(f *testing.F) {
	for _, s := range []string{
		"licenses: [intercept-x-advanced]\nmode: exact\n",
		"live_response: \"on\"\nlive_response_exclusions: [10.2.99.0/24, 10.9.0.7]\n",
		"regions: [us-east-2]\nthreat_response: authorize\n",
		"contacts:\n  primary: {name: A, email: a@example.org, phone: \"+44 20 7946 0000\"}\n",
		"mode: exacting\n", "licence: [x]\n", "", "- a\n", "contacts: {tertiary: {name: C}}\n",
	} {
		f.Add(s)
	}
	cat, err := Embedded("sophos-central")
	if err != nil {
		f.Fatal(err)
	}
	cats := []*Catalog{cat}
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join("estates.d", "x.yaml")
		read := func(string) ([]byte, error) { return []byte(text), nil }
		p, err := loadEstateFile(path, read, cats, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			return
		}
		pol := effective(inherit(p, Policy{}), cats)
		m, _, err := compilePolicy(cats, &pol)
		if err != nil {
			return // exact mode with a wildcard-only section: reported with a position by buildEstates
		}
		es := &Estate{Name: "x", Policy: pol, Matcher: m}
		es.Lookup(netip.MustParseAddr("10.2.99.7"), "live-terminal-us-east-2.prod.hydra.sophos.com", 443)
	})
}

// FuzzEstateTable compares the subnet table with a linear longest-prefix
// scan on fuzzed prefixes and addresses.
func FuzzEstateTable(f *testing.F) {
	f.Add([]byte{10, 1, 0, 0, 16, 10, 1, 2, 0, 24}, []byte{10, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 255, 255, 255, 255, 32}, []byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, spec, probe []byte) {
		var ps []estatePrefix
		seen := map[netip.Prefix]bool{}
		for i := 0; i+5 <= len(spec) && len(ps) < 64; i += 5 {
			a := netip.AddrFrom4([4]byte(spec[i : i+4]))
			p := netip.PrefixFrom(a, int(spec[i+4])%33).Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			ps = append(ps, estatePrefix{p: p, estate: int32(len(ps))})
		}
		tab, err := newEstateTable(ps)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+4 <= len(probe); i += 4 {
			a := netip.AddrFrom4([4]byte(probe[i : i+4]))
			want, bits := int32(-1), -1
			for _, p := range ps {
				if p.p.Contains(a) && p.p.Bits() > bits {
					want, bits = p.estate, p.p.Bits()
				}
			}
			if got := tab.lookup(a); got != want {
				t.Fatalf("lookup(%s) = %d, want %d (prefixes %v)", a, got, want, ps)
			}
		}
	})
}
