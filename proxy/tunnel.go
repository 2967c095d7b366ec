package proxy

import (
	"io"
	"net"
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
	idle   time.Duration // Config.IdleTimeout; 0: never cut for idleness

	mu       sync.Mutex
	upstream net.Conn    // nil until dialed
	watchdog *time.Timer // nil until relay starts
	closed   bool

	lastActive atomic.Int64 // unix nanoseconds of the last chunk moved

	// Set by relay, for its goroutines.
	start              time.Time
	end                func(TunnelStats)
	upBytes, downBytes int64        // each written by one direction only
	running            atomic.Int32 // directions still copying
	dirs               relayDirs    // each used by one direction only
}

// relayDirs is the state each direction of a relay keeps between its
// bursts (relay_linux.go), in the tunnel rather than allocated per
// direction.
type relayDirs struct{ up, down burst }

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
// ways, on two goroutines of its own, until both directions have ended,
// propagating each EOF as a half-close. It returns at once; end is called
// once, from the goroutine of the direction that ended last, after both
// connections are closed, with what the tunnel moved.
//
// Each direction is a pipe: on Linux between TCP sockets it splices, in
// bursts, so that no byte passes through user space and an idle tunnel
// holds its two sockets and no pipe (relay_linux.go). Each burst stamps
// lastActive. When IdleTimeout is set, a watchdog timer closes the tunnel
// once neither direction moved a byte for that long; by default there is
// none, and a dead peer is found by TCP keepalive instead.
//
// An idle tunnel costs two goroutines, each parked in the poller, and
// nothing else: both start fresh here, not on the goroutine that read and
// judged the tunnel, whose stack that work has grown, and no third
// goroutine waits for them. The watchdog, when set, is a timer.
func (t *tunnel) relay(toUpstream, toClient []byte, end func(TunnelStats)) {
	t.start = time.Now()
	t.end = end
	t.lastActive.Store(t.start.UnixNano())
	if !writeEarly(t.upstream, toUpstream, &t.upBytes) || !writeEarly(t.client, toClient, &t.downBytes) {
		t.finish()
		return
	}
	t.running.Store(2)
	t.dirs.init(t.client, t.upstream)
	t.startWatchdog()
	go t.pipeUp()
	go t.pipeDown()
}

// writeEarly writes b, bytes read before the relay began, to dst and adds
// what it wrote to *moved. It reports whether dst took all of b.
func writeEarly(dst net.Conn, b []byte, moved *int64) bool {
	if len(b) == 0 {
		return true
	}
	n, err := dst.Write(b)
	*moved += int64(n)
	return err == nil
}

// pipeUp is the goroutine copying client to upstream.
func (t *tunnel) pipeUp() {
	eof := t.pipe(t.upstream, t.client, &t.upBytes, &t.dirs.up)
	t.directionDone(&t.dirs.up, eof)
}

// pipeDown is the goroutine copying upstream to client.
func (t *tunnel) pipeDown() {
	eof := t.pipe(t.client, t.upstream, &t.downBytes, &t.dirs.down)
	t.directionDone(&t.dirs.down, eof)
}

// directionDone ends the tunnel when the second direction is done. A
// first direction that ended at src's EOF then watches src for a reset
// (awaitReset) until the tunnel closes.
func (t *tunnel) directionDone(b *burst, eof bool) {
	if t.running.Add(-1) == 0 {
		t.finish()
		return
	}
	if eof {
		t.awaitReset(b)
	}
}

// finish closes the tunnel and calls end with its stats. The byte counts
// are each written by one direction's goroutine only, and read here after
// both have ended (or before either started).
func (t *tunnel) finish() {
	t.close()
	t.end(TunnelStats{Upstream: t.upBytes, Downstream: t.downBytes, Duration: time.Since(t.start)})
}

// startWatchdog arms the idle timer. It is the watchdog rather than the
// copies themselves that closes an idle tunnel, because a copy can be stuck
// writing to a peer that does not read (a write deadline there would only
// tell the copy that the peer is slow, not that the tunnel is idle), and a
// copy that ended at EOF no longer looks at the clock.
func (t *tunnel) startWatchdog() {
	if t.idle <= 0 {
		return
	}
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

// copyChunks is pipe for connections that cannot splice (not TCP, or
// not Linux): a user-space copy through a buffer of its own that stamps
// lastActive for each chunk.
func (t *tunnel) copyChunks(dst, src net.Conn, n *int64) (eof bool) {
	buf := make([]byte, 32<<10)
	for {
		r, err := src.Read(buf)
		if r > 0 {
			w, werr := dst.Write(buf[:r])
			*n += int64(w)
			t.lastActive.Store(time.Now().UnixNano())
			if werr != nil {
				t.close()
				return false
			}
		}
		switch {
		case err == io.EOF:
			closeWrite(dst)
			return true
		case err != nil:
			t.close()
			return false
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
