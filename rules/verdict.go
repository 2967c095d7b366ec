package rules

// Reason says why a connection was denied. The set is closed: metrics use
// it as a label value, so it never holds a client-supplied string. The
// reasons that only the proxy can decide are listed here too, so that the
// whole product shares one vocabulary.
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
	numReasons
)

var reasonNames = [numReasons]string{"", "not-in-catalog", "port-not-allowed", "invalid-host",
	"private-destination", "sni-mismatch", "no-sni", "client-not-allowed", "not-licensed",
	"live-response-off", "device-excluded", "region-excluded", "proxy-auth", "tls-required"}

// String returns the reason's name as used in headers, logs and metrics.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every deny reason, for metrics that export all of them.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
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
