package proxy

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// judge asks Admit about d: the client's estate (unless authentication
// already set d.Estate), its verdict on d.Host and d.Port, and the
// destination check of an IP literal; it fills in d.Estate, d.Matcher,
// d.Verdict, d.Action and d.Reason. It reports whether the request may go
// on: allowed, or only would-be denied in monitor mode.
func (s *Server) judge(d *Decision) bool {
	q := Query{Client: d.Client.Addr(), Estate: d.Estate, Host: d.Host, Port: d.Port}
	if q.Estate == nil {
		if s.estates != nil {
			q.Ruleset = s.estates.Current()
		} else {
			q.Estate = s.soleEstate()
		}
	}
	a := Admit(Gate{Clients: s.cfg.Clients, AllowDest: s.cfg.AllowDest, Monitor: s.cfg.Monitor}, q)
	d.Estate, d.Verdict, d.Action, d.Reason = a.Estate, a.Verdict, a.Action, a.Reason
	if a.Estate != nil {
		d.Matcher = a.Estate.Matcher
	}
	return d.Action != ActionDeny
}

// soleEstate is the default estate of rules that serve no estates, around
// their current matcher. It is made again only when the matcher changed,
// so that judging does not allocate.
func (s *Server) soleEstate() *rules.Estate {
	m := s.cfg.Rules.Matcher()
	if es := s.sole.Load(); es != nil && es.Matcher == m {
		return es
	}
	es := &rules.Estate{Name: rules.DefaultEstate, Matcher: m}
	s.sole.Store(es)
	return es
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
