//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipe copies src to dst until EOF or error and adds the bytes to *n. On
// EOF it half-closes dst (the peer sees our EOF and may still answer) and
// reports true; on an error it closes the whole tunnel, so that the other
// direction ends too.
//
// Between TCP sockets it splices in bursts so that an idle tunnel holds
// its two sockets and nothing else. io.Copy would splice too, but it takes
// a pipe pair from Go's pool when it starts and gives it back only when it
// ends, so a tunnel blocked in both directions holds six descriptors. Here
// a burst takes a pipe from splicePipes, splices src into it and on into
// dst (SPLICE_F_NONBLOCK, inside the sockets' RawConn callbacks, so the
// poller waits for a slow dst) until src has nothing more (EAGAIN), and
// gives the pipe back. Between bursts the direction waits for src to be
// readable through the poller, with no pipe. A dst that takes nothing for
// stallGrace (a client that stopped reading) gets the pipe's bytes from
// memory instead (burst.stash), so that a stalled tunnel holds two
// descriptors too.
func (t *tunnel) pipe(dst, src net.Conn, n *int64, b *burst) (eof bool) {
	d, dok := dst.(*net.TCPConn)
	s, sok := src.(*net.TCPConn)
	if !dok || !sok {
		return t.copyChunks(dst, src, n)
	}
	if b.src == nil || b.dst == nil {
		t.close() // SyscallConn failed in init: the socket was closed
		return false
	}
	for {
		b.w = readyWaiter{}
		b.step = stepReady
		if err := b.src.Read(b.call); err != nil || b.w.err != nil {
			t.close() // closed, deadline, or reset
			return false
		}
		if b.w.eof {
			closeWrite(dst)
			return true
		}
		moved, eof, err := b.run(s, d)
		*n += moved
		if moved > 0 {
			t.lastActive.Store(time.Now().UnixNano())
		}
		switch {
		case err != nil:
			t.close()
			return false
		case eof:
			closeWrite(dst)
			return true
		}
	}
}

// awaitReset is what a direction does after src's EOF while the other
// direction still runs: it waits until src fails, and then closes the
// tunnel. Nothing else reads src any more, so without it a peer that
// half-closed and then vanished (its keepalive probe answered with a
// reset) would go unnoticed for as long as the other side stays open and
// quiet. It returns when the tunnel is closed.
func (t *tunnel) awaitReset(b *burst) {
	if b.src == nil {
		return // not a TCP socket (copyChunks)
	}
	b.failed = false
	b.step = stepWatchReset
	b.src.Read(b.call)
	if b.failed {
		t.close()
	}
}

// watchReset is awaitReset's callback: true once src has failed.
func (b *burst) watchReset(fd uintptr) bool {
	// A read would say EOF even after a reset: the socket's error is
	// where the reset (or a keepalive timeout) shows.
	soErr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	b.failed = err != nil || soErr != 0
	return b.failed
}

// burst moves what src holds to dst through a pipe taken for the burst.
// A tunnel holds one per direction (relayDirs), made ready by init before
// its goroutines start, so that the relay allocates its callbacks once per
// tunnel rather than per direction and per wait: one callback per
// direction (call), which does what step says.
type burst struct {
	src, dst syscall.RawConn
	p        *splicePipe
	call     func(fd uintptr) bool // b.callback, made once
	step     burstStep

	in      int  // bytes in the pipe
	moved   int  // bytes of the last splice
	full    bool // the last drain found dst full
	wait    bool // drain waits for dst instead of reporting it full
	err     error
	w       readyWaiter // the wait for src between bursts
	failed  bool        // awaitReset: src failed
	copyBuf []byte      // the user-space fallback's buffer, when no pipe could be had
	stashed []byte      // the pipe's bytes, taken out for a stalled dst (stash)
}

// burstStep is what a burst's callback does.
type burstStep uint8

const (
	stepReady      burstStep = iota // wait until src is readable (readyWaiter)
	stepFill                        // splice src into the pipe (fillPipe)
	stepDrain                       // splice the pipe into dst (drainPipe)
	stepWatchReset                  // wait until src fails (watchReset)
)

// callback is the RawConn callback of a direction, for every step.
func (b *burst) callback(fd uintptr) bool {
	switch b.step {
	case stepReady:
		return b.w.ready(fd)
	case stepFill:
		return b.fillPipe(fd)
	case stepDrain:
		return b.drainPipe(fd)
	default:
		return b.watchReset(fd)
	}
}

// init readies the tunnel's two directions between client and upstream,
// which share the two sockets' RawConns. Connections that are not both
// TCP sockets are copied by copyChunks and need nothing.
func (r *relayDirs) init(client, upstream net.Conn) {
	c, cok := client.(*net.TCPConn)
	u, uok := upstream.(*net.TCPConn)
	if !cok || !uok {
		return
	}
	crc, err1 := c.SyscallConn()
	urc, err2 := u.SyscallConn()
	if err1 != nil || err2 != nil {
		return // pipe sees no RawConns and closes the tunnel
	}
	r.up.src, r.up.dst = crc, urc
	r.down.src, r.down.dst = urc, crc
	r.up.call = r.up.callback
	r.down.call = r.down.callback
}

// stallGrace is how long a burst keeps its pipe, with bytes in it, waiting
// for a dst that takes nothing. A receiver that reads at all frees room
// within a round trip; one that has not for this long has stopped, and
// the pipe's two descriptors go back rather than wait with it.
const stallGrace = 250 * time.Millisecond

// maxBurstSplice bounds one splice into the pipe: the pipe's size when
// F_SETPIPE_SZ took, else the kernel returns less.
const maxBurstSplice = 1 << 20

// run splices src to dst until src has nothing queued, reaches EOF or
// fails. It returns the bytes moved and whether src ended.
func (b *burst) run(s, d *net.TCPConn) (moved int64, eof bool, err error) {
	p, err := getSplicePipe()
	if err != nil {
		// No pipe (out of descriptors): one user-space read and write.
		return b.copyOnce(s, d)
	}
	b.p = p
	moved, eof, err = b.splice(d)
	if b.in > 0 {
		p.close() // bytes stranded in it: never reuse
	} else {
		putSplicePipe(p)
	}
	b.p, b.in = nil, 0
	if b.stashed != nil {
		// The pipe is back: now wait for dst as long as it takes.
		n, werr := d.Write(b.stashed)
		b.stashed = nil
		moved += int64(n)
		if err == nil {
			err = werr
		}
	}
	return moved, eof, err
}

// splice is run's loop: fill the pipe from src, drain it into dst, until
// src is empty, ends or fails, or dst stalled and the pipe's bytes were
// stashed.
func (b *burst) splice(d *net.TCPConn) (moved int64, eof bool, err error) {
	for {
		b.err, b.moved, b.step = nil, 0, stepFill
		if rerr := b.src.Read(b.call); rerr != nil {
			return moved, false, rerr
		}
		switch {
		case b.err == syscall.EAGAIN:
			return moved, false, nil // the burst is over
		case b.err != nil:
			return moved, false, b.err
		case b.moved == 0:
			return moved, true, nil
		}
		b.in = b.moved
		for b.in > 0 {
			n, err := b.drainOnce(d)
			moved += n
			if err != nil || b.stashed != nil {
				return moved, false, err
			}
		}
	}
}

// drainOnce moves what it can of the pipe's bytes to dst: at once if dst
// has room, else once dst has room again within stallGrace, else it
// stashes them.
func (b *burst) drainOnce(d *net.TCPConn) (int64, error) {
	b.err, b.moved, b.full, b.wait, b.step = nil, 0, false, false, stepDrain
	if err := b.dst.Write(b.call); err != nil {
		return 0, err
	}
	if b.full {
		d.SetWriteDeadline(time.Now().Add(stallGrace))
		b.err, b.moved, b.full, b.wait = nil, 0, false, true
		err := b.dst.Write(b.call)
		d.SetWriteDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, b.stash()
		}
		if err != nil {
			return 0, err
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	b.in -= b.moved
	return int64(b.moved), nil
}

// stash reads the pipe's bytes into memory, which empties the pipe so
// that run gives it back before it writes them to dst. A stalled
// direction thus holds at most a pipe's worth of memory and no descriptor
// beyond its sockets.
func (b *burst) stash() error {
	buf := make([]byte, b.in)
	for off := 0; off < len(buf); {
		n, err := unix.Read(b.p.r, buf[off:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("emptying a splice pipe: %w", err)
		}
		off += n
	}
	b.in = 0
	b.stashed = buf
	return nil
}

// fillPipe splices what src holds into the pipe, without waiting.
func (b *burst) fillPipe(fd uintptr) bool {
	for {
		n, err := unix.Splice(int(fd), nil, b.p.w, nil, maxBurstSplice, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == syscall.EINTR {
			continue
		}
		b.moved, b.err = int(n), err
		return true
	}
}

// drainPipe splices the pipe's bytes into dst. When dst is full it
// reports so (full), or, once told to wait, returns false so that the
// poller waits for dst to be writable.
func (b *burst) drainPipe(fd uintptr) bool {
	for {
		n, err := unix.Splice(b.p.r, nil, int(fd), nil, b.in, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			b.full = !b.wait
			return b.full
		}
		b.moved, b.err = int(n), err
		return true
	}
}

// copyOnce is a burst without a pipe: what one read returns, written on.
func (b *burst) copyOnce(s, d *net.TCPConn) (int64, bool, error) {
	if b.copyBuf == nil {
		b.copyBuf = make([]byte, 32<<10)
	}
	r, err := s.Read(b.copyBuf)
	if r > 0 {
		if _, werr := d.Write(b.copyBuf[:r]); werr != nil {
			return 0, false, werr
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return int64(r), true, nil
		}
		return int64(r), false, err
	}
	return int64(r), false, nil
}

// splicePipe is a pipe pair for bursts.
type splicePipe struct{ r, w int }

func (p *splicePipe) close() {
	syscall.Close(p.r)
	syscall.Close(p.w)
}

// splicePipes holds idle pipes for the next bursts: a few, so that busy
// tunnels do not create a pipe per burst, and bounded, so that the
// descriptors beyond two per tunnel stay a small constant. It is one pool
// for the process, as Go's own splice pool is, rather than one per
// Server: the pipes are interchangeable, and what the bound protects, the
// descriptor limit, is the process's.
var splicePipes = make(chan *splicePipe, 16)

// getSplicePipe takes a pipe from splicePipes or makes one.
func getSplicePipe() (*splicePipe, error) {
	select {
	case p := <-splicePipes:
		return p, nil
	default:
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	// A bigger pipe moves more per splice; the default 64 KiB still works.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, maxBurstSplice)
	return &splicePipe{r: fds[0], w: fds[1]}, nil
}

// putSplicePipe gives an empty pipe back, or closes it if splicePipes is full.
func putSplicePipe(p *splicePipe) {
	select {
	case splicePipes <- p:
	default:
		p.close()
	}
}

// readyWaiter is a direction's wait for src between bursts: it reports
// "not yet" until its socket is readable, has reached EOF or has failed,
// and says which.
type readyWaiter struct {
	eof    bool  // the peer half-closed and nothing is queued
	err    error // the socket failed (reset)
	waited bool  // the poller woke us: the burst will find out what is there
}

// ready is called by RawConn.Read, first at once and then each time the
// poller sees the socket readable; false sends it back to wait. The first
// call peeks one byte (MSG_PEEK|MSG_DONTWAIT), which tells "not yet", EOF
// and failure apart without taking anything: the poller's readiness was
// reset when the wait began, so bytes already queued would not wake it.
// After a wake-up it answers at once, and the burst's splice finds out
// what is there (nothing: it gives the pipe back and the direction waits
// again; EOF: zero bytes).
func (w *readyWaiter) ready(fd uintptr) bool {
	if w.waited {
		return true
	}
	for {
		var b byte
		r, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EAGAIN:
			w.waited = true
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
		return true
	}
}
