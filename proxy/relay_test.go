//go:build linux

package proxy

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// copyEcho echoes through a user-space buffer, so that the upstream's
// own descriptors stay at one per connection (io.Copy would splice and
// hold a pipe pair of its own while idle).
func copyEcho(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			c.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors needs /proc: %v", err)
	}
	return len(ents)
}

// TestIdleTunnelDescriptors pins the relay's descriptor cost: a tunnel
// that has carried bytes both ways and is now idle holds its two sockets
// and no splice pipe. Go's io.Copy between TCP sockets keeps a pipe pair
// per direction for as long as the copy runs, 6 descriptors per idle
// tunnel (docs/performance.md).
func TestIdleTunnelDescriptors(t *testing.T) {
	up := echoServer(t, copyEcho)
	addr, target, _ := proxyFor(t, "echo.example.org", up, Config{})

	// One tunnel first, so that listeners, the poller and Go's pipe
	// pool are already counted in the base.
	warm := openTunnel(t, addr, target)
	if err := roundTrip(warm, strings.Repeat("w", 100<<10)); err != nil {
		t.Fatal(err)
	}
	const n = 300
	base := openFDs(t)
	for i := range n {
		c := openTunnel(t, addr, target)
		// 100 KiB each way: more than one burst, through the splice pipes.
		if err := roundTrip(c, strings.Repeat(string(rune('a'+i%26)), 100<<10)); err != nil {
			t.Fatalf("tunnel %d: %v", i, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the last bursts give their pipes back
	// Per tunnel in this process: the test's client socket, the proxy's
	// two, the upstream's one. The slack covers Go's pooled pipes.
	const perTunnel, slack = 4, 40
	if got := openFDs(t) - base; got > perTunnel*n+slack {
		t.Errorf("%d idle tunnels opened %d descriptors, want at most %d (%d per tunnel + %d): the relay holds pipes while idle",
			n, got, perTunnel*n+slack, perTunnel, slack)
	} else {
		t.Logf("%d idle tunnels: %d descriptors in this process (%.2f per tunnel, proxy's share 2)", n, got, float64(got)/n)
	}
}

// sockopt reads an integer socket option of c.
func sockopt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// tunnelConns returns the proxy-side sockets of srv's only tunnel.
func tunnelConns(t *testing.T, srv *Server) (client, upstream net.Conn) {
	t.Helper()
	for range 200 {
		srv.mu.Lock()
		for tn := range srv.tunnels {
			tn.mu.Lock()
			client, upstream = tn.client, tn.upstream
			tn.mu.Unlock()
		}
		srv.mu.Unlock()
		if upstream != nil {
			return client, upstream
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no tunnel")
	return nil, nil
}

// TestTunnelKeepAlive checks that both sockets of a tunnel probe their
// peer as configured, which is how a dead peer ends a tunnel that is
// never cut for idleness.
func TestTunnelKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		on        bool
		idleSecs  int
	}{
		{"default", 0, true, int(DefaultKeepAlive / time.Second)},
		{"custom", 7 * time.Second, true, 7},
		{"off", -1, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, target, srv := echoProxy(t, Config{KeepAlive: tc.keepAlive})
			c := openTunnel(t, addr, target)
			if err := roundTrip(c, "k"); err != nil {
				t.Fatal(err)
			}
			client, upstream := tunnelConns(t, srv)
			for side, sc := range map[string]net.Conn{"client": client, "upstream": upstream} {
				on := sockopt(t, sc, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0
				if on != tc.on {
					t.Errorf("%s SO_KEEPALIVE = %v, want %v", side, on, tc.on)
				}
				if !tc.on {
					continue
				}
				if got := sockopt(t, sc, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); !inSpread(got, tc.idleSecs) {
					t.Errorf("%s TCP_KEEPIDLE = %d, want %d up to a quarter longer", side, got, tc.idleSecs)
				}
				for _, o := range []struct {
					name      string
					opt, want int
				}{
					{"TCP_KEEPINTVL", syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
					{"TCP_KEEPCNT", syscall.TCP_KEEPCNT, keepAliveProbes},
				} {
					if got := sockopt(t, sc, syscall.IPPROTO_TCP, o.opt); got != o.want {
						t.Errorf("%s %s = %d, want %d", side, o.name, got, o.want)
					}
				}
			}
		})
	}
}

// TestIdleTunnelNotCutByDefault: with no IdleTimeout, a quiet tunnel
// has no watchdog and still carries bytes after a pause.
func TestIdleTunnelNotCutByDefault(t *testing.T) {
	addr, target, srv := echoProxy(t, Config{})
	c := openTunnel(t, addr, target)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	tunnelConns(t, srv)
	srv.mu.Lock()
	for tn := range srv.tunnels {
		tn.mu.Lock()
		if tn.watchdog != nil {
			t.Error("idle watchdog armed although IdleTimeout is 0")
		}
		tn.mu.Unlock()
	}
	srv.mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	if err := roundTrip(c, "after"); err != nil {
		t.Fatalf("tunnel after 1.5 s idle: %v", err)
	}
}

func TestMaxConnsFor(t *testing.T) {
	for _, tc := range []struct{ limit, want int }{
		{1024, 352},
		{20000, 9247},
		{65536, 30592},
		{1048576, 491392},
		{100, minDefaultConn},
	} {
		if got := maxConnsFor(tc.limit); got != tc.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// vanish closes c without a FIN or RST, as a peer that lost power or
// whose NAT state was dropped: in TCP repair mode (CAP_NET_ADMIN) close
// sends nothing. Later packets to it are answered with a reset.
func vanish(t *testing.T, c net.Conn) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_TCP, unix.TCP_REPAIR, 1) })
	if serr != nil {
		t.Skipf("TCP_REPAIR needs CAP_NET_ADMIN: %v", serr)
	}
	c.Close()
}

// TestKeepAliveFindsVanishedPeer: an upstream that vanishes without a
// FIN leaves an idle tunnel open forever unless keepalive probes it; with
// a 1 s keepalive the probe is answered with a reset and the tunnel ends.
func TestKeepAliveFindsVanishedPeer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		ends      bool
	}{
		{"keepalive-1s", time.Second, true},
		{"keepalive-off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conns := make(chan net.Conn, 1)
			up := echoServer(t, func(c net.Conn) { conns <- c; copyEcho(c) })
			addr, target, _ := proxyFor(t, "echo.example.org", up, Config{KeepAlive: tc.keepAlive})
			c := openTunnel(t, addr, target)
			if err := roundTrip(c, "hello"); err != nil {
				t.Fatal(err)
			}
			vanish(t, <-conns)
			wait := 4 * time.Second // keepalive idle 1 s, then a probe answered by a reset
			if !tc.ends {
				wait = 2500 * time.Millisecond
			}
			c.SetReadDeadline(time.Now().Add(wait))
			_, err := c.Read(make([]byte, 1))
			switch {
			case tc.ends && isTimeout(err):
				t.Fatalf("tunnel to a vanished upstream still open after %v with a 1 s keepalive", wait)
			case !tc.ends && !isTimeout(err):
				t.Fatalf("tunnel ended (%v) without keepalive: nothing should have told it", err)
			}
		})
	}
}

// openSmallWindowTunnel is openTunnel from a client socket with a 4 KiB
// receive buffer. The buffer is set before connecting: shrunk later, the
// window the peer already saw stalls TCP itself.
func openSmallWindowTunnel(t *testing.T, addr, target string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	if head, err := readHead(c); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT = %q, %v", head, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// TestRelayIntegrityUnderBackpressure runs tunnels at once whose clients
// read slowly through a small receive buffer, so that the relay's splices
// into them are partial or meet EAGAIN while pipes go back and forth
// through the pool; every byte must come back in order, and nothing from
// another tunnel (a pipe pooled with bytes in it would hand them on).
func TestRelayIntegrityUnderBackpressure(t *testing.T) {
	up := echoServer(t, copyEcho)
	addr, target, _ := proxyFor(t, "echo.example.org", up, Config{})
	const tunnels, size = 8, 3 << 20
	errs := make(chan error, tunnels)
	for i := range tunnels {
		c := openSmallWindowTunnel(t, addr, target)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		data := make([]byte, size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		go func() {
			for off := 0; off < size; {
				n := min(1+(off*7+i)%70000, size-off)
				if _, err := c.Write(data[off : off+n]); err != nil {
					return
				}
				off += n
			}
			c.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			var got []byte
			buf := make([]byte, 1500)
			for reads := 0; ; reads++ {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if reads%64 == 0 {
					time.Sleep(time.Millisecond)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					errs <- fmt.Errorf("tunnel %d: %v after %d bytes", i, err, len(got))
					return
				}
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("tunnel %d: echo differs (%d bytes back of %d)", i, len(got), size)
				return
			}
			errs <- nil
		}()
	}
	for range tunnels {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestHalfClosedPeerResetEndsTunnel: a client half-closes (its EOF goes
// on to the upstream, which keeps the connection open and says nothing),
// then resets its connection, as a peer that gave up does, or as its
// kernel answers a keepalive probe once the peer is gone. Nothing reads
// the client's socket after its EOF, so only a watch on that socket sees
// the reset; without one the tunnel stays open as long as the upstream.
func TestHalfClosedPeerResetEndsTunnel(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c) // until the client's EOF, then silence
		<-hold
	})
	rec := &recorder{}
	addr, target, srv := proxyFor(t, "quiet.example.org", up, Config{Recorder: rec})
	c := openTunnel(t, addr, target)
	tunnelConns(t, srv)
	c.(*net.TCPConn).CloseWrite()
	time.Sleep(100 * time.Millisecond) // the EOF reaches the proxy
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset
	rec.waitClosed(t, 1)
}

// patternByte is byte i of the stream floodPattern writes: a cycle of 251
// (prime) so that a byte dropped, doubled or taken from another tunnel
// shows.
func patternByte(i int64) byte { return byte(i % 251) }

// floodPattern writes the pattern to c until the write fails: an upstream
// that sends far more than a client that stopped reading will take.
func floodPattern(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	var off int64
	for {
		for i := range buf {
			buf[i] = patternByte(off + int64(i))
		}
		n, err := c.Write(buf)
		off += int64(n)
		if err != nil {
			return
		}
	}
}

// TestStalledTunnelDescriptors pins what a tunnel whose client stopped
// reading costs: its two sockets, not its splice pipe as well. A relay
// that waits for the client's socket to drain while holding the pipe
// with bytes in it holds 4 descriptors per stalled tunnel, and a few
// hundred such tunnels, below max-conns, exhaust the descriptors (a
// hostile client's finding 9). The bytes held back are not lost: the
// client then reads the pattern in order.
func TestStalledTunnelDescriptors(t *testing.T) {
	up := echoServer(t, floodPattern)
	addr, target, _ := proxyFor(t, "flood.example.org", up, Config{})

	// One tunnel first, so that listeners, the poller and the pipe pool
	// are already in the base count.
	warm := openTunnel(t, addr, target)
	if _, err := io.ReadFull(warm, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	time.Sleep(100 * time.Millisecond)

	const n = 40
	base := openFDs(t)
	conns := make([]net.Conn, n)
	for i := range conns {
		// The small window also keeps the bytes parked in the kernel
		// for 40 stalled tunnels small.
		conns[i] = openSmallWindowTunnel(t, addr, target) // and never read until the count is taken
	}

	// Per stalled tunnel in this process: the test's client socket, the
	// proxy's two, the upstream's one. The slack covers the pipe pool,
	// full, and a few bursts in flight.
	const perTunnel = 4
	slack := 2*cap(splicePipes) + 8
	var got int
	for range 100 { // up to 10 s for every tunnel to stall and settle
		time.Sleep(100 * time.Millisecond)
		if got = openFDs(t) - base; got <= perTunnel*n+slack {
			break
		}
	}
	if got > perTunnel*n+slack {
		t.Fatalf("%d stalled tunnels opened %d descriptors, want at most %d (%d per tunnel + %d): the relay holds a pipe while its client does not read",
			n, got, perTunnel*n+slack, perTunnel, slack)
	}
	t.Logf("%d stalled tunnels: %d descriptors in this process (%.2f per tunnel, proxy's share 2)", n, got, float64(got)/n)

	for i, c := range conns[:4] {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4<<20)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("tunnel %d after the stall: %v", i, err)
		}
		for j, b := range buf {
			if b != patternByte(int64(j)) {
				t.Fatalf("tunnel %d: byte %d = %d, want %d: bytes held back during the stall were lost or reordered", i, j, b, patternByte(int64(j)))
			}
		}
	}
}

// inSpread reports whether a socket's TCP_KEEPIDLE, got, is idle seconds
// up to a quarter longer (keepAliveSpread).
func inSpread(got, idle int) bool {
	return got >= idle && float64(got) < 1.25*float64(idle)
}
