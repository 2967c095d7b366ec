package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size limits on what a catalog may hold, so a file cannot exhaust memory.
const (
	maxCatalogBytes   = 64 << 20
	maxCatalogEntries = 1_000_000
)

// defaultPorts apply to an entry whose groups name none.
var defaultPorts = []uint16{443}

// decodeStrict decodes a mapping node into out (a pointer to a struct),
// rejecting keys that out has no field for. yaml.v3 does not carry
// KnownFields into custom unmarshalers, so the check is done here. It
// returns the line of each key.
func decodeStrict(n *yaml.Node, out any, what string) (map[string]int, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s must be a mapping", n.Line, what)}}
	}
	known := yamlKeys(reflect.TypeOf(out).Elem())
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return nil, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: unknown field %q in %s (known: %s)", k.Line, k.Value, what, strings.Join(known, ", "))}}
		}
		if _, dup := lines[k.Value]; dup {
			return nil, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %q repeated in %s", k.Line, k.Value, what)}}
		}
		lines[k.Value] = k.Line
	}
	// Decode into a copy of the type without its UnmarshalYAML method.
	v := reflect.New(reflect.StructOf(exportedFields(reflect.TypeOf(out).Elem())))
	if err := n.Decode(v.Interface()); err != nil {
		return nil, err
	}
	copyExported(reflect.ValueOf(out).Elem(), v.Elem())
	return lines, nil
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
			keys = append(keys, strings.Split(tag, ",")[0])
		}
	}
	return keys
}

func exportedFields(t reflect.Type) []reflect.StructField {
	var fs []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() {
			fs = append(fs, f)
		}
	}
	return fs
}

func copyExported(dst, src reflect.Value) {
	for i, j := 0, 0; i < dst.NumField(); i++ {
		if dst.Type().Field(i).IsExported() {
			dst.Field(i).Set(src.Field(j))
			j++
		}
	}
}

var (
	yamlLineRE    = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownRE = regexp.MustCompile(`^field (\S+) not found in type rules\.(\w+)$`)
)

// yamlTypeNames says where a struct sits in the files, for messages.
var yamlTypeNames = map[string]string{
	"Config": "the config", "Policy": "policy", "Listeners": "listeners", "CatalogRef": "catalogs",
	"CatalogFile": "the catalog",
}

// yamlMessage rewrites yaml.v3's wording for unknown keys.
func yamlMessage(msg string) string {
	if m := yamlUnknownRE.FindStringSubmatch(msg); m != nil {
		where := yamlTypeNames[m[2]]
		if where == "" {
			where = m[2]
		}
		return fmt.Sprintf("unknown field %q in %s", m[1], where)
	}
	return msg
}

// yamlError turns a yaml.v3 error into "path:line: message" errors.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, s := range te.Errors {
			if m := yamlLineRE.FindStringSubmatch(s); m != nil {
				line, _ := strconv.Atoi(m[1])
				errs = append(errs, Pos{path, line}.Errorf("%s", yamlMessage(m[2])))
			} else {
				errs = append(errs, Pos{File: path}.Errorf("%s", s))
			}
		}
		return errors.Join(errs...)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Pos{path, line}.Errorf("%s", m[2])
	}
	return Pos{File: path}.Errorf("%s", msg)
}

// Parse parses a catalog file. A file whose first non-comment line is a YAML
// key ("catalog:" or "entries:") is read as YAML; anything else as a plain
// list (see ParseList). name is used when the file does not name itself.
func Parse(path string, data []byte) (*Catalog, error) {
	if len(data) > maxCatalogBytes {
		return nil, Pos{File: path}.Errorf("catalog is %d bytes, more than the limit of %d", len(data), maxCatalogBytes)
	}
	if isYAMLCatalog(data) {
		return ParseYAML(path, data)
	}
	return ParseList(path, defaultCatalogName(path), data)
}

func isYAMLCatalog(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		for _, k := range []string{"catalog:", "title:", "source:", "licenses:", "sections:", "groups:", "entries:"} {
			if strings.HasPrefix(line, k) {
				return true
			}
		}
		return false
	}
	return false
}

func defaultCatalogName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// ParseYAML parses a catalog in the YAML schema.
func ParseYAML(path string, data []byte) (*Catalog, error) {
	var f CatalogFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if err.Error() == "EOF" {
			return nil, Pos{File: path}.Errorf("catalog is empty")
		}
		return nil, yamlError(path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, Pos{File: path, Line: more.Line}.Errorf("a second YAML document: a catalog file holds one catalog; save each catalog in a file of its own")
	}
	if f.Catalog == "" {
		f.Catalog = defaultCatalogName(path)
	}
	return f.Build(path)
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Build checks a catalog in the YAML schema and builds it; path is where
// it came from, for errors and Catalog.Path.
func (f *CatalogFile) Build(path string) (*Catalog, error) {
	b := &builder{path: path, licenses: map[string]bool{}, sections: map[string]*Section{}, groups: map[string]*Group{}}
	if !idRE.MatchString(f.Catalog) {
		return nil, b.at(1).Errorf("catalog: name %q must be lower case letters, digits, '.', '_' or '-'", f.Catalog)
	}
	if len(f.Entries) > maxCatalogEntries {
		return nil, b.at(1).Errorf("entries: %d entries, more than the limit of %d", len(f.Entries), maxCatalogEntries)
	}
	c := &Catalog{Name: f.Catalog, Title: f.Title, Source: f.Source, Path: path}
	for _, l := range f.Licenses {
		lic, err := b.license(l)
		if err != nil {
			return nil, err
		}
		c.Licenses = append(c.Licenses, lic)
	}
	for _, s := range f.Sections {
		sec, err := b.section(s)
		if err != nil {
			return nil, err
		}
		c.Sections = append(c.Sections, sec)
	}
	for _, g := range f.Groups {
		grp, err := b.group(g)
		if err != nil {
			return nil, err
		}
		c.Groups = append(c.Groups, grp)
	}
	seen := map[string]int{}
	for i := range f.Entries {
		e, err := b.entry(&f.Entries[i], c.Name, seen)
		if err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, e)
	}
	return c, nil
}

// builder holds what Build has defined so far, for the references that
// follow to be checked against.
type builder struct {
	path     string
	licenses map[string]bool
	sections map[string]*Section
	groups   map[string]*Group
}

func (b *builder) at(line int) Pos { return Pos{b.path, line} }

func (b *builder) license(l LicenseFile) (License, error) {
	if !idRE.MatchString(l.ID) {
		return License{}, b.at(l.Line).Errorf("licenses: id %q must be lower case letters, digits, '.', '_' or '-'", l.ID)
	}
	if b.licenses[l.ID] {
		return License{}, b.at(l.Line).Errorf("licenses: id %q defined twice", l.ID)
	}
	b.licenses[l.ID] = true
	return License{ID: l.ID, Name: l.Name}, nil
}

// checkLicenses reports a licence ID the catalog does not define.
func (b *builder) checkLicenses(line int, ids []string) error {
	for _, id := range ids {
		if !b.licenses[id] {
			return b.at(line).Errorf("licenses: %q is not in the catalog's licenses list", id)
		}
	}
	return nil
}

func (b *builder) section(s SectionFile) (*Section, error) {
	if !idRE.MatchString(s.ID) {
		return nil, b.at(s.Line).Errorf("sections: id %q must be lower case letters, digits, '.', '_' or '-'", s.ID)
	}
	if b.sections[s.ID] != nil {
		return nil, b.at(s.Line).Errorf("sections: id %q defined twice", s.ID)
	}
	if err := b.checkLicenses(s.Line, s.Licenses); err != nil {
		return nil, err
	}
	sec := &Section{ID: s.ID, Title: s.Title, Optional: s.Optional, Licenses: s.Licenses,
		NeedsWildcards: s.NeedsWildcards, Notes: s.Notes, Pos: b.at(s.Line)}
	b.sections[s.ID] = sec
	return sec, nil
}

func (b *builder) group(g GroupFile) (*Group, error) {
	if !idRE.MatchString(g.ID) {
		return nil, b.at(g.Line).Errorf("groups: id %q must be lower case letters, digits, '.', '_' or '-'", g.ID)
	}
	if b.groups[g.ID] != nil || b.sections[g.ID] != nil {
		return nil, b.at(g.Line).Errorf("groups: id %q defined twice (group and section IDs share one name space)", g.ID)
	}
	ports, err := checkPorts(b.at(g.Line), g.Ports)
	if err != nil {
		return nil, err
	}
	if err := b.checkLicenses(g.Line, g.Licenses); err != nil {
		return nil, err
	}
	grp := &Group{ID: g.ID, Title: g.Title, Optional: g.Optional, Ports: ports,
		Licenses: g.Licenses, Notes: g.Notes, Pos: b.at(g.Line)}
	if g.Section != "" {
		if grp.Section = b.sections[g.Section]; grp.Section == nil {
			return nil, b.at(g.Line).Errorf("section: %q is not defined in sections", g.Section)
		}
	}
	b.groups[g.ID] = grp
	return grp, nil
}

// entry builds one entry; seen maps the patterns before it to their lines.
func (b *builder) entry(ef *EntryFile, catalog string, seen map[string]int) (*Entry, error) {
	pos := b.at(ef.Line)
	if ef.Pattern == "" {
		return nil, pos.Errorf("pattern: missing")
	}
	pattern, kind, pfx, err := classifyPattern(ef.Pattern)
	if err != nil {
		return nil, b.at(ef.lineOf("pattern")).Errorf("pattern: %w", err)
	}
	if prev, dup := seen[pattern]; dup {
		return nil, b.at(ef.lineOf("pattern")).Errorf("pattern: %q already listed at line %d; list its groups and OSes on one entry", pattern, prev)
	}
	seen[pattern] = ef.Line
	e := &Entry{Pattern: pattern, Kind: kind, Prefix: pfx, Catalog: catalog, Region: ef.Region,
		Example: ef.Example, LiveResponse: ef.LiveResponse, Notes: ef.Notes, Pos: pos}
	for _, id := range ef.Groups {
		g := b.groups[id]
		if g == nil {
			return nil, b.at(ef.lineOf("groups")).Errorf("groups: %q is not defined in groups", id)
		}
		if !slices.Contains(e.Groups, g) {
			e.Groups = append(e.Groups, g)
		}
	}
	for _, o := range ef.OS {
		if !slices.Contains(AllOS(), o) {
			return nil, b.at(ef.lineOf("os")).Errorf("os: %q is not one of %s", o, strings.Join(AllOS(), ", "))
		}
		if !slices.Contains(e.OS, o) {
			e.OS = append(e.OS, o)
		}
	}
	if e.Ports, err = checkPorts(b.at(ef.lineOf("ports")), ef.Ports); err != nil {
		return nil, err
	}
	if len(e.Ports) == 0 {
		e.Ports = entryPortsFromGroups(e.Groups)
	}
	if err := b.checkLicenses(ef.lineOf("licenses"), ef.Licenses); err != nil {
		return nil, err
	}
	e.Licenses = ef.Licenses
	if len(e.Licenses) == 0 {
		e.Licenses = entryLicensesFromGroups(e.Groups)
	}
	return e, nil
}

func checkPorts(pos Pos, in []int) ([]uint16, error) {
	var out []uint16
	for _, p := range in {
		if p < 1 || p > 65535 {
			return nil, pos.Errorf("ports: %d is not a TCP port (1-65535)", p)
		}
		if !slices.Contains(out, uint16(p)) {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}

func entryPortsFromGroups(groups []*Group) []uint16 {
	var out []uint16
	for _, g := range groups {
		for _, p := range g.Ports {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return slices.Clone(defaultPorts)
	}
	slices.Sort(out)
	return out
}

func entryLicensesFromGroups(groups []*Group) []string {
	var out []string
	for _, g := range groups {
		ls := g.Licenses
		if len(ls) == 0 && g.Section != nil {
			ls = g.Section.Licenses
		}
		for _, l := range ls {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// ParseList parses a plain list: one pattern per line, optionally followed
// by ":PORT" or ":PORT,PORT", with '#' starting a comment. Every entry goes
// into one group named after the catalog. This is the format to paste a
// vendor's list into.
func ParseList(path, name string, data []byte) (*Catalog, error) {
	f := CatalogFile{Catalog: name, Groups: []GroupFile{{ID: name, Title: "entries of " + filepath.Base(path), Line: 1}}}
	if !idRE.MatchString(name) {
		return nil, Pos{File: path}.Errorf("catalog name %q (from the file name) must be lower case letters, digits, '.', '_' or '-'", name)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if strings.ContainsAny(text, " \t") {
			return nil, Pos{path, line}.Errorf("pattern: %q has spaces; write one pattern per line", text)
		}
		pattern, ports, err := splitListPorts(text)
		if err != nil {
			return nil, Pos{path, line}.Errorf("%w", err)
		}
		f.Entries = append(f.Entries, EntryFile{Pattern: pattern, Groups: []string{name}, Ports: ports, Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, Pos{File: path}.Errorf("reading: %w", err)
	}
	return f.Build(path)
}

// splitListPorts splits "host:443,80", "[2001:db8::1]:443" or
// "10.0.0.0/8:443" into pattern and ports. A bare IPv6 address or prefix
// has no port.
func splitListPorts(s string) (string, []int, error) {
	host, portList := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", nil, fmt.Errorf("pattern: %q has '[' without ']'", s)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return "", nil, fmt.Errorf("pattern: unexpected %q after ']'", rest)
			}
			portList = rest[1:]
		}
	case strings.Count(s, ":") == 1:
		host, portList, _ = strings.Cut(s, ":")
	}
	if portList == "" {
		if strings.HasSuffix(s, ":") {
			return "", nil, fmt.Errorf("ports: empty port after ':' in %q", s)
		}
		return host, nil, nil
	}
	var ports []int
	for _, ps := range strings.Split(portList, ",") {
		p, err := strconv.Atoi(ps)
		if err != nil {
			return "", nil, fmt.Errorf("ports: %q in %q is not a number", ps, s)
		}
		ports = append(ports, p)
	}
	return host, ports, nil
}
