package rules

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML schema again, for writing: flow lists, and empty fields left
// out, so the output reads like a hand-written catalog.
type (
	catalogOut struct {
		Catalog  string       `yaml:"catalog"`
		Title    string       `yaml:"title,omitempty"`
		Source   string       `yaml:"source,omitempty"`
		Licenses []licenseOut `yaml:"licenses,omitempty"`
		Sections []sectionOut `yaml:"sections,omitempty"`
		Groups   []groupOut   `yaml:"groups,omitempty"`
		Entries  []entryOut   `yaml:"entries"`
	}
	licenseOut struct {
		ID   string `yaml:"id"`
		Name string `yaml:"name,omitempty"`
	}
	sectionOut struct {
		ID             string   `yaml:"id"`
		Title          string   `yaml:"title,omitempty"`
		Optional       bool     `yaml:"optional,omitempty"`
		Licenses       []string `yaml:"licenses,flow,omitempty"`
		NeedsWildcards string   `yaml:"needs_wildcards,omitempty"`
		Notes          []string `yaml:"notes,omitempty"`
	}
	groupOut struct {
		ID       string   `yaml:"id"`
		Section  string   `yaml:"section,omitempty"`
		Title    string   `yaml:"title,omitempty"`
		Optional bool     `yaml:"optional,omitempty"`
		Ports    []uint16 `yaml:"ports,flow,omitempty"`
		Licenses []string `yaml:"licenses,flow,omitempty"`
		Notes    []string `yaml:"notes,omitempty"`
	}
	entryOut struct {
		Pattern  string   `yaml:"pattern"`
		Groups   []string `yaml:"groups,flow,omitempty"`
		OS       []string `yaml:"os,flow,omitempty"`
		Ports    []uint16 `yaml:"ports,flow,omitempty"`
		Licenses []string `yaml:"licenses,flow,omitempty"`
		Region   string   `yaml:"region,omitempty"`
		Example  bool     `yaml:"example,omitempty"`
		// LiveResponse keeps a Live Response host gated on Live Response.
		LiveResponse bool     `yaml:"live_response,omitempty"`
		Notes        []string `yaml:"notes,omitempty"`
	}
)

// FormatYAML writes a catalog in the YAML schema. An entry's ports and
// licenses are written only where they differ from what its groups give,
// so ParseYAML of the output gives back the same catalog.
func FormatYAML(c *Catalog, header string) ([]byte, error) {
	out := catalogOut{Catalog: c.Name, Title: c.Title, Source: c.Source}
	for _, l := range c.Licenses {
		out.Licenses = append(out.Licenses, licenseOut(l))
	}
	for _, s := range c.Sections {
		out.Sections = append(out.Sections, sectionOut{ID: s.ID, Title: s.Title, Optional: s.Optional,
			Licenses: s.Licenses, NeedsWildcards: s.NeedsWildcards, Notes: s.Notes})
	}
	for _, g := range c.Groups {
		og := groupOut{ID: g.ID, Title: g.Title, Optional: g.Optional, Ports: g.Ports, Licenses: g.Licenses, Notes: g.Notes}
		if g.Section != nil {
			og.Section = g.Section.ID
		}
		out.Groups = append(out.Groups, og)
	}
	for _, e := range c.Entries {
		pattern := e.Pattern
		if e.Kind == KindCIDR && e.Prefix.IsSingleIP() {
			pattern = e.Prefix.Addr().String()
		}
		oe := entryOut{Pattern: pattern, Groups: e.GroupIDs(), OS: e.OS, Region: e.Region, Example: e.Example,
			LiveResponse: e.LiveResponse, Notes: e.Notes}
		if !slices.Equal(e.Ports, entryPortsFromGroups(e.Groups)) {
			oe.Ports = e.Ports
		}
		if !slices.Equal(e.Licenses, entryLicensesFromGroups(e.Groups)) {
			oe.Licenses = e.Licenses
		}
		out.Entries = append(out.Entries, oe)
	}
	var buf bytes.Buffer
	for _, line := range splitLines(header) {
		fmt.Fprintf(&buf, "# %s\n", line)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("writing catalog %s as YAML: %w", c.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing catalog %s as YAML: %w", c.Name, err)
	}
	return buf.Bytes(), nil
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}
