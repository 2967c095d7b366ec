package rules

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FormatYAML writes a catalog in the YAML schema, after header as "# "
// comment lines. ParseYAML of the output gives back the same catalog.
func FormatYAML(c *Catalog, header string) ([]byte, error) {
	var buf bytes.Buffer
	for _, line := range splitLines(header) {
		fmt.Fprintf(&buf, "# %s\n", line)
	}
	if err := EncodeYAML(&buf, FileOf(c)); err != nil {
		return nil, fmt.Errorf("writing catalog %s as YAML: %w", c.Name, err)
	}
	return buf.Bytes(), nil
}

// EncodeYAML writes f as one YAML document, indented by two.
func EncodeYAML(w io.Writer, f CatalogFile) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	return enc.Close()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// FileOf returns the catalog in the YAML schema, the inverse of Build: an
// entry's ports and licenses are given only where they differ from what
// its groups give, so building the result gives back the same catalog.
func FileOf(c *Catalog) CatalogFile {
	out := CatalogFile{Catalog: c.Name, Title: c.Title, Source: c.Source}
	for _, l := range c.Licenses {
		out.Licenses = append(out.Licenses, LicenseFile{ID: l.ID, Name: l.Name})
	}
	for _, s := range c.Sections {
		out.Sections = append(out.Sections, SectionFile{ID: s.ID, Title: s.Title, Optional: s.Optional,
			Licenses: s.Licenses, NeedsWildcards: s.NeedsWildcards, Notes: s.Notes})
	}
	for _, g := range c.Groups {
		og := GroupFile{ID: g.ID, Title: g.Title, Optional: g.Optional, Ports: intPorts(g.Ports), Licenses: g.Licenses, Notes: g.Notes}
		if g.Section != nil {
			og.Section = g.Section.ID
		}
		out.Groups = append(out.Groups, og)
	}
	for _, e := range c.Entries {
		out.Entries = append(out.Entries, EntryFileOf(e))
	}
	return out
}

// EntryFileOf writes one entry as the schema has it, with the ports and
// licences it inherits from its groups left out.
func EntryFileOf(e *Entry) EntryFile {
	pattern := e.Pattern
	if e.Kind == KindCIDR && e.Prefix.IsSingleIP() {
		pattern = e.Prefix.Addr().String()
	}
	oe := EntryFile{Pattern: pattern, Groups: e.GroupIDs(), OS: e.OS, Region: e.Region, Example: e.Example,
		LiveResponse: e.LiveResponse, Notes: e.Notes}
	if !slices.Equal(e.Ports, entryPortsFromGroups(e.Groups)) {
		oe.Ports = intPorts(e.Ports)
	}
	if !slices.Equal(e.Licenses, entryLicensesFromGroups(e.Groups)) {
		oe.Licenses = e.Licenses
	}
	return oe
}

func intPorts(ps []uint16) []int {
	if len(ps) == 0 {
		return nil
	}
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = int(p)
	}
	return out
}
