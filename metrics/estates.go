package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// Per-estate usage. Estate names come from the config only (at most
// rules.MaxEstates), never from a client. The series are bounded twice:
// a per-estate series exists only once it has counted something, and at
// most Options.MaxEstateSeries of them get their own estate label; the
// counts beyond the cap go to estate="_other". The per-entry series
// without the estate label (egressgate_rule_hits_total) still export
// every entry, at 0 when unused.

// otherEstate is the estate label of the counts beyond the series cap.
const otherEstate = "_other"

// DefaultMaxEstateSeries is the default of Options.MaxEstateSeries.
const DefaultMaxEstateSeries = 10000

// maxReasonSlots bounds the reason index of the per-estate tables.
const maxReasonSlots = 32

// estateCounter is a counter that claims a series of its own on its first
// count, while the cap allows.
type estateCounter struct {
	n   atomic.Uint64
	own atomic.Bool // has its own series; else counted under _other
}

// add counts one, claiming a series on the first count.
func (c *estateCounter) add(r *Recorder) {
	if c.n.Add(1) == 1 && r.estateSeries.Add(1) <= int64(r.opts.MaxEstateSeries) {
		c.own.Store(true)
	}
}

// estateStats is one estate's usage. It is kept across reloads by estate
// name, so counts carry over.
type estateStats struct {
	name     string
	requests [3][maxReasonSlots]estateCounter // by action index, reason
	rules    atomic.Pointer[estateRules]
}

// estateRules are the per-entry hits of one estate, indexed by the entry
// IDs of matcher.
type estateRules struct {
	matcher *rules.Matcher
	hits    []estateCounter
}

// installEstates binds per-estate tables to rs, carrying counts over
// from old by estate name and, for a recompiled matcher, by catalog and
// pattern.
func (r *Recorder) installEstates(b, old *binding, rs *rules.Ruleset) {
	b.estates = make([]*estateStats, len(rs.Estates))
	b.estateByName = make(map[string]*estateStats, len(rs.Estates))
	for i, es := range rs.Estates {
		var st *estateStats
		if old != nil {
			st = old.estateByName[es.Name]
		}
		if st == nil {
			st = &estateStats{name: es.Name}
		}
		cur := st.rules.Load()
		if cur == nil || cur.matcher != es.Matcher {
			next := &estateRules{matcher: es.Matcher, hits: make([]estateCounter, len(es.Matcher.Entries()))}
			if cur != nil {
				prev := map[ruleKey]*estateCounter{}
				for j, e := range cur.matcher.Entries() {
					prev[ruleKey{e.Catalog, e.Pattern}] = &cur.hits[j]
				}
				for j, e := range es.Matcher.Entries() {
					if p := prev[ruleKey{e.Catalog, e.Pattern}]; p != nil {
						next.hits[j].n.Store(p.n.Load())
						next.hits[j].own.Store(p.own.Load())
					}
				}
			}
			st.rules.Store(next)
		}
		b.estates[i] = st
		b.estateByName[es.Name] = st
	}
}

// estateOf returns the usage table of the decision's estate, or nil.
func (b *binding) estateOf(es *rules.Estate) *estateStats {
	if es == nil {
		return nil
	}
	if es.Index < len(b.estates) && b.ruleset.Estates[es.Index] == es {
		return b.estates[es.Index]
	}
	// Decided by another ruleset than the installed one (a reload raced
	// it), or by a proxy without estates: by name.
	return b.estateByName[es.Name]
}

// countEstate counts a decision for its estate, and a hit on its entry
// when admitted. It neither locks nor allocates.
func (r *Recorder) countEstate(d *proxy.Decision) {
	b := r.binding.Load()
	if b == nil {
		return
	}
	st := b.estateOf(d.Estate)
	ai := actionIndex(d.Action)
	if st == nil || ai < 0 || int(d.Reason) >= maxReasonSlots {
		return
	}
	st.requests[ai][d.Reason].add(r)
	if d.Action != proxy.ActionAllow || d.Verdict.Entry == nil {
		return
	}
	if er := st.rules.Load(); er.matcher == d.Matcher && d.Verdict.Entry.ID < len(er.hits) {
		er.hits[d.Verdict.Entry.ID].add(r)
	}
}

var (
	estateRequestsDesc = prometheus.NewDesc("egressgate_estate_requests_total",
		"Admission decisions per estate, by decision and reason; a series appears with its first count, and estate is _other beyond the per-estate series cap.",
		[]string{"estate", "decision", "reason"}, nil)
	estateRuleHitsDesc = prometheus.NewDesc("egressgate_estate_rule_hits_total",
		"Admitted connections and requests per estate and catalog entry; a series appears with the entry's first hit in the estate, and estate is _other beyond the per-estate series cap.",
		[]string{"estate", "catalog", "rule"}, nil)
	estateInfoDesc = prometheus.NewDesc("egressgate_estate_info",
		"A metric with a constant value of 1 for each estate of the config, with its preference source.",
		[]string{"estate", "source"}, nil)
)

// collectEstates exports the per-estate series.
func (b *binding) collectEstates(ch chan<- prometheus.Metric) {
	type reqKey struct {
		ai     int
		reason rules.Reason
	}
	otherReq := map[reqKey]uint64{}
	otherHits := map[ruleKey]uint64{}
	for i, es := range b.ruleset.Estates {
		ch <- prometheus.MustNewConstMetric(estateInfoDesc, prometheus.GaugeValue, 1, es.Name, es.Source)
		st := b.estates[i]
		for ai, a := range actions {
			for reason := range maxReasonSlots {
				c := &st.requests[ai][reason]
				n := c.n.Load()
				if n == 0 {
					continue
				}
				if !c.own.Load() {
					otherReq[reqKey{ai, rules.Reason(reason)}] += n
					continue
				}
				ch <- prometheus.MustNewConstMetric(estateRequestsDesc, prometheus.CounterValue, float64(n), es.Name, string(a), reasonLabel(rules.Reason(reason)))
			}
		}
		er := st.rules.Load()
		entries := er.matcher.Entries()
		for j := range er.hits {
			c := &er.hits[j]
			n := c.n.Load()
			if n == 0 || j >= len(entries) {
				continue
			}
			e := entries[j]
			if !c.own.Load() {
				otherHits[ruleKey{e.Catalog, e.Pattern}] += n
				continue
			}
			ch <- prometheus.MustNewConstMetric(estateRuleHitsDesc, prometheus.CounterValue, float64(n), es.Name, e.Catalog, e.Pattern)
		}
	}
	for k, n := range otherReq {
		ch <- prometheus.MustNewConstMetric(estateRequestsDesc, prometheus.CounterValue, float64(n), otherEstate, string(actions[k.ai]), reasonLabel(k.reason))
	}
	for k, n := range otherHits {
		ch <- prometheus.MustNewConstMetric(estateRuleHitsDesc, prometheus.CounterValue, float64(n), otherEstate, k.catalog, k.pattern)
	}
}

func reasonLabel(r rules.Reason) string {
	if r == rules.ReasonNone {
		return reasonNone
	}
	return r.String()
}

// estateHits returns an estate's hits per entry of its matcher, for
// /rules?estate=NAME; nil when there is no such estate.
func (b *binding) estateHits(name string) (*rules.Estate, []uint64) {
	st := b.estateByName[name]
	if st == nil {
		return nil, nil
	}
	es := b.ruleset.Estate(name)
	er := st.rules.Load()
	out := make([]uint64, len(er.hits))
	for i := range er.hits {
		out[i] = er.hits[i].n.Load()
	}
	return es, out
}
