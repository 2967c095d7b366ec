package proxy

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// ServeSNI accepts raw TLS connections on ln until Shutdown: a
// transparent listener for traffic redirected to it (iptables REDIRECT,
// a DNS override). Each connection is judged as if it were
// "CONNECT <server name>:443" (Config.SNIDestPort): the ClientHello's server name is the only
// target there is, so a hello without one is always denied (no-sni). A
// deny sends a TLS access_denied alert and closes. It returns nil after
// Shutdown, or the listener's error.
func (s *Server) ServeSNI(ln net.Listener) error {
	ln = s.acceptProxied(ln, string(ListenerSNI), nil)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("proxy: server is shut down")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if isOutOfDescriptors(err) {
				s.noFDs.Add(1)
			}
			if errors.As(err, &ne) && ne.Timeout() || isOutOfDescriptors(err) {
				// Out of descriptors: wait, as net/http does, rather
				// than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.begin() {
			c.Close()
			return nil
		}
		go s.serveSNIConn(c)
	}
}

// serveSNIConn handles one connection of the SNI listener, top to bottom:
// client ACL, cap, ClientHello, verdict, resolve, dial, splice.
func (s *Server) serveSNIConn(c net.Conn) {
	handedOff := false // to the relay, with the work unit
	defer func() {
		if !handedOff {
			s.work.Done()
		}
	}()
	client := connAddrPort(c)
	d := &Decision{Time: time.Now(), Listener: ListenerSNI, Client: client, Port: s.cfg.SNIDestPort}
	if !s.acl.allows(client.Addr()) {
		d.deny(rules.ReasonClientNotAllowed)
		s.rec.Decided(d)
		s.cfg.Log.Warn("client not allowed", "client", client.Addr(), "listener", ListenerSNI)
		c.Close()
		return
	}
	if !s.acquire() {
		s.refusedMax.Add(1)
		s.cfg.Log.Warn("connection limit reached", "client", client.Addr(), "listener", ListenerSNI, "max_conns", s.cfg.MaxConns)
		c.Close()
		return
	}
	s.keepAlive(c)
	t := s.track(c)
	defer func() {
		if !handedOff {
			s.untrack(t)
			s.release()
		}
	}()

	hello, name, _ := readHello(c, nil, s.cfg.SNITimeout)
	defer releaseHello(hello) // after relay has written it
	if name == nil {
		d.deny(rules.ReasonNoSNI)
		s.rec.Decided(d)
		if isTLS(hello) {
			c.Write(alertAccessDenied)
		}
		return
	}
	d.SNI = string(name)
	d.Host = d.SNI
	if !s.judge(d) {
		s.rec.Decided(d)
		c.Write(alertAccessDenied)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	defer cancel()
	rt, err := s.resolve(ctx, d.Host, d.Port)
	if errors.Is(err, errPrivateDestination) {
		d.deny(rules.ReasonPrivateDestination)
		s.rec.Decided(d)
		c.Write(alertAccessDenied)
		return
	}
	if err != nil {
		s.rec.Decided(d)
		s.rec.Dialed(d, rt.lookup, 0, classifyDialError(err))
		return
	}
	upstream, pending, dialTook, err := s.dial(ctx, rt, d.Host, d.Port)
	if err != nil {
		s.rec.Decided(d)
		s.rec.Dialed(d, rt.lookup, dialTook, classifyDialError(err))
		return
	}
	if !t.setUpstream(upstream) {
		return
	}
	s.rec.Decided(d)
	s.rec.Dialed(d, rt.lookup, dialTook, DialOK)
	s.rec.TunnelOpened(d)
	handedOff = true
	t.relay(hello, pending, s.endTunnel(d, t, s.finish))
}
