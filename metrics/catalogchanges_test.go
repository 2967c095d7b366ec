package metrics

import (
	"strings"
	"testing"

	"github.com/egressgate/egressgate/proxy"
)

// TestCatalogReloaded installs a ruleset, opens tunnels on two entries,
// reloads an edited copy that removes one, adds one and changes the ports
// of another, and checks the counters, the gauge of tunnels on removed
// entries and the logged diff.
func TestCatalogReloaded(t *testing.T) {
	v1 := loadList(t, "test", "keep.example.org:443\ngone.example.org:443\nports.example.org:443\n")
	v2 := loadList(t, "test", "keep.example.org:443\nports.example.org:443,8443\nnew.example.org:443\n")
	r, reg, logs := newTest(t, v1, Options{})
	r.CatalogReloaded(v1) // the first load: nothing to diff

	gone := decide(v1, proxy.ListenerConnect, "gone.example.org", 443)
	keep := decide(v1, proxy.ListenerConnect, "keep.example.org", 443)
	for _, d := range []*proxy.Decision{gone, gone, keep} {
		r.TunnelOpened(d)
	}
	gauge := func() float64 {
		t.Helper()
		v, ok := counterValue(t, reg, "egressgate_tunnels_on_removed_entries", nil)
		if !ok {
			t.Fatal("egressgate_tunnels_on_removed_entries not exported")
		}
		return v
	}
	if g := gauge(); g != 0 {
		t.Fatalf("tunnels on removed entries before any reload = %v, want 0", g)
	}

	r.Install(v2)
	r.CatalogReloaded(v2)
	for change, want := range map[string]float64{"added": 1, "removed": 1, "changed": 1} {
		if got, _ := counterValue(t, reg, "egressgate_catalog_changes_total", map[string]string{"change": change}); got != want {
			t.Errorf("egressgate_catalog_changes_total{change=%q} = %v, want %v", change, got, want)
		}
	}
	if g := gauge(); g != 2 {
		t.Errorf("tunnels on removed entries = %v, want 2 (two tunnels on gone.example.org)", g)
	}
	r.TunnelClosed(gone, proxy.TunnelStats{})
	if g := gauge(); g != 1 {
		t.Errorf("after one closed: %v, want 1", g)
	}
	r.TunnelClosed(gone, proxy.TunnelStats{})
	r.TunnelClosed(keep, proxy.TunnelStats{})
	if g := gauge(); g != 0 {
		t.Errorf("after all closed: %v, want 0", g)
	}
	for _, want := range []string{
		`"msg":"catalog changed","added":1,"removed":1,"changed":1`,
		`"msg":"catalog change","change":"removed","catalog":"test","rule":"gone.example.org","detail":"- test/gone.example.org (ports 443; groups test)"`,
		`"detail":"~ test/ports.example.org: ports 443 -> 443,8443"`,
		`"detail":"+ test/new.example.org (ports 443; groups test)"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}

	// A reload that changes nothing logs and counts nothing more.
	before := logs.Len()
	r.CatalogReloaded(loadList(t, "test", "keep.example.org:443\nports.example.org:443,8443\nnew.example.org:443\n"))
	if logs.Len() != before {
		t.Errorf("no-op reload logged:\n%s", logs.String()[before:])
	}
	// The removed entry's slot is gone once no tunnel uses it.
	r.catalog.mu.RLock()
	n := len(r.catalog.open)
	r.catalog.mu.RUnlock()
	if n != 1 {
		t.Errorf("tunnel counters kept: %d, want 1 (keep.example.org only)", n)
	}
}

// TestTunnelCountingAllocs pins the per-entry tunnel count on the tunnel
// path at zero allocations once the entry has its counter.
func TestTunnelCountingAllocs(t *testing.T) {
	rs := loadList(t, "test", "a.example.org:443\n")
	r, _, _ := newTest(t, rs, Options{})
	d := decide(rs, proxy.ListenerConnect, "a.example.org", 443)
	r.catalog.tunnel(d, 1) // creates the entry's counter
	if n := testing.AllocsPerRun(1000, func() { r.catalog.tunnel(d, 1); r.catalog.tunnel(d, -1) }); n != 0 {
		t.Errorf("tunnel counting allocates %v times per open and close, want 0", n)
	}
}

func BenchmarkTunnelCounting(b *testing.B) {
	rs := loadList(b, "test", "a.example.org:443\n")
	r, _, _ := newTest(b, rs, Options{})
	d := decide(rs, proxy.ListenerConnect, "a.example.org", 443)
	b.ReportAllocs()
	for b.Loop() {
		r.catalog.tunnel(d, 1)
		r.catalog.tunnel(d, -1)
	}
}
