package rules

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
)

// manyEstates builds a ruleset of n estates with subnetsEach /24 subnets
// each (n*subnetsEach subnets in all) over the embedded catalog. Subnet k
// belongs to estate k%n, so that no two neighbours merge into one range.
// The estates cycle through eight distinct policies, so eight matchers
// are compiled whatever n is.
func manyEstates(tb testing.TB, n, subnetsEach int) *Ruleset {
	tb.Helper()
	cat, err := Embedded("sophos-central")
	if err != nil {
		tb.Fatal(err)
	}
	policies := []Policy{
		{},
		{LiveResponse: "off"},
		{Licenses: []string{"intercept-x-advanced"}},
		{Mode: ModeExact},
		{Regions: []string{"us-east-2"}, LiveResponse: "on"},
		{Enable: []string{"remote-assistance"}},
		{OS: []string{OSLinux}},
		{Licenses: []string{"mdr-complete"}, ThreatResponse: ThreatAuthorize, LiveResponseExclusions: []string{"10.0.0.0/24"}},
	}
	cfg := &Config{}
	for i := range n {
		ec := EstateConfig{Name: fmt.Sprintf("estate-%d", i), Source: SourceEnterprise}
		pol := policies[i%len(policies)]
		ec.Policy = &pol
		for j := range subnetsEach {
			k := j*n + i // 10.0.0.0/24, 10.0.1.0/24, ...
			ec.Subnets = append(ec.Subnets, fmt.Sprintf("10.%d.%d.0/24", k>>8&255, k&255))
		}
		cfg.Estates = append(cfg.Estates, ec)
	}
	rs, err := Select(cfg, []*Catalog{cat})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// clientsFor returns addresses spread over the subnets of manyEstates.
func clientsFor(n, subnetsEach int) []netip.Addr {
	var out []netip.Addr
	for k := 0; k < n*subnetsEach; k += 97 {
		out = append(out, netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), 5}))
	}
	return out
}

// BenchmarkEstateVerdict is a large enterprise: 1,000 estates over 50,000
// subnets, estate lookup plus verdict, which must stay within 500 ns and
// allocate nothing (docs/estates.md, "Performance").
func BenchmarkEstateVerdict(b *testing.B) {
	const estates, each = 1000, 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rs := manyEstates(b, estates, each)
	runtime.GC()
	runtime.ReadMemStats(&after)
	clients := clientsFor(estates, each)
	hosts := []string{"central.sophos.com", "live-terminal-us-east-2.prod.hydra.sophos.com", "foo.sophos.com", "example.org"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := clients[i%len(clients)]
		es := rs.EstateFor(c)
		es.Lookup(c, hosts[i%len(hosts)], 443)
		i++
	}
	// Reported after the loop: b.Loop's first call resets user metrics.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-ruleset")
	b.ReportMetric(float64(len(rs.Matchers())), "matchers")
	b.ReportMetric(float64(rs.subnets.size()), "ranges")
}

// BenchmarkEstateFor is the subnet lookup alone.
func BenchmarkEstateFor(b *testing.B) {
	rs := manyEstates(b, 1000, 50)
	clients := clientsFor(1000, 50)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rs.EstateFor(clients[i%len(clients)])
		i++
	}
}

// TestEstateVerdictAllocs pins the zero-allocation path of the estate
// lookup and verdict (the benchmark reports it; this fails on it).
func TestEstateVerdictAllocs(t *testing.T) {
	rs := manyEstates(t, 100, 10)
	clients := clientsFor(100, 10)
	for _, host := range []string{"central.sophos.com", "live-terminal-us-east-2.prod.hydra.sophos.com", "foo.sophos.com", "example.org", "10.0.0.1"} {
		i := 0
		if n := testing.AllocsPerRun(200, func() {
			c := clients[i%len(clients)]
			rs.EstateFor(c).Lookup(c, host, 443)
			i++
		}); n != 0 {
			t.Errorf("%s: %v allocations per estate lookup and verdict, want 0", host, n)
		}
	}
	// The estates map to their own subnets.
	for i, c := range clients {
		k := i * 97
		if got, want := rs.EstateFor(c).Name, fmt.Sprintf("estate-%d", k%100); got != want {
			t.Fatalf("EstateFor(%s) = %s, want %s", c, got, want)
		}
	}
	if got := len(rs.Matchers()); got != 8 {
		t.Errorf("%d matchers for 8 distinct policies", got)
	}
}
