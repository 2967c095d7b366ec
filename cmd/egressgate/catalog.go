package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
)

// runCatalog prints the effective allowlist: every entry the policy turns
// on, as a list to paste into another firewall or as YAML in the catalog
// schema.
func runCatalog(args []string, stdout, stderr io.Writer) int {
	if exit, ok := runCatalogSub(args, stdout, stderr); ok {
		return exit
	}
	cl := newCommandLine("catalog", "egressgate catalog [--config FILE] [--format list|yaml|squid|pac|hosts|json] [--pac-proxy HOST:PORT]\n       egressgate catalog import PAGE.txt\n       egressgate catalog diff OLD NEW", `
Prints the entries in force under the config's policy: as a plain list, itself
a catalog to paste into another firewall, with the optional sections that are
off as comments; with --format yaml, with every field each entry inherits
resolved; or as a Squid ACL file (squid), a proxy auto-config file (pac, the
same file /proxy.pac serves; it needs --pac-proxy), bare host names (hosts) or
JSON for other enforcement points. "catalog import" and "catalog diff" are described by
their own --help.

exit status: 0 printed, 1 the config does not load, 2 bad usage`)
	config := cl.addConfig()
	format := cl.String("format", "list", "output `format`: list, yaml, squid, pac, hosts or json")
	var exp exportOptions
	cl.StringVar(&exp.pacProxy, "pac-proxy", "", "with --format pac: the proxy `HOST:PORT` endpoints are told to use")
	cl.StringVar(&exp.pacFallback, "pac-fallback", "direct", "with --format pac: where other names go, `direct` or proxy")
	pos, exit, ok := cl.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		return cl.fail(stderr, "unexpected argument %q", pos[0])
	}
	rs, err := rules.Load(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch *format {
	case "list":
		writeList(stdout, rs)
	case "yaml":
		if err := writeYAML(stdout, rs); err != nil {
			fmt.Fprintf(stderr, "egressgate catalog: %v\n", err)
			return 1
		}
	default:
		return runCatalogExport(*format, rs, exp, stdout, stderr)
	}
	return 0
}

// writeList prints one "pattern:ports" line per entry, grouped by catalog,
// with the policy and the optional sections that are off as comments. The
// output is itself a valid plain-list catalog.
func writeList(w io.Writer, rs *rules.Ruleset) {
	pol := rs.Config.Policy
	fmt.Fprintf(w, "# egressgate effective allowlist: mode %s", pol.Mode)
	if len(pol.OS) > 0 {
		fmt.Fprintf(w, ", os %s", strings.Join(pol.OS, ","))
	}
	fmt.Fprintln(w)
	for _, c := range rs.Catalogs {
		for _, s := range c.Sections {
			if !sectionOn(rs, s) {
				fmt.Fprintf(w, "# section %s/%s (%s) is off; enable it with policy.enable: [%s]\n", c.Name, s.ID, s.Title, s.ID)
			}
		}
	}
	cat := ""
	for _, e := range rs.Matcher.Entries() {
		if e.Catalog != cat {
			cat = e.Catalog
			fmt.Fprintf(w, "# catalog %s\n", cat)
		}
		ports := make([]string, len(e.Ports))
		for i, p := range e.Ports {
			ports[i] = strconv.Itoa(int(p))
		}
		pattern := e.Pattern
		if e.Kind == rules.KindCIDR && e.Prefix.Addr().Is6() {
			pattern = "[" + pattern + "]"
		}
		fmt.Fprintf(w, "%s:%s\t# %s\n", pattern, strings.Join(ports, ","), strings.Join(e.GroupIDs(), ","))
	}
}

func sectionOn(rs *rules.Ruleset, s *rules.Section) bool {
	for _, g := range rs.Enabled {
		if g.Section == s {
			return true
		}
	}
	return false
}

// yamlEntry is an entry in the catalog schema with every field resolved.
type yamlEntry struct {
	Pattern  string   `yaml:"pattern"`
	Groups   []string `yaml:"groups,flow"`
	Sections []string `yaml:"sections,flow"`
	OS       []string `yaml:"os,flow,omitempty"`
	Ports    []uint16 `yaml:"ports,flow"`
	Licenses []string `yaml:"licenses,flow,omitempty"`
	Region   string   `yaml:"region,omitempty"`
	Example  bool     `yaml:"example,omitempty"`
	Notes    []string `yaml:"notes,omitempty"`
}

// writeYAML prints the effective entries, per catalog, with the values
// they inherit from their groups and sections resolved.
func writeYAML(w io.Writer, rs *rules.Ruleset) error {
	type catalogOut struct {
		Catalog string      `yaml:"catalog"`
		Mode    string      `yaml:"mode"`
		Enabled []string    `yaml:"enabled_groups,flow"`
		Entries []yamlEntry `yaml:"entries"`
	}
	var out []catalogOut
	for _, c := range rs.Catalogs {
		co := catalogOut{Catalog: c.Name, Mode: rs.Config.Policy.Mode}
		for _, g := range rs.Enabled {
			if containsGroup(c.Groups, g) {
				co.Enabled = append(co.Enabled, g.ID)
			}
		}
		for _, e := range rs.Matcher.Entries() {
			if e.Catalog != c.Name {
				continue
			}
			co.Entries = append(co.Entries, yamlEntry{Pattern: e.Pattern, Groups: e.GroupIDs(), Sections: e.Sections(),
				OS: e.OS, Ports: e.Ports, Licenses: e.Licenses, Region: e.Region, Example: e.Example, Notes: e.Notes})
		}
		out = append(out, co)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, co := range out {
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
