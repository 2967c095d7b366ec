package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// What a proxy-port connection is checked for as it is accepted, before
// a byte of it is read: the client ACL, then the connection cap. A client
// outside the ACL, or one arriving when the cap is reached, costs a
// descriptor for no longer than its answer takes, whatever it sends.
//
// Open connections that hold no slot of their own (reading a request
// head, or idle between keep-alive requests) are counted in Server.open,
// and the cap at accept is on slots and open connections together: so a
// client cannot hold more connections than --max-conns by never
// finishing a head or by idling.

// admitConn checks a newly accepted proxy-port connection. It reports
// false after it answered and closed c; otherwise c counts as open.
func (s *Server) admitConn(c net.Conn) bool {
	client := connAddrPort(c)
	if !s.acl.allows(client.Addr()) {
		d := &Decision{Time: time.Now(), Listener: ListenerConnect, Client: client, Action: ActionDeny, Reason: rules.ReasonClientNotAllowed}
		s.rec.Decided(d)
		refuseConn(c, rawAnswer(clientAnswer(client.Addr().String())))
		return false
	}
	n := s.open.Add(1)
	if s.cfg.MaxConns >= 0 && n+s.active.Load() > int64(s.cfg.MaxConns) {
		s.open.Add(-1)
		s.refusedMax.Add(1)
		refuseConn(c, rawAnswer(overloaded(s.cfg.MaxConns)))
		return false
	}
	return true
}

// closeOpen closes a connection counted as open.
func (s *Server) closeOpen(c net.Conn) {
	s.open.Add(-1)
	c.Close()
}

// rawAnswer is a on the wire, with Connection: close.
func rawAnswer(a answer) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n%s: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		a.status, http.StatusText(a.status), reasonHeader, a.reason, len(a.text)+1, a.text)
	return b.Bytes()
}

// Refusals at accept: the answer is written at once, without reading
// the request. Closing a socket with unread bytes resets it, which may
// destroy the answer before the client reads it, so a refused connection
// is drained for a moment after its answer — but by at most
// maxRefusalDrains at a time, so that a flood of them holds few
// descriptors; beyond that it is closed at once.
const (
	refusalDrain     = 200 * time.Millisecond
	maxRefusalDrains = 64
)

var refusalDrains atomic.Int32

// refuseConn writes reply to c and closes it.
func refuseConn(c net.Conn, reply []byte) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(reply); err != nil || refusalDrains.Add(1) > maxRefusalDrains {
		refusalDrains.Add(-1)
		c.Close()
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	go drainRefused(c)
}

// drainRefused reads and discards what a refused client sends, for at
// most refusalDrain, then closes c.
func drainRefused(c net.Conn) {
	defer refusalDrains.Add(-1)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(refusalDrain))
	buf := drainBufs.Get().(*[]byte)
	defer drainBufs.Put(buf)
	for range 16 {
		if _, err := c.Read(*buf); err != nil {
			return
		}
	}
}

var drainBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// connStates follows the proxy-port connections net/http serves, so that
// those between requests count as open and those in a request as a slot
// (ServeHTTP takes it), never as both.
type connStates struct {
	mu sync.Mutex
	m  map[net.Conn]http.ConnState
}

// hook is the http.Server's ConnState. Every connection it sees was
// counted open by the front end when it was accepted.
func (s *Server) connStateHook(c net.Conn, state http.ConnState) {
	cs := &s.states
	cs.mu.Lock()
	prev, seen := cs.m[c]
	if !seen {
		prev = http.StateNew
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(cs.m, c)
	default:
		if cs.m == nil {
			cs.m = map[net.Conn]http.ConnState{}
		}
		cs.m[c] = state
	}
	cs.mu.Unlock()
	wasOpen := prev == http.StateNew || prev == http.StateIdle
	isOpen := state == http.StateNew || state == http.StateIdle
	switch {
	case wasOpen && !isOpen:
		s.open.Add(-1)
	case !wasOpen && isOpen:
		s.open.Add(1)
	}
}
