package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// established is the answer to an admitted CONNECT.
var established = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// serveConnect handles one CONNECT, top to bottom: parse the target, ask
// the matcher, resolve and check the destination, dial, answer 200, read
// the ClientHello (SNI ports, 443 by default), then splice until both sides are done.
//
// The 200 is sent only after the dial succeeded, so an unreachable
// upstream is a real 502 or 504. The decision is recorded once it is
// final: at once for a deny, after the SNI check for an admitted tunnel to
// an SNI port (the upstream is connected by then but has not been sent a byte; a
// mismatch closes it unwritten).
//
// serveConnect owns the caller's work unit and connection slot: it gives
// them back when it answers, or hands them with the hijacked connection to
// the tunnel, which runs once the handler has returned, so that net/http's
// connection state and buffers are freed while the tunnel lives: on a
// goroutine of its own, or on the front end's when it read the request.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, client netip.AddrPort) {
	handedOff := false
	defer func() {
		if !handedOff {
			s.finish()
		}
	}()
	d := &Decision{Time: time.Now(), Listener: ListenerConnect, Client: client, Estate: authEstate(r)}
	host, port, err := parseTarget(r.RequestURI)
	if err != nil {
		badRequest(rules.ReasonBadTarget, err).write(w)
		return
	}
	d.Host, d.Port = host, port

	if !s.judge(d) {
		s.rec.Decided(d)
		denyAnswer(d).write(w)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DialTimeout)
	defer cancel()
	rt, err := s.resolve(ctx, host, port)
	if errors.Is(err, errPrivateDestination) {
		d.deny(rules.ReasonPrivateDestination)
		s.rec.Decided(d)
		denyAnswer(d).write(w)
		return
	}
	if err != nil {
		s.rec.Decided(d)
		s.rec.Dialed(d, rt.lookup, 0, classifyDialError(err))
		s.upstreamAnswer(host, port, err).write(w)
		return
	}
	upstream, pending, dialTook, err := s.dial(ctx, rt, host, port)
	if err != nil {
		s.rec.Decided(d)
		s.rec.Dialed(d, rt.lookup, dialTook, classifyDialError(err))
		if isOutOfDescriptors(err) {
			s.noFDs.Add(1)
			s.refusedNoFDs.Add(1)
			noDescriptors().write(w)
			return
		}
		s.upstreamAnswer(host, port, err).write(w)
		return
	}

	conn, early, err := hijack(w)
	if err != nil {
		upstream.Close()
		s.cfg.Log.Error("hijacking CONNECT connection", "client", client, "err", err)
		return
	}
	// The 200 goes out from here, not from the tunnel's goroutine, so the
	// client's wait does not include that goroutine's start.
	if _, err := conn.Write(established); err != nil {
		conn.Close()
		upstream.Close()
		return
	}
	handedOff = true
	tunnel := func() { s.tunnelConnect(d, conn, upstream, early, pending, rt.lookup, dialTook) }
	if fw, ok := w.(*frontWriter); ok {
		fw.tunnel = tunnel // the front end's goroutine, free once this returns
		return
	}
	go tunnel()
}

// tunnelConnect is the goroutine of an admitted CONNECT after the 200:
// ClientHello check on SNI ports, record, then the relay, which runs on
// goroutines of its own. It gives back the work unit and slot
// serveConnect handed it, or hands them on to the relay's end.
func (s *Server) tunnelConnect(d *Decision, conn, upstream net.Conn, early, pending []byte, lookup, dialTook time.Duration) {
	t := s.track(conn)
	if !t.setUpstream(upstream) {
		s.untrack(t)
		s.finish()
		return // Shutdown cut it
	}

	toUpstream := early
	if slices.Contains(s.cfg.SNIPorts, d.Port) {
		hello, name, _ := readHello(conn, early, s.cfg.SNITimeout)
		toUpstream = hello
		var reason rules.Reason
		defer releaseHello(hello) // after relay has written it
		if d.SNI, reason = s.checkSNI(d, name); reason != rules.ReasonNone {
			d.deny(reason)
			s.rec.Decided(d)
			if isTLS(hello) {
				conn.Write(alertAccessDenied)
			}
			s.untrack(t)
			s.finish()
			return
		}
	}

	s.rec.Decided(d)
	s.rec.Dialed(d, lookup, dialTook, DialOK)
	s.rec.TunnelOpened(d)
	t.relay(toUpstream, pending, s.endTunnel(d, t, s.finish))
}

// endTunnel is the end of a relay (tunnel.relay): it records the close,
// forgets the tunnel and calls done, which gives back what the tunnel held.
func (s *Server) endTunnel(d *Decision, t *tunnel, done func()) func(TunnelStats) {
	return func(st TunnelStats) {
		s.rec.TunnelClosed(d, st)
		s.untrack(t)
		done()
	}
}

// hijack takes the connection over from net/http and returns it with the
// bytes net/http had already read past the request: a client may send its
// ClientHello without waiting for the 200, and those bytes belong to the
// tunnel.
func hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = append(make([]byte, 0, n), b...)
	}
	// A connection the front end handed to net/http with bytes it had
	// read comes back wrapped; those net/http has not read yet follow
	// its buffer. Unwrapped, the tunnel has the TCP connection itself:
	// splice, and a half-close rather than a close at the peer's EOF.
	if rc, ok := c.(*connectclient.ReplayConn); ok {
		early = append(early, rc.Pending...)
		c = rc.Conn
	}
	return c, early, nil
}
