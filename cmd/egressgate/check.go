package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// runCheck validates the config and its catalogs and prints a summary:
// entries per group and which groups are on.
func runCheck(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	config := cl.addConfig()
	if exit, ok := cl.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	rs, ok := loadConfig(*config, stderr)
	if !ok {
		return 1
	}
	writeSummary(stdout, rs)
	if len(rs.Estates) > 1 {
		writeEstates(stdout, rs)
	}
	for _, w := range rs.Warnings {
		fmt.Fprintf(stderr, "warning: %v\n", w)
	}
	for _, e := range rs.CheckErrors {
		fmt.Fprintln(stderr, e)
	}
	if len(rs.CheckErrors) > 0 {
		return 1
	}
	return 0
}

// writeEstates prints one line per estate: where its settings come from,
// what they are, and how many entries its policy admits and refuses.
func writeEstates(w io.Writer, rs *rules.Ruleset) {
	fmt.Fprintf(w, "\nestates: %d, %d distinct policies\n", len(rs.Estates), len(rs.Matchers()))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  ESTATE\tSOURCE\tSUBNETS\tMODE\tLICENCES\tREGIONS\tTHREAT\tLIVE RESPONSE\tCONTACTS\tADMITTED\tREFUSED\n")
	for _, e := range rs.Estates {
		p := e.Policy
		subnets := "-"
		if len(e.Subnets) > 0 {
			subnets = strconv.Itoa(len(e.Subnets))
		}
		lics, regions := "all", "all"
		if p.Licenses != nil {
			lics = strings.Join(p.Licenses, ",")
		}
		if p.Regions != nil {
			regions = strings.Join(p.Regions, ",")
		}
		threat := p.ThreatResponse
		if p.ActIfUnreachable {
			threat += " (act if unreachable)"
		}
		lr := "off"
		if p.LiveResponse {
			lr = "on"
			if n := len(p.Exclusions); n > 0 {
				lr += fmt.Sprintf(" (%d excluded)", n)
			}
		}
		contacts := 0
		if p.Contacts.Primary.Name != "" {
			contacts++
		}
		if p.Contacts.Secondary != nil {
			contacts++
		}
		if p.Contacts.Tertiary != nil {
			contacts++
		}
		src := e.Source
		if e.File != "" {
			src += " (" + e.File + ")"
		}
		admitted, refused := countAdmitted(e.Matcher)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", e.Name, src, subnets, p.Mode, lics, regions, threat, lr, contacts, admitted, refused)
	}
	tw.Flush()
}

// countAdmitted counts a matcher's entries its policy admits and refuses.
func countAdmitted(m *rules.Matcher) (admitted, refused int) {
	for _, e := range m.Entries() {
		if e.Deny == rules.ReasonNone {
			admitted++
		} else {
			refused++
		}
	}
	return admitted, refused
}

// writeSummary prints the policy, then one line per group of every catalog
// with its state, its entries in force (after mode and OS) and its entries
// in the catalog.
func writeSummary(w io.Writer, rs *rules.Ruleset) {
	pol := rs.Config.Policy
	oses := pol.OS
	if len(oses) == 0 {
		oses = rules.AllOS()
	}
	src := rs.Config.Path
	if src == "" {
		src = "built-in default"
	}
	fmt.Fprintf(w, "config: %s\nmode: %s\nos: %s\n", src, pol.Mode, strings.Join(oses, ", "))
	inMatcher, inCatalog := map[*rules.Group]int{}, map[*rules.Group]int{}
	for _, e := range rs.Matcher.Entries() {
		if e.Deny != rules.ReasonNone {
			continue // refused by the policy: not in force
		}
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
	fmt.Fprintln(w)
	if _, refused := countAdmitted(rs.Matcher); refused > 0 {
		fmt.Fprintf(w, "refused by the policy: %d entries, named so that no wildcard admits them (licences, Live Response, regions: see egressgate catalog)\n", refused)
	}
	fmt.Fprintf(w, "allowed: %s\n", rs.Matcher.Summary())
	for _, e := range rs.Matcher.Entries() {
		if e.Kind == rules.KindCIDR && !serveDials(rs.Matcher, e, e.Prefix.Addr()) && !serveDials(rs.Matcher, e, lastAddr(e.Prefix)) {
			fmt.Fprintf(w, "note: %s (%s) is in a private or reserved range: serve refuses it as private-destination unless --allow-dest lists it\n", e.Pattern, e.Pos)
		}
	}
}

// serveDials reports whether serve, without --allow-dest, would dial a,
// an address of CIDR entry e: proxy.Admit's destination check, asked on
// one of e's ports.
func serveDials(m *rules.Matcher, e *rules.Entry, a netip.Addr) bool {
	port := uint16(443)
	if len(e.Ports) > 0 {
		port = e.Ports[0]
	}
	es := rules.Estate{Name: rules.DefaultEstate, Matcher: m}
	q := proxy.Query{Estate: &es, Host: a.String(), Port: port}
	return proxy.Admit(proxy.Gate{}, q).Reason != rules.ReasonPrivateDestination
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
