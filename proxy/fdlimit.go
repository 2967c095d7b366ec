package proxy

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// ReasonNoDescriptors is the reason of the 503 answered when the process
// ran out of file descriptors (EMFILE, ENFILE) accepting a client or
// dialing its upstream.
const ReasonNoDescriptors = "out-of-descriptors"

// Descriptor budget behind DefaultMaxConns: a tunnel holds two
// descriptors (client and upstream socket) and, only during a burst, a
// pipe pair from the relay's pool (relay_linux.go), which keeps at most 16
// idle. reservedFDs covers the listeners, log
// and config files, the admin server and DNS; 1/fdHeadroomDiv of the
// limit covers the pipes of busy tunnels and connections not yet counted
// (accepted, still reading their request head).
const (
	reservedFDs    = 256
	fdHeadroomDiv  = 16
	fdsPerTunnel   = 2
	minDefaultConn = 16
)

// DefaultMaxConns is the connection cap used when Config.MaxConns is
// zero, derived from the soft RLIMIT_NOFILE (which Go raises to the hard
// limit at start-up):
//
//	(limit − 256 − limit/16) / 2, at least 16
//
// so that the proxy answers 503 max-conns before the kernel refuses it a
// descriptor: 9,247 under a 20,000 limit, 491,392 under 1,048,576.
func DefaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 20 / fdsPerTunnel
	}
	return maxConnsFor(int(rl.Cur))
}

// maxConnsFor is DefaultMaxConns for a descriptor limit.
func maxConnsFor(limit int) int {
	return max((limit-reservedFDs-limit/fdHeadroomDiv)/fdsPerTunnel, minDefaultConn)
}

// isOutOfDescriptors reports whether err is the process (EMFILE) or the
// system (ENFILE) running out of file descriptors.
func isOutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// noDescriptors is the 503 when the process ran out of descriptors.
func noDescriptors() answer {
	return answer{http.StatusServiceUnavailable, ReasonNoDescriptors,
		"egressgate: out of file descriptors, try again later"}
}

// noDescriptorsReply is noDescriptors on the wire, for a connection
// refused before net/http sees it.
var noDescriptorsReply = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	ReasonHeader + ": " + ReasonNoDescriptors + "\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 53\r\n\r\n" +
	"egressgate: out of file descriptors, try again later\n")

// spareListener keeps one descriptor in reserve so that running out of
// descriptors still gets an answer. When Accept fails with EMFILE or
// ENFILE, it closes the spare, accepts the waiting client with it,
// answers 503 out-of-descriptors, closes, and takes the spare back.
// Without it a client would wait in the listen queue, unanswered, until a
// descriptor came free.
type spareListener struct {
	net.Listener
	s *Server

	mu     sync.Mutex
	spare  int  // -1 while in use or not yet taken back
	closed bool // no spare is taken after Close
}

func newSpareListener(ln net.Listener, s *Server) *spareListener {
	return &spareListener{Listener: ln, s: s, spare: openSpare()}
}

// openSpare takes a descriptor to hold in reserve, or returns -1.
func openSpare() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// Accept returns the next client. Descriptor exhaustion never reaches the
// caller: it is answered (above) or waited out.
func (l *spareListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !isOutOfDescriptors(err) {
			return c, err
		}
		l.s.noFDs.Add(1)
		if l.refuseOne() {
			backoff = 0
			continue
		}
		// No spare to answer with: wait for a descriptor to come free.
		backoff = min(max(2*backoff, 5*time.Millisecond), 250*time.Millisecond)
		time.Sleep(backoff)
	}
}

// refuseOne answers one waiting client with the spare descriptor. It
// reports false when there was no spare to use or no client came.
func (l *spareListener) refuseOne() bool {
	l.mu.Lock()
	fd := l.spare
	l.spare = -1
	l.mu.Unlock()
	if fd < 0 {
		l.retakeSpare()
		return false
	}
	syscall.Close(fd)
	c, err := l.Listener.Accept()
	if err != nil {
		l.retakeSpare()
		return false
	}
	l.s.refusedNoFDs.Add(1)
	go l.refuse(c)
	return true
}

// refuse reads what the client sent of its request (briefly: the answer
// does not depend on it, but closing with unread bytes would reset the
// connection and lose the answer), answers 503, closes, and takes the
// spare back.
func (l *spareListener) refuse(c net.Conn) {
	defer l.retakeSpare()
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	var buf [512]byte
	c.Read(buf[:])
	c.Write(noDescriptorsReply)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		for { // drain until the client closes, within the deadline
			if _, err := c.Read(buf[:]); err != nil {
				break
			}
		}
	}
}

// retakeSpare takes a spare descriptor again if none is held.
func (l *spareListener) retakeSpare() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare < 0 && !l.closed {
		l.spare = openSpare()
	}
}

// Close closes the listener and gives back the spare.
func (l *spareListener) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.spare >= 0 {
		syscall.Close(l.spare)
		l.spare = -1
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// Limits is a snapshot of the connection cap and what it refused.
type Limits struct {
	MaxConns int   // the cap in force; negative: none
	Active   int64 // tunnels plus requests holding a slot
	// RefusedMaxConns counts 503 max-conns answers (and SNI connections
	// closed for the cap).
	RefusedMaxConns int64
	// RefusedNoDescriptors counts 503 out-of-descriptors answers.
	RefusedNoDescriptors int64
	// OutOfDescriptors counts every EMFILE or ENFILE met accepting or
	// dialing, answered or not.
	OutOfDescriptors int64
}

// Limits returns the current Limits. It is cheap: atomic loads.
func (s *Server) Limits() Limits {
	return Limits{
		MaxConns:             s.cfg.MaxConns,
		Active:               s.active.Load(),
		RefusedMaxConns:      s.refusedMax.Load(),
		RefusedNoDescriptors: s.refusedNoFDs.Load(),
		OutOfDescriptors:     s.noFDs.Load(),
	}
}
