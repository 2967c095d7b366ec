package upkeep

import (
	"fmt"

	"github.com/egressgate/egressgate/rules"
)

// Diff compares two catalogs entry by entry, as "catalog diff" and the
// watch report it. Unless notes is set it compares only what the vendor
// page can say (ports, groups, sections, OSes, licences, regions,
// examples, Live Response): a note written by hand into a catalog is not a
// change of the page.
func Diff(old, new *rules.Catalog, notes bool) []rules.Change {
	changes := rules.DiffCatalogs(old, new)
	if notes {
		return changes
	}
	out := changes[:0:0]
	for _, c := range changes {
		if c.Kind == rules.ChangeChanged {
			c.Fields = withoutNotes(c.Fields)
			if len(c.Fields) == 0 {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func withoutNotes(fs []rules.FieldChange) []rules.FieldChange {
	var out []rules.FieldChange
	for _, f := range fs {
		if f.Field != "notes" {
			out = append(out, f)
		}
	}
	return out
}

// Describe renders a change on one line as "catalog diff" prints it; an
// entry added from a lead-in the importer does not know says which, and
// where: + host (unknown section "LEAD-IN", line N).
func Describe(c rules.Change) string {
	if c.Kind == rules.ChangeAdded && c.New != nil {
		for _, g := range c.New.Groups {
			if g.Section != nil && g.Section.ID == UnclassifiedSection {
				return fmt.Sprintf("+ %s (unknown section %q, line %d)", c.Pattern, g.Title, c.New.Pos.Line)
			}
		}
	}
	return c.String()
}
