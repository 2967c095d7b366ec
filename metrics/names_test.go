package metrics

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// TestNamesBehindWildcard: 40 distinct names through one wildcard keep 32
// with their exact counts, evict the least used (counted), show on /rules
// and in the report, and --suggest-exact's list, loaded as a catalog,
// admits exactly the names kept and nothing else the wildcard did.
func TestNamesBehindWildcard(t *testing.T) {
	rs := loadList(t, "test", "*.example.net:443,8443\nexample.org:443\n")
	r, reg, _ := newTest(t, rs, Options{})
	// Names 0..31 get 10 hits each (NAME-0 in upper case: the same name),
	// then names 32..39 one each: every newcomer evicts the least used.
	name := func(i int) string { return fmt.Sprintf("h%02d.example.net", i) }
	for i := range 32 {
		for j := range 10 {
			host := name(i)
			if i == 0 && j%2 == 1 {
				host = strings.ToUpper(host) + "."
			}
			r.Decided(decide(rs, proxy.ListenerConnect, host, 443))
		}
	}
	for i := 32; i < 40; i++ {
		r.Decided(decide(rs, proxy.ListenerConnect, name(i), 443))
	}
	// 8 evictions in the global table, 8 in the default estate's.
	if v, _ := counterValue(t, reg, "egressgate_rule_names_evicted_total", nil); v != 16 {
		t.Errorf("egressgate_rule_names_evicted_total = %v, want 16 (8 global, 8 in estate default)", v)
	}
	if ep, _, _ := r.EstateRulesPage(rules.DefaultEstate); len(ep.Rules[0].Names) != maxNamesPerEntry {
		t.Errorf("estate default keeps %d names behind *.example.net, want %d", len(ep.Rules[0].Names), maxNamesPerEntry)
	}
	p, _ := r.RulesPage()
	var names []NameHits
	for _, u := range p.Rules {
		if u.Rule == "*.example.net" {
			names = u.Names
			if u.Hits != 32*10+8 {
				t.Errorf("*.example.net hits = %d, want %d", u.Hits, 32*10+8)
			}
		} else if u.Names != nil {
			t.Errorf("%s (%s) has names %v; only wildcards and globs keep them", u.Rule, u.Kind, u.Names)
		}
	}
	if len(names) != maxNamesPerEntry {
		t.Fatalf("%d names kept, want %d: %v", len(names), maxNamesPerEntry, names)
	}
	kept := map[string]uint64{}
	for _, n := range names {
		kept[n.Name] = n.Hits
	}
	// The first newcomer evicted h00 (all tied at 10, the first slot);
	// each later newcomer evicted the one before it (1 hit).
	for i := 1; i < 32; i++ {
		if kept[name(i)] != 10 {
			t.Errorf("%s: %d hits kept, want 10", name(i), kept[name(i)])
		}
	}
	if kept[name(39)] != 1 {
		t.Errorf("%s: %d hits kept, want 1 (the last newcomer)", name(39), kept[name(39)])
	}

	// The report lists them; --suggest-exact loads back as a catalog that
	// admits exactly them.
	srv := newAdmin(t, r, reg, nil)
	rep := fetchReport(t, srv)
	if text := reportText(t, rep, 0); !strings.Contains(text, "  "+name(5)+"  10") {
		t.Errorf("report lacks %s under *.example.net:\n%s", name(5), text)
	}
	var list bytes.Buffer
	n, err := rep.WriteSuggestExact(&list)
	if err != nil || n != maxNamesPerEntry {
		t.Fatalf("WriteSuggestExact = %d, %v; want %d names", n, err, maxNamesPerEntry)
	}
	exact := loadList(t, "suggested", list.String())
	for _, e := range exact.Matcher.Entries() {
		if e.Kind != rules.KindExact || !slices.Equal(e.Ports, []uint16{443, 8443}) {
			t.Errorf("suggested entry %s: %s on %v, want exact on the wildcard's ports [443 8443]", e.Pattern, e.Kind, e.Ports)
		}
	}
	for i := range 40 {
		_, want := kept[name(i)]
		if got := exact.Matcher.Lookup(name(i), 443).Allow; got != want {
			t.Errorf("suggested list admits %s: %t, want %t", name(i), got, want)
		}
	}
	if exact.Matcher.Lookup("other.example.net", 443).Allow || exact.Matcher.Lookup("example.org", 443).Allow {
		t.Error("the suggested list admits a name that was not seen behind the wildcard")
	}
}

// TestNamesAllocs: a hit on a name already kept behind a wildcard neither
// allocates nor locks, globally and per estate.
func TestNamesAllocs(t *testing.T) {
	rs := loadList(t, "test", "*.example.net:443\n")
	r, _, _ := newTest(t, rs, Options{})
	d := decide(rs, proxy.ListenerConnect, "a.example.net", 443)
	r.Decided(d)
	upper := decide(rs, proxy.ListenerConnect, "A.Example.NET.", 443)
	for _, d := range []*proxy.Decision{d, upper} {
		if n := testing.AllocsPerRun(1000, func() { r.Decided(d) }); n != 0 {
			t.Errorf("Decided(%s) on a known name: %v allocations, want 0", d.Host, n)
		}
	}
	var ds []*proxy.Decision
	for i := range 200 {
		ds = append(ds, decide(rs, proxy.ListenerConnect, fmt.Sprintf("n%d.example.net", i), 443))
		ds[i].Client = netip.MustParseAddrPort("192.0.2.9:1")
	}
	i := 0
	for range 32 {
		r.Decided(ds[i%len(ds)]) // fill the table
		i++
	}
	p, _ := r.RulesPage()
	if got := len(p.Rules[0].Names); got != maxNamesPerEntry {
		t.Errorf("%d names kept after 33 distinct, want %d", got, maxNamesPerEntry)
	}
}
