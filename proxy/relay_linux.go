//go:build linux

package proxy

import (
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipe copies src to dst until EOF or error and adds the bytes to *n. On
// EOF it half-closes dst (the peer sees our EOF and may still answer); on
// an error it closes the whole tunnel, so that the other direction ends
// too.
//
// Between TCP sockets it copies in bursts so that an idle tunnel holds its
// two sockets and nothing else. io.Copy would splice too, but it takes a
// pipe pair from Go's pool when it starts and gives it back only when it
// ends, so a tunnel blocked in both directions holds six descriptors. Here
// each burst first waits for src to be readable through the poller, with
// no pipe, then splices exactly the bytes the kernel has queued (SIOCINQ):
// TCPConn.ReadFrom of an io.LimitedReader over a TCPConn still splices,
// and with the bytes already there it never waits for more, so the pipe
// goes back to the pool as soon as the burst is written.
func (t *tunnel) pipe(dst, src net.Conn, n *int64) {
	d, dok := dst.(*net.TCPConn)
	s, sok := src.(*net.TCPConn)
	if !dok || !sok {
		t.copyChunks(dst, src, n)
		return
	}
	rc, err := s.SyscallConn()
	if err != nil {
		t.close()
		return
	}
	var w readyWaiter
	ready := w.ready // one method value per direction, not one per burst
	lr := &io.LimitedReader{R: s}
	for {
		w.queued, w.eof, w.err = 0, false, nil
		if err := rc.Read(ready); err != nil || w.err != nil {
			t.close() // closed, deadline, or reset
			return
		}
		if w.eof {
			closeWrite(dst)
			return
		}
		lr.N = int64(w.queued)
		m, err := d.ReadFrom(lr)
		*n += m
		w.hot = m > 0
		if m > 0 {
			t.lastActive.Store(time.Now().UnixNano())
		}
		if err != nil {
			t.close()
			return
		}
	}
}

// readyWaiter is the RawConn.Read callback of one direction: it reports
// "not yet" until its socket has bytes queued, has reached EOF or has
// failed, and says which.
type readyWaiter struct {
	queued int   // bytes the kernel holds for us
	eof    bool  // the peer half-closed and nothing is queued
	err    error // the socket failed (reset)
	hot    bool  // the last burst moved bytes: more may be queued already
}

// ready is called by RawConn.Read, first at once and then each time the
// poller sees the socket readable; false sends it back to wait. While
// bytes are flowing (hot: the last burst moved some) SIOCINQ first
// counts what is queued, one system call when more is there. Otherwise,
// and when nothing is queued, a one-byte peek tells "not yet", EOF and
// failure apart, one system call for the common cases of a tunnel that
// waits or ends.
func (w *readyWaiter) ready(fd uintptr) bool {
	if w.hot {
		q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			w.err = err
			return true
		}
		if q > 0 {
			w.queued = q
			return true
		}
	}
	for {
		var b byte
		r, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EAGAIN:
			return false
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			w.err = errno
			return true
		case r == 0:
			w.eof = true
			return true
		}
		q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			w.err = err
		}
		w.queued = max(q, 1)
		return true
	}
}
