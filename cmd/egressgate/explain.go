package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// explainResult is the JSON form of an explain answer.
type explainResult struct {
	Host    string       `json:"host"`
	Port    uint16       `json:"port"`
	Estate  string       `json:"estate"`  // the client's estate; "default" without estates
	Source  string       `json:"source"`  // its preference source
	Verdict string       `json:"verdict"` // ALLOW or DENY
	Rule    *explainRule `json:"rule"`    // null when no entry names the host
	Reason  string       `json:"reason"`  // empty when allowed
	Detail  string       `json:"detail,omitempty"`
	// Hints are policy changes under which a deny would be an allow.
	Hints []explainHint `json:"hints,omitempty"`
}

type explainRule struct {
	Catalog  string   `json:"catalog"`
	Pattern  string   `json:"pattern"`
	Kind     string   `json:"kind"`
	Groups   []string `json:"groups"`
	Sections []string `json:"sections"`
	Ports    []uint16 `json:"ports"`
	OS       []string `json:"os,omitempty"`
	Example  bool     `json:"example,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Source   string   `json:"source"`
}

// runExplain prints whether HOST[:PORT] would be admitted and why. Exit 0
// for allow, 1 for deny, 2 for bad input.
func runExplain(args []string, stdout, stderr io.Writer) int {
	cl := newCommandLine("explain", "egressgate explain [--config FILE] [--client ADDR] [--user NAME] [--json] HOST[:PORT]", `
Says whether a connection to HOST:PORT would be admitted under the config's
policy, which catalog entry decides it, and, for a deny, what would change
the answer. PORT is 443 when omitted; an IPv6 address with a port goes in
brackets ([2001:db8::1]:443). Flags may also follow HOST[:PORT].

With estates, --client ADDR judges as a client at that address (its estate,
its Live Response exclusion) and --user NAME as a proxy user (its estate; no
password is asked); otherwise the default estate's policy answers.

An IP address the catalog admits is still a DENY private-destination when it
is in a range serve never dials, unless --allow-dest lists it, as for serve.

exit status: 0 ALLOW, 1 DENY, 2 bad input (an invalid host or target, a
config that does not load, bad usage)`)
	config := cl.addConfig()
	asJSON := cl.Bool("json", false, "print one JSON object")
	clientFlag := cl.String("client", "", "judge as a client at this `address` (its estate, its Live Response exclusion)")
	userFlag := cl.String("user", "", "judge as this proxy-authentication `user` (its estate; no password needed here)")
	var allowDest []netip.Prefix
	cl.Var(prefixList{&allowDest}, "allow-dest", "private or reserved destination `CIDR` serve is told to allow anyway (repeatable), as for serve")
	pos, exit, ok := cl.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	switch len(pos) {
	case 0:
		return cl.fail(stderr, "missing HOST[:PORT]")
	case 1:
	default:
		return cl.fail(stderr, "one HOST[:PORT] at a time; got %q", pos)
	}
	var client netip.Addr
	if *clientFlag != "" {
		a, err := netip.ParseAddr(*clientFlag)
		if err != nil {
			fmt.Fprintf(stderr, "egressgate explain: --client %q is not an IP address\n", *clientFlag)
			return 2
		}
		client = a.Unmap()
	}
	host, port, err := splitTarget(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "egressgate explain: %v\n", err)
		return 2
	}
	rs, err := rules.Load(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	es := rs.Estates[0]
	if client.IsValid() {
		es = rs.EstateFor(client)
	}
	if *userFlag != "" {
		if rs.Users == nil {
			fmt.Fprintf(stderr, "egressgate explain: --user: the config has no auth section\n")
			return 2
		}
		if es = rs.Users.EstateOf(*userFlag); es == nil {
			fmt.Fprintf(stderr, "egressgate explain: --user %q is not in the password file\n", *userFlag)
			return 2
		}
	}
	v := es.Lookup(client, host, port)
	res := explainResult{Host: host, Port: port, Estate: es.Name, Source: es.Source, Verdict: "DENY", Reason: v.Reason.String()}
	res.Detail = policyDetail(es, client, v)
	if v.Allow {
		res.Verdict = "ALLOW"
	}
	if v.Reason == rules.ReasonInvalidHost {
		if _, err := rules.CanonicalHost(host); err != nil {
			res.Detail = err.Error()
		}
	}
	if !v.Allow && (v.Reason == rules.ReasonNotInCatalog || v.Reason == rules.ReasonPortNotAllowed) {
		res.Hints = hintsFor(rs, host, port)
	}
	if why := refusedDestination(host, allowDest); v.Allow && why != "" {
		res.Verdict, res.Reason, res.Detail = "DENY", rules.ReasonPrivateDestination.String(), why
	}
	if e := v.Entry; e != nil {
		res.Rule = &explainRule{Catalog: e.Catalog, Pattern: e.Pattern, Kind: e.Kind.String(), Groups: e.GroupIDs(),
			Sections: e.Sections(), Ports: e.Ports, OS: e.OS, Example: e.Example, Notes: e.Notes, Source: e.Pos.String()}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		writeExplain(stdout, &res, len(rs.Estates) > 1 || client.IsValid() || *userFlag != "")
	}
	if v.Reason == rules.ReasonInvalidHost {
		return 2
	}
	if res.Verdict != "ALLOW" {
		return 1
	}
	return 0
}

func writeExplain(w io.Writer, r *explainResult, showEstate bool) {
	target := net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
	if r.Verdict == "ALLOW" {
		fmt.Fprintf(w, "ALLOW %s\n", target)
	} else {
		fmt.Fprintf(w, "DENY %s: %s\n", target, r.Reason)
	}
	if showEstate {
		fmt.Fprintf(w, "  estate:   %s (source %s)\n", r.Estate, r.Source)
	}
	if r.Detail != "" {
		fmt.Fprintf(w, "  why:      %s\n", r.Detail)
	}
	if e := r.Rule; e != nil {
		fmt.Fprintf(w, "  rule:     %s (%s, catalog %s, %s)\n", e.Pattern, e.Kind, e.Catalog, e.Source)
		fmt.Fprintf(w, "  groups:   %s\n", strings.Join(e.Groups, ", "))
		if len(e.Sections) > 0 {
			fmt.Fprintf(w, "  sections: %s\n", strings.Join(e.Sections, ", "))
		}
		fmt.Fprintf(w, "  ports:    %s\n", joinPorts(e.Ports))
		if len(e.OS) > 0 {
			fmt.Fprintf(w, "  os:       %s\n", strings.Join(e.OS, ", "))
		}
		if e.Example {
			fmt.Fprintf(w, "  example:  yes: an example host; use the one your installer log names\n")
		}
		for _, n := range e.Notes {
			fmt.Fprintf(w, "  note:     %s\n", n)
		}
	}
	for _, h := range r.Hints {
		fmt.Fprintf(w, "  hint:     %s; %s would admit %s with this in the config:\n", h.What, h.Rule, target)
		for line := range strings.Lines(h.Config) {
			fmt.Fprintf(w, "              %s", line)
		}
	}
}

// policyDetail says why the estate's policy refused an entry, with the
// setting to change; "" for other verdicts.
func policyDetail(es *rules.Estate, client netip.Addr, v rules.Verdict) string {
	p := &es.Policy
	switch v.Reason {
	case rules.ReasonNotLicensed:
		return fmt.Sprintf("the entry is for the licences %s; estate %s holds %s", strings.Join(v.Entry.Licenses, ", "), es.Name, strings.Join(p.Licenses, ", "))
	case rules.ReasonLiveResponseOff:
		return fmt.Sprintf("a Live Response host, and Live Response is off in estate %s (threat response %s); set live_response: on", es.Name, p.ThreatResponse)
	case rules.ReasonRegionExcluded:
		return fmt.Sprintf("the entry is in region %s; estate %s uses %s", v.Entry.Region, es.Name, strings.Join(p.Regions, ", "))
	case rules.ReasonDeviceExcluded:
		return fmt.Sprintf("client %s is excluded from Live Response in estate %s (live_response_exclusions)", client, es.Name)
	}
	return ""
}

func joinPorts(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// splitTarget splits HOST[:PORT] (port 443 when omitted; IPv6 in
// brackets when a port is given).
func splitTarget(s string) (string, uint16, error) {
	if s == "" {
		return "", 0, fmt.Errorf("empty target")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a name, an IPv4 address or a bare IPv6 address.
		if strings.Count(s, ":") == 1 {
			return "", 0, fmt.Errorf("target %q: %v", s, err)
		}
		return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), 443, nil
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("target %q: port %q is not 1-65535", s, portStr)
	}
	return host, uint16(p), nil
}
