package metrics

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestEstateSeries: the estate label comes from the config; series appear
// on first count; the unlabelled per-entry series stay; the cap folds the
// rest into _other; counts survive a reload.
func TestEstateSeries(t *testing.T) {
	rs := loadExample(t)
	r, reg, _ := newTest(t, rs, Options{MaxEstateSeries: 3})
	if n := testutil.CollectAndCount(reg, "egressgate_estate_requests_total"); n != 0 {
		t.Fatalf("%d estate request series before any request, want 0", n)
	}
	if n := testutil.CollectAndCount(reg, "egressgate_estate_info"); n != 4 {
		t.Errorf("%d estate_info series, want 4 (default, london, newyork, sydney)", n)
	}
	lt := "live-terminal-us-east-2.prod.hydra.sophos.com"
	r.Decided(decideFrom(rs, "10.2.0.5", lt))                   // newyork allow: request series 1, rule series 2
	r.Decided(decideFrom(rs, "10.2.0.5", lt))                   // same series
	r.Decided(decideFrom(rs, "10.1.0.5", lt))                   // london deny live-response-off: series 3
	r.Decided(decideFrom(rs, "10.3.0.5", lt))                   // sydney deny not-licensed: beyond the cap
	r.Decided(decideFrom(rs, "10.9.9.9", "central.sophos.com")) // default allow: beyond the cap
	want := `
# HELP egressgate_estate_requests_total Admission decisions per estate, by decision and reason; a series appears with its first count, and estate is _other beyond the per-estate series cap.
# TYPE egressgate_estate_requests_total counter
egressgate_estate_requests_total{decision="allow",estate="_other",reason="none"} 1
egressgate_estate_requests_total{decision="allow",estate="newyork",reason="none"} 2
egressgate_estate_requests_total{decision="deny",estate="_other",reason="not-licensed"} 1
egressgate_estate_requests_total{decision="deny",estate="london",reason="live-response-off"} 1
# HELP egressgate_estate_rule_hits_total Admitted connections and requests per estate and catalog entry; a series appears with the entry's first hit in the estate, and estate is _other beyond the per-estate series cap.
# TYPE egressgate_estate_rule_hits_total counter
egressgate_estate_rule_hits_total{catalog="sophos-central",estate="_other",rule="central.sophos.com"} 1
egressgate_estate_rule_hits_total{catalog="sophos-central",estate="newyork",rule="live-terminal-us-east-2.prod.hydra.sophos.com"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "egressgate_estate_requests_total", "egressgate_estate_rule_hits_total"); err != nil {
		t.Error(err)
	}
	// The per-entry series without the estate label: every entry of every
	// estate's policy, at 0 when unused (newyork's remote assistance too).
	if v, ok := counterValue(t, reg, "egressgate_rule_hits_total", map[string]string{"rule": "*.apu.sophos.com"}); !ok || v != 0 {
		t.Errorf("rule_hits_total{rule=*.apu.sophos.com} = %v, %v; want exported at 0", v, ok)
	}
	if v, _ := counterValue(t, reg, "egressgate_rule_hits_total", map[string]string{"rule": lt}); v != 2 {
		t.Errorf("rule_hits_total{rule=%s} = %v, want 2", lt, v)
	}

	// /rules?estate=newyork: its entries and hits.
	p, ok, known := r.EstateRulesPage("newyork")
	if !ok || !known || p.Estate != "newyork" {
		t.Fatalf("EstateRulesPage(newyork) = %v, %v, %v", p, ok, known)
	}
	var hits uint64
	refused := 0
	for _, u := range p.Rules {
		hits += u.Hits
		if u.State == StateRefused {
			refused++
		}
	}
	if hits != 2 || p.Used != 1 || refused == 0 {
		t.Errorf("newyork page: %d hits, %d used, %d refused; want 2, 1, some", hits, p.Used, refused)
	}
	if _, _, known := r.EstateRulesPage("paris"); known {
		t.Error("EstateRulesPage(paris) is known")
	}

	// A reload that keeps newyork keeps its counts.
	rs2 := loadExample(t)
	r.Install(rs2)
	r.Decided(decideFrom(rs2, "10.2.0.5", lt))
	if v, _ := counterValue(t, reg, "egressgate_estate_requests_total", map[string]string{"estate": "newyork", "decision": "allow"}); v != 3 {
		t.Errorf("newyork allows after reload = %v, want 3", v)
	}
}

// TestEstateCountingAllocs: counting a decision for its estate neither
// allocates nor locks.
func TestEstateCountingAllocs(t *testing.T) {
	rs := loadExample(t)
	r, _, _ := newTest(t, rs, Options{})
	d := decideFrom(rs, "10.2.0.5", "live-terminal-us-east-2.prod.hydra.sophos.com")
	if n := testing.AllocsPerRun(100, func() { r.countEstate(d) }); n != 0 {
		t.Errorf("countEstate: %v allocations, want 0", n)
	}
}

// TestEstateRulesEndpoint: /rules?estate=NAME, and an unknown name is a
// 404 that quotes it.
func TestEstateRulesEndpoint(t *testing.T) {
	rs := loadExample(t)
	r, reg, _ := newTest(t, rs, Options{})
	r.Decided(decideFrom(rs, "10.3.0.5", "central.sophos.com"))
	srv := newAdmin(t, r, reg, func() bool { return true }).URL
	code, body := get(t, srv+"/rules?format=json&estate=sydney")
	if code != 200 || !strings.Contains(body, `"estate": "sydney"`) && !strings.Contains(body, `"estate":"sydney"`) {
		t.Errorf("/rules?estate=sydney: %d %.200s", code, body)
	}
	if code, body := get(t, srv+"/rules?estate=%3Cb%3E"); code != 404 || !strings.Contains(body, `"<b>"`) {
		t.Errorf("/rules?estate=<b>: %d %q", code, body)
	}
	if code, body := get(t, srv+"/rules?estate=sydney&format=html"); code != 200 || !strings.Contains(body, "Estate <b>sydney</b>") || !strings.Contains(body, "refused: not-licensed") {
		t.Errorf("/rules?estate=sydney (HTML): %d, no estate title or refused tag", code)
	}
	if code, body := get(t, srv+"/rules?estate=sydney"); code != 200 || !strings.Contains(body, "estate sydney:") || !regexp.MustCompile(`(?m)^refused +not-licensed +sophos-central +live-terminal`).MatchString(body) {
		t.Errorf("/rules?estate=sydney (text): %d, no estate line or refused state:\n%.300s", code, body)
	}
}
