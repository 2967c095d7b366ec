package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// runCheck validates the config and its catalogs and prints a summary:
// entries per group and which groups are on.
func runCheck(args []string, stdout, stderr io.Writer) int {
	cl := newCommandLine("check", "egressgate check [--config FILE]", `
Loads the config and its catalogs with the code serve loads them with, and
prints the policy and, per catalog, each group with its section, whether it
is on, and its entries in force out of those in the catalog.

exit status: 0 the config loads, 1 it does not (FILE:LINE: message on
stderr), 2 bad usage`)
	config := cl.addConfig()
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
	writeSummary(stdout, rs)
	return 0
}

// writeSummary prints the policy, then one line per group of every catalog
// with its state, its entries in force (after mode and OS) and its entries
// in the catalog.
func writeSummary(w io.Writer, rs *rules.Ruleset) {
	pol := rs.Config.Policy
	oses := pol.OS
	if len(oses) == 0 {
		oses = rules.AllOS
	}
	src := rs.Config.Path
	if src == "" {
		src = "built-in default"
	}
	fmt.Fprintf(w, "config: %s\nmode: %s\nos: %s\n", src, pol.Mode, strings.Join(oses, ", "))
	inMatcher, inCatalog := map[*rules.Group]int{}, map[*rules.Group]int{}
	for _, e := range rs.Matcher.Entries() {
		for _, g := range e.Groups {
			inMatcher[g]++
		}
	}
	for _, c := range rs.Catalogs {
		for _, e := range c.Entries {
			for _, g := range e.Groups {
				inCatalog[g]++
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rs.Catalogs {
		fmt.Fprintf(tw, "\ncatalog %s (%s): %d entries\n", c.Name, c.Path, len(c.Entries))
		fmt.Fprintf(tw, "  GROUP\tSECTION\tSTATE\tIN FORCE\tIN CATALOG\tTITLE\n")
		for _, g := range c.Groups {
			state := "off"
			if slices.Contains(rs.Enabled, g) {
				state = "on"
			}
			sec := "-"
			if g.Section != nil {
				sec = g.Section.ID
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", g.ID, sec, state, inMatcher[g], inCatalog[g], g.Title)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nallowed: %s\n", rs.Matcher.Summary())
	for _, e := range rs.Matcher.Entries() {
		if e.Kind == rules.KindCIDR && !proxy.Dialable(e.Prefix.Addr(), nil) && !proxy.Dialable(lastAddr(e.Prefix), nil) {
			fmt.Fprintf(w, "note: %s (%s) is in a private or reserved range: serve refuses it as private-destination unless --allow-dest lists it\n", e.Pattern, e.Pos)
		}
	}
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
