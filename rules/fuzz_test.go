package rules

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzCanonicalHost checks that CanonicalHost never panics, is idempotent,
// and that Lookup calls a host invalid exactly when CanonicalHost does.
func FuzzCanonicalHost(f *testing.F) {
	addSeeds(f, "example.com", "Example.COM.", "bücher.example", "[::1]", "::ffff:10.0.0.1",
		"1.2.3.4.", "a..b", "-a.b", "xn--bcher-kva.example", "a_b.c", "\xff", "[1.2.3.4]", "*.example.com")
	m, err := Compile(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		c, err := CanonicalHost(host)
		v := m.Lookup(host, 443)
		if err != nil {
			if !errors.Is(err, ErrInvalidHost) {
				t.Fatalf("CanonicalHost(%q) error %v does not wrap ErrInvalidHost", host, err)
			}
			if v.Reason != ReasonInvalidHost {
				t.Fatalf("CanonicalHost(%q) fails (%v) but Lookup says %v", host, err, v.Reason)
			}
			return
		}
		if v.Reason == ReasonInvalidHost {
			t.Fatalf("CanonicalHost(%q) = %q but Lookup says invalid-host", host, c)
		}
		c2, err := CanonicalHost(c)
		if err != nil || c2 != c {
			t.Fatalf("CanonicalHost(%q) = %q, but CanonicalHost(%q) = %q, %v", host, c, c, c2, err)
		}
		if len(c) > maxNameLen+2 {
			t.Fatalf("CanonicalHost(%q) = %q: longer than a name can be", host, c)
		}
	})
}

// FuzzParse checks that no catalog text makes the parser panic, that every
// error names the file, and that what parses compiles.
func FuzzParse(f *testing.F) {
	addSeeds(f,
		"entries:\n  - pattern: a.example.com\n    groups: [g]\ngroups:\n  - id: g\n",
		"catalog: x\nentries:\n  - a.example.com\n",
		"a.example.com\n*.example.org:22\n10.0.0.0/8:443\n[2001:db8::1]:443\n",
		"tf-*-bucket.s3.example.net # comment\n",
		"entries: [{pattern: '*.*', ports: [70000]}]",
		"groups:\n  - id: g\n    ports: [0]\n",
		"catalog: Bad Name\n",
	)
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse("fuzz.txt", []byte(text))
		if refused(t, err, "fuzz.txt") {
			return
		}
		if _, err := Compile(c.Entries); err != nil {
			t.Fatalf("parsed catalog does not compile: %v", err)
		}
		for _, e := range c.Entries {
			if len(e.Ports) == 0 {
				t.Fatalf("entry %q has no ports", e.Pattern)
			}
		}
	})
}

// FuzzEstateFile feeds arbitrary bytes to the estate-file loader: it never
// panics, an error always names the file, and a file that loads gives an
// estate whose verdicts are defined.
func FuzzEstateFile(f *testing.F) {
	addSeeds(f,
		"licenses: [intercept-x-advanced]\nmode: exact\n",
		"live_response: \"on\"\nlive_response_exclusions: [10.2.99.0/24, 10.9.0.7]\n",
		"regions: [us-east-2]\nthreat_response: authorize\n",
		"contacts:\n  primary: {name: A, email: a@example.org, phone: \"+44 20 7946 0000\"}\n",
		"mode: exacting\n", "licence: [x]\n", "", "- a\n", "contacts: {tertiary: {name: C}}\n",
	)
	cat, err := Embedded("sophos-central")
	if err != nil {
		f.Fatal(err)
	}
	cats := []*Catalog{cat}
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join("estates.d", "x.yaml")
		read := func(string) ([]byte, error) { return []byte(text), nil }
		p, err := loadEstateFile(path, read, cats, nil)
		if refused(t, err, path) {
			return
		}
		pol := effective(inherit(p, Policy{}), cats)
		m, _, err := compilePolicy(cats, &pol)
		if err != nil {
			return // exact mode with a wildcard-only section: reported with a position by buildEstates
		}
		es := &Estate{Name: "x", Policy: pol, Matcher: m}
		v := es.Lookup(netip.MustParseAddr("10.2.99.7"), "live-terminal-us-east-2.prod.hydra.sophos.com", 443)
		if v.Allow != (v.Reason == ReasonNone) || (v.Allow && v.Entry == nil) {
			t.Fatalf("verdict %+v: Allow must go with ReasonNone and an entry", v)
		}
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

// addSeeds adds each of seeds to f's corpus, for a fuzz target whose one
// argument is a string.
func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
}

// refused reports whether a loader refused its input, failing t unless
// the error names the file first, as every loader's error must.
func refused(t *testing.T, err error, path string) bool {
	t.Helper()
	if err != nil && !strings.HasPrefix(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
	return err != nil
}

// refLookup is the obvious matcher the trie must agree with: every entry
// tested in turn, the precedence applied by sorting.
func refLookup(entries []*Entry, host string, port uint16) Verdict {
	host, err := CanonicalHost(host)
	if err != nil {
		return Verdict{Reason: ReasonInvalidHost}
	}
	type cand struct {
		e    *Entry
		rank int // lower first
	}
	var cands []cand
	hostLabels := strings.Split(host, ".")
	for _, e := range entries {
		switch e.Kind {
		case KindExact:
			if host == e.Pattern {
				cands = append(cands, cand{e, 0})
			}
		case KindGlob:
			pl := strings.Split(e.Pattern, ".")
			if len(pl) != len(hostLabels) {
				continue
			}
			ok, fixed := true, 0
			for i := range pl {
				if match, _ := path.Match(pl[i], hostLabels[i]); !match {
					ok = false
				}
				if strings.Contains(pl[i], "*") {
					fixed = len(pl) - i - 1
				}
			}
			if ok {
				cands = append(cands, cand{e, 1000 - fixed})
			}
		case KindWildcard:
			suffix := e.Pattern[1:]
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				cands = append(cands, cand{e, 2000 - strings.Count(suffix, ".")})
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.rank - b.rank })
	// An entry the policy refuses, or a Live Response host, that names the
	// host on other ports stops the less specific entries.
	var owner *Entry
	ownerRank := 0
	for _, c := range cands {
		if owner != nil && c.rank > ownerRank {
			break
		}
		if c.e.AllowsPort(port) {
			return Verdict{Allow: c.e.Deny == ReasonNone, Reason: c.e.Deny, Entry: c.e}
		}
		if owner == nil && (c.e.Deny != ReasonNone || c.e.LiveResponse) {
			owner, ownerRank = c.e, c.rank
		}
	}
	if owner != nil {
		if owner.Deny != ReasonNone {
			return Verdict{Reason: owner.Deny, Entry: owner}
		}
		return Verdict{Reason: ReasonPortNotAllowed, Entry: owner}
	}
	if len(cands) > 0 {
		return Verdict{Reason: ReasonPortNotAllowed, Entry: cands[0].e}
	}
	return Verdict{Reason: ReasonNotInCatalog}
}

// TestLookupAgreesWithReference compiles random catalogs over a tiny
// alphabet, so patterns overlap a lot, and compares every verdict with
// refLookup's.
func TestLookupAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	labels := []string{"a", "b", "ab", "ba", "a-b"}
	name := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = labels[r.IntN(len(labels))]
		}
		return out
	}
	for round := range 200 {
		var entries []*Entry
		seen := map[string]bool{}
		for range 1 + r.IntN(30) {
			ls := name(1 + r.IntN(4))
			var p string
			switch r.IntN(3) {
			case 0:
				p = strings.Join(ls, ".")
			case 1:
				p = "*." + strings.Join(ls, ".")
			default:
				if len(ls) < 2 {
					continue
				}
				i := r.IntN(len(ls) - 1)
				ls[i] = []string{"*", "a*", "*b", "a*b"}[r.IntN(4)]
				p = strings.Join(ls, ".")
			}
			canon, kind, _, err := classifyPattern(p)
			if err != nil || seen[canon] {
				continue
			}
			seen[canon] = true
			ports := []uint16{443}
			if r.IntN(3) == 0 {
				ports = []uint16{22}
			}
			e := &Entry{Pattern: canon, Kind: kind, Ports: ports}
			// Some entries refused by a policy, some Live Response hosts.
			switch r.IntN(6) {
			case 0:
				e.Deny = ReasonNotLicensed
			case 1:
				e.LiveResponse = true
			}
			entries = append(entries, e)
		}
		m, err := Compile(entries)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			host := strings.Join(name(1+r.IntN(5)), ".")
			port := []uint16{443, 22}[r.IntN(2)]
			got, want := m.Lookup(host, port), refLookup(entries, host, port)
			if got.Allow != want.Allow || got.Reason != want.Reason || got.Entry != want.Entry {
				var catalog []string
				for _, e := range entries {
					catalog = append(catalog, e.Pattern+":"+joinPortsTest(e.Ports))
				}
				t.Fatalf("round %d: Lookup(%q, %d) = %s, reference says %s\ncatalog: %s", round, host, port,
					describe(got), describe(want), strings.Join(catalog, " "))
			}
		}
	}
}

func describe(v Verdict) string {
	if v.Entry == nil {
		return v.Reason.String()
	}
	return v.Entry.Pattern + " " + v.Reason.String()
}

func joinPortsTest(ports []uint16) string {
	var s []string
	for _, p := range ports {
		s = append(s, map[uint16]string{443: "443", 22: "22"}[p])
	}
	return strings.Join(s, ",")
}
