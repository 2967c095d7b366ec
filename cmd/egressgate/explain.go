package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/export"
)

// explainResult is the JSON form of an explain answer.
type explainResult struct {
	Host    string        `json:"host"`
	Port    uint16        `json:"port"`
	Estate  string        `json:"estate"`  // the client's estate; "default" without estates
	Source  string        `json:"source"`  // its preference source
	Verdict string        `json:"verdict"` // ALLOW or DENY
	Rule    *export.Entry `json:"rule"`    // null when no entry names the host
	Reason  string        `json:"reason"`  // empty when allowed
	Detail  string        `json:"detail,omitempty"`
	// Hints are policy changes under which a deny would be an allow.
	Hints []explainHint `json:"hints,omitempty"`
}

// explainHint is a rules.PolicyHint as explain's JSON shows it.
type explainHint struct {
	What   string `json:"what"`
	Rule   string `json:"rule"`
	Config string `json:"config"`
}

// explainArgs is explain's command line, parsed.
type explainArgs struct {
	config    string
	asJSON    bool
	client    netip.Addr // invalid when --client is not given
	user      string
	clients   []netip.Prefix
	allowDest []netip.Prefix
	host      string
	port      uint16
}

// runExplain prints whether HOST[:PORT] would be admitted and why, as
// proxy.Admit decides it for serve. Exit 0 for allow, 1 for deny, 2 for
// bad input.
func runExplain(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	ea, exit, ok := parseExplain(cl, args, stdout, stderr)
	if !ok {
		return exit
	}
	rs, ok := loadConfig(ea.config, stderr)
	if !ok {
		return 2
	}
	q := proxy.Query{Client: ea.client, Ruleset: rs, Host: ea.host, Port: ea.port}
	if !ea.client.IsValid() {
		q.Estate = rs.Estates[0]
	}
	if ea.user != "" {
		if rs.Users == nil {
			fmt.Fprintf(stderr, "egressgate explain: --user: the config has no auth section\n")
			return 2
		}
		if q.Estate = rs.Users.EstateOf(ea.user); q.Estate == nil {
			fmt.Fprintf(stderr, "egressgate explain: --user %q is not in the password file\n", ea.user)
			return 2
		}
	}
	gate := proxy.Gate{AllowDest: ea.allowDest}
	if ea.client.IsValid() {
		gate.Clients = ea.clients
	}
	a := proxy.Admit(gate, q)
	res := explainResultOf(rs, ea, a)
	if ea.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		writeExplain(stdout, &res, len(rs.Estates) > 1 || ea.client.IsValid() || ea.user != "")
	}
	switch a.Reason {
	case rules.ReasonNone:
		return 0
	case rules.ReasonInvalidHost:
		return 2
	}
	return 1
}

// parseExplain parses explain's command line; false with the exit status
// when there is nothing to explain (help, or bad usage).
func parseExplain(cl *commandLine, args []string, stdout, stderr io.Writer) (explainArgs, int, bool) {
	var ea explainArgs
	config := cl.addConfig()
	asJSON := cl.Bool("json", false, "print one JSON object")
	clientFlag := cl.String("client", "", "judge as a client at this `address` (the client ACL, its estate, its Live Response exclusion)")
	userFlag := cl.String("user", "", "judge as this proxy-authentication `user` (its estate; no password needed here)")
	cl.Var(prefixList{&ea.clients}, "clients", "client `CIDR` serve is told to serve (repeatable; default loopback and private ranges), as for serve")
	cl.Var(prefixList{&ea.allowDest}, "allow-dest", "private or reserved destination `CIDR` serve is told to allow anyway (repeatable), as for serve")
	pos, exit, ok := cl.parse(args, stdout, stderr)
	if !ok {
		return ea, exit, false
	}
	switch len(pos) {
	case 0:
		return ea, cl.fail(stderr, "missing HOST[:PORT]"), false
	case 1:
	default:
		return ea, cl.fail(stderr, "one HOST[:PORT] at a time; got %q", pos), false
	}
	ea.config, ea.asJSON, ea.user = *config, *asJSON, *userFlag
	if len(ea.clients) == 0 {
		ea.clients = proxy.DefaultClients()
	}
	if *clientFlag != "" {
		a, err := netip.ParseAddr(*clientFlag)
		if err != nil {
			fmt.Fprintf(stderr, "egressgate explain: --client %q is not an IP address\n", *clientFlag)
			return ea, 2, false
		}
		ea.client = a.Unmap()
	}
	var err error
	if ea.host, ea.port, err = parseExplainTarget(pos[0]); err != nil {
		fmt.Fprintf(stderr, "egressgate explain: %v\n", err)
		return ea, 2, false
	}
	return ea, 0, true
}

// explainResultOf is the answer to print for admission a.
func explainResultOf(rs *rules.Ruleset, ea explainArgs, a proxy.Admission) explainResult {
	res := explainResult{Host: ea.host, Port: ea.port, Verdict: "DENY", Reason: a.Reason.String()}
	if a.Action == proxy.ActionAllow {
		res.Verdict = "ALLOW"
	}
	if a.Estate != nil {
		res.Estate, res.Source = a.Estate.Name, a.Estate.Source
	}
	switch a.Reason {
	case rules.ReasonClientNotAllowed:
		res.Detail = fmt.Sprintf("client %s is not in --clients (by default loopback and the private ranges): serve answers 403 client-not-allowed", ea.client)
	case rules.ReasonPrivateDestination:
		addr, _ := rules.HostAddr(ea.host) // only a literal is refused before it is resolved
		res.Detail = fmt.Sprintf("%s is in a private or reserved range that serve never dials: it answers 403 private-destination unless --allow-dest lists the address", addr)
	case rules.ReasonInvalidHost:
		if _, err := rules.CanonicalHost(ea.host); err != nil {
			res.Detail = err.Error()
		}
	case rules.ReasonNotInCatalog, rules.ReasonPortNotAllowed:
		for _, h := range rs.Hints(ea.host, ea.port) {
			res.Hints = append(res.Hints, explainHint{What: h.What, Rule: h.Rule, Config: h.Config})
		}
	default:
		res.Detail = policyDetail(a.Estate, ea.client, a.Verdict)
	}
	if e := a.Verdict.Entry; e != nil {
		r := export.Resolve(e)
		res.Rule = &r
	}
	return res
}

func writeExplain(w io.Writer, r *explainResult, showEstate bool) {
	target := net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
	if r.Verdict == "ALLOW" {
		fmt.Fprintf(w, "ALLOW %s\n", target)
	} else {
		fmt.Fprintf(w, "DENY %s: %s\n", target, r.Reason)
	}
	if showEstate && r.Estate != "" {
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
