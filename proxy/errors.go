package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// reasonHeader carries the reason of every answer egressgate writes
// itself: a rules.Reason, a deny's or one of the answer reasons.
const reasonHeader = "X-Egressgate-Reason"

// answer is a reply egressgate writes itself instead of the upstream's.
type answer struct {
	status int
	reason rules.Reason // the reasonHeader value
	text   string       // body, one line
}

// write sends a as a short plain-text reply.
func (a answer) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(reasonHeader, a.reason.String())
	h.Set("Content-Length", strconv.Itoa(len(a.text)+1))
	w.WriteHeader(a.status)
	fmt.Fprintln(w, a.text)
}

// response returns a as an *http.Response, for goproxy's hooks.
func (a answer) response(req *http.Request) *http.Response {
	body := a.text + "\n"
	resp := &http.Response{
		StatusCode: a.status, Status: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(strings.NewReader(body)),
		Request:       req,
	}
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set(reasonHeader, a.reason.String())
	return resp
}

// denyAnswer is the 403 for a denied decision.
func denyAnswer(d *Decision) answer {
	return answer{http.StatusForbidden, d.Reason,
		fmt.Sprintf("egressgate: %s denied: %s", hostPort(d.Host, d.Port), d.Reason)}
}

// clientAnswer is the 403 for a client outside the ACL.
func clientAnswer(client string) answer {
	r := rules.ReasonClientNotAllowed
	return answer{http.StatusForbidden, r, fmt.Sprintf("egressgate: client %s denied: %s", client, r)}
}

// badRequest is a 400 with reason and the error's text.
func badRequest(reason rules.Reason, err error) answer {
	return answer{http.StatusBadRequest, reason, "egressgate: bad request: " + err.Error()}
}

// overloaded is the 503 when MaxConns is reached.
func overloaded(max int) answer {
	return answer{http.StatusServiceUnavailable, rules.ReasonMaxConns,
		fmt.Sprintf("egressgate: too many connections (limit %d), try again later", max)}
}

// upstreamAnswer is the 502 or 504 for a failed resolve or dial of
// host:port. The client learns the reason and the host, never the error
// itself: that names the proxy's own resolver, addresses and parent, so it
// goes to the server's log instead, one line per failure.
func (s *Server) upstreamAnswer(host string, port uint16, err error) answer {
	a := upstreamReply(host, port, err)
	s.cfg.Log.Warn("upstream failed", "host", onwardHost(host), "port", port, "reason", a.reason.String(), "err", err)
	return a
}

// upstreamReply is the client's side of Server.upstreamAnswer: status,
// reason and a body that says what failed in the proxy's own words.
func upstreamReply(host string, port uint16, err error) answer {
	kind := classifyDialError(err)
	status, reason, what := http.StatusBadGateway, rules.ReasonUpstreamError, "the upstream connection failed"
	switch kind {
	case DialTimeout:
		status, reason, what = http.StatusGatewayTimeout, rules.ReasonUpstreamTimeout, "no answer within the dial timeout"
	case DialDNS:
		reason, what = rules.ReasonUpstreamDNS, "the name does not resolve"
	case DialRefused:
		reason, what = rules.ReasonUpstreamRefused, "the server refused the connection"
	case DialReset:
		reason, what = rules.ReasonUpstreamReset, "the server reset the connection"
	case DialUnreach:
		reason, what = rules.ReasonUpstreamUnreachable, "no route to the server"
	}
	var pe *connectclient.Refusal
	if errors.As(err, &pe) {
		reason, what = rules.ReasonUpstreamProxy, fmt.Sprintf("the parent proxy answered %d", pe.Status)
		if pe.Status == http.StatusGatewayTimeout {
			status = http.StatusGatewayTimeout
		}
	}
	return answer{status, reason, fmt.Sprintf("egressgate: %s: %s: %s", hostPort(host, port), reason, what)}
}

// classifyDialError sorts a resolve or dial error into the fixed set.
func classifyDialError(err error) DialError {
	var dnsErr *net.DNSError
	var pe *connectclient.Refusal
	switch {
	case err == nil:
		return DialOK
	case errors.As(err, &pe):
		if pe.Status == http.StatusGatewayTimeout {
			return DialTimeout
		}
		return DialOther
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return DialTimeout
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return DialTimeout
		}
		return DialDNS
	case errors.Is(err, errNoAddresses):
		return DialDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return DialRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return DialReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return DialUnreach
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return DialTimeout
	}
	return DialOther
}

// hostPort formats host and port for a reply, quoting a host that holds
// anything but printable ASCII so a client cannot inject text.
func hostPort(host string, port uint16) string {
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c >= 0x7f {
			host = strconv.Quote(host)
			break
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// tlsRequired is the 403 for proxy credentials sent in clear where
// auth.require_tls is set: they were not checked, and the client should
// use the HTTPS proxy listener.
func tlsRequired() answer {
	r := rules.ReasonTLSRequired
	return answer{http.StatusForbidden, r, "egressgate: proxy credentials are accepted only over TLS (an https:// proxy): " + r.String()}
}
