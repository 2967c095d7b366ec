package rules

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docTable returns the rows of the Markdown table that follows the line
// starting with marker in doc, each as its cells.
func docTable(t *testing.T, doc, marker string) [][]string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n"+marker)
	if !ok {
		t.Fatalf("docs/estates.md has no line starting %q", marker)
	}
	var rows [][]string
	for i, line := range strings.Split(after, "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i < 2 {
			continue // header and rule
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

// codeRE is a value in backticks.
var codeRE = regexp.MustCompile("^`([^`]+)`$")

// TestEstatesDocsLicencesAndRegions: docs/estates.md maps exactly the
// embedded catalogs' licences (with the names the catalogs give them and
// whether they cover the Live Response hosts) and lists exactly the
// regions the loader accepts.
func TestEstatesDocsLicencesAndRegions(t *testing.T) {
	data := mustRead(t, "../docs/estates.md")
	var catalogs []*Catalog
	for _, n := range EmbeddedNames() {
		c, err := Embedded(n)
		if err != nil {
			t.Fatal(err)
		}
		catalogs = append(catalogs, c)
	}
	names := map[string]string{}
	live := map[string]bool{}
	for _, c := range catalogs {
		for _, l := range c.Licenses {
			names[l.ID] = l.Name
		}
		for _, e := range c.Entries {
			for _, l := range e.Licenses {
				live[l] = live[l] || e.LiveResponse
			}
		}
	}

	var documented []string
	for _, row := range docTable(t, string(data), "<!-- licences:") {
		m := codeRE.FindStringSubmatch(row[1])
		if len(row) != 3 || m == nil {
			t.Errorf("licence row %q: want | name | `id` | yes/no |", row)
			continue
		}
		id := m[1]
		documented = append(documented, id)
		if row[0] != names[id] {
			t.Errorf("licence %s: documented as %q, the catalog names it %q", id, row[0], names[id])
		}
		if want := map[bool]string{true: "yes", false: "no"}[live[id]]; row[2] != want {
			t.Errorf("licence %s: Live Response column %q, want %q", id, row[2], want)
		}
	}
	if want := catalogLicenses(catalogs); !slices.Equal(documented, want) {
		t.Errorf("docs/estates.md lists licences %q, the catalogs define %q (in this order)", documented, want)
	}

	documented = nil
	for _, row := range docTable(t, string(data), "<!-- regions:") {
		if len(row) != 3 || codeRE.FindStringSubmatch(row[1]) == nil {
			t.Errorf("region row %q: want | name | `code` | hosts |", row)
			continue
		}
		documented = append(documented, codeRE.FindStringSubmatch(row[1])[1])
	}
	if want := catalogRegions(catalogs); !slices.Equal(documented, want) {
		t.Errorf("docs/estates.md lists regions %q, the loader knows %q (sorted)", documented, want)
	}
}
