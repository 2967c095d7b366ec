package rules

import (
	"fmt"
	"io"
	"strings"
)

// WriteSquid writes entries as Squid ACLs and http_access allow rules, to
// include in a squid.conf before its own "http_access deny all". Entries
// are grouped by their set of ports, so each group is one "port" ACL and
// one ACL per kind of pattern; each pattern keeps egressgate's meaning:
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
// for these ACLs, as egressgate does not. ACL names start with prefix.
func WriteSquid(w io.Writer, entries []*Entry, prefix, header string) error {
	type portSet struct {
		key                     string
		ports                   []uint16
		names, patterns, cidrs  []string
		namesSrc, patternsSrc   []string
		cidrsSrc                []string
		seenNames, seenPatterns map[string]bool
		seenCIDRs               map[string]bool
	}
	var sets []*portSet
	byKey := map[string]*portSet{}
	for _, e := range entries {
		key := portList(e.Ports)
		ps := byKey[key]
		if ps == nil {
			ps = &portSet{key: key, ports: e.Ports, seenNames: map[string]bool{}, seenPatterns: map[string]bool{}, seenCIDRs: map[string]bool{}}
			byKey[key] = ps
			sets = append(sets, ps)
		}
		src := e.Catalog + " " + strings.Join(e.GroupIDs(), ",") + " (" + e.Pattern + ")"
		switch e.Kind {
		case KindExact:
			if !ps.seenNames[e.Pattern] {
				ps.seenNames[e.Pattern] = true
				ps.names = append(ps.names, e.Pattern)
				ps.namesSrc = append(ps.namesSrc, src)
			}
		case KindWildcard, KindGlob:
			re := SquidRegex(e)
			if !ps.seenPatterns[re] {
				ps.seenPatterns[re] = true
				ps.patterns = append(ps.patterns, re)
				ps.patternsSrc = append(ps.patternsSrc, src)
			}
		case KindCIDR:
			if !ps.seenCIDRs[e.Pattern] {
				ps.seenCIDRs[e.Pattern] = true
				ps.cidrs = append(ps.cidrs, e.Pattern)
				ps.cidrsSrc = append(ps.cidrsSrc, src)
			}
		}
	}

	var b strings.Builder
	for _, line := range splitLines(header) {
		fmt.Fprintf(&b, "# %s\n", line)
	}
	b.WriteString(`# Squid ACLs with egressgate's matching (see the egressgate docs, catalog-upkeep):
#   exact names are dstdomain values without a leading dot (that name only);
#   "*.example.com" is a dstdom_regex that excludes the apex, which Squid's
#   ".example.com" would include; a "*" inside a label is [a-z0-9_-]*, which
#   never crosses a dot; CIDR entries admit IP-literal hosts only.
# Not kept: egressgate converts Unicode names to IDNA ASCII before matching,
# Squid compares what the client sent; egressgate's SNI check and its refusal
# of private destinations have no equivalent here.
# Include this file before your own "http_access deny all".
`)
	hasCIDR := false
	for _, ps := range sets {
		hasCIDR = hasCIDR || len(ps.cidrs) > 0
	}
	ipLiteral := prefix + "ip_literal"
	if hasCIDR {
		fmt.Fprintf(&b, "\nacl %s dstdom_regex -n ^[0-9]+(\\.[0-9]+){3}$ ^\\[?[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\\]?$\n", ipLiteral)
	}
	for i, ps := range sets {
		n := i + 1
		portACL := fmt.Sprintf("%sports_%d", prefix, n)
		fmt.Fprintf(&b, "\n# ports %s\n", ps.key)
		for _, p := range ps.ports {
			fmt.Fprintf(&b, "acl %s port %d\n", portACL, p)
		}
		if len(ps.names) > 0 {
			acl := fmt.Sprintf("%snames_%d", prefix, n)
			for j, name := range ps.names {
				fmt.Fprintf(&b, "# %s\nacl %s dstdomain -n %s\n", ps.namesSrc[j], acl, name)
			}
			fmt.Fprintf(&b, "http_access allow %s %s\n", acl, portACL)
		}
		if len(ps.patterns) > 0 {
			acl := fmt.Sprintf("%spatterns_%d", prefix, n)
			for j, re := range ps.patterns {
				fmt.Fprintf(&b, "# %s\nacl %s dstdom_regex -n -i %s\n", ps.patternsSrc[j], acl, re)
			}
			fmt.Fprintf(&b, "http_access allow %s %s\n", acl, portACL)
		}
		if len(ps.cidrs) > 0 {
			acl := fmt.Sprintf("%scidrs_%d", prefix, n)
			for j, c := range ps.cidrs {
				fmt.Fprintf(&b, "# %s\nacl %s dst -n %s\n", ps.cidrsSrc[j], acl, c)
			}
			fmt.Fprintf(&b, "http_access allow %s %s %s\n", ipLiteral, acl, portACL)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// squidLabel is what one DNS label may hold once egressgate has
// canonicalised a name (see checkName).
const squidLabel = `[a-z0-9_-]`

// SquidRegex returns the POSIX extended regular expression, anchored,
// that matches what a wildcard or glob entry matches.
func SquidRegex(e *Entry) string {
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
