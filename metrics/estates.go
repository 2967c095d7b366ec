package metrics

import (
	"slices"
	"strconv"
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

// estateRules are the per-entry usage of one estate, indexed by the entry
// IDs of matcher: hits, the hits whose upstream could not be reached, and
// the names behind wildcard and glob entries (nil for the other kinds).
type estateRules struct {
	matcher *rules.Matcher
	hits    []estateCounter
	failed  []estateCounter
	names   []*nameTable
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
			st.rules.Store(r.newEstateRules(es.Matcher, cur))
		}
		b.estates[i] = st
		b.estateByName[es.Name] = st
	}
}

// newEstateRules makes the per-entry tables of an estate's matcher m,
// carrying the counts of cur (nil for none) over by catalog and pattern.
func (r *Recorder) newEstateRules(m *rules.Matcher, cur *estateRules) *estateRules {
	n := len(m.Entries())
	next := &estateRules{matcher: m, hits: make([]estateCounter, n), failed: make([]estateCounter, n), names: make([]*nameTable, n)}
	prev := map[ruleKey]int{}
	if cur != nil {
		for j, e := range cur.matcher.Entries() {
			prev[ruleKey{e.Catalog, e.Pattern}] = j
		}
	}
	for j, e := range m.Entries() {
		p, ok := prev[ruleKey{e.Catalog, e.Pattern}]
		if ok {
			next.hits[j].n.Store(cur.hits[p].n.Load())
			next.hits[j].own.Store(cur.hits[p].own.Load())
			next.failed[j].n.Store(cur.failed[p].n.Load())
			next.failed[j].own.Store(cur.failed[p].own.Load())
			next.names[j] = cur.names[p]
		}
		if next.names[j] == nil && e.HasWildcard() {
			next.names[j] = newNameTable(&r.namesEvicted)
		}
	}
	return next
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
	ai := slices.Index(actions, d.Action)
	if st == nil || ai < 0 || int(d.Reason) >= maxReasonSlots {
		return
	}
	st.requests[ai][d.Reason].add(r)
	if d.Action != proxy.ActionAllow || d.Verdict.Entry == nil {
		return
	}
	if er := st.rules.Load(); er.matcher == d.Matcher && d.Verdict.Entry.ID < len(er.hits) {
		er.hits[d.Verdict.Entry.ID].add(r)
		if t := er.names[d.Verdict.Entry.ID]; t != nil {
			t.add(d.Host)
		}
	}
}

// countEstateFailure counts an admitted decision whose upstream could not
// be reached on its estate's entry, as failedUpstream does globally.
func (r *Recorder) countEstateFailure(d *proxy.Decision) {
	b := r.binding.Load()
	if b == nil {
		return
	}
	st := b.estateOf(d.Estate)
	if st == nil {
		return
	}
	if er := st.rules.Load(); er.matcher == d.Matcher && d.Verdict.Entry.ID < len(er.failed) {
		er.failed[d.Verdict.Entry.ID].add(r)
	}
}

var (
	estateRequestsDesc = newEstateDesc("egressgate_estate_requests_total",
		"Admission decisions per estate, by decision and reason", "its first count", "decision", "reason")
	estateRuleHitsDesc = newEstateDesc("egressgate_estate_rule_hits_total",
		"Admitted connections and requests per estate and catalog entry", "the entry's first hit in the estate", "catalog", "rule")
	estateRuleFailuresDesc = newEstateDesc("egressgate_estate_rule_upstream_failures_total",
		"Admitted connections and requests per estate and catalog entry whose upstream could not be reached (counted in egressgate_estate_rule_hits_total too)", "the first failure", "catalog", "rule")
	estateInfoDesc = prometheus.NewDesc("egressgate_estate_info",
		"A metric with a constant value of 1 for each estate of the config, with its preference source and its policy (p0 is the default estate's; estates with the same effective policy share one).",
		[]string{"estate", "source", "policy"}, nil)
	policyRefusedDesc = prometheus.NewDesc("egressgate_policy_rule_refused_info",
		"A metric with a constant value of 1 for each catalog entry a policy refuses, with the reason: not-licensed, live-response-off, region-excluded, or section-off, exact-mode, os-excluded for entries the policy leaves out.",
		[]string{"policy", "catalog", "rule", "reason"}, nil)
)

// newEstateDesc describes a per-estate counter: labelled by estate, then
// labels; its help says what it counts, when a series appears, and that
// the estates beyond Options.MaxEstateSeries share estate="_other".
func newEstateDesc(name, what, appears string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name,
		what+"; a series appears with "+appears+", and estate is _other beyond the per-estate series cap.",
		append([]string{"estate"}, labels...), nil)
}

// collectEstates exports the per-estate series and the policies'
// refusals.
func (b *binding) collectEstates(ch chan<- prometheus.Metric) {
	type reqKey struct {
		ai     int
		reason rules.Reason
	}
	otherReq := map[reqKey]uint64{}
	otherHits, otherFailed := map[ruleKey]uint64{}, map[ruleKey]uint64{}
	for i, es := range b.ruleset.Estates {
		ch <- prometheus.MustNewConstMetric(estateInfoDesc, prometheus.GaugeValue, 1, es.Name, es.Source, b.policyLabel(es.Matcher))
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
		collectEstateCounters(ch, estateRuleHitsDesc, es.Name, er.matcher.Entries(), er.hits, otherHits)
		collectEstateCounters(ch, estateRuleFailuresDesc, es.Name, er.matcher.Entries(), er.failed, otherFailed)
	}
	for k, n := range otherReq {
		ch <- prometheus.MustNewConstMetric(estateRequestsDesc, prometheus.CounterValue, float64(n), otherEstate, string(actions[k.ai]), reasonLabel(k.reason))
	}
	for k, n := range otherHits {
		ch <- prometheus.MustNewConstMetric(estateRuleHitsDesc, prometheus.CounterValue, float64(n), otherEstate, k.catalog, k.pattern)
	}
	for k, n := range otherFailed {
		ch <- prometheus.MustNewConstMetric(estateRuleFailuresDesc, prometheus.CounterValue, float64(n), otherEstate, k.catalog, k.pattern)
	}
	b.collectPolicies(ch)
}

// collectEstateCounters exports one estate's per-entry counters that
// counted something, adding those without a series of their own to other.
func collectEstateCounters(ch chan<- prometheus.Metric, desc *prometheus.Desc, estate string, entries []*rules.Entry, counters []estateCounter, other map[ruleKey]uint64) {
	for j := range counters {
		c := &counters[j]
		n := c.n.Load()
		if n == 0 || j >= len(entries) {
			continue
		}
		e := entries[j]
		if !c.own.Load() {
			other[ruleKey{e.Catalog, e.Pattern}] += n
			continue
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n), estate, e.Catalog, e.Pattern)
	}
}

// collectPolicies exports, per distinct policy, the entries of the
// ruleset it refuses or leaves out, so that a query can tell an estate's
// refused entries from its unused ones.
func (b *binding) collectPolicies(ch chan<- prometheus.Metric) {
	for pi, refused := range b.policyRefused {
		if refused == nil {
			continue
		}
		label := policyLabel(pi)
		for i, e := range b.entries {
			if b.exported[i] && refused[i] != "" {
				ch <- prometheus.MustNewConstMetric(policyRefusedDesc, prometheus.GaugeValue, 1, label, e.Catalog, e.Pattern, refused[i])
			}
		}
	}
}

// policyRefusals decides, per distinct policy, why it refuses each entry
// of the ruleset (see estateView.refused), from the first estate that has
// it: the estates that share a matcher share the policy it was compiled
// from.
func (b *binding) policyRefusals() [][]string {
	out := make([][]string, len(b.policies))
	for pi, m := range b.policies {
		k := slices.IndexFunc(b.ruleset.Estates, func(es *rules.Estate) bool { return es.Matcher == m })
		if k < 0 {
			continue
		}
		v := b.view(b.ruleset.Estates[k])
		out[pi] = make([]string, len(b.entries))
		for i := range b.entries {
			out[pi][i] = v.refused(i)
		}
	}
	return out
}

// policyLabel names the policy of index i in binding.policies.
func policyLabel(i int) string { return "p" + strconv.Itoa(i) }

// policyLabel names the policy of matcher m.
func (b *binding) policyLabel(m *rules.Matcher) string {
	return policyLabel(slices.Index(b.policies, m))
}

// estateView is one estate's view of the ruleset's entries: where each is
// in the estate's matcher (-1 when the policy leaves it out) and its
// counters there.
type estateView struct {
	b     *binding
	es    *rules.Estate
	index []int // by entry of b.entries: index in es.Matcher.Entries(), or -1
	rules *estateRules
}

// view builds es's view; its counters are nil when es has no usage table
// (a ruleset other than the installed one).
func (b *binding) view(es *rules.Estate) *estateView {
	at := map[ruleKey]int{}
	for j, e := range es.Matcher.Entries() {
		at[ruleKey{e.Catalog, e.Pattern}] = j
	}
	v := &estateView{b: b, es: es, index: make([]int, len(b.entries))}
	for i, e := range b.entries {
		j, ok := at[ruleKey{e.Catalog, e.Pattern}]
		if !ok {
			j = -1
		}
		v.index[i] = j
	}
	if st := b.estateByName[es.Name]; st != nil {
		if er := st.rules.Load(); er.matcher == es.Matcher {
			v.rules = er
		}
	}
	return v
}

// refused is why the estate refuses entry i of b.entries, "" when it
// admits it.
func (v *estateView) refused(i int) string {
	j := v.index[i]
	if j < 0 {
		return absentReason(v.b.entries[i], v.es)
	}
	if d := v.es.Matcher.Entries()[j].Deny; d != rules.ReasonNone {
		return d.String()
	}
	return ""
}

// usage returns the estate's hits, failures and names of entry i.
func (v *estateView) usage(i int) (hits, failed uint64, names []NameHits) {
	j := v.index[i]
	if j < 0 || v.rules == nil {
		return 0, 0, nil
	}
	return v.rules.hits[j].n.Load(), v.rules.failed[j].n.Load(), v.rules.names[j].snapshot()
}

func reasonLabel(r rules.Reason) string {
	if r == rules.ReasonNone {
		return reasonNone
	}
	return r.String()
}
