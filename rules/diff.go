package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ChangeKind is what happened to an entry between two catalogs. The set is
// closed: metrics use it as a label value.
type ChangeKind uint8

const (
	ChangeAdded ChangeKind = iota
	ChangeRemoved
	ChangeChanged
	numChangeKinds
)

var changeKindNames = [numChangeKinds]string{"added", "removed", "changed"}

// String returns the kind's name as used in output and metric labels.
func (k ChangeKind) String() string {
	if k < numChangeKinds {
		return changeKindNames[k]
	}
	return "unknown"
}

// ChangeKinds lists every kind, for metrics that export all of them.
func ChangeKinds() []ChangeKind { return []ChangeKind{ChangeAdded, ChangeRemoved, ChangeChanged} }

// Change is one entry added, removed or changed between two entry lists.
type Change struct {
	Kind    ChangeKind
	Catalog string // the catalog the entry belongs to ("" when diffing two catalogs)
	Pattern string
	Old     *Entry // nil when added
	New     *Entry // nil when removed
	Fields  []FieldChange
}

// FieldChange is one field of an entry whose value differs.
type FieldChange struct {
	Field    string // ports, groups, sections, os, licenses, region, example, notes
	Old, New string
}

// String renders the change on one line: "+ pattern (ports 443; groups
// a,b)", "- pattern (...)" or "~ pattern: ports 443 -> 80,443; ...".
func (c Change) String() string {
	name := c.Pattern
	if c.Catalog != "" {
		name = c.Catalog + "/" + c.Pattern
	}
	switch c.Kind {
	case ChangeAdded:
		return "+ " + name + " (" + entrySummary(c.New) + ")"
	case ChangeRemoved:
		return "- " + name + " (" + entrySummary(c.Old) + ")"
	}
	parts := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		parts[i] = fmt.Sprintf("%s %s -> %s", f.Field, orNone(f.Old), orNone(f.New))
	}
	return "~ " + name + ": " + strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func entrySummary(e *Entry) string {
	s := "ports " + portList(e.Ports) + "; groups " + strings.Join(e.GroupIDs(), ",")
	if len(e.OS) > 0 {
		s += "; os " + strings.Join(e.OS, ",")
	}
	return s
}

func portList(ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return strings.Join(ps, ",")
}

// DiffCatalogs compares two catalogs entry by entry, matching entries by
// pattern, whatever the catalogs are called.
func DiffCatalogs(old, new *Catalog) []Change {
	return diffEntries(old.Entries, new.Entries, false)
}

// DiffEntries compares two entry lists (such as the entries of two
// matchers), matching entries by catalog name and pattern. The result
// lists removed and changed entries in the old order, then added ones in
// the new order.
func DiffEntries(old, new []*Entry) []Change {
	return diffEntries(old, new, true)
}

func diffEntries(old, new []*Entry, byCatalog bool) []Change {
	key := func(e *Entry) string {
		if byCatalog {
			return e.Catalog + "\x00" + e.Pattern
		}
		return e.Pattern
	}
	newByKey := make(map[string]*Entry, len(new))
	for _, e := range new {
		if _, dup := newByKey[key(e)]; !dup {
			newByKey[key(e)] = e
		}
	}
	seen := make(map[string]bool, len(old))
	var out []Change
	catalogOf := func(e *Entry) string {
		if byCatalog {
			return e.Catalog
		}
		return ""
	}
	for _, o := range old {
		k := key(o)
		if seen[k] {
			continue
		}
		seen[k] = true
		n := newByKey[k]
		if n == nil {
			out = append(out, Change{Kind: ChangeRemoved, Catalog: catalogOf(o), Pattern: o.Pattern, Old: o})
			continue
		}
		if fields := entryFieldChanges(o, n); len(fields) > 0 {
			out = append(out, Change{Kind: ChangeChanged, Catalog: catalogOf(o), Pattern: o.Pattern, Old: o, New: n, Fields: fields})
		}
	}
	for _, n := range new {
		k := key(n)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, Change{Kind: ChangeAdded, Catalog: catalogOf(n), Pattern: n.Pattern, New: n})
	}
	return out
}

// entryFieldChanges lists the fields that differ. Lists compare as sets
// (their order carries no meaning), except notes, which compare as text.
func entryFieldChanges(o, n *Entry) []FieldChange {
	var out []FieldChange
	add := func(field, a, b string) {
		if a != b {
			out = append(out, FieldChange{Field: field, Old: a, New: b})
		}
	}
	sortedPorts := func(ps []uint16) string {
		s := slices.Clone(ps)
		slices.Sort(s)
		return portList(s)
	}
	set := func(s []string) string {
		c := slices.Clone(s)
		slices.Sort(c)
		return strings.Join(slices.Compact(c), ",")
	}
	add("ports", sortedPorts(o.Ports), sortedPorts(n.Ports))
	add("groups", set(o.GroupIDs()), set(n.GroupIDs()))
	add("sections", set(o.Sections()), set(n.Sections()))
	add("os", set(o.OS), set(n.OS))
	add("licenses", set(o.Licenses), set(n.Licenses))
	add("region", o.Region, n.Region)
	add("example", strconv.FormatBool(o.Example), strconv.FormatBool(n.Example))
	add("live_response", strconv.FormatBool(o.LiveResponse), strconv.FormatBool(n.LiveResponse))
	add("notes", strconv.Quote(strings.Join(o.Notes, " | ")), strconv.Quote(strings.Join(n.Notes, " | ")))
	return out
}

// CountChanges returns how many changes of each kind there are, indexed
// by ChangeKind.
func CountChanges(changes []Change) [numChangeKinds]int {
	var n [numChangeKinds]int
	for _, c := range changes {
		n[c.Kind]++
	}
	return n
}
