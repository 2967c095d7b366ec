package proxy

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTunnelThroughput pushes 256 KiB per iteration through one
// CONNECT tunnel into an upstream that discards it. On Linux the relay
// splices; run under "strace -f -e trace=splice" to see it.
func BenchmarkTunnelThroughput(b *testing.B) {
	got := make(chan int64, 1)
	up := echoServer(b, func(c net.Conn) {
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	})
	target := fmt.Sprintf("sink.example.org:%d", portOf(b, up))
	addr, _ := startProxy(b, Config{Rules: StaticRules{testMatcher(b, target)}, Hosts: hostsFor("sink.example.org"), AllowDest: loopbackDest})
	c, head := rawConnect(b, addr, target)
	if head[:12] != "HTTP/1.1 200" {
		b.Fatalf("CONNECT = %q", head)
	}
	chunk := make([]byte, 256<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	var sent int64
	for b.Loop() {
		n, err := c.Write(chunk)
		sent += int64(n)
		if err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case n := <-got:
		if n != sent {
			b.Fatalf("upstream got %d bytes, sent %d", n, sent)
		}
	case <-time.After(30 * time.Second):
		b.Fatal("upstream did not see the end")
	}
}

// TestHalfCloseOrders ends a tunnel's two directions in each order, with
// bytes still to come in the direction left open: the EOF of one side
// reaches the other as a half-close, never as a close, and the tunnel
// ends once both have.
func TestHalfCloseOrders(t *testing.T) {
	for _, tc := range []struct {
		name          string
		upstreamFirst bool
	}{
		{"client-eof-first", false},
		{"upstream-eof-first", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			up := echoServer(t, func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.upstreamFirst {
					io.WriteString(c, "from-upstream")
					c.(*net.TCPConn).CloseWrite()
					b, _ := io.ReadAll(c)
					got <- string(b)
					return
				}
				b, _ := io.ReadAll(c)
				got <- string(b)
				io.WriteString(c, "answer-after-eof")
				c.(*net.TCPConn).CloseWrite()
			})
			rec := &recorder{}
			addr, target, _ := proxyFor(t, "half.example.org", up, Config{Recorder: rec})
			c := openTunnel(t, addr, target)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.upstreamFirst {
				if b, err := io.ReadAll(c); err != nil || string(b) != "from-upstream" {
					t.Fatalf("client read %q, %v; want the upstream's bytes, then EOF", b, err)
				}
				io.WriteString(c, "client-after-eof")
				c.(*net.TCPConn).CloseWrite()
				if s := <-got; s != "client-after-eof" {
					t.Errorf("upstream read %q after its EOF, want %q", s, "client-after-eof")
				}
			} else {
				io.WriteString(c, "request")
				c.(*net.TCPConn).CloseWrite()
				if s := <-got; s != "request" {
					t.Errorf("upstream read %q, want %q", s, "request")
				}
				if b, err := io.ReadAll(c); err != nil || string(b) != "answer-after-eof" {
					t.Errorf("client read %q, %v after its EOF, want the answer", b, err)
				}
			}
			rec.waitClosed(t, 1)
		})
	}
}
