package metrics

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

func TestPromlint(t *testing.T) {
	rs, r, reg := newListTest(t)
	r.Decided(decide(rs, proxy.ListenerConnect, "example.org", 443))
	r.Dialed(decide(rs, proxy.ListenerConnect, "example.org", 443), time.Millisecond, time.Millisecond, proxy.DialOK)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "egressgate_") {
			got = append(got, mf.GetName())
		}
	}
	// Every metric docs/metrics.md lists, in the order Gather sorts them.
	want := []string{
		"egressgate_auth_failures_total",
		"egressgate_build_info",
		"egressgate_catalog_changes_total",
		"egressgate_catalog_entries",
		"egressgate_catalog_last_reload_success_timestamp_seconds",
		"egressgate_catalog_last_reload_successful",
		"egressgate_catalog_reloads_total",
		"egressgate_dns_lookup_duration_seconds",
		"egressgate_estate_info",
		"egressgate_estate_requests_total",
		"egressgate_estate_rule_hits_total",
		"egressgate_misslog_misses_total",
		"egressgate_requests_total",
		"egressgate_rule_hits_total",
		"egressgate_rule_info",
		"egressgate_rule_last_hit_timestamp_seconds",
		"egressgate_rule_names_evicted_total",
		"egressgate_rule_upstream_failures_total",
		"egressgate_tunnel_bytes_total",
		"egressgate_tunnel_duration_seconds",
		"egressgate_tunnels_active",
		"egressgate_tunnels_on_removed_entries",
		"egressgate_upstream_dial_duration_seconds",
		"egressgate_upstream_errors_total",
	}
	if !slices.Equal(got, want) {
		t.Errorf("metric families:\n got %q\nwant %q", got, want)
	}
	checkFamilies(t, mfs)
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if n, _ := testutil.GatherAndCount(reg, name); n != 1 {
			t.Errorf("series of %s = %d, want 1 (Go and process collectors registered)", name, n)
		}
	}
}

func TestDecidedHits(t *testing.T) {
	rs := loadList(t, "test", testList)
	tests := []struct {
		name      string
		listener  proxy.Listener
		host      string
		port      uint16
		action    proxy.Action // "" for what the matcher says
		rule      string       // entry that gets the hit; "" for none
		decision  string
		reason    string
		wantMiss  bool
		wantEntry string // verdict's entry, hit or not
	}{
		{"exact", proxy.ListenerConnect, "example.org", 443, "", "example.org", "allow", "none", false, "example.org"},
		{"upper case", proxy.ListenerHTTP, "EXAMPLE.ORG", 443, "", "example.org", "allow", "none", false, "example.org"},
		{"wildcard", proxy.ListenerSNI, "a.b.example.net", 443, "", "*.example.net", "allow", "none", false, "*.example.net"},
		{"second port", proxy.ListenerConnect, "api.example.com", 8443, "", "api.example.com", "allow", "none", false, "api.example.com"},
		{"cidr", proxy.ListenerConnect, "10.1.2.3", 443, "", "10.1.0.0/16", "allow", "none", false, "10.1.0.0/16"},
		{"not in catalog", proxy.ListenerConnect, "evil.example", 443, "", "", "deny", "not-in-catalog", true, ""},
		{"wrong port", proxy.ListenerConnect, "example.org", 80, "", "", "deny", "port-not-allowed", true, "example.org"},
		{"would-deny is no hit", proxy.ListenerConnect, "example.org", 80, proxy.ActionWouldDeny, "", "would-deny", "port-not-allowed", true, "example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reg, logs := newTest(t, rs, Options{})
			d := decide(rs, tt.listener, tt.host, tt.port)
			if tt.action != "" {
				d.Action = tt.action
			}
			if e := d.Verdict.Entry; (e == nil) != (tt.wantEntry == "") || e != nil && e.Pattern != tt.wantEntry {
				t.Fatalf("Lookup(%q, %d).Entry = %v, want %q", tt.host, tt.port, e, tt.wantEntry)
			}
			r.Decided(d)
			for _, e := range rs.Matcher.Entries() {
				want := 0.0
				if e.Pattern == tt.rule {
					want = 1
				}
				if got := hits(t, reg, "test", e.Pattern); got != want {
					t.Errorf("hits{rule=%q} = %v, want %v", e.Pattern, got, want)
				}
			}
			got, ok := counterValue(t, reg, "egressgate_requests_total",
				map[string]string{"listener": string(tt.listener), "decision": tt.decision, "reason": tt.reason})
			if !ok || got != 1 {
				t.Errorf("requests_total{%s,%s,%s} = %v (present %v), want 1", tt.listener, tt.decision, tt.reason, got, ok)
			}
			if gotMiss := strings.Contains(logs.String(), `"msg":"miss"`); gotMiss != tt.wantMiss {
				t.Errorf("miss logged = %v, want %v; log:\n%s", gotMiss, tt.wantMiss, logs)
			}
			if tt.rule != "" {
				ts, ok := counterValue(t, reg, "egressgate_rule_last_hit_timestamp_seconds", map[string]string{"rule": tt.rule})
				if want := float64(d.Time.Unix()); !ok || ts != want {
					t.Errorf("last_hit{rule=%q} = %v (present %v), want %v", tt.rule, ts, ok, want)
				}
			}
		})
	}
}

func TestSeriesExistFromStart(t *testing.T) {
	rs := loadList(t, "test", testList)
	_, reg, _ := newTest(t, rs, Options{})
	tests := []struct {
		name string
		want int
	}{
		{"egressgate_rule_hits_total", 4},
		{"egressgate_rule_info", 4},                       // one group per entry
		{"egressgate_rule_last_hit_timestamp_seconds", 0}, // absent until hit
		{"egressgate_catalog_entries", 1},
		{"egressgate_requests_total", 3 * (1 + 2*len(rules.Reasons()))},
		{"egressgate_tunnels_active", 3},
		{"egressgate_tunnel_bytes_total", 6},
		{"egressgate_upstream_errors_total", 6},
		{"egressgate_catalog_reloads_total", 2},
		{"egressgate_misslog_misses_total", 3},
		{"egressgate_build_info", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := testutil.GatherAndCount(reg, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Errorf("series of %s = %d, want %d", tt.name, n, tt.want)
			}
		})
	}
	if v, _ := counterValue(t, reg, "egressgate_catalog_entries", map[string]string{"catalog": "test", "group": "test"}); v != 4 {
		t.Errorf("catalog_entries{test,test} = %v, want 4", v)
	}
}

func TestInstallAcrossReload(t *testing.T) {
	rs1 := loadList(t, "test", testList)
	r, reg, _ := newTest(t, rs1, Options{})
	decideConnects(r, rs1, "example.org", "api.example.com")

	// Reload: api.example.com goes, new.example.org comes, example.org stays.
	rs2 := loadList(t, "test", "new.example.org:443\nexample.org:443\n*.example.net:443\n")
	r.Install(rs2)
	r.ReloadResult(nil)
	r.Decided(decide(rs2, proxy.ListenerConnect, "example.org", 443))

	t.Run("kept entry keeps its count", func(t *testing.T) {
		if got := hits(t, reg, "test", "example.org"); got != 2 {
			t.Errorf("hits{example.org} = %v, want 2", got)
		}
	})
	t.Run("new entry starts at zero", func(t *testing.T) {
		if got := hits(t, reg, "test", "new.example.org"); got != 0 {
			t.Errorf("hits{new.example.org} = %v, want 0", got)
		}
	})
	t.Run("removed entry is gone", func(t *testing.T) {
		for _, name := range []string{"egressgate_rule_hits_total", "egressgate_rule_info", "egressgate_rule_last_hit_timestamp_seconds"} {
			if _, ok := counterValue(t, reg, name, map[string]string{"rule": "api.example.com"}); ok {
				t.Errorf("%s{rule=api.example.com} still exported after reload", name)
			}
		}
	})
	t.Run("decision by the old matcher during the reload", func(t *testing.T) {
		// Decided with rs1's matcher after rs2 is installed: rs1's entry
		// IDs are wrong for rs2, the slow path finds the entry by key.
		d := decide(rs1, proxy.ListenerConnect, "a.example.net", 443)
		if d.Verdict.Entry.ID == rs2.Matcher.Lookup("a.example.net", 443).Entry.ID {
			t.Fatal("test needs the entry at another ID in the new matcher")
		}
		r.Decided(d)
		if got := hits(t, reg, "test", "*.example.net"); got != 1 {
			t.Errorf("hits{*.example.net} = %v, want 1", got)
		}
		if got := hits(t, reg, "test", "example.org"); got != 2 {
			t.Errorf("hits{example.org} = %v, want 2 (the stale ID must not count here)", got)
		}
	})
	t.Run("reload results", func(t *testing.T) {
		r.ReloadResult(errors.New("catalog.yaml:3: bad pattern"))
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"egressgate_catalog_reloads_total", map[string]string{"result": "success"}, 1},
			{"egressgate_catalog_reloads_total", map[string]string{"result": "failure"}, 1},
			{"egressgate_catalog_last_reload_successful", nil, 0},
		} {
			if got, _ := counterValue(t, reg, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if ts, _ := counterValue(t, reg, "egressgate_catalog_last_reload_success_timestamp_seconds", nil); ts == 0 {
			t.Error("last_reload_success_timestamp_seconds = 0 after a successful install")
		}
	})
}

func TestMaxRuleSeries(t *testing.T) {
	var list strings.Builder
	for i := range 10 {
		fmt.Fprintf(&list, "h%d.example.org:443\n", i)
	}
	rs := loadList(t, "test", list.String())
	r, reg, _ := newTest(t, rs, Options{MaxRuleSeries: 3})
	for i := range 10 {
		r.Decided(decide(rs, proxy.ListenerConnect, fmt.Sprintf("h%d.example.org", i), 443))
	}
	r.Decided(decide(rs, proxy.ListenerConnect, "h9.example.org", 443))
	tests := []struct {
		rule string
		want float64
	}{
		{"h0.example.org", 1},
		{"h2.example.org", 1},
		{otherRule, 8}, // h3..h9, h9 twice
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if got := hits(t, reg, "test", tt.rule); got != tt.want {
				t.Errorf("hits{rule=%q} = %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
	t.Run("series bounded", func(t *testing.T) {
		for _, name := range []string{"egressgate_rule_hits_total", "egressgate_rule_info", "egressgate_rule_last_hit_timestamp_seconds"} {
			if n, _ := testutil.GatherAndCount(reg, name); n != 4 {
				t.Errorf("series of %s = %d, want 4 (3 entries + _other)", name, n)
			}
		}
	})
	t.Run("rules page still per entry", func(t *testing.T) {
		p, _ := r.RulesPage()
		if got := p.Rules[9]; got.Hits != 2 || got.Series != otherRule {
			t.Errorf("RulesPage().Rules[9] = %+v, want 2 hits on series %q", got, otherRule)
		}
	})
}

// TestMissFloodBounded pins that client-chosen names never become label
// values: 10,000 random denied names add no series.
func TestMissFloodBounded(t *testing.T) {
	rs, r, reg := newListTest(t)
	// example.org's last_hit series and the estate's invalid-host series
	// (from "in valid") appear before the series are counted.
	decideConnects(r, rs, "example.org", "first.invalid", "in valid")
	before := seriesCount(t, reg)
	rng := rand.New(rand.NewPCG(1, 2))
	listeners := []proxy.Listener{proxy.ListenerConnect, proxy.ListenerHTTP, proxy.ListenerSNI}
	for i := range 10000 {
		b := make([]byte, 1+rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		host := fmt.Sprintf("%x-%s.example", i, b)
		d := decide(rs, listeners[i%3], host, uint16(rng.IntN(65536)))
		r.Decided(d)
	}
	if after := seriesCount(t, reg); after != before {
		t.Errorf("series in the registry after 10,000 random misses = %d, want %d (as after one miss)", after, before)
	}
}

func TestDecidedAllocs(t *testing.T) {
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := newTest(t, rs, Options{})
	tests := []struct {
		name string
		d    *proxy.Decision
		want float64
	}{
		// An allowed hit: two atomics on the bound entry, one on the
		// request counter.
		{"allow", decide(rs, proxy.ListenerConnect, "central.sophos.com", 443), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.d.Verdict.Allow {
				t.Fatalf("%s:%d is not allowed by the default catalog", tt.d.Host, tt.d.Port)
			}
			if got := testing.AllocsPerRun(1000, func() { r.Decided(tt.d) }); got != tt.want {
				t.Errorf("Decided(%s) allocs = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func BenchmarkDecided(b *testing.B) {
	rs, err := rules.Load("")
	if err != nil {
		b.Fatal(err)
	}
	r, _, _ := newTest(b, rs, Options{})
	b.Run("allow", func(b *testing.B) {
		d := decide(rs, proxy.ListenerConnect, "central.sophos.com", 443)
		b.ReportAllocs()
		for b.Loop() {
			r.Decided(d)
		}
	})
	b.Run("allow-parallel", func(b *testing.B) {
		d := decide(rs, proxy.ListenerConnect, "central.sophos.com", 443)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.Decided(d)
			}
		})
	})
	b.Run("allow-stale-matcher", func(b *testing.B) {
		rs2, err := rules.Load("")
		if err != nil {
			b.Fatal(err)
		}
		d := decide(rs2, proxy.ListenerConnect, "central.sophos.com", 443) // not the installed matcher
		b.ReportAllocs()
		for b.Loop() {
			r.Decided(d)
		}
	})
}

// TestAdmittedNeverReached checks that an admitted connection whose
// upstream fails counts as a hit and as an upstream failure on its entry,
// and that /rules tells "used" from "admitted, never reached".
func TestAdmittedNeverReached(t *testing.T) {
	rs, r, reg := newListTest(t)
	failures := func(rule string) float64 {
		v, ok := counterValue(t, reg, "egressgate_rule_upstream_failures_total", map[string]string{"catalog": "test", "rule": rule})
		if !ok {
			t.Fatalf("no egressgate_rule_upstream_failures_total{rule=%q}", rule)
		}
		return v
	}
	// example.org: two admissions, DNS fails both times.
	for range 2 {
		d := decide(rs, proxy.ListenerConnect, "example.org", 443)
		r.Decided(d)
		r.Dialed(d, time.Millisecond, 0, proxy.DialDNS)
	}
	// x.example.net: one fails, one gets through.
	d := decide(rs, proxy.ListenerConnect, "x.example.net", 443)
	r.Decided(d)
	r.Dialed(d, 0, time.Millisecond, proxy.DialRefused)
	d = decide(rs, proxy.ListenerHTTP, "y.example.net", 443)
	r.Decided(d)
	r.Dialed(d, 0, time.Millisecond, proxy.DialOK)
	// A would-deny (monitor mode) that fails upstream is no entry's failure.
	d = decide(rs, proxy.ListenerConnect, "api.example.com", 9999)
	d.Action = proxy.ActionWouldDeny
	r.Decided(d)
	r.Dialed(d, 0, time.Millisecond, proxy.DialTimeout)

	for _, tc := range []struct {
		rule           string
		hits, failures float64
		state          string
	}{
		{"example.org", 2, 2, StateNeverReached},
		{"*.example.net", 2, 1, StateUsed},
		{"api.example.com", 0, 0, StateNeverUsed},
		{"10.1.0.0/16", 0, 0, StateNeverUsed},
	} {
		if h, f := hits(t, reg, "test", tc.rule), failures(tc.rule); h != tc.hits || f != tc.failures {
			t.Errorf("%s: hits %v, upstream failures %v; want %v, %v", tc.rule, h, f, tc.hits, tc.failures)
		}
		p, _ := r.RulesPage()
		for _, u := range p.Rules {
			if u.Rule == tc.rule && u.State != tc.state {
				t.Errorf("%s: state %q, want %q (%+v)", tc.rule, u.State, tc.state, u)
			}
		}
	}
	p, _ := r.RulesPage()
	if p.Used != 1 || p.NeverReached != 1 || p.NeverUsed != 2 {
		t.Errorf("/rules used %d, admitted never reached %d, never used %d; want 1, 1, 2", p.Used, p.NeverReached, p.NeverUsed)
	}
}

// checkFamilies lints the gathered families with promlint and checks that
// each of egressgate's own (not the Go and process collectors') is in
// docs/metrics.md's metrics table.
func checkFamilies(t *testing.T, mfs []*dto.MetricFamily) {
	t.Helper()
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "egressgate_") && !strings.Contains(string(doc), "| `"+mf.GetName()+"` |") {
			t.Errorf("%s is not in docs/metrics.md's metrics table", mf.GetName())
		}
	}
}
