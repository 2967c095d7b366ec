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
