package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// TestKeepAliveSpreadOnSockets reads TCP_KEEPIDLE back from the sockets
// egressgate owns: accepted on the proxy port (a ListenConfig listener),
// on a TLS listener and on the SNI listener (both made otherwise, with
// Go's own 15 s), and dialled upstream. Each has the default idle time
// up to a quarter longer, and those of one kind are not all the same.
func TestKeepAliveSpreadOnSockets(t *testing.T) {
	const n = 12
	addr, target, srv := echoProxy(t, Config{})
	certFile, keyFile := proxytest.NewCert(t, 1, "127.0.0.1").Write(t, t.TempDir())
	tlsAddr := startTLSProxy(t, srv, certFile, keyFile)
	sniAddr := startSNI(t, srv)
	for range n {
		if err := roundTrip(openTunnel(t, addr, target), "k"); err != nil {
			t.Fatal(err)
		}
		openTLSTunnel(t, tlsAddr, target)
		c, err := net.Dial("tcp", sniAddr) // tracked while its hello is awaited
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	idles := map[string][]int{}
	for _, h := range heldSockets(t, srv, 3*n) {
		got := sockopt(t, h.c, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		if !inSpread(got, int(DefaultKeepAlive/time.Second)) {
			t.Errorf("%s socket TCP_KEEPIDLE = %d, want %v up to a quarter longer", h.kind, got, DefaultKeepAlive)
		}
		idles[h.kind] = append(idles[h.kind], got)
	}
	for kind, want := range map[string]int{"proxy": n, "tls": n, "sni": n, "upstream": 2 * n} {
		got := idles[kind]
		if len(got) != want {
			t.Errorf("%d %s sockets, want %d", len(got), kind, want)
			continue
		}
		if allSame(got) {
			t.Errorf("%s sockets' TCP_KEEPIDLE all %d: not spread", kind, got[0])
		}
	}
}

// openTLSTunnel opens a tunnel to target through the TLS listener at addr.
func openTLSTunnel(t *testing.T, addr, target string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:k]), "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT %s over TLS = %q, %v; want 200", target, buf[:k], err)
	}
}

// heldSocket is one socket of a tunnel srv holds: kind is the listener
// that accepted it (proxy, tls, sni), or upstream.
type heldSocket struct {
	kind string
	c    net.Conn
}

// heldSockets waits until srv tracks want tunnels and returns their
// sockets.
func heldSockets(t *testing.T, srv *Server, want int) []heldSocket {
	t.Helper()
	for range 500 {
		var socks []heldSocket
		srv.mu.Lock()
		if len(srv.tunnels) == want {
			for tn := range srv.tunnels {
				tn.mu.Lock()
				c, up := tn.client, tn.upstream
				tn.mu.Unlock()
				switch tc, isTLS := c.(*tls.Conn); {
				case isTLS:
					socks = append(socks, heldSocket{"tls", tc.NetConn()})
				case up == nil:
					socks = append(socks, heldSocket{"sni", c})
				default:
					socks = append(socks, heldSocket{"proxy", c})
				}
				if up != nil {
					socks = append(socks, heldSocket{"upstream", up})
				}
			}
		}
		srv.mu.Unlock()
		if socks != nil {
			return socks
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("srv never tracked %d tunnels", want)
	return nil
}

// allSame reports whether every value of v is v[0].
func allSame(v []int) bool {
	for _, x := range v {
		if x != v[0] {
			return false
		}
	}
	return true
}
