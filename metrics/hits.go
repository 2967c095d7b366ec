package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// otherRule is the rule label of the entries beyond Options.MaxRuleSeries.
const otherRule = "_other"

// ruleKey names an entry across reloads: Entry.ID changes with every
// compile, catalog and pattern do not.
type ruleKey struct{ catalog, pattern string }

// ruleCounter is one entry's usage. It outlives reloads that keep the
// entry, so its counts carry over.
type ruleCounter struct {
	hits    atomic.Uint64
	lastHit atomic.Int64 // Unix nanoseconds; 0 for never
	// failed counts the hits whose upstream could not be reached (DNS,
	// connect, parent proxy): hits - failed connections got through.
	failed atomic.Uint64
	// names are the names admitted through a wildcard or glob entry; nil
	// for the other kinds.
	names *nameTable
}

// binding is an installed ruleset with its entries' counters. It is
// immutable once stored; Install replaces it whole.
type binding struct {
	version   uint64 // of ruleset.Matcher
	ruleset   *rules.Ruleset
	installed time.Time
	// entries are every entry of the ruleset's matchers, once per
	// catalog and pattern: the default estate's matcher's first, in its
	// order (so that byID[i] counts entries[i] for i < its length), then
	// those only other estates' matchers have.
	entries []*rules.Entry
	byID    []*ruleCounter // parallel to entries; indexed by Entry.ID of ruleset.Matcher
	byKey   map[ruleKey]*ruleCounter
	// estates are the per-estate tables, by Estate.Index.
	estates      []*estateStats
	estateByName map[string]*estateStats
	// exported[i] is whether entry i has its own series; the others are
	// summed into rule="_other" of their catalog (Options.MaxRuleSeries).
	exported []bool
	// groupCatalog names the catalog of each enabled group.
	groupCatalog map[*rules.Group]string
	// refused[i] is why entry i is refused in the global view: "" when
	// some estate's policy admits it, else the reason of the first policy
	// (the default estate's first) that names it.
	refused []string
	// policies are the distinct matchers (rs.Matchers()); an estate's
	// policy label is "p" and the index of its matcher here.
	policies []*rules.Matcher
	// policyRefused[p][i] is why policies[p] refuses entry i, "" when it
	// admits it; nil for a policy no estate has. Decided once per
	// ruleset, not at every scrape.
	policyRefused [][]string
}

// Install binds the per-entry counters to rs: call it after the first load
// and after every successful reload, before or after the proxy starts
// using rs.Matcher. Entries kept across a reload (same catalog and
// pattern) keep their counts; entries that disappear stop being exported.
// Install also marks the catalog load successful.
func (r *Recorder) Install(rs *rules.Ruleset) {
	old := r.binding.Load()
	var entries []*rules.Entry
	seenKey := map[ruleKey]bool{}
	for _, m := range rs.Matchers() {
		for _, e := range m.Entries() {
			if k := (ruleKey{e.Catalog, e.Pattern}); !seenKey[k] || m == rs.Matcher {
				seenKey[k] = true
				entries = append(entries, e)
			}
		}
	}
	b := &binding{
		entries:      entries,
		version:      rs.Matcher.Version(),
		ruleset:      rs,
		installed:    time.Now(),
		byID:         make([]*ruleCounter, len(entries)),
		byKey:        make(map[ruleKey]*ruleCounter, len(entries)),
		exported:     make([]bool, len(entries)),
		groupCatalog: map[*rules.Group]string{},
	}
	for i, e := range entries {
		k := ruleKey{e.Catalog, e.Pattern}
		c := b.byKey[k] // the same pattern twice in one catalog shares
		if c == nil && old != nil {
			c = old.byKey[k]
		}
		if c == nil {
			c = &ruleCounter{}
		}
		if c.names == nil && e.HasWildcard() {
			c.names = newNameTable(&r.namesEvicted)
		}
		b.byID[i] = c
		b.byKey[k] = c
		b.exported[i] = i < r.opts.MaxRuleSeries
	}
	for _, c := range rs.Catalogs {
		for _, g := range c.Groups {
			b.groupCatalog[g] = c.Name
		}
	}
	b.policies = rs.Matchers()
	b.refused = globalRefusals(entries, b.policies)
	r.installEstates(b, old, rs)
	b.policyRefused = b.policyRefusals()
	r.binding.Store(b)
	r.reloadSuccessful.Set(1)
	r.reloadSuccessTime.Set(float64(b.installed.UnixNano()) / 1e9)
}

// globalRefusals says, per entry, whether some policy admits it ("") or
// why the first policy that names it refuses it.
func globalRefusals(entries []*rules.Entry, policies []*rules.Matcher) []string {
	admitted := map[ruleKey]bool{}
	reason := map[ruleKey]string{}
	for _, m := range policies {
		for _, e := range m.Entries() {
			k := ruleKey{e.Catalog, e.Pattern}
			if e.Deny == rules.ReasonNone {
				admitted[k] = true
			} else if reason[k] == "" {
				reason[k] = e.Deny.String()
			}
		}
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		if k := (ruleKey{e.Catalog, e.Pattern}); !admitted[k] {
			out[i] = reason[k]
		}
	}
	return out
}

// counter returns the counter of the entry d's verdict names, or nil when
// no ruleset is installed or the entry is gone.
func (r *Recorder) counter(d *proxy.Decision) *ruleCounter {
	b := r.binding.Load()
	if b == nil {
		return nil
	}
	e := d.Verdict.Entry
	if d.Matcher != nil && d.Matcher.Version() == b.version && e.ID < len(b.byID) {
		return b.byID[e.ID]
	}
	// The decision was made by another matcher than the installed one: a
	// reload raced it. Its entry IDs mean nothing here. nil when the entry
	// is gone; requests_total still counts it.
	return b.byKey[ruleKey{e.Catalog, e.Pattern}]
}

// failedUpstream counts an admitted decision whose upstream could not be
// reached on the entry its verdict names (it was counted as a hit too).
func (r *Recorder) failedUpstream(d *proxy.Decision) {
	if c := r.counter(d); c != nil {
		c.failed.Add(1)
	}
}

// hit counts an admitted decision on the entry its verdict names.
func (r *Recorder) hit(d *proxy.Decision) {
	c := r.counter(d)
	if c == nil {
		return
	}
	c.hits.Add(1)
	if c.names != nil {
		c.names.add(d.Host)
	}
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	c.lastHit.Store(t.UnixNano())
}

// installed reports whether a ruleset is installed.
func (r *Recorder) installed() bool { return r.binding.Load() != nil }

// catalogCollector exports the per-entry series from the installed
// binding at scrape time, so reloads never leave stale series behind and
// the hot path touches only two atomics.
type catalogCollector struct{ r *Recorder }

var (
	ruleHitsDesc = prometheus.NewDesc("egressgate_rule_hits_total",
		"Admitted connections and requests per catalog entry; rule is the entry's pattern, or _other for entries beyond the series cap.",
		[]string{"catalog", "rule"}, nil)
	ruleFailuresDesc = prometheus.NewDesc("egressgate_rule_upstream_failures_total",
		"Admitted connections and requests per catalog entry whose upstream could not be reached (DNS, connect, parent proxy); they are counted in egressgate_rule_hits_total too.",
		[]string{"catalog", "rule"}, nil)
	ruleLastHitDesc = prometheus.NewDesc("egressgate_rule_last_hit_timestamp_seconds",
		"Unix time of the last admitted connection or request per catalog entry; absent until the first hit.",
		[]string{"catalog", "rule"}, nil)
	ruleInfoDesc = prometheus.NewDesc("egressgate_rule_info",
		"A metric with a constant value of 1 for each catalog entry of the installed ruleset and each group it belongs to.",
		[]string{"catalog", "rule", "group", "section"}, nil)
	catalogEntriesDesc = prometheus.NewDesc("egressgate_catalog_entries",
		"Entries of the installed ruleset per enabled group.",
		[]string{"catalog", "group"}, nil)
)

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ruleHitsDesc
	ch <- ruleFailuresDesc
	ch <- ruleLastHitDesc
	ch <- ruleInfoDesc
	ch <- catalogEntriesDesc
	ch <- estateRequestsDesc
	ch <- estateRuleHitsDesc
	ch <- estateInfoDesc
	ch <- estateRuleFailuresDesc
	ch <- policyRefusedDesc
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.r.binding.Load()
	if b == nil {
		return
	}
	type sum struct {
		hits, failed uint64
		lastHit      int64
	}
	other := map[string]*sum{} // by catalog
	var otherOrder []string
	seen := map[*ruleCounter]bool{}
	perGroup := map[*rules.Group]int{}
	for i, e := range b.entries {
		rc := b.byID[i]
		if i < len(b.ruleset.Matcher.Entries()) {
			for _, g := range e.Groups {
				perGroup[g]++
			}
		}
		if seen[rc] {
			continue // a pattern listed twice in one catalog is one series
		}
		seen[rc] = true
		hits, failed, last := rc.hits.Load(), rc.failed.Load(), rc.lastHit.Load()
		if !b.exported[i] {
			s := other[e.Catalog]
			if s == nil {
				s = &sum{}
				other[e.Catalog] = s
				otherOrder = append(otherOrder, e.Catalog)
			}
			s.hits += hits
			s.failed += failed
			s.lastHit = max(s.lastHit, last)
			continue
		}
		ch <- prometheus.MustNewConstMetric(ruleHitsDesc, prometheus.CounterValue, float64(hits), e.Catalog, e.Pattern)
		ch <- prometheus.MustNewConstMetric(ruleFailuresDesc, prometheus.CounterValue, float64(failed), e.Catalog, e.Pattern)
		if last != 0 {
			ch <- prometheus.MustNewConstMetric(ruleLastHitDesc, prometheus.GaugeValue, float64(last)/1e9, e.Catalog, e.Pattern)
		}
		for _, g := range e.Groups {
			ch <- prometheus.MustNewConstMetric(ruleInfoDesc, prometheus.GaugeValue, 1, e.Catalog, e.Pattern, g.ID, sectionID(g))
		}
	}
	for _, cat := range otherOrder {
		s := other[cat]
		ch <- prometheus.MustNewConstMetric(ruleHitsDesc, prometheus.CounterValue, float64(s.hits), cat, otherRule)
		ch <- prometheus.MustNewConstMetric(ruleFailuresDesc, prometheus.CounterValue, float64(s.failed), cat, otherRule)
		if s.lastHit != 0 {
			ch <- prometheus.MustNewConstMetric(ruleLastHitDesc, prometheus.GaugeValue, float64(s.lastHit)/1e9, cat, otherRule)
		}
		ch <- prometheus.MustNewConstMetric(ruleInfoDesc, prometheus.GaugeValue, 1, cat, otherRule, otherRule, otherRule)
	}
	for _, g := range b.ruleset.Enabled {
		ch <- prometheus.MustNewConstMetric(catalogEntriesDesc, prometheus.GaugeValue, float64(perGroup[g]), b.groupCatalog[g], g.ID)
	}
	b.collectEstates(ch)
}

func sectionID(g *rules.Group) string {
	if g.Section == nil {
		return ""
	}
	return g.Section.ID
}
