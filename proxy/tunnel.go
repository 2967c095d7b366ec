package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tunnel is one client connection taken over from net/http (CONNECT) or
// accepted raw (SNI), and the upstream connection it is relayed to. The
// Server tracks every tunnel so that Shutdown can drain and then close
// them: http.Server.Shutdown forgets a connection once it is hijacked.
type tunnel struct {
	client net.Conn
	idle   time.Duration

	mu       sync.Mutex
	upstream net.Conn    // nil until dialed
	watchdog *time.Timer // nil until relay starts
	closed   bool

	lastActive atomic.Int64 // unix nanoseconds of the last chunk moved
}

// setUpstream attaches the upstream connection. It reports false, and
// closes c, when the tunnel was closed meanwhile.
func (t *tunnel) setUpstream(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.upstream = c
	return true
}

// close closes both connections; any blocked copy returns. Safe to call
// more than once and from any goroutine.
func (t *tunnel) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	if t.watchdog != nil {
		t.watchdog.Stop()
	}
	t.client.Close()
	if t.upstream != nil {
		t.upstream.Close()
	}
}

// relay writes toUpstream and toClient (bytes read before the relay
// began: the ClientHello, a parent proxy's early bytes), then copies both
// ways until both directions have ended, propagating each EOF as a
// half-close. It closes both connections before it returns.
//
// The copies are io.Copy between the raw *net.TCPConn values, so on Linux
// the kernel splices the data and no byte passes through user space. io.Copy
// gives no progress callback, so idleness is measured by read deadlines:
// each copy runs until its source's deadline, one tick (IdleTimeout/10,
// within 10 ms and 1 min) ahead, and a copy that moved anything stamps
// lastActive. A watchdog timer closes the tunnel when neither direction
// moved a byte for IdleTimeout, so a tunnel ends between IdleTimeout and
// IdleTimeout plus two ticks after its last byte. Each copy still splices:
// the deadline interrupts a splice between reads, never inside one.
//
// An idle tunnel costs two goroutines: the caller's, which copies client
// to upstream, and one copying the other way; the watchdog is a timer.
func (t *tunnel) relay(toUpstream, toClient []byte) TunnelStats {
	start := time.Now()
	defer t.close()
	t.lastActive.Store(start.UnixNano())
	var st TunnelStats
	if len(toUpstream) > 0 {
		n, err := t.upstream.Write(toUpstream)
		st.Upstream += int64(n)
		if err != nil {
			st.Duration = time.Since(start)
			return st
		}
	}
	if len(toClient) > 0 {
		n, err := t.client.Write(toClient)
		st.Downstream += int64(n)
		if err != nil {
			st.Duration = time.Since(start)
			return st
		}
	}
	var up, down int64
	downDone := make(chan struct{})
	go t.pipeDown(&down, downDone)
	t.startWatchdog()
	t.pipe(t.upstream, t.client, &up)
	<-downDone
	st.Upstream += up
	st.Downstream += down
	st.Duration = time.Since(start)
	return st
}

// tick is how often the copies come up for air to stamp lastActive.
func (t *tunnel) tick() time.Duration {
	return min(max(t.idle/10, 10*time.Millisecond), time.Minute)
}

// startWatchdog arms the idle timer. It is the watchdog rather than the
// copies themselves that closes an idle tunnel, because a copy can be stuck
// writing to a peer that does not read (no write deadline is set: a splice
// cut in the middle of a write would lose the bytes in its pipe), and a
// copy that ended at EOF no longer looks at the clock.
func (t *tunnel) startWatchdog() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.watchdog = time.AfterFunc(t.idle, t.checkIdle)
	}
}

// checkIdle runs when the idle timer fires: it closes the tunnel if no byte
// moved for IdleTimeout, or re-arms the timer for the time left.
func (t *tunnel) checkIdle() {
	idleFor := time.Since(time.Unix(0, t.lastActive.Load()))
	if idleFor >= t.idle {
		t.close()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.watchdog.Reset(t.idle - idleFor)
	}
}

// pipeDown is the goroutine copying upstream to client.
func (t *tunnel) pipeDown(n *int64, done chan<- struct{}) {
	defer close(done)
	t.pipe(t.client, t.upstream, n)
}

// pipe copies src to dst until EOF or error and adds the bytes to *n. On
// EOF it half-closes dst (the peer sees our EOF and may still answer); on
// an error it closes the whole tunnel, so that the other direction ends
// too. Each io.Copy runs until src's read deadline, one tick ahead, so
// that bytes moved are stamped in lastActive at least once a tick.
func (t *tunnel) pipe(dst, src net.Conn, n *int64) {
	tick := t.tick()
	for {
		src.SetReadDeadline(time.Now().Add(tick))
		w, err := io.Copy(dst, src)
		*n += w
		if w > 0 {
			t.lastActive.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil:
			closeWrite(dst)
			return
		case !errors.Is(err, os.ErrDeadlineExceeded):
			t.close()
			return
		}
	}
}

// closeWrite half-closes c when it can (TCP), or closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
