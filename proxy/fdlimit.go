package proxy

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/egressgate/egressgate/rules"
)

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
// zero. Where the platform has RLIMIT_NOFILE (Linux, macOS, the BSDs) it
// is derived from the soft limit, which Go raises towards the hard limit
// at start-up:
//
//	(limit − 256 − limit/16) / 2, at least 16
//
// so that the proxy answers 503 max-conns before the kernel refuses it a
// descriptor: 9,247 under a 20,000 limit, 491,392 under 1,048,576. An
// unlimited soft limit gives 524,288. Where there is no such limit
// (Windows) it is a plain cap of 16,384, so that a flood of clients still
// meets a 503 rather than exhausting memory.
func DefaultMaxConns() int {
	return defaultMaxConnsFor(descriptorLimit())
}

// defaultMaxConnsFor is DefaultMaxConns for a descriptor limit, known or
// not (ok false).
func defaultMaxConnsFor(limit uint64, ok bool) int {
	switch {
	case !ok:
		return fixedMaxConns
	case limit > 1<<30:
		return 1 << 20 / fdsPerTunnel
	}
	return maxConnsFor(int(limit))
}

// fixedMaxConns is DefaultMaxConns where the platform has no descriptor
// limit to derive it from.
const fixedMaxConns = 16384

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
	return answer{http.StatusServiceUnavailable, rules.ReasonOutOfDescriptors,
		"egressgate: out of file descriptors, try again later"}
}

// noDescriptorsReply is noDescriptors on the wire, for a connection
// refused before net/http sees it.
var noDescriptorsReply = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	reasonHeader + ": " + rules.ReasonOutOfDescriptors.String() + "\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 53\r\n\r\n" +
	"egressgate: out of file descriptors, try again later\n")

// waitListener is the accept loop's guard where there is no spare
// descriptor to answer with (every platform but Linux; spareListener
// there): running out of descriptors never reaches the caller, which
// would stop serving; Accept counts it and waits, backing off, until a
// descriptor comes free. The client waits in the listen queue meanwhile.
type waitListener struct {
	net.Listener
	s *Server
}

// Accept returns the next client, waiting out descriptor exhaustion.
func (l *waitListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !isOutOfDescriptors(err) {
			return c, err
		}
		l.s.noFDs.Add(1)
		backoff = nextBackoff(backoff)
		time.Sleep(backoff)
	}
}

// nextBackoff is the wait after backoff for a descriptor to come free:
// doubling from 5 ms, at most 250 ms.
func nextBackoff(backoff time.Duration) time.Duration {
	return min(max(2*backoff, 5*time.Millisecond), 250*time.Millisecond)
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
