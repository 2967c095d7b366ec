package export

import (
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
)

// WriteYAML writes the effective entries, one document per catalog, with
// the values they inherit from their groups and sections resolved.
func WriteYAML(w io.Writer, v *View) error {
	type entryOut struct {
		Pattern  string   `yaml:"pattern"`
		Groups   []string `yaml:"groups,flow"`
		Sections []string `yaml:"sections,flow"`
		OS       []string `yaml:"os,flow,omitempty"`
		Ports    []uint16 `yaml:"ports,flow"`
		Licenses []string `yaml:"licenses,flow,omitempty"`
		Region   string   `yaml:"region,omitempty"`
		Example  bool     `yaml:"example,omitempty"`
		LiveResp bool     `yaml:"live_response,omitempty"`
		Refused  string   `yaml:"refused,omitempty"`
		Notes    []string `yaml:"notes,omitempty"`
	}
	type catalogOut struct {
		Catalog string     `yaml:"catalog"`
		Mode    string     `yaml:"mode"`
		Enabled []string   `yaml:"enabled_groups,flow"`
		Entries []entryOut `yaml:"entries"`
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, c := range v.Ruleset.Catalogs {
		co := catalogOut{Catalog: c.Name, Mode: v.Estate.Policy.Mode}
		for _, g := range v.Estate.Enabled {
			if containsGroup(c.Groups, g) {
				co.Enabled = append(co.Enabled, g.ID)
			}
		}
		for _, e := range v.Entries {
			if e.Catalog == c.Name {
				co.Entries = append(co.Entries, entryOut{Pattern: e.Pattern, Groups: e.Groups, Sections: e.Sections,
					OS: e.OS, Ports: e.Ports, Licenses: e.Licenses, Region: e.Region, Example: e.Example,
					LiveResp: e.LiveResponse, Refused: e.Refused, Notes: e.Notes})
			}
		}
		if err := enc.Encode(co); err != nil {
			return err
		}
	}
	return enc.Close()
}

func containsGroup(gs []*rules.Group, g *rules.Group) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}
