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
	cl := newCommandLine("catalog", "egressgate catalog [--config FILE] [--estate NAME] [--format list|yaml|squid|pac|hosts|json] [--pac-proxy HOST:PORT]\n       egressgate catalog import PAGE.txt\n       egressgate catalog diff OLD NEW", `
Prints the entries in force under the config's policy: as a plain list, itself
a catalog to paste into another firewall, with the optional sections that are
off as comments; with --format yaml, with every field each entry inherits
resolved; or as a Squid ACL file (squid), a proxy auto-config file (pac, the
same file /proxy.pac serves; it needs --pac-proxy), bare host names (hosts) or
JSON for other enforcement points. --estate NAME prints that estate's
allowlist (the default estate's otherwise); the entries its policy refuses
are comments, deny rules (squid), listed as refused (pac) or marked "refused"
(yaml, json). "catalog import" and "catalog diff" are described by
their own --help.

exit status: 0 printed, 1 the config does not load, 2 bad usage`)
	config := cl.addConfig()
	format := cl.String("format", "list", "output `format`: list, yaml, squid, pac, hosts or json")
	estate := cl.String("estate", rules.DefaultEstate, "print this `estate`'s allowlist")
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
	es := rs.Estate(*estate)
	if es == nil {
		fmt.Fprintf(stderr, "egressgate catalog: --estate %q is not in the config (estates: %s)\n", *estate, strings.Join(estateNames(rs), ", "))
		return 2
	}
	switch *format {
	case "list":
		writeList(stdout, rs, es)
	case "yaml":
		if err := writeYAML(stdout, rs, es); err != nil {
			fmt.Fprintf(stderr, "egressgate catalog: %v\n", err)
			return 1
		}
	default:
		return runCatalogExport(*format, rs, es, exp, stdout, stderr)
	}
	return 0
}

// writeList prints one "pattern:ports" line per entry, grouped by catalog,
// with the policy and the optional sections that are off as comments. The
// output is itself a valid plain-list catalog.
func writeList(w io.Writer, rs *rules.Ruleset, es *rules.Estate) {
	pol := es.Policy
	fmt.Fprintf(w, "# egressgate effective allowlist: mode %s", pol.Mode)
	if len(pol.OS) > 0 && len(pol.OS) < len(rules.AllOS) {
		fmt.Fprintf(w, ", os %s", strings.Join(pol.OS, ","))
	}
	if len(rs.Estates) > 1 || es.Index > 0 {
		fmt.Fprintf(w, ", estate %s (source %s)", es.Name, es.Source)
	}
	fmt.Fprintln(w)
	for _, c := range rs.Catalogs {
		for _, s := range c.Sections {
			if !sectionOn(es, s) {
				fmt.Fprintf(w, "# section %s/%s (%s) is off; enable it with policy.enable: [%s]\n", c.Name, s.ID, s.Title, s.ID)
			}
		}
	}
	cat := ""
	for _, e := range es.Matcher.Entries() {
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
		if e.Deny != rules.ReasonNone {
			// Named so that no wildcard admits it: another firewall
			// needs a deny rule before its wildcards.
			fmt.Fprintf(w, "# refused %s: %s:%s\t# %s\n", e.Deny, pattern, strings.Join(ports, ","), strings.Join(e.GroupIDs(), ","))
			continue
		}
		fmt.Fprintf(w, "%s:%s\t# %s\n", pattern, strings.Join(ports, ","), strings.Join(e.GroupIDs(), ","))
	}
}

// estateNames lists the estates of rs.
func estateNames(rs *rules.Ruleset) []string {
	out := make([]string, len(rs.Estates))
	for i, e := range rs.Estates {
		out[i] = e.Name
	}
	return out
}

func sectionOn(es *rules.Estate, s *rules.Section) bool {
	for _, g := range es.Enabled {
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
	LiveResp bool     `yaml:"live_response,omitempty"`
	Refused  string   `yaml:"refused,omitempty"` // the estate's policy refuses it: the reason
	Notes    []string `yaml:"notes,omitempty"`
}

// writeYAML prints the effective entries, per catalog, with the values
// they inherit from their groups and sections resolved.
func writeYAML(w io.Writer, rs *rules.Ruleset, es *rules.Estate) error {
	type catalogOut struct {
		Catalog string      `yaml:"catalog"`
		Mode    string      `yaml:"mode"`
		Enabled []string    `yaml:"enabled_groups,flow"`
		Entries []yamlEntry `yaml:"entries"`
	}
	var out []catalogOut
	for _, c := range rs.Catalogs {
		co := catalogOut{Catalog: c.Name, Mode: es.Policy.Mode}
		for _, g := range es.Enabled {
			if containsGroup(c.Groups, g) {
				co.Enabled = append(co.Enabled, g.ID)
			}
		}
		for _, e := range es.Matcher.Entries() {
			if e.Catalog != c.Name {
				continue
			}
			ye := yamlEntry{Pattern: e.Pattern, Groups: e.GroupIDs(), Sections: e.Sections(),
				OS: e.OS, Ports: e.Ports, Licenses: e.Licenses, Region: e.Region, Example: e.Example,
				LiveResp: e.LiveResponse, Notes: e.Notes}
			if e.Deny != rules.ReasonNone {
				ye.Refused = e.Deny.String()
			}
			co.Entries = append(co.Entries, ye)
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
