package proxy

import (
	"net/netip"

	"github.com/egressgate/egressgate/rules"
)

// Gate is what a server admits with besides its rules: the clients it
// serves, the private destinations it may dial anyway, and monitor mode.
type Gate struct {
	// Clients are the source prefixes served. Nil serves every client:
	// explain without --client asks about the destination only. A Server
	// always has some (Config.Clients, else DefaultClients).
	Clients []netip.Prefix
	// AllowDest are the private or reserved destinations admitted anyway
	// (Config.AllowDest).
	AllowDest []netip.Prefix
	// Monitor admits what the catalog alone denies (Config.Monitor).
	Monitor bool
}

// Query is one connection to judge.
type Query struct {
	Client netip.Addr
	// Estate is the estate to judge as when it is already known (proxy
	// authentication chose it, or the rules have only one); nil judges as
	// Ruleset's estate for Client.
	Estate  *rules.Estate
	Ruleset *rules.Ruleset
	Host    string // as the client sent it
	Port    uint16
}

// Admission is Admit's answer.
type Admission struct {
	// Estate is the estate that judged; nil when the client was refused
	// before its estate mattered.
	Estate  *rules.Estate
	Verdict rules.Verdict // the estate's verdict
	Action  Action
	Reason  rules.Reason // rules.ReasonNone when allowed
}

// Admit is the admission decision, the one the proxy makes for every
// CONNECT, plain-HTTP request and SNI connection and that explain prints:
// the client ACL, then the client's estate and its verdict on host:port,
// then, for an IP-literal host the verdict admits, the destination check.
// A name's addresses are checked by the same policy once resolved
// (Server.resolve), which a pure function cannot do.
//
// Monitor mode turns a deny of the catalog (not-in-catalog,
// port-not-allowed) into ActionWouldDeny; every other reason is a safety
// check that holds in every mode. Admit does not allocate where
// rules.Matcher.Lookup does not.
func Admit(g Gate, q Query) Admission {
	if g.Clients != nil && !clientACL(g.Clients).allows(q.Client) {
		return Admission{Action: ActionDeny, Reason: rules.ReasonClientNotAllowed}
	}
	a := Admission{Estate: q.Estate}
	if a.Estate == nil {
		a.Estate = q.Ruleset.EstateFor(q.Client)
	}
	a.Verdict = a.Estate.Lookup(q.Client, q.Host, q.Port)
	switch {
	case a.Verdict.Allow:
		a.Action, a.Reason = ActionAllow, rules.ReasonNone
	case g.Monitor && catalogReason(a.Verdict.Reason):
		a.Action, a.Reason = ActionWouldDeny, a.Verdict.Reason
	default:
		a.Action, a.Reason = ActionDeny, a.Verdict.Reason
		return a
	}
	if addr, ok := rules.HostAddr(q.Host); ok && !(destPolicy{allow: g.AllowDest}).permits(addr) {
		a.Action, a.Reason = ActionDeny, rules.ReasonPrivateDestination
	}
	return a
}

// catalogReason reports whether r is a matter of the catalog's content,
// which monitor mode admits; every other reason is a safety check that
// holds in every mode.
func catalogReason(r rules.Reason) bool {
	return r == rules.ReasonNotInCatalog || r == rules.ReasonPortNotAllowed
}
