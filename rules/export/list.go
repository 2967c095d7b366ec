package export

import (
	"fmt"
	"io"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// WriteList writes one "pattern:ports" line per entry, grouped by
// catalog, with the policy, the optional sections that are off and the
// refused entries as comments. The output is itself a valid plain-list
// catalog.
func WriteList(w io.Writer, v *View) error {
	es := v.Estate
	pol := es.Policy
	var b strings.Builder
	fmt.Fprintf(&b, "# egressgate effective allowlist: mode %s", pol.Mode)
	if len(pol.OS) > 0 && len(pol.OS) < len(rules.AllOS()) {
		fmt.Fprintf(&b, ", os %s", strings.Join(pol.OS, ","))
	}
	if v.multiEstate() {
		fmt.Fprintf(&b, ", estate %s (source %s)", es.Name, es.Source)
	}
	b.WriteString("\n")
	for _, c := range v.Ruleset.Catalogs {
		for _, s := range c.Sections {
			if !sectionOn(es, s) {
				fmt.Fprintf(&b, "# section %s/%s (%s) is off; enable it with policy.enable: [%s]\n", c.Name, s.ID, s.Title, s.ID)
			}
		}
	}
	cat := ""
	for _, e := range v.Entries {
		if e.Catalog != cat {
			cat = e.Catalog
			fmt.Fprintf(&b, "# catalog %s\n", cat)
		}
		pattern := e.Pattern
		if e.Rule.Kind == rules.KindCIDR && e.Rule.Prefix.Addr().Is6() {
			pattern = "[" + pattern + "]"
		}
		if e.Refused != "" {
			// Named so that no wildcard admits it: another firewall
			// needs a deny rule before its wildcards.
			fmt.Fprintf(&b, "# refused %s: ", e.Refused)
		}
		fmt.Fprintf(&b, "%s:%s\t# %s\n", pattern, portList(e.Ports), strings.Join(e.Groups, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sectionOn reports whether the estate's policy turns on a group of s.
func sectionOn(es *rules.Estate, s *rules.Section) bool {
	for _, g := range es.Enabled {
		if g.Section == s {
			return true
		}
	}
	return false
}
