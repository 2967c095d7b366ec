package proxy

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// judge picks the client's estate (unless authentication already set
// d.Estate), asks its matcher about d.Host and d.Port, and fills in
// d.Estate, d.Matcher, d.Verdict, d.Action and d.Reason. It reports
// whether the request may go on: allowed, or only would-be denied in
// monitor mode.
func (s *Server) judge(d *Decision) bool {
	client := d.Client.Addr()
	if d.Estate == nil {
		if s.estates != nil {
			d.Estate = s.estates.Current().EstateFor(client)
		} else {
			d.Estate = &rules.Estate{Name: rules.DefaultEstate, Matcher: s.cfg.Rules.Matcher()}
		}
	}
	d.Matcher = d.Estate.Matcher
	d.Verdict = d.Estate.Lookup(client, d.Host, d.Port)
	switch {
	case d.Verdict.Allow:
		d.Action, d.Reason = ActionAllow, rules.ReasonNone
	case s.cfg.Monitor && catalogReason(d.Verdict.Reason):
		d.Action, d.Reason = ActionWouldDeny, d.Verdict.Reason
	default:
		d.Action, d.Reason = ActionDeny, d.Verdict.Reason
	}
	return d.Action != ActionDeny
}

// catalogReason reports whether r is a matter of the catalog's content,
// which monitor mode admits; every other reason is a safety check that
// holds in every mode.
func catalogReason(r rules.Reason) bool {
	return r == rules.ReasonNotInCatalog || r == rules.ReasonPortNotAllowed
}

// earlyDeny is the Decision for a request refused before its target is
// judged (client not allowed, proxy authentication failed): the CONNECT
// target, or the URL's host.
func earlyDeny(r *http.Request, client netip.AddrPort, reason rules.Reason) *Decision {
	d := &Decision{Time: time.Now(), Listener: ListenerHTTP, Client: client, Action: ActionDeny, Reason: reason}
	if r.Method == http.MethodConnect {
		d.Listener = ListenerConnect
		d.Host, d.Port, _ = parseTarget(r.RequestURI)
	} else {
		d.Host = r.URL.Hostname()
	}
	return d
}

// deny turns d into a deny for reason.
func (d *Decision) deny(reason rules.Reason) {
	d.Action, d.Reason = ActionDeny, reason
}

// checkSNI judges the server name a tunnel's ClientHello gave (nil for
// none, or not TLS) against the host the tunnel was admitted for:
//
//   - no name: denied (no-sni) unless Config.AllowNoSNI;
//   - host is a name: the SNI must be the same name once canonicalised,
//     else sni-mismatch; a different name that the catalog also allows is
//     still a mismatch, as fronting one allowed name for another is what
//     the check exists to stop;
//   - host is an IP literal: the SNI names what the client really wants,
//     so it must itself be allowed by the same matcher on the same port,
//     else sni-mismatch.
//
// It returns the name as a string ("" for none) and the reason to deny,
// rules.ReasonNone to admit.
func (s *Server) checkSNI(d *Decision, name []byte) (string, rules.Reason) {
	if name == nil {
		if s.cfg.AllowNoSNI {
			return "", rules.ReasonNone
		}
		return "", rules.ReasonNoSNI
	}
	sni := string(name)
	want, err := rules.CanonicalHost(sni)
	if err != nil {
		return sni, rules.ReasonSNIMismatch
	}
	host, err := rules.CanonicalHost(d.Host)
	if err != nil {
		return sni, rules.ReasonSNIMismatch
	}
	if _, err := netip.ParseAddr(host); err == nil {
		if !d.Estate.Lookup(d.Client.Addr(), want, d.Port).Allow {
			return sni, rules.ReasonSNIMismatch
		}
		return sni, rules.ReasonNone
	}
	if want != host {
		return sni, rules.ReasonSNIMismatch
	}
	return sni, rules.ReasonNone
}

// nopRecorder records nothing; it stands in for a nil Config.Recorder.
type nopRecorder struct{}

func (nopRecorder) Decided(*Decision)                                         {}
func (nopRecorder) Dialed(*Decision, time.Duration, time.Duration, DialError) {}
func (nopRecorder) TunnelOpened(*Decision)                                    {}
func (nopRecorder) TunnelClosed(*Decision, TunnelStats)                       {}

var _ Recorder = nopRecorder{}
