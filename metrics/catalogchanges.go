package metrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// Log messages and fields of a reload's catalog diff.
const (
	// MsgCatalogChanged summarises what a reload changed in the effective
	// entries; one MsgCatalogChange line per entry follows, at most
	// maxLoggedChanges of them.
	MsgCatalogChanged = "catalog changed"
	MsgCatalogChange  = "catalog change"
	FieldChange       = "change" // added, removed or changed
	FieldDetail       = "detail" // the change as "egressgate catalog diff" prints it
	FieldAdded        = "added"
	FieldRemoved      = "removed"
	FieldChanged      = "changed"
)

// maxLoggedChanges caps the per-entry lines of one reload, so replacing a
// large catalog does not flood the log; the summary line has the counts.
const maxLoggedChanges = 100

// catalogChanges diffs each installed ruleset against the one before it,
// logs and counts the changes, and tracks tunnels open per entry so that
// it can say how many still run on entries a reload removed.
type catalogChanges struct {
	log     *slog.Logger
	changes [3]prometheus.Counter // by rules.ChangeKind
	prev    atomic.Pointer[rules.Ruleset]

	// open counts tunnels per entry. Adds happen under the read lock, so
	// the write lock sees settled counts and may drop entries at zero.
	mu      sync.RWMutex
	open    map[ruleKey]*atomic.Int64
	removed map[ruleKey]bool // entries a reload removed that still had tunnels
}

func newCatalogChanges(reg prometheus.Registerer, log *slog.Logger) *catalogChanges {
	c := &catalogChanges{log: log, open: map[ruleKey]*atomic.Int64{}, removed: map[ruleKey]bool{}}
	f := promauto.With(reg)
	vec := f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_catalog_changes_total",
		Help: "Effective catalog entries added, removed or changed by reloads (first load excluded).",
	}, []string{"change"})
	for _, k := range rules.ChangeKinds() {
		c.changes[k] = vec.WithLabelValues(k.String())
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "egressgate_tunnels_on_removed_entries",
		Help: "Tunnels and forwarded requests still open on catalog entries that a reload removed; they run until they close.",
	}, c.openOnRemoved)
	return c
}

// reloaded diffs rs against the ruleset installed before it, logs the
// changes and counts them. The first ruleset has nothing to diff against.
func (c *catalogChanges) reloaded(rs *rules.Ruleset) {
	prev := c.prev.Swap(rs)
	if prev == nil || prev.Matcher == nil {
		return
	}
	changes := rules.DiffEntries(prev.Matcher.Entries(), rs.Matcher.Entries())
	n := rules.CountChanges(changes)
	for _, k := range rules.ChangeKinds() {
		c.changes[k].Add(float64(n[k]))
	}

	current := make(map[ruleKey]bool, len(rs.Matcher.Entries()))
	for _, e := range rs.Matcher.Entries() {
		current[ruleKey{e.Catalog, e.Pattern}] = true
	}
	c.mu.Lock()
	for _, ch := range changes {
		if ch.Kind == rules.ChangeRemoved {
			c.removed[ruleKey{ch.Old.Catalog, ch.Old.Pattern}] = true
		}
	}
	for k := range c.removed {
		if current[k] {
			delete(c.removed, k) // back in the catalog
		}
	}
	for k, n := range c.open {
		if !current[k] && n.Load() == 0 {
			delete(c.open, k)
			delete(c.removed, k)
		}
	}
	c.mu.Unlock()

	if len(changes) == 0 {
		return
	}
	ctx := context.Background()
	c.log.LogAttrs(ctx, slog.LevelInfo, MsgCatalogChanged, slog.Int(FieldAdded, n[rules.ChangeAdded]),
		slog.Int(FieldRemoved, n[rules.ChangeRemoved]), slog.Int(FieldChanged, n[rules.ChangeChanged]))
	for i, ch := range changes {
		if i == maxLoggedChanges {
			c.log.LogAttrs(ctx, slog.LevelInfo, MsgCatalogChange, slog.Int(FieldCount, len(changes)-i),
				slog.String(FieldDetail, "more changes not logged; run egressgate catalog diff"))
			break
		}
		e := ch.New
		if e == nil {
			e = ch.Old
		}
		c.log.LogAttrs(ctx, slog.LevelInfo, MsgCatalogChange, slog.String(FieldChange, ch.Kind.String()),
			slog.String(FieldCatalog, e.Catalog), slog.String(FieldRule, e.Pattern), slog.String(FieldDetail, ch.String()))
	}
}

// tunnel adds delta to the open tunnels of the entry that admitted d.
func (c *catalogChanges) tunnel(d *proxy.Decision, delta int64) {
	e := d.Verdict.Entry
	if e == nil {
		return // monitor-mode would-deny: no entry
	}
	k := ruleKey{e.Catalog, e.Pattern}
	c.mu.RLock()
	if n := c.open[k]; n != nil {
		n.Add(delta)
		c.mu.RUnlock()
		return
	}
	c.mu.RUnlock()
	c.mu.Lock()
	n := c.open[k]
	if n == nil {
		n = new(atomic.Int64)
		c.open[k] = n
	}
	n.Add(delta)
	c.mu.Unlock()
}

func (c *catalogChanges) openOnRemoved() float64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var sum int64
	for k := range c.removed {
		if n := c.open[k]; n != nil {
			sum += n.Load()
		}
	}
	return float64(sum)
}

// CatalogReloaded logs and counts what rs changes in the effective
// entries against the ruleset installed before it. Call it from
// rules.ReloadHooks.OnSwap, after Install.
func (r *Recorder) CatalogReloaded(rs *rules.Ruleset) { r.catalog.reloaded(rs) }
