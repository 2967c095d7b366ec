package upkeep

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
)

// Layout is how the importer reads the vendor page: which lead-in starts
// which group, and egressgate's names for the page's parts. It is data
// (layout.yaml, embedded; --layout FILE replaces it), so a lead-in the
// vendor adds is taught without a new build.
type Layout struct {
	Catalog  string              `yaml:"catalog"`
	Title    string              `yaml:"title"`
	Source   string              `yaml:"source"`
	LeadIns  []LeadIn            `yaml:"lead_ins"`
	Licenses map[string]string   `yaml:"licenses"` // page name -> ID
	Sections []rules.SectionFile `yaml:"sections"`
	Groups   []rules.GroupFile   `yaml:"groups"`
}

// LeadIn is a heading or sentence of the page and what it starts.
type LeadIn struct {
	Text  string `yaml:"text"`  // the trimmed line, without a step number, contains it
	Exact bool   `yaml:"exact"` // the line is exactly Text
	Group string `yaml:"group"` // the group its bullets go to; "" for none
	// OS is windows, macos or linux for the hosts below it, "any" to
	// clear it, "" to keep the current one.
	OS       string `yaml:"os"`
	Licenses bool   `yaml:"licenses"` // the bullets below name licences
	// Installer is "first" or "second" for the installer log's example
	// lists; the second's bullets are examples only.
	Installer string `yaml:"installer"`
}

//go:embed layout.yaml
var defaultLayout []byte

// DefaultLayout returns the layout egressgate is built with.
func DefaultLayout() *Layout {
	l, err := ParseLayout("embedded:layout.yaml", defaultLayout)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return l
}

// DefaultLayoutYAML returns the embedded layout file, to copy and edit.
func DefaultLayoutYAML() []byte { return slices.Clone(defaultLayout) }

// ParseLayout reads a layout file, rejecting unknown keys and lead-ins
// that name an undefined group or OS.
func ParseLayout(path string, data []byte) (*Layout, error) {
	var l Layout
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: layout is empty", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Catalog == "" {
		l.Catalog = rules.DefaultCatalog
	}
	groups := map[string]bool{}
	for _, g := range l.Groups {
		groups[g.ID] = true
	}
	for i, m := range l.LeadIns {
		switch {
		case m.Text == "":
			return nil, fmt.Errorf("%s: lead_ins[%d]: text is empty", path, i)
		case m.Group != "" && !groups[m.Group]:
			return nil, fmt.Errorf("%s: lead_ins[%d] (%q): group %q is not in groups", path, i, m.Text, m.Group)
		case m.OS != "" && m.OS != "any" && !slices.Contains(rules.AllOS(), m.OS):
			return nil, fmt.Errorf("%s: lead_ins[%d] (%q): os %q is not windows, macos, linux or any", path, i, m.Text, m.OS)
		case m.Installer != "" && m.Installer != "first" && m.Installer != "second":
			return nil, fmt.Errorf("%s: lead_ins[%d] (%q): installer %q is not first or second", path, i, m.Text, m.Installer)
		}
	}
	return &l, nil
}

// match returns the lead-in line is, if any.
func (l *Layout) match(line string) (LeadIn, bool) {
	for _, m := range l.LeadIns {
		if m.Exact && line == m.Text || !m.Exact && strings.Contains(line, m.Text) {
			return m, true
		}
	}
	return LeadIn{}, false
}
