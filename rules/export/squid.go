package export

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// squidPrefix starts every ACL name the Squid export writes.
const squidPrefix = "egressgate_"

// WriteSquid writes the estate's entries as Squid ACLs, to include in a
// squid.conf before its own "http_access deny all": first deny rules for
// the entries its policy refuses, then http_access allow rules for the
// rest. Entries are grouped by their set of ports, so each group is one
// "port" ACL and one ACL per kind of pattern; each pattern keeps
// egressgate's meaning:
//
//   - An exact name is a dstdomain value without a leading dot, which
//     Squid matches only as that name.
//   - "*.example.com" cannot be ".example.com": Squid's leading dot
//     matches the apex too, and egressgate's wildcard does not. It becomes
//     dstdom_regex ^LABEL(\.LABEL)*\.example\.com$, one or more labels in
//     front and never the apex.
//   - A star inside a label ("tf-*-bucket.s3...") becomes [a-z0-9_-]* in a
//     dstdom_regex: any run within that one label, never crossing a dot.
//   - A CIDR entry admits only IP-literal hosts, never a name that
//     resolves into it: Squid's dst ACL would resolve names, so it is
//     joined with an ACL that matches IP literals only.
//
// What cannot be kept is said in the output's comments: Squid compares the
// host as the client sent it, where egressgate first converts Unicode
// names to IDNA ASCII; and the -n flag keeps Squid from looking names up
// for these ACLs, as egressgate does not.
func WriteSquid(w io.Writer, v *View) error {
	admitted, refused := v.split()
	var b strings.Builder
	writeHeader(&b, v.header())
	b.WriteString(squidPreamble)
	writeSquidRefused(&b, refused)
	writeSquidAllowed(&b, squidPortSets(admitted))
	_, err := io.WriteString(w, b.String())
	return err
}

// squidPreamble says, in every file, what the ACLs keep of egressgate's
// meaning and what they cannot.
const squidPreamble = `# Squid ACLs with egressgate's matching (see the egressgate docs, catalog-upkeep):
#   exact names are dstdomain values without a leading dot (that name only);
#   "*.example.com" is a dstdom_regex that excludes the apex, which Squid's
#   ".example.com" would include; a "*" inside a label is [a-z0-9_-]*, which
#   never crosses a dot; CIDR entries admit IP-literal hosts only.
# Not kept: egressgate converts Unicode names to IDNA ASCII before matching,
# Squid compares what the client sent; egressgate's SNI check and its refusal
# of private destinations have no equivalent here.
# Include this file before your own "http_access deny all".
`

// writeSquidRefused writes deny rules for the refused entries, to come
// before the allow rules: in egressgate a refused named host beats the
// wildcard that would admit it, and in Squid the first matching
// http_access line wins.
func writeSquidRefused(b *strings.Builder, refused []*rules.Entry) {
	var names, res []string
	for _, e := range refused {
		switch e.Kind {
		case rules.KindExact:
			names = append(names, e.Pattern)
		case rules.KindWildcard, rules.KindGlob:
			res = append(res, SquidRegex(e))
		}
	}
	if len(names)+len(res) == 0 {
		return
	}
	b.WriteString("# Refused by the estate's policy (licence, Live Response, region): denied before any allow.\n")
	if len(names) > 0 {
		fmt.Fprintf(b, "acl %srefused_names dstdomain -n %s\nhttp_access deny %[1]srefused_names\n", squidPrefix, strings.Join(names, " "))
	}
	if len(res) > 0 {
		fmt.Fprintf(b, "acl %srefused_patterns dstdom_regex -n -i %s\nhttp_access deny %[1]srefused_patterns\n", squidPrefix, strings.Join(res, " "))
	}
}

// squidPortSet is the admitted entries with one set of ports: one port
// ACL, and one ACL per kind of pattern.
type squidPortSet struct {
	key      string
	ports    []uint16
	names    squidValues // dstdomain
	patterns squidValues // dstdom_regex
	cidrs    squidValues // dst, IP literals only
}

// squidValues are the values of one ACL, without repeats, each with the
// entry it came from for a comment.
type squidValues struct {
	values, sources []string
	seen            map[string]bool
}

func (sv *squidValues) add(value string, e *rules.Entry) {
	if sv.seen[value] {
		return
	}
	if sv.seen == nil {
		sv.seen = map[string]bool{}
	}
	sv.seen[value] = true
	sv.values = append(sv.values, value)
	sv.sources = append(sv.sources, e.Catalog+" "+strings.Join(e.GroupIDs(), ",")+" ("+e.Pattern+")")
}

// squidPortSets groups entries by their ports, in order of first use.
func squidPortSets(entries []*rules.Entry) []*squidPortSet {
	var sets []*squidPortSet
	byKey := map[string]*squidPortSet{}
	for _, e := range entries {
		key := portList(e.Ports)
		ps := byKey[key]
		if ps == nil {
			ps = &squidPortSet{key: key, ports: e.Ports}
			byKey[key] = ps
			sets = append(sets, ps)
		}
		switch e.Kind {
		case rules.KindExact:
			ps.names.add(e.Pattern, e)
		case rules.KindWildcard, rules.KindGlob:
			ps.patterns.add(SquidRegex(e), e)
		case rules.KindCIDR:
			ps.cidrs.add(e.Pattern, e)
		}
	}
	return sets
}

// writeSquidAllowed writes the allow rules, one block per port set.
func writeSquidAllowed(b *strings.Builder, sets []*squidPortSet) {
	ipLiteral := squidPrefix + "ip_literal"
	for _, ps := range sets {
		if len(ps.cidrs.values) > 0 {
			fmt.Fprintf(b, "\nacl %s dstdom_regex -n ^[0-9]+(\\.[0-9]+){3}$ ^\\[?[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\\]?$\n", ipLiteral)
			break
		}
	}
	for i, ps := range sets {
		n := i + 1
		portACL := fmt.Sprintf("%sports_%d", squidPrefix, n)
		fmt.Fprintf(b, "\n# ports %s\n", ps.key)
		for _, p := range ps.ports {
			fmt.Fprintf(b, "acl %s port %d\n", portACL, p)
		}
		writeSquidACL(b, fmt.Sprintf("%snames_%d", squidPrefix, n), "dstdomain -n", ps.names, "", portACL)
		writeSquidACL(b, fmt.Sprintf("%spatterns_%d", squidPrefix, n), "dstdom_regex -n -i", ps.patterns, "", portACL)
		writeSquidACL(b, fmt.Sprintf("%scidrs_%d", squidPrefix, n), "dst -n", ps.cidrs, ipLiteral+" ", portACL)
	}
}

// writeSquidACL writes one ACL line per value, each after a comment naming
// its entry, and the rule that allows lead (other ACLs, or ""), the ACL
// and the port ACL together.
func writeSquidACL(b *strings.Builder, acl, typ string, sv squidValues, lead, portACL string) {
	if len(sv.values) == 0 {
		return
	}
	for j, v := range sv.values {
		fmt.Fprintf(b, "# %s\nacl %s %s %s\n", sv.sources[j], acl, typ, v)
	}
	fmt.Fprintf(b, "http_access allow %s%s %s\n", lead, acl, portACL)
}

// portList writes ports as "443,80".
func portList(ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return strings.Join(ps, ",")
}

// splitLines splits a header into its lines; "" has none.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// squidLabel is what one DNS label may hold once egressgate has
// canonicalised a name (see checkName).
const squidLabel = `[a-z0-9_-]`

// SquidRegex returns the POSIX extended regular expression, anchored,
// that matches what a wildcard or glob entry matches.
func SquidRegex(e *rules.Entry) string {
	var b strings.Builder
	b.WriteByte('^')
	rest := e.Pattern
	if r, ok := strings.CutPrefix(rest, "*."); ok {
		b.WriteString(squidLabel + `+(\.` + squidLabel + `+)*\.`)
		rest = r
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; c {
		case '.':
			b.WriteString(`\.`)
		case '*':
			b.WriteString(squidLabel + `*`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('$')
	return b.String()
}
