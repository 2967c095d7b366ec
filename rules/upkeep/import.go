package upkeep

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// The importer reads a saved text copy of the vendor's "Domains and ports
// to allow" page (what a browser's "save as text" or a copy and paste of
// the page gives, or what ReadPage makes of its HTML) into the catalog
// schema. The page is a sequence of headings and lead-in sentences, each
// followed by a bulleted list; the Layout says which lead-in starts which
// group. The importer takes every bulleted host or pattern under it, and
// merges an entry listed under several lead-ins into one entry with all
// their groups and OSes.
//
// What the page cannot say by its layout, egressgate's IDs, titles and
// notes of sections and groups, and the ports of OCSP and CRL (plain
// HTTP), comes from the Layout too. What the embedded catalog adds by hand
// beyond that (a note) is not on the page; "catalog diff" leaves notes out
// unless asked (see Diff).

// Options say how ImportPage reads a page.
type Options struct {
	Layout *Layout // nil: DefaultLayout()
	// Strict makes a host under a lead-in the layout does not know an
	// error, instead of an unclassified entry.
	Strict bool
}

// UnclassifiedSection is the section of the groups ImportPage makes for
// lead-ins its layout does not know. It is optional, so a catalog put in
// service as imported admits none of their hosts until an operator
// enables it or teaches the layout the lead-in.
const UnclassifiedSection = "unclassified"

// Unclassified is a host listed under a lead-in the layout does not know.
type Unclassified struct {
	Host   string
	LeadIn string // the heading or sentence above the host's list
	Line   int    // the host's line on the page
	Group  string // the group it was imported into
}

// Notes the importer writes on installer examples.
const (
	noteInstallerAlso    = "Also given as an example of the hosts an installer log names."
	noteInstallerExample = "Example only: each account's real host comes from its installer log (Windows SophosCloudInstaller.log, macOS SophosCloudConfig.plist, Linux SophosSetup.sh output)."
)

// maxPageBytes bounds a saved page: the vendor's is about 20 kB.
const maxPageBytes = 64 << 20

var (
	pageStepRE    = regexp.MustCompile(`^\d{1,3}\.\s+`)
	pageAnyBullet = regexp.MustCompile(`^\s*(?:•|-)\s`)
	pageBulletRE  = regexp.MustCompile(`^\s*(?:•|-)\s+(?:Domain:\s+)?(\S+)\s*$`)
	pagePortRE    = regexp.MustCompile(`^\s*(?:•|-)\s+(?:Port:\s+)?(\d{1,5})\b`)
	pageHostRE    = regexp.MustCompile(`^(?:\*\.)?[a-z0-9*][a-z0-9*-]*(?:\.[a-z0-9*-]+)+$`)
	pageRegionRE  = regexp.MustCompile(`(?:^|[.-])((?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d|stn\d+[a-z]+)(?:$|[.-])`)
	pageLicenseRE = regexp.MustCompile(`^\s*•\s+(.+?)\s*$`)
)

// ImportPage reads a saved text copy of the vendor page into a catalog.
// Each entry's position is the page line where it is first listed. A
// bulleted host under a lead-in the layout does not know is imported
// into a group named after that lead-in, in UnclassifiedSection, and
// returned among the unclassified; with opts.Strict it is an error naming
// its line instead.
func ImportPage(path string, data []byte, opts Options) (*rules.Catalog, []Unclassified, error) {
	if len(data) > maxPageBytes {
		return nil, nil, rules.Pos{File: path}.Errorf("page is %d bytes, more than the limit of %d", len(data), maxPageBytes)
	}
	r := newPageReader(path, opts)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if err := r.line(line, sc.Text()); err != nil {
			return nil, nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, rules.Pos{File: path}.Errorf("reading: %w", err)
	}
	if len(r.order) == 0 {
		return nil, nil, rules.Pos{File: path}.Errorf("no bulleted hosts found; is this a text copy of the \"Domains and ports to allow\" page?")
	}
	f := r.catalogFile()
	c, err := f.Build(path)
	if err != nil {
		return nil, nil, err
	}
	return c, r.unclassified, nil
}

// seenHost is what the page says of one host across its lists.
type seenHost struct {
	line   int
	groups []string
	os     []string
	first  bool // in the installer log's first list
	second bool // in the installer log's second list
}

// pageReader is the state of one import: where on the page it is, and
// what it has read so far.
type pageReader struct {
	path   string
	layout *Layout
	strict bool

	cur        LeadIn // the lead-in in force; Group "" when none
	unknown    string // the unknown lead-in in force, if any
	os         string
	inLicenses bool
	taken      bool // the list under cur has had a host

	licenses     []rules.LicenseFile
	order        []string
	hosts        map[string]*seenHost
	groupPorts   map[string][]int
	extraGroups  []rules.GroupFile // one per unknown lead-in
	unclassified []Unclassified
}

func newPageReader(path string, opts Options) *pageReader {
	l := opts.Layout
	if l == nil {
		l = DefaultLayout()
	}
	return &pageReader{path: path, layout: l, strict: opts.Strict,
		hosts: map[string]*seenHost{}, groupPorts: map[string][]int{}}
}

// line reads one line of the page.
func (r *pageReader) line(n int, raw string) error {
	text := strings.TrimSuffix(strings.TrimPrefix(raw, "\ufeff"), "\r")
	trimmed := strings.TrimSpace(text)
	if m, ok := r.layout.match(pageStepRE.ReplaceAllString(trimmed, "")); ok {
		r.enter(m)
		return nil
	}
	if r.inLicenses {
		if r.license(n, trimmed) {
			return nil
		}
		if trimmed != "" {
			r.inLicenses = false
		}
	}
	if r.cur.Group != "" && strings.Contains(trimmed, "Port:") {
		if pm := pagePortRE.FindStringSubmatch(trimmed); pm != nil {
			r.groupPorts[r.cur.Group] = append(r.groupPorts[r.cur.Group], atoiBounded(pm[1]))
			return nil
		}
	}
	if !pageAnyBullet.MatchString(trimmed) {
		r.prose(text, trimmed)
		return nil
	}
	bm := pageBulletRE.FindStringSubmatch(trimmed)
	if bm == nil {
		return nil
	}
	host := strings.ToLower(bm[1])
	if !pageHostRE.MatchString(host) {
		return nil
	}
	return r.host(n, host)
}

// enter starts what a known lead-in starts.
func (r *pageReader) enter(m LeadIn) {
	r.cur, r.unknown, r.taken = m, "", false
	r.inLicenses = m.Licenses
	switch m.OS {
	case "":
	case "any":
		r.os = ""
	default:
		r.os = m.OS
	}
}

// license reads a bullet of the licence list; false when the line is
// not one.
func (r *pageReader) license(n int, trimmed string) bool {
	lm := pageLicenseRE.FindStringSubmatch(trimmed)
	if lm == nil {
		return false
	}
	name := lm[1]
	id := r.layout.Licenses[name]
	if id == "" {
		id = slugID(name, 60)
	}
	if !slices.ContainsFunc(r.licenses, func(l rules.LicenseFile) bool { return l.ID == id }) {
		r.licenses = append(r.licenses, rules.LicenseFile{ID: id, Name: name, Line: n})
	}
	return true
}

// prose reads a line that is neither a known lead-in nor a bullet. A
// heading (a short line at the margin, without closing punctuation) the
// layout does not know starts an unknown section; so does a sentence
// ending in ':' once the list before it has had its hosts. Any other
// line keeps the lead-in in force: the page often explains a list
// between its lead-in and its bullets.
func (r *pageReader) prose(text, trimmed string) {
	if trimmed == "" {
		return
	}
	lead := pageStepRE.ReplaceAllString(trimmed, "")
	switch {
	case isHeading(text):
		r.os = ""
	case strings.HasSuffix(lead, ":") && (r.taken || r.cur.Group == ""):
	default:
		return
	}
	r.cur, r.unknown, r.taken, r.inLicenses = LeadIn{}, lead, false, false
}

// isHeading reports whether a line of the page reads as a heading: at the
// margin, short, capitalised, and not a sentence.
func isHeading(text string) bool {
	if text == "" || text[0] == ' ' || text[0] == '\t' || len(text) > 80 {
		return false
	}
	if text[0] < 'A' || text[0] > 'Z' {
		return false
	}
	return !strings.ContainsAny(text[len(text)-1:], ".:,;!?")
}

// host records a bulleted host under the lead-in in force.
func (r *pageReader) host(n int, host string) error {
	group := r.cur.Group
	if group == "" {
		var err error
		if group, err = r.unclassifiedGroup(n, host); err != nil {
			return err
		}
	}
	r.taken = true
	e := r.hosts[host]
	if e == nil {
		e = &seenHost{line: n}
		r.hosts[host] = e
		r.order = append(r.order, host)
	}
	if !slices.Contains(e.groups, group) {
		e.groups = append(e.groups, group)
	}
	if r.os != "" && !slices.Contains(e.os, r.os) {
		e.os = append(e.os, r.os)
	}
	switch r.cur.Installer {
	case "first":
		e.first = true
	case "second":
		e.second = true
	}
	return nil
}

// unclassifiedGroup returns the group for a host under no known lead-in,
// making it on first use, or the strict mode's error.
func (r *pageReader) unclassifiedGroup(n int, host string) (string, error) {
	lead := r.unknown
	if r.strict || lead == "" {
		return "", rules.Pos{File: r.path, Line: n}.Errorf("%q is listed under no lead-in the importer knows; the page's layout has changed: teach the importer the lead-in above it with --layout FILE (docs/catalog-upkeep.md)", host)
	}
	id := "unclassified-" + slugID(lead, 48)
	if !slices.ContainsFunc(r.extraGroups, func(g rules.GroupFile) bool { return g.ID == id }) {
		r.extraGroups = append(r.extraGroups, rules.GroupFile{ID: id, Section: UnclassifiedSection, Title: lead, Line: 1,
			Notes: []string{fmt.Sprintf("Listed under %q (page line %d), a lead-in the importer does not know: check it, then teach the importer with --layout FILE.", lead, n)}})
	}
	r.unclassified = append(r.unclassified, Unclassified{Host: host, LeadIn: lead, Line: n, Group: id})
	return id, nil
}

// catalogFile writes what was read in the catalog schema.
func (r *pageReader) catalogFile() rules.CatalogFile {
	l := r.layout
	f := rules.CatalogFile{Catalog: l.Catalog, Title: l.Title, Source: l.Source, Licenses: r.licenses}
	for i, s := range l.Sections {
		if i == 0 {
			// The page's licence list is for its first product.
			s.Licenses = nil
			for _, lic := range r.licenses {
				s.Licenses = append(s.Licenses, lic.ID)
			}
		}
		f.Sections = append(f.Sections, s)
	}
	if len(r.extraGroups) > 0 {
		f.Sections = append(f.Sections, rules.SectionFile{ID: UnclassifiedSection, Optional: true,
			Title: "Listed under lead-ins the importer does not know"})
	}
	for _, g := range slices.Concat(l.Groups, r.extraGroups) {
		f.Groups = append(f.Groups, r.groupFile(g))
	}
	for _, host := range r.order {
		f.Entries = append(f.Entries, r.entryFile(host, f.Groups))
	}
	return f
}

// groupFile completes a layout group with what the page says of it.
func (r *pageReader) groupFile(g rules.GroupFile) rules.GroupFile {
	if ps := r.groupPorts[g.ID]; len(ps) > 0 {
		g.Ports = ps
	}
	if g.ID == "xdr-mdr" {
		// "Allow these domains if your license includes XDR or MDR."
		g.Licenses = nil
		for _, l := range r.licenses {
			if strings.Contains(l.Name, "XDR") || strings.HasPrefix(l.Name, "Managed Detection and Response") {
				g.Licenses = append(g.Licenses, l.ID)
			}
		}
	}
	g.Line = 1
	return g
}

// entryFile writes one host as a catalog entry.
func (r *pageReader) entryFile(host string, groups []rules.GroupFile) rules.EntryFile {
	e := r.hosts[host]
	ef := rules.EntryFile{Pattern: host, Line: e.line}
	// Groups in catalog order, so the file reads like the page.
	for _, g := range groups {
		if slices.Contains(e.groups, g.ID) {
			ef.Groups = append(ef.Groups, g.ID)
		}
	}
	for _, o := range rules.AllOS() {
		if slices.Contains(e.os, o) {
			ef.OS = append(ef.OS, o)
		}
	}
	if m := pageRegionRE.FindStringSubmatch(host); m != nil {
		ef.Region = m[1]
	}
	// The page lists Live Response's terminal hosts among the XDR and
	// MDR hosts without marking them; their name does. Unmarked, an
	// imported catalog would admit them with Live Response off.
	ef.LiveResponse = strings.HasPrefix(host, "live-terminal")
	switch {
	case (e.first || e.second) && len(ef.Groups) > 1:
		ef.Notes = []string{noteInstallerAlso}
	case e.second || e.first:
		ef.Example = true
		ef.Notes = []string{noteInstallerExample}
	}
	return ef
}

// slugID makes a catalog ID of at most max bytes from a name: lower case
// words joined by '-'.
func slugID(name string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
		if b.Len() >= max {
			break
		}
	}
	if b.Len() == 0 {
		return "license"
	}
	return b.String()
}

// atoiBounded parses up to five digits; a value out of range is left for
// checkPorts to refuse.
func atoiBounded(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
