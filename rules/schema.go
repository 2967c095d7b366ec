package rules

import "go.yaml.in/yaml/v3"

// CatalogFile is the catalog's YAML schema: the documented keys of
// docs/catalog.md, as ParseYAML reads them and as FileOf writes them. It
// is declared once, here; importers build one and hand it to Build, and
// exporters encode one. Lists are written in flow style and empty fields
// left out, so an encoded file reads like a hand-written catalog.
type CatalogFile struct {
	Catalog  string        `yaml:"catalog"`
	Title    string        `yaml:"title,omitempty"`
	Source   string        `yaml:"source,omitempty"`
	Licenses []LicenseFile `yaml:"licenses,omitempty"`
	Sections []SectionFile `yaml:"sections,omitempty"`
	Groups   []GroupFile   `yaml:"groups,omitempty"`
	Entries  []EntryFile   `yaml:"entries"`
}

// LicenseFile is one item of a catalog's licenses list.
type LicenseFile struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name,omitempty"`
	Line int    `yaml:"-"` // where it was read; errors name it
}

// SectionFile is one item of a catalog's sections list.
type SectionFile struct {
	ID             string   `yaml:"id"`
	Title          string   `yaml:"title,omitempty"`
	Optional       bool     `yaml:"optional,omitempty"`
	Licenses       []string `yaml:"licenses,flow,omitempty"`
	NeedsWildcards string   `yaml:"needs_wildcards,omitempty"`
	Notes          []string `yaml:"notes,omitempty"`
	Line           int      `yaml:"-"`
}

// GroupFile is one item of a catalog's groups list.
type GroupFile struct {
	ID       string   `yaml:"id"`
	Section  string   `yaml:"section,omitempty"`
	Title    string   `yaml:"title,omitempty"`
	Optional bool     `yaml:"optional,omitempty"`
	Ports    []int    `yaml:"ports,flow,omitempty"`
	Licenses []string `yaml:"licenses,flow,omitempty"`
	Notes    []string `yaml:"notes,omitempty"`
	Line     int      `yaml:"-"`
}

// EntryFile is one item of a catalog's entries list. Ports and Licenses
// left empty are inherited from the entry's groups.
type EntryFile struct {
	Pattern  string   `yaml:"pattern"`
	Groups   []string `yaml:"groups,flow,omitempty"`
	OS       []string `yaml:"os,flow,omitempty"`
	Ports    []int    `yaml:"ports,flow,omitempty"`
	Licenses []string `yaml:"licenses,flow,omitempty"`
	Region   string   `yaml:"region,omitempty"`
	Example  bool     `yaml:"example,omitempty"`
	// LiveResponse marks a host of Live Response, admitted only where it
	// is on and never from an excluded device.
	LiveResponse bool     `yaml:"live_response,omitempty"`
	Notes        []string `yaml:"notes,omitempty"`
	Line         int      `yaml:"-"`
	// lines of individual fields, for errors that name one
	fieldLine map[string]int
}

// UnmarshalYAML decodes a license, rejecting unknown keys.
func (l *LicenseFile) UnmarshalYAML(n *yaml.Node) error {
	_, err := decodeStrict(n, l, "license")
	l.Line = n.Line
	return err
}

// UnmarshalYAML decodes a section, rejecting unknown keys.
func (s *SectionFile) UnmarshalYAML(n *yaml.Node) error {
	_, err := decodeStrict(n, s, "section")
	s.Line = n.Line
	return err
}

// UnmarshalYAML decodes a group, rejecting unknown keys.
func (g *GroupFile) UnmarshalYAML(n *yaml.Node) error {
	_, err := decodeStrict(n, g, "group")
	g.Line = n.Line
	return err
}

// UnmarshalYAML decodes an entry, a mapping or a bare pattern, rejecting
// unknown keys.
func (e *EntryFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode { // "- central.sophos.com" is short for "- pattern: ..."
		e.Line = n.Line
		e.Pattern = n.Value
		return nil
	}
	lines, err := decodeStrict(n, e, "entry")
	e.Line = n.Line
	e.fieldLine = lines
	return err
}

// lineOf returns the line of field in the entry, or the entry's own line.
func (e *EntryFile) lineOf(field string) int {
	if l := e.fieldLine[field]; l != 0 {
		return l
	}
	return e.Line
}
