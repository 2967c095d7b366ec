//go:build linux

package proxy

import (
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guardAccept wraps the proxy's listener so that running out of
// descriptors is answered (spareListener) rather than returned to the
// accept loop.
func guardAccept(ln net.Listener, s *Server) net.Listener {
	return newSpareListener(ln, s)
}

// spareListener keeps one descriptor in reserve so that running out of
// descriptors still gets an answer. Accept fails with EMFILE at once,
// client or not (the kernel takes the descriptor before it looks at the
// queue), so the listener first waits (poll(2) on the listening socket)
// for a client to be queued; then it frees the spare, accepts that client into the freed
// slot, answers 503 out-of-descriptors, and keeps the answered socket as
// the next spare. The spare is never closed and reopened: a slot freed
// that way could be taken by anything else in the process (a dial, the
// runtime reading a file) before it was taken back, and with the spare
// lost, the next client would wait unanswered until a tunnel closed.
// Without it a client would wait in the listen queue, unanswered, until a
// descriptor came free.
type spareListener struct {
	net.Listener
	raw syscall.RawConn // the listener's; nil: no refusals, only waiting
	s   *Server

	mu     sync.Mutex
	spare  int  // -1 while in use or lost
	socket bool // spare is an answered client's socket, not /dev/null
	closed bool // no spare is kept after Close
}

func newSpareListener(ln net.Listener, s *Server) *spareListener {
	l := &spareListener{Listener: ln, s: s, spare: openSpare()}
	if sc, ok := ln.(syscall.Conn); ok {
		l.raw, _ = sc.SyscallConn()
	}
	return l
}

// openSpare takes a descriptor to hold in reserve, or returns -1.
func openSpare() int {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// Accept returns the next client. Descriptor exhaustion never reaches the
// caller: it is answered (above) or waited out.
func (l *spareListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	queued := false // a client is known to wait in the queue
	for {
		c, err := l.Listener.Accept()
		if err == nil || !isOutOfDescriptors(err) {
			return c, err
		}
		l.s.noFDs.Add(1)
		switch {
		case l.raw == nil: // not a socket we can poll: only wait
		case !queued:
			if werr := l.waitQueued(); werr != nil {
				return nil, werr
			}
			queued = true
			continue // a descriptor may have come free meanwhile
		case l.refuseOne():
			backoff, queued = 0, false
			continue
		}
		// No spare to answer with, or the client left: wait for a
		// descriptor to come free, then for a client again.
		queued = false
		backoff = nextBackoff(backoff)
		time.Sleep(backoff)
	}
}

// waitQueued waits until a connection is queued on the listener, without
// accepting it. Go's poller does not wait on listeners for a caller
// (their RawConn has no Read), so this polls the socket itself, a short
// while at a time, so that Close is not held up for long. It fails only
// when the listener is closed.
func (l *spareListener) waitQueued() error {
	for {
		queued := false
		err := l.raw.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, int(queuePoll/time.Millisecond))
			queued = n > 0
		})
		if err != nil {
			return err
		}
		if queued {
			return nil
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
	}
}

// queuePoll is how long one wait of waitQueued lasts.
const queuePoll = 100 * time.Millisecond

// refuseOne answers one queued client in the spare descriptor's slot.
// It reports false when there was no spare (it then tries to take one
// again) or no client to accept.
func (l *spareListener) refuseOne() bool {
	l.mu.Lock()
	fd, socket := l.spare, l.socket
	l.spare = -1
	l.mu.Unlock()
	if fd < 0 {
		l.keepSpare(openSpare(), false)
		return false
	}
	closeSpare(fd, socket)
	cfd := -1
	var err error
	cerr := l.raw.Control(func(lfd uintptr) {
		for {
			cfd, _, err = unix.Accept4(int(lfd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if err != unix.EINTR && err != unix.ECONNABORTED {
				return
			}
		}
	})
	if cerr != nil || err != nil {
		// The slot went elsewhere first, or the client left.
		l.keepSpare(openSpare(), false)
		return false
	}
	l.s.refusedNoFDs.Add(1)
	refuseSocket(cfd)
	l.keepSpare(cfd, true)
	return true
}

// refuseWait bounds how long a refusal waits for the client's request
// before answering: the accept loop waits with it, and nobody else can be
// accepted meanwhile anyway.
const refuseWait = 50 * time.Millisecond

// refuseSocket answers 503 out-of-descriptors on a freshly accepted
// socket and half-closes it, all without the poller (there is no
// descriptor to spare for it). It reads what the client sent first, so
// the answer follows the request as a client expects; the socket stays
// open as the spare, so unread bytes cannot reset it before the client
// has read the answer.
func refuseSocket(fd int) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	unix.Poll(p, int(refuseWait/time.Millisecond))
	drainSocket(fd)
	unix.SendmsgN(fd, noDescriptorsReply, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	unix.Shutdown(fd, unix.SHUT_WR)
}

// drainSocket reads and discards whatever is queued on a non-blocking
// socket, at most 64 KiB.
func drainSocket(fd int) {
	var buf [4096]byte
	for range 16 {
		if n, _, err := unix.Recvfrom(fd, buf[:], unix.MSG_DONTWAIT); n <= 0 || err != nil {
			return
		}
	}
}

// closeSpare gives a spare descriptor back. A socket kept from a refusal
// is drained first: closing it with unread bytes would reset it.
func closeSpare(fd int, socket bool) {
	if socket {
		drainSocket(fd)
	}
	unix.Close(fd)
}

// keepSpare makes fd the spare, or closes it after Close; fd < 0 leaves
// the spare lost until the next try.
func (l *spareListener) keepSpare(fd int, socket bool) {
	if fd < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.spare >= 0 {
		closeSpare(fd, socket)
		return
	}
	l.spare, l.socket = fd, socket
}

// Close closes the listener and gives back the spare.
func (l *spareListener) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.spare >= 0 {
		closeSpare(l.spare, l.socket)
		l.spare = -1
	}
	l.mu.Unlock()
	return l.Listener.Close()
}
