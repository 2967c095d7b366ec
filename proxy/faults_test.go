package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// openTunnel CONNECTs and fails the test unless the answer is 200.
func openTunnel(t testing.TB, proxyAddr, target string) net.Conn {
	t.Helper()
	c, head := rawConnect(t, proxyAddr, target)
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT %s = %q, want 200", target, head)
	}
	return c
}

// roundTrip writes msg and reads it back.
func roundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo = %q, want %q", buf, msg)
	}
	return nil
}

// waitEOF reads c until it ends, within 10 s.
func waitEOF(t testing.TB, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		t.Fatalf("connection still open after 10 s")
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUpstreamResetMidStream(t *testing.T) {
	up := echoServer(t, func(c net.Conn) {
		io.WriteString(c, "partial answer")
		time.Sleep(50 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0) // close with RST
		c.Close()
	})
	rec := &recorder{}
	addr, target, _ := proxyFor(t, "reset.example.org", up, Config{Recorder: rec})
	c := openTunnel(t, addr, target)
	buf := make([]byte, len("partial answer"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading before the reset: %v", err)
	}
	waitEOF(t, c)
	if st := rec.waitClosed(t, 1)[0]; st.Downstream != int64(len(buf)) {
		t.Errorf("Downstream = %d, want %d", st.Downstream, len(buf))
	}
}

func TestClientDisconnectMidTunnel(t *testing.T) {
	gone := make(chan struct{})
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		close(gone)
	})
	rec := &recorder{}
	addr, target, _ := proxyFor(t, "sink.example.org", up, Config{Recorder: rec})
	c := openTunnel(t, addr, target)
	io.WriteString(c, "half a request")
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream still open 10 s after the client went away")
	}
	rec.waitClosed(t, 1)
}

func TestSlowlorisHeaderTimeout(t *testing.T) {
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}, HeaderTimeout: 200 * time.Millisecond})
	for _, partial := range []string{"", "CONNECT a.example.org:443 HTTP/1.1\r\n", "GET http://a.example.org/ HTTP/1.1\r\nX-Slow: "} {
		t.Run(fmt.Sprintf("%q", partial), func(t *testing.T) {
			c := dialProxy(t, addr)
			io.WriteString(c, partial)
			waitEOF(t, c) // cut by the server; never by our 10 s deadline
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	rec := &recorder{}
	addr, target, _ := echoProxy(t, Config{IdleTimeout: 300 * time.Millisecond, Recorder: rec})
	t.Run("idle-cut", func(t *testing.T) {
		c := openTunnel(t, addr, target)
		if err := roundTrip(c, "x"); err != nil {
			t.Fatal(err)
		}
		waitEOF(t, c)
	})
	t.Run("stalled-reader-cut", func(t *testing.T) {
		// The client half-closes and never reads; the upstream writes
		// until the buffers are full. The watchdog must still cut it.
		cut := make(chan error, 1)
		up := echoServer(t, func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 64<<10)
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, err := c.Write(buf); err != nil {
					cut <- err
					return
				}
			}
		})
		addr, target, _ := proxyFor(t, "flood.example.org", up, Config{IdleTimeout: 300 * time.Millisecond})
		c := openTunnel(t, addr, target)
		c.(*net.TCPConn).CloseWrite()
		if err := <-cut; isTimeout(err) {
			t.Fatal("upstream still written to after 20 s: stalled tunnel not cut")
		}
	})
	t.Run("trickle-kept", func(t *testing.T) {
		// A byte every 30 ms for three idle periods: never idle.
		c := openTunnel(t, addr, target)
		for i := range 30 {
			if err := roundTrip(c, "y"); err != nil {
				t.Fatalf("round trip %d: %v", i, err)
			}
			time.Sleep(30 * time.Millisecond)
		}
	})
}

// blackhole returns a loopback address whose accept queue is full, so
// that a new connection's SYN is dropped and connect times out; it skips
// the test where the kernel behaves otherwise.
func blackhole(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skipf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Skipf("bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Skipf("listen: %v", err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 { // fill the queue; never accepted
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); !isTimeout(err) {
		if c != nil {
			c.Close()
		}
		t.Skipf("a full accept queue does not drop SYNs here (dial: %v)", err)
	}
	return addr
}

func TestDialTimeout504(t *testing.T) {
	addr := blackhole(t)
	rec := &recorder{}
	proxyAddr, target, _ := proxyFor(t, "slow.example.org", addr, Config{DialTimeout: 300 * time.Millisecond, Recorder: rec})
	got := curl(t, proxyAddr, "-p", "http://"+target+"/")
	if got.code != "504" || !strings.Contains(got.header, reasonHeader+": "+rules.ReasonUpstreamTimeout.String()) {
		t.Errorf("CONNECT to a blackhole = %s %q, want 504 %s", got.code, got.header, rules.ReasonUpstreamTimeout.String())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dials) != 1 || rec.dials[0] != DialTimeout {
		t.Errorf("dials recorded = %v, want [timeout]", rec.dials)
	}
}

func TestMaxConns503(t *testing.T) {
	addr, target, _ := echoProxy(t, Config{MaxConns: 1})
	c := openTunnel(t, addr, target)
	got := curl(t, addr, "-p", "http://"+target+"/")
	if got.code != "503" || !strings.Contains(got.header, reasonHeader+": "+rules.ReasonMaxConns.String()) {
		t.Errorf("second connection = %s %q, want 503 %s", got.code, got.header, rules.ReasonMaxConns.String())
	}
	c.Close()
	for i := 0; ; i++ { // the slot comes back once the tunnel is torn down
		c2, head := rawConnect(t, addr, target)
		if strings.HasPrefix(head, "HTTP/1.1 200 ") {
			c2.Close()
			break
		}
		if i == 200 {
			t.Fatalf("slot not released: %q", head)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGoroutinesAfter2000Tunnels opens and closes 2,000 tunnels and
// waits for the goroutine count to come back to where it was.
func TestGoroutinesAfter2000Tunnels(t *testing.T) {
	addr, target, _ := echoProxy(t, Config{})
	base := runtime.NumGoroutine()
	const total, parallel = 2000, 50
	var wg sync.WaitGroup
	var failed atomic.Int64
	work := make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range work {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
				br := bufio.NewReader(c)
				line, _ := br.ReadString('\n')
				msg := fmt.Sprintf("tunnel %d", i)
				if strings.HasPrefix(line, "HTTP/1.1 200") {
					br.ReadString('\n')
					io.WriteString(c, msg)
					buf := make([]byte, len(msg))
					if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
						failed.Add(1)
					}
				} else {
					failed.Add(1)
				}
				c.Close()
			}
		})
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d tunnels failed", n, total)
	}
	var n int
	for range 500 {
		if n = runtime.NumGoroutine(); n <= base+2 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("goroutines: %d after the tunnels, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
}

// swapRules is a Rules whose matcher the test replaces, as a reload does.
type swapRules struct{ p atomic.Pointer[rules.Matcher] }

func (r *swapRules) Matcher() *rules.Matcher { return r.p.Load() }

// TestReloadUnderTraffic swaps the rules 100 times, between a matcher
// that admits the target and one that does not, while established
// tunnels carry traffic and new CONNECTs arrive: no established tunnel
// is dropped, and each new CONNECT is judged by the matcher of its time.
func TestReloadUnderTraffic(t *testing.T) {
	up := echoServer(t, echo)
	target := fmt.Sprintf("echo.example.org:%d", portOf(t, up))
	allow, deny := testMatcher(t, target), testMatcher(t, "other.example.org")
	rs := &swapRules{}
	rs.p.Store(allow)
	addr, _ := startProxy(t, Config{Rules: rs, Hosts: hostsFor("echo.example.org"), AllowDest: loopbackDest})

	const established = 20
	conns := make([]net.Conn, established)
	for i := range conns {
		conns[i] = openTunnel(t, addr, target)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, established+1)
	for i, c := range conns {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := roundTrip(c, fmt.Sprintf("tunnel %d message %d;", i, j)); err != nil {
					errs <- fmt.Errorf("tunnel %d dropped: %w", i, err)
					return
				}
			}
		})
	}
	var admitted, refused atomic.Int64
	wg.Go(func() { // new connections during the swaps
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, head := rawConnect(t, addr, target)
			switch {
			case strings.HasPrefix(head, "HTTP/1.1 200 "):
				admitted.Add(1)
			case strings.HasPrefix(head, "HTTP/1.1 403 "):
				refused.Add(1)
			default:
				errs <- fmt.Errorf("new CONNECT during swaps: %q", head)
				c.Close()
				return
			}
			c.Close()
		}
	})
	for i := range 100 {
		if i%2 == 0 {
			rs.p.Store(deny)
		} else {
			rs.p.Store(allow)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range conns {
		if err := roundTrip(c, "after the swaps"); err != nil {
			t.Errorf("tunnel %d after the swaps: %v", i, err)
		}
	}
	t.Logf("new CONNECTs during the swaps: %d admitted, %d refused", admitted.Load(), refused.Load())
}

func TestShutdownDrain(t *testing.T) {
	t.Run("tunnel-finishes", func(t *testing.T) {
		addr, target, srv := echoProxy(t, Config{})
		c := openTunnel(t, addr, target)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- srv.Shutdown(ctx)
		}()
		for i := 0; ; i++ { // the listener goes away
			nc, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			nc.Close()
			if i == 200 {
				t.Fatal("listener still accepting during Shutdown")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := roundTrip(c, "still here while draining"); err != nil {
			t.Fatalf("established tunnel during drain: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a tunnel open", err)
		default:
		}
		c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown = %v, want nil after the tunnel ended", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return after the last tunnel ended")
		}
	})
	t.Run("drain-timeout-cuts", func(t *testing.T) {
		addr, target, srv := echoProxy(t, Config{})
		c := openTunnel(t, addr, target)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want deadline exceeded", err)
		}
		waitEOF(t, c)
	})
}

// TestClientACL403 treats the loopback client as outside the ACL.
func TestClientACL403(t *testing.T) {
	rec := &recorder{}
	addr, target, _ := echoProxy(t, Config{Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Recorder: rec})
	c, head := rawConnect(t, addr, target)
	defer c.Close()
	if !strings.HasPrefix(head, "HTTP/1.1 403 ") || !strings.Contains(head, reasonHeader+": client-not-allowed") {
		t.Errorf("CONNECT from outside the ACL = %q, want 403 client-not-allowed", head)
	}
	if d := rec.lastDecision(t); d.Reason != rules.ReasonClientNotAllowed || d.Action != ActionDeny {
		t.Errorf("decision %s %s, want deny client-not-allowed", d.Action, d.Reason)
	}
}

// TestSlowlorisShortPrefix: a client that sends fewer bytes than
// "CONNECT " and then nothing is cut once HeaderTimeout has passed since
// it connected, not handed to net/http for a second HeaderTimeout.
func TestSlowlorisShortPrefix(t *testing.T) {
	const timeout = time.Second
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}, HeaderTimeout: timeout})
	c := dialProxy(t, addr)
	start := time.Now()
	io.WriteString(c, "CONN")
	c.SetReadDeadline(start.Add(timeout * 17 / 10))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Fatalf("connection still open %v after its first bytes, with a %v header timeout", time.Since(start).Round(time.Millisecond), timeout)
	}
}
