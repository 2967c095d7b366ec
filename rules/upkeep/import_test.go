package upkeep

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

// sourceDocName is the vendor page the embedded catalog transcribes, as
// the operator saves it. It is not in the repository: it sits in the
// shared folder beside the clone (../shared/seeds, as CI has it).
const sourceDocName = "shared/seeds/domains-and-ports-to-allow.txt"

// sourceDoc finds the saved vendor page in a folder above the working
// directory and returns its path and content. It skips, saying so, when
// the page is not there; CI has it, so there the tests run.
func sourceDoc(t *testing.T) (string, []byte) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		path := filepath.Join(dir, sourceDocName)
		data, err := os.ReadFile(path)
		if err == nil {
			return path, data
		}
		if !os.IsNotExist(err) {
			t.Fatal(err)
		}
		dir = filepath.Dir(dir)
	}
	t.Skipf("SKIP: the saved vendor page %s is not in any folder above the repository (CI has it in ../shared); the whole-page import checks did not run", sourceDocName)
	return "", nil
}

// importDeltas are the differences between the imported page and the
// embedded catalog that were made by hand, each with its reason. Anything
// else that differs is a defect of the importer or of the catalog.
var importDeltas = map[string]string{
	// The page's "Note" paragraph about reverse lookups showing
	// *.amazonaws.com is attached to the amazonaws.com entry by hand: the
	// page puts it under the Linux list, not on any bullet.
	`~ amazonaws.com: notes "" -> "Some firewalls or proxies show reverse lookups with *.amazonaws.com addresses; this is expected, as several servers are hosted on AWS."`: "note written by hand",
}

// TestImportReproducesEmbedded imports the shipped source page and
// compares the result with the embedded catalog: entries field by field,
// and sections, groups and licenses.
func TestImportReproducesEmbedded(t *testing.T) {
	path, data := sourceDoc(t)
	got, unc, err := ImportPage(path, data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := rules.Embedded(rules.DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range rules.DiffCatalogs(got, want) {
		seen[c.String()] = true
		if _, ok := importDeltas[c.String()]; !ok {
			t.Errorf("import differs from the embedded catalog: %s", c)
		}
	}
	for d := range importDeltas {
		if !seen[d] {
			t.Errorf("listed manual delta no longer seen; remove it from importDeltas: %s", d)
		}
	}
	if len(unc) > 0 {
		t.Errorf("the vendor page has hosts under lead-ins the layout does not know: %+v", unc)
	}
	if d := Diff(got, want, false); len(d) > 0 {
		t.Errorf("the vendor page differs from the embedded catalog in what the page can say (%d changes), first %s", len(d), d[0])
	}
	if len(got.Entries) != len(want.Entries) {
		t.Errorf("imported %d entries, embedded catalog has %d", len(got.Entries), len(want.Entries))
	}
	if got.Name != want.Name || got.Title != want.Title || got.Source != want.Source {
		t.Errorf("catalog %q %q %q, want %q %q %q", got.Name, got.Title, got.Source, want.Name, want.Title, want.Source)
	}
	if !slices.Equal(got.Licenses, want.Licenses) {
		t.Errorf("licenses %v, want %v", got.Licenses, want.Licenses)
	}
	if len(got.Sections) != len(want.Sections) || len(got.Groups) != len(want.Groups) {
		t.Fatalf("%d sections %d groups, want %d %d", len(got.Sections), len(got.Groups), len(want.Sections), len(want.Groups))
	}
	for i, s := range want.Sections {
		g := got.Sections[i]
		if g.ID != s.ID || g.Title != s.Title || g.Optional != s.Optional || !slices.Equal(g.Licenses, s.Licenses) ||
			g.NeedsWildcards != s.NeedsWildcards || !slices.Equal(g.Notes, s.Notes) {
			t.Errorf("section %d: %+v, want %+v", i, *g, *s)
		}
	}
	for i, w := range want.Groups {
		g := got.Groups[i]
		if g.ID != w.ID || g.Title != w.Title || g.Optional != w.Optional || g.Section.ID != w.Section.ID ||
			!slices.Equal(g.Ports, w.Ports) || !slices.Equal(g.Licenses, w.Licenses) || !slices.Equal(g.Notes, w.Notes) {
			t.Errorf("group %s: %+v, want %+v", w.ID, *g, *w)
		}
	}
}

// TestFormatYAMLRoundTrip writes the embedded catalog and reads it back.
func TestFormatYAMLRoundTrip(t *testing.T) {
	c, err := rules.Embedded(rules.DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rules.FormatYAML(c, "generated\nby a test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "# generated\n# by a test\n") {
		t.Errorf("header missing: %.60q", out)
	}
	back, err := rules.ParseYAML("roundtrip.yaml", out)
	if err != nil {
		t.Fatalf("ParseYAML(rules.FormatYAML(embedded)): %v", err)
	}
	if d := rules.DiffCatalogs(c, back); len(d) > 0 {
		t.Errorf("round trip changed %d entries, first %s", len(d), d[0])
	}
}

// TestImportEditedPage edits a copy of the page the way the vendor might
// and checks that the diff names exactly the edits.
func TestImportEditedPage(t *testing.T) {
	_, data := sourceDoc(t)
	page := string(data)
	orig, _, err := ImportPage("old.txt", []byte(page), Options{})
	if err != nil {
		t.Fatal(err)
	}
	edits := []struct{ old, new string }{
		// a new XDR host
		{"  • live-terminal-eu-west-1.prod.hydra.sophos.com\n", "  • live-terminal-eu-west-1.prod.hydra.sophos.com\n  • live-terminal-ap-south-1.prod.hydra.sophos.com\n"},
		// a TLS-inspection host dropped
		{"  • kinesis.us-west-2.amazonaws.com\n", ""},
		// remote assistance moves to another port
		{"Port: 22 TCP", "Port: 2222 TCP"},
	}
	for _, e := range edits {
		if !strings.Contains(page, e.old) {
			t.Fatalf("page has no %q to edit", e.old)
		}
		page = strings.Replace(page, e.old, e.new, 1)
	}
	edited, _, err := ImportPage("new.txt", []byte(page), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rules.DiffCatalogs(orig, edited) {
		got = append(got, c.String())
	}
	want := []string{
		"- kinesis.us-west-2.amazonaws.com (ports 443; groups tls-inspection)",
		"~ *.apu.sophos.com: ports 22 -> 2222",
		"+ live-terminal-ap-south-1.prod.hydra.sophos.com (ports 443; groups xdr-mdr)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff of edited page:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestImportPageErrors(t *testing.T) {
	strict := func(path string, page []byte) (*rules.Catalog, error) {
		c, _, err := ImportPage(path, page, Options{Strict: true})
		return c, err
	}
	checkErrors(t, "ImportPage", strict, "page.txt", []errorCase{
		{"empty", "", "page.txt: no bulleted hosts found"},
		{"unknown lead-in", "Some new heading\n\n  • new.sophos.com\n", `page.txt:3: "new.sophos.com" is listed under no lead-in the importer knows`},
		{"bad port", "Remote assistance\n  • Port: 99999 TCP\n  • Domain: *.apu.sophos.com\n", "ports: 99999 is not a TCP port"},
	})
}

// FuzzImportPage: any text imports or fails with an error, never panics,
// and what imports writes as YAML that reads back to the same entries.
func FuzzImportPage(f *testing.F) {
	f.Add("Sophos Central Admin domains\n  • central.sophos.com\n")
	f.Add("Remote assistance\n  • Port: 22 TCP\n  • Domain: *.apu.sophos.com\n")
	f.Add("On Windows devices\nThe second will look like one of these:\n  • api-x.prod.hydra.sophos.com\r\n")
	f.Add("Follow these instructions if you have any of these licenses:\n  • A B\n  • a-b\nDomains for XDR and MDR\n  • x.example.org\n")
	f.Add("Note\n  • y.example.org\n")
	f.Fuzz(func(t *testing.T, page string) {
		c, _, err := ImportPage("fuzz.txt", []byte(page), Options{})
		if err != nil {
			return
		}
		out, err := rules.FormatYAML(c, "")
		if err != nil {
			t.Fatalf("FormatYAML: %v", err)
		}
		back, err := rules.ParseYAML("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("ParseYAML(rules.FormatYAML(import)): %v\n%s", err, out)
		}
		if d := rules.DiffCatalogs(c, back); len(d) > 0 {
			t.Fatalf("round trip changed %s", d[0])
		}
	})
}

// excerpt is the page excerpt the repository carries, in the page's layout.
func excerpt(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../cmd/egressgate/testdata/configs/page-excerpt.txt")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// withUnknownSections adds to the excerpt a heading the layout does not
// know, with one host, and a new step after a list that had its hosts.
func withUnknownSections(t *testing.T) string {
	t.Helper()
	page := excerpt(t)
	for _, e := range []struct{ old, new string }{
		{"Remote assistance\n", "Domains for Sophos Firewall integration\n\n  • fw-telemetry.sophos.com\n\nRemote assistance\n"},
		{"    • dc.services.visualstudio.com\n", "    • dc.services.visualstudio.com\n\n  3. Allow the new telemetry hosts:\n\n    • telemetry.sophos.com\n"},
	} {
		if !strings.Contains(page, e.old) {
			t.Fatalf("excerpt has no %q", e.old)
		}
		page = strings.Replace(page, e.old, e.new, 1)
	}
	return page
}

func TestImportUnknownSection(t *testing.T) {
	page := withUnknownSections(t)
	base, _, err := ImportPage("old.txt", []byte(excerpt(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, unc, err := ImportPage("new.txt", []byte(page), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantUnc := []Unclassified{
		{Host: "telemetry.sophos.com", LeadIn: "Allow the new telemetry hosts:", Line: 27, Group: "unclassified-allow-the-new-telemetry-hosts"},
		{Host: "fw-telemetry.sophos.com", LeadIn: "Domains for Sophos Firewall integration", Line: 38, Group: "unclassified-domains-for-sophos-firewall-integration"},
	}
	if !slices.Equal(unc, wantUnc) {
		t.Errorf("unclassified = %+v\nwant %+v", unc, wantUnc)
	}
	var got []string
	for _, ch := range Diff(base, c, false) {
		got = append(got, Describe(ch))
	}
	want := []string{
		`+ telemetry.sophos.com (unknown section "Allow the new telemetry hosts:", line 27)`,
		`+ fw-telemetry.sophos.com (unknown section "Domains for Sophos Firewall integration", line 38)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The unclassified section is optional: as imported, the catalog
	// admits none of its hosts.
	for _, s := range c.Sections {
		if s.ID == UnclassifiedSection && !s.Optional {
			t.Errorf("section %s is not optional", s.ID)
		}
	}

	if _, _, err := ImportPage("new.txt", []byte(page), Options{Strict: true}); err == nil ||
		!strings.Contains(err.Error(), `new.txt:27: "telemetry.sophos.com" is listed under no lead-in the importer knows`) {
		t.Errorf("strict import: %v", err)
	}
}

// TestImportLayoutTeachesLeadIn: a layout file that names the new
// section classifies its host.
func TestImportLayoutTeachesLeadIn(t *testing.T) {
	data := string(DefaultLayoutYAML())
	data = strings.Replace(data, "lead_ins:\n", "lead_ins:\n  - {text: \"Domains for Sophos Firewall integration\", exact: true, group: firewall, os: any}\n", 1)
	data += "  - {id: firewall, section: intercept-x, title: Sophos Firewall integration}\n"
	l, err := ParseLayout("layout.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	c, unc, err := ImportPage("new.txt", []byte(withUnknownSections(t)), Options{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	if len(unc) != 1 || unc[0].Host != "telemetry.sophos.com" {
		t.Errorf("unclassified = %+v, want only telemetry.sophos.com", unc)
	}
	for _, e := range c.Entries {
		if e.Pattern == "fw-telemetry.sophos.com" && !slices.Equal(e.GroupIDs(), []string{"firewall"}) {
			t.Errorf("fw-telemetry.sophos.com in groups %v, want [firewall]", e.GroupIDs())
		}
	}
}
