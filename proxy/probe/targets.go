package probe

import (
	"slices"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// Target is one concrete name to probe and the ports its entries list.
type Target struct {
	Name  string   `json:"name"`
	Rule  string   `json:"rule"` // the catalog entry's pattern
	Ports []uint16 `json:"ports"`
}

// Skip is a catalog entry the probe cannot try, and why.
type Skip struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// refusedPrefix starts the reason an entry no estate admits is skipped
// for; the estates' deny reasons follow.
const refusedPrefix = "refused by every policy: "

// Targets returns the concrete names that any of the matchers (one per
// distinct estate policy) admits, sorted by name, with the ports of every
// entry that names each; and the entries that are skipped, once each:
// wildcards and globs (no name to try), address prefixes, examples of
// per-account hosts, and entries that no matcher admits.
func Targets(ms ...*rules.Matcher) ([]Target, []Skip) {
	var targets []Target
	var skipped []Skip
	index := map[string]int{}
	skippedWhy := map[string]string{}
	var skippedOrder []string // catalog order, first matcher first
	for _, m := range ms {
		for _, e := range m.Entries() {
			if why := skipReason(e); why != "" {
				if prev, ok := skippedWhy[e.Pattern]; ok && strings.HasPrefix(prev, refusedPrefix) && !strings.Contains(prev, e.Deny.String()) {
					skippedWhy[e.Pattern] = prev + ", " + e.Deny.String() // each estate's reason
				}
				if _, ok := skippedWhy[e.Pattern]; !ok {
					skippedWhy[e.Pattern] = why
					skippedOrder = append(skippedOrder, e.Pattern)
				}
				continue
			}
			if i, ok := index[e.Pattern]; ok {
				for _, p := range e.Ports {
					if !slices.Contains(targets[i].Ports, p) {
						targets[i].Ports = append(targets[i].Ports, p)
					}
				}
				continue
			}
			index[e.Pattern] = len(targets)
			targets = append(targets, Target{Name: e.Pattern, Rule: e.Pattern, Ports: slices.Clone(e.Ports)})
		}
	}
	for i := range targets {
		slices.Sort(targets[i].Ports)
	}
	slices.SortFunc(targets, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	for _, rule := range skippedOrder {
		if _, probed := index[rule]; !probed { // another estate admits it
			skipped = append(skipped, Skip{rule, skippedWhy[rule]})
		}
	}
	return targets, skipped
}

// skipReason says why e names no host to probe; empty when it names one.
func skipReason(e *rules.Entry) string {
	switch {
	case e.Kind == rules.KindWildcard:
		return "wildcard: no single name to try"
	case e.Kind == rules.KindGlob:
		return "glob: no single name to try"
	case e.Kind == rules.KindCIDR:
		return "address prefix: no name to resolve"
	case e.Example:
		return "example of a per-account host"
	case e.Deny != rules.ReasonNone:
		return refusedPrefix + e.Deny.String()
	}
	return ""
}
