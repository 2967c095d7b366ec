package export

import (
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
)

// WriteYAML writes the estate's entries in the catalog schema, one YAML
// document per catalog, so that each loads back as a catalog: a config
// that names it (with embedded: [] when it replaces the embedded catalog)
// and keeps the same policy admits exactly what this one admits. Every
// section and group is kept, entries are those in force with their ports
// and licences written out, and what the schema cannot hold (the policy's
// mode, the estate, why an entry is refused) is written as comments.
func WriteYAML(w io.Writer, v *View) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, c := range v.Ruleset.Catalogs {
		node, err := v.catalogNode(c)
		if err != nil {
			return fmt.Errorf("writing catalog %s as YAML: %w", c.Name, err)
		}
		if err := enc.Encode(node); err != nil {
			return fmt.Errorf("writing catalog %s as YAML: %w", c.Name, err)
		}
	}
	return enc.Close()
}

// catalogNode returns catalog c, with the view's entries of it, as a YAML
// node carrying the comments.
func (v *View) catalogNode(c *rules.Catalog) (*yaml.Node, error) {
	f := rules.FileOf(&rules.Catalog{Name: c.Name, Title: c.Title, Source: c.Source,
		Licenses: c.Licenses, Sections: c.Sections, Groups: c.Groups})
	var refused []string
	for _, e := range v.Entries {
		if e.Catalog != c.Name {
			continue
		}
		ef := rules.EntryFileOf(e.Rule)
		ef.Ports = intPorts(e.Ports)
		ef.Licenses = e.Rule.Licenses
		f.Entries = append(f.Entries, ef)
		refused = append(refused, e.Refused)
	}
	var node yaml.Node
	if err := node.Encode(f); err != nil {
		return nil, err
	}
	node.HeadComment = strings.Join(append(v.header(), v.policyNote(c)...), "\n")
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value != "entries" {
			continue
		}
		for j, en := range node.Content[i+1].Content {
			if j < len(refused) && refused[j] != "" {
				en.HeadComment = "refused under this policy: " + refused[j]
			}
		}
	}
	return &node, nil
}

// policyNote says, as comments, what of the policy the file cannot hold.
func (v *View) policyNote(c *rules.Catalog) []string {
	var on []string
	for _, g := range v.Estate.Enabled {
		if containsGroup(c.Groups, g) {
			on = append(on, g.ID)
		}
	}
	return []string{
		"mode " + v.Estate.Policy.Mode + "; groups on: " + strings.Join(on, ", "),
		"The policy is the config's, not this file's: load it with the same policy",
		"(mode, os, enable, licences, regions, Live Response) to admit the same.",
	}
}

func intPorts(ps []uint16) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = int(p)
	}
	return out
}

func containsGroup(gs []*rules.Group, g *rules.Group) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}
