package proxy

import (
	"net/netip"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// Listener names the listener a request arrived on. The values are fixed:
// metrics use them as label values.
type Listener string

const (
	ListenerConnect Listener = "connect" // CONNECT on the forward proxy
	ListenerHTTP    Listener = "http"    // absolute-URI request on the forward proxy
	ListenerSNI     Listener = "sni"     // transparent TLS listener
)

// Action is what the proxy did with a request.
type Action string

const (
	ActionAllow     Action = "allow"
	ActionDeny      Action = "deny"
	ActionWouldDeny Action = "would-deny" // monitor mode: denied by the catalog, admitted anyway
)

// Decision is one admission decision, made once per connection (CONNECT,
// SNI) or per request (plain HTTP). The proxy fills it in and hands the
// same value to the Recorder at every later step of that connection.
type Decision struct {
	Time     time.Time
	Listener Listener
	Client   netip.AddrPort
	Host     string // as the client sent it; may hold any bytes, log it escaped
	Port     uint16
	SNI      string // TLS server name when one was read
	Action   Action
	// Reason is why the request was denied (or would have been, in
	// monitor mode); rules.ReasonNone when allowed.
	Reason rules.Reason
	// Verdict is the matcher's answer; Verdict.Entry is the entry to count
	// a hit on (nil when no entry admitted the host).
	Verdict rules.Verdict
	// Matcher is the matcher that gave Verdict: Verdict.Entry.ID indexes
	// its entries.
	Matcher *rules.Matcher
	// Estate is the client's estate (by proxy authentication, else by
	// address); nil until the verdict step, and for decisions made
	// before it. Its Name comes from the config, never from the client.
	Estate *rules.Estate
}

// TunnelStats is what a finished connection moved.
type TunnelStats struct {
	Upstream   int64 // bytes client → upstream
	Downstream int64 // bytes upstream → client
	Duration   time.Duration
}

// DialError classifies an upstream failure; the values are fixed label
// values.
type DialError string

const (
	DialOK      DialError = ""
	DialDNS     DialError = "dns"     // name did not resolve
	DialRefused DialError = "refused" // connection refused
	DialTimeout DialError = "timeout" // dial or lookup timed out
	DialReset   DialError = "reset"   // reset by the peer
	DialUnreach DialError = "unreachable"
	DialOther   DialError = "other"
)

// Recorder receives what the proxy decides and does. Implementations must
// be safe for concurrent use and cheap: Decided is on every connection's
// hot path. A nil Recorder in Config means nothing is recorded.
type Recorder interface {
	// Decided is called once per decision, allowed or not.
	Decided(d *Decision)
	// Dialed is called after the upstream dial of an admitted request:
	// lookup is the DNS time (0 when none was needed), dial the connect
	// time, err DialOK on success.
	Dialed(d *Decision, lookup, dial time.Duration, err DialError)
	// TunnelOpened and TunnelClosed bracket an established tunnel or
	// forwarded request.
	TunnelOpened(d *Decision)
	TunnelClosed(d *Decision, s TunnelStats)
}
