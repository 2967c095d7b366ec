package rules

// Reason says why a connection was denied or an answer was not the
// upstream's: the product's one vocabulary of reasons, carried by the
// X-Egressgate-Reason header, the logs and the metrics. The set is closed:
// metrics use it as a label value, so it never holds a client-supplied
// string. It has two parts: the deny reasons of an admission decision
// (Reasons), and the reasons of answers that are not decisions
// (AnswerReasons): a request that does not parse, a limit, an upstream
// that failed.
type Reason uint8

const (
	ReasonNone               Reason = iota // allowed
	ReasonNotInCatalog                     // no entry names the host
	ReasonPortNotAllowed                   // an entry names the host, not the port
	ReasonInvalidHost                      // not a valid DNS name or IP literal
	ReasonPrivateDestination               // resolves to a refused address
	ReasonSNIMismatch                      // TLS SNI names another host than CONNECT
	ReasonNoSNI                            // TLS without SNI, or not TLS, where SNI is required
	ReasonClientNotAllowed                 // source address outside the client ACL
	ReasonNotLicensed                      // the entry needs a licence the estate does not have
	ReasonLiveResponseOff                  // a Live Response host where Live Response is off
	ReasonDeviceExcluded                   // a Live Response host from a device excluded from it
	ReasonRegionExcluded                   // a host of a Central region the estate does not use
	ReasonProxyAuth                        // proxy authentication missing or wrong
	ReasonTLSRequired                      // proxy credentials sent without TLS where auth.require_tls is set

	// Answers that are not admission decisions; never a Decision's
	// reason. New deny reasons go above this line.
	ReasonBadTarget           // 400: CONNECT target is not host:port
	ReasonBadRequest          // 400: a CONNECT head that does not parse
	ReasonNotProxyRequest     // 400: origin-form request to the proxy itself
	ReasonUnsupportedScheme   // 400: absolute URI that is not http://
	ReasonMaxConns            // 503: the connection cap is reached, or the proxy is shutting down
	ReasonOutOfDescriptors    // 503: the process ran out of file descriptors
	ReasonPACUnavailable      // 503 or 500: no PAC file to serve
	ReasonUpstreamDNS         // 502: the name did not resolve
	ReasonUpstreamRefused     // 502: connection refused
	ReasonUpstreamReset       // 502: connection reset
	ReasonUpstreamUnreachable // 502: no route to host or network
	ReasonUpstreamTimeout     // 504: resolve or connect timed out
	ReasonUpstreamError       // 502: any other upstream failure
	ReasonUpstreamProxy       // 502: the parent proxy refused the request
	numReasons
)

// firstAnswerReason is where the answer reasons start.
const firstAnswerReason = ReasonBadTarget

var reasonNames = [numReasons]string{"", "not-in-catalog", "port-not-allowed", "invalid-host",
	"private-destination", "sni-mismatch", "no-sni", "client-not-allowed", "not-licensed",
	"live-response-off", "device-excluded", "region-excluded", "proxy-auth", "tls-required",
	"bad-target", "bad-request", "not-proxy-request", "unsupported-scheme", "max-conns",
	"out-of-descriptors", "pac-unavailable", "upstream-dns", "upstream-refused", "upstream-reset",
	"upstream-unreachable", "upstream-timeout", "upstream-error", "upstream-proxy"}

// String returns the reason's name as used in headers, logs and metrics.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// MarshalText gives the reason's name, so that a Reason logged or
// encoded reads as it does in the header.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Reasons lists every deny reason of an admission decision, for metrics
// that export all of them.
func Reasons() []Reason {
	out := make([]Reason, 0, firstAnswerReason-1)
	for r := ReasonNone + 1; r < firstAnswerReason; r++ {
		out = append(out, r)
	}
	return out
}

// AnswerReasons lists the reasons of answers that are not admission
// decisions.
func AnswerReasons() []Reason {
	out := make([]Reason, 0, numReasons-firstAnswerReason)
	for r := firstAnswerReason; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// Verdict is the matcher's answer for one host and port.
type Verdict struct {
	Allow  bool
	Reason Reason // ReasonNone when Allow
	// Entry is the entry that admitted the host; for
	// ReasonPortNotAllowed the best entry that names the host; for a
	// reason of the estate's policy (not-licensed, live-response-off,
	// region-excluded, device-excluded) the entry it refused; nil
	// otherwise. It belongs to the Matcher that gave the verdict.
	Entry *Entry
}
