package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/glob"
)

// benchDefault is the embedded catalog with every section on, so the
// inner-label globs of AD Sync are compiled too.
func benchDefault(b *testing.B) *Matcher {
	b.Helper()
	cats := []*Catalog{}
	c, err := Embedded(DefaultCatalog)
	if err != nil {
		b.Fatal(err)
	}
	cats = append(cats, c)
	rs, err := Select(&Config{Policy: Policy{Enable: []string{"ad-sync", "remote-assistance"}}}, cats)
	if err != nil {
		b.Fatal(err)
	}
	return rs.Matcher
}

var benchHosts = []struct{ name, host string }{
	{"exact", "mcs2-cloudstation-eu-central-1.prod.hydra.sophos.com"},
	{"wildcard", "d1.sophosupd.com"},
	{"glob", "tf-presigned-url-eu-west-1-prod-0123abcd-bucket.s3.eu-west-1.amazonaws.com"},
	{"miss", "www.example.org"},
	{"upper-case", "Central.Sophos.COM."},
}

func BenchmarkLookup(b *testing.B) {
	m := benchDefault(b)
	for _, h := range benchHosts {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Lookup(h.host, 443)
			}
		})
	}
}

// linearScan is the naive matcher the trie is measured against: every
// pattern compiled as a glob and tried in turn.
type linearScan []glob.Glob

func newLinearScan(entries []*Entry) linearScan {
	var ls linearScan
	for _, e := range entries {
		p := e.Pattern
		if e.Kind == KindWildcard {
			p = "**." + p[2:] // one or more labels
		}
		ls = append(ls, glob.MustCompile(p, '.'))
	}
	return ls
}

func (ls linearScan) match(host string) int {
	for i, g := range ls {
		if g.Match(host) {
			return i
		}
	}
	return -1
}

// BenchmarkLinearScan is BenchmarkLookup's hosts through linearScan, for
// the ratio.
func BenchmarkLinearScan(b *testing.B) {
	ls := newLinearScan(benchDefault(b).Entries())
	for _, h := range benchHosts[:4] {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ls.match(h.host)
			}
		})
	}
}

// generated returns n entries: 70% exact names, 20% leading wildcards, 10%
// inner-label globs, over a few hundred registrable domains.
func generated(n int) []*Entry {
	r := rand.New(rand.NewPCG(1, 2))
	entries := make([]*Entry, 0, n)
	seen := map[string]bool{}
	for len(entries) < n {
		domain := fmt.Sprintf("d%d.example%d.com", r.IntN(500), r.IntN(20))
		var p string
		var k Kind
		switch x := r.IntN(10); {
		case x < 7:
			p, k = fmt.Sprintf("h%d.s%d.%s", r.IntN(1<<20), r.IntN(50), domain), KindExact
		case x < 9:
			p, k = fmt.Sprintf("*.s%d.%s", r.IntN(1<<16), domain), KindWildcard
		default:
			p, k = fmt.Sprintf("tf-%d-*-bucket.s3.%s", r.IntN(1<<16), domain), KindGlob
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		entries = append(entries, &Entry{Pattern: p, Kind: k, Ports: []uint16{443}})
	}
	return entries
}

func BenchmarkLookup100k(b *testing.B) {
	entries := generated(100_000)
	m, err := Compile(entries)
	if err != nil {
		b.Fatal(err)
	}
	// Hits are taken from the middle of the list: the average case of
	// the linear scan, which stops at its first match.
	hosts := map[string]string{"miss": "www.d1.example1.com"}
	for _, e := range entries[len(entries)/2:] {
		switch {
		case e.Kind == KindExact && hosts["exact"] == "":
			hosts["exact"] = e.Pattern
		case e.Kind == KindWildcard && hosts["wildcard"] == "":
			hosts["wildcard"] = "x.y" + e.Pattern[1:]
		case e.Kind == KindGlob && hosts["glob"] == "":
			hosts["glob"] = strings.Replace(e.Pattern, "*", "0123abcd", 1)
		}
	}
	ls := newLinearScan(entries)
	for _, name := range []string{"exact", "wildcard", "glob", "miss"} {
		host := hosts[name]
		if v := m.Lookup(host, 443); v.Allow != (name != "miss") {
			b.Fatalf("Lookup(%q) = %+v", host, v)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Lookup(host, 443)
			}
		})
		b.Run("linear-"+name, func(b *testing.B) {
			for b.Loop() {
				ls.match(host)
			}
		})
	}
}

func BenchmarkCompile100k(b *testing.B) {
	entries := generated(100_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(entries); err != nil {
			b.Fatal(err)
		}
	}
}
