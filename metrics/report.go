package metrics

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// Report is the usage report `egressgate report` prints: the entries in
// each state (see EntryState) and the most denied hosts.
type Report struct {
	// Source says where the numbers come from and over what time, for the
	// heading.
	Source string
	// Rules are every entry known to the source, each with its State;
	// from Prometheus, Hits and UpstreamFailures are the increase over the
	// window summed over replicas and LastHit the latest, and kinds, ports
	// and names are unknown.
	Rules []RuleUsage
	// Misses is nil when the source cannot tell (Prometheus: denied hosts
	// are never label values).
	Misses *MissesPage
}

// termSafe returns s if it holds only printable characters, else s
// escaped with escapeHost: what /rules and /misses send is escaped
// already, so only a broken or hostile source gets here.
func termSafe(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return escapeHost(s)
		}
	}
	return s
}

// WriteText prints the report as tables, one per state: used entries
// (most hits first, each wildcard or glob with the names seen behind it),
// entries admitted but never reached (most hits first), never-used
// entries and refused entries with their reasons (in catalog order), and
// the top misses (at most topMisses; 0 for all). Strings from the source
// with non-printable characters are escaped, so a hostile source cannot
// write control sequences to the terminal.
func (r *Report) WriteText(w io.Writer, topMisses int) error {
	by := map[string][]RuleUsage{}
	for _, u := range r.Rules {
		by[u.State] = append(by[u.State], u)
	}
	byHits := func(a, b RuleUsage) int { return cmp.Compare(b.Hits, a.Hits) }
	slices.SortStableFunc(by[StateUsed], byHits)
	slices.SortStableFunc(by[StateNeverReached], byHits)

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "egressgate usage report from %s\n", termSafe(r.Source))
	fmt.Fprintf(tw, "Entries: %d (%s)\n", len(r.Rules), countStates(r.Rules))
	writeSection(tw, "USED ENTRIES", "CATALOG\tRULE\tHITS\tFAILED UPSTREAM\tLAST HIT (UTC)\tGROUPS",
		by[StateUsed], func(u RuleUsage) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), u.Hits, u.UpstreamFailures, lastHit(u), termSafe(strings.Join(u.Groups, ",")))
			writeNames(tw, u.Names, "\t\t\t")
		})
	// Entries clients asked for and the catalog admitted, but whose
	// upstream no connection reached: the vendor's own connectivity
	// check, failed.
	writeSection(tw, "ADMITTED, NEVER REACHED (every upstream connection failed: DNS, refused, timeout, ...)", "CATALOG\tRULE\tADMITTED\tLAST ADMITTED (UTC)\tGROUPS",
		by[StateNeverReached], func(u RuleUsage) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), u.Hits, lastHit(u), termSafe(strings.Join(u.Groups, ",")))
			writeNames(tw, u.Names, "\t\t")
		})
	writeSection(tw, "NEVER USED ENTRIES (admitted, no hit)", "CATALOG\tRULE\tGROUPS",
		by[StateNeverUsed], func(u RuleUsage) {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), termSafe(strings.Join(u.Groups, ",")))
		})
	writeSection(tw, "REFUSED ENTRIES (the policy refuses them: they cannot be used)", "CATALOG\tRULE\tREASON\tGROUPS",
		by[StateRefused], func(u RuleUsage) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), termSafe(u.Reason), termSafe(strings.Join(u.Groups, ",")))
		})
	writeTopMisses(tw, r.Misses, topMisses)
	return tw.Flush()
}

// lastHit formats a row's last hit for the report and /rules.
func lastHit(u RuleUsage) string {
	if u.LastHit == nil {
		return "-"
	}
	return u.LastHit.UTC().Format("2006-01-02 15:04:05")
}

// writeSection prints one section of the report: its title, then its
// column header and a row per entry, or "(none)".
func writeSection(tw io.Writer, title, header string, rows []RuleUsage, row func(RuleUsage)) {
	fmt.Fprintf(tw, "\n%s\n", title)
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(none)")
		return
	}
	fmt.Fprintln(tw, header)
	for _, u := range rows {
		row(u)
	}
}

// writeNames prints, under a wildcard or glob entry's row, the names
// admitted through it; pad fills the row's remaining columns.
func writeNames(tw io.Writer, names []NameHits, pad string) {
	for _, n := range names {
		fmt.Fprintf(tw, "\t  %s\t%d%s\n", termSafe(n.Name), n.Hits, pad)
	}
}

// writeTopMisses prints at most top of the most denied hosts (0: all).
func writeTopMisses(tw io.Writer, misses *MissesPage, top int) {
	fmt.Fprintf(tw, "\nTOP MISSES\n")
	switch {
	case misses == nil:
		fmt.Fprintln(tw, "(not available from Prometheus: denied hosts are never label values; see /misses on each egressgate or its miss log)")
		return
	case len(misses.Misses) == 0:
		fmt.Fprintln(tw, "(none)")
		return
	}
	ms := misses.Misses
	if top > 0 && len(ms) > top {
		ms = ms[:top]
	}
	fmt.Fprintf(tw, "Top %d of %d hosts tracked; %d misses in all\n", len(ms), len(misses.Misses), misses.Total)
	fmt.Fprintln(tw, "HOST\tCOUNT\tLAST REASON\tLAST CLIENT\tLISTENER\tPORT\tLAST SEEN (UTC)")
	for _, m := range ms {
		count := strconv.FormatUint(m.Count, 10)
		if m.Error > 0 {
			count += fmt.Sprintf(" (at least %d)", m.Count-m.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", termSafe(m.Host), count, termSafe(m.LastReason),
			termSafe(m.LastClient), termSafe(m.LastListener), m.LastPort, m.LastSeen.UTC().Format("2006-01-02 15:04:05"))
	}
	writeAccountHostHints(tw, ms)
}

// WriteSuggestExact prints, as a plain-list catalog, one exact line per
// name seen behind a wildcard or glob entry, with that entry's ports: the
// entries exact mode would need to admit what the clients used. Loaded as
// a catalog, the list admits exactly those names. It reports how many
// names it printed.
func (r *Report) WriteSuggestExact(w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# egressgate report --suggest-exact from %s\n", termSafe(r.Source))
	fmt.Fprintln(bw, "# the names admitted through each wildcard or glob entry, as exact entries (at most 32 kept per entry, the least used evicted)")
	n := 0
	for _, u := range r.Rules {
		if len(u.Names) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n# %s (%s, %s): %d names\n", termSafe(u.Rule), termSafe(u.Catalog), termSafe(strings.Join(u.Groups, ",")), len(u.Names))
		ports := make([]string, len(u.Ports))
		for i, p := range u.Ports {
			ports[i] = strconv.Itoa(int(p))
		}
		suffix := ""
		if len(ports) > 0 {
			suffix = ":" + strings.Join(ports, ",")
		}
		names := make([]string, 0, len(u.Names))
		for _, nh := range u.Names {
			names = append(names, nh.Name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !printableName(name) {
				continue // never from egressgate: its names passed the matcher
			}
			fmt.Fprintf(bw, "%s%s\n", name, suffix)
			n++
		}
	}
	return n, bw.Flush()
}

// printableName reports whether name holds only the bytes a canonical
// host name may: what the list's parser would read back as the same name.
func printableName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return name != ""
}
