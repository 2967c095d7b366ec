package proxy

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// portableConn hides a *net.TCPConn behind another type, so that the
// relay takes the path every platform has (copyChunks), as it does off
// Linux, where there is no splice; CloseWrite stays, as TCP has it
// everywhere.
type portableConn struct{ *net.TCPConn }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln := proxytest.Listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); c.Close() })
	return d.(*net.TCPConn), c.(*net.TCPConn)
}

// portableTunnel starts the relay of a tunnel between two loopback
// connections, through the portable copy, and returns the client's and
// the upstream's application ends and the tunnel's stats once it ends.
func portableTunnel(t *testing.T, idle time.Duration, toUpstream, toClient []byte) (client, upstream *net.TCPConn, stats <-chan TunnelStats) {
	t.Helper()
	client, clientSide := tcpPair(t)
	upstreamSide, upstream := tcpPair(t)
	tn := &tunnel{client: portableConn{clientSide}, idle: idle}
	if !tn.setUpstream(portableConn{upstreamSide}) {
		t.Fatal("setUpstream on a fresh tunnel reported it closed")
	}
	ended := make(chan TunnelStats, 1)
	tn.relay(toUpstream, toClient, func(s TunnelStats) { ended <- s })
	return client, upstream, ended
}

// TestPortableRelay moves data both ways through the relay that every
// platform other than Linux uses, with the early bytes relay is handed,
// and each side half-closing in turn: every byte arrives in order, each
// EOF reaches the other side as a half-close, and the stats count what
// moved.
func TestPortableRelay(t *testing.T) {
	up := make([]byte, 1<<20)
	down := make([]byte, 700<<10)
	rand.New(rand.NewSource(1)).Read(up)
	rand.New(rand.NewSource(2)).Read(down)
	client, upstream, stats := portableTunnel(t, 0, []byte("hello-upstream"), []byte("hello-client"))
	client.SetDeadline(time.Now().Add(30 * time.Second))
	upstream.SetDeadline(time.Now().Add(30 * time.Second))

	go func() {
		client.Write(up)
		client.CloseWrite()
	}()
	got, err := io.ReadAll(upstream)
	if err != nil || !bytes.Equal(got, append([]byte("hello-upstream"), up...)) {
		t.Fatalf("upstream read %d bytes (%v), want the early bytes and %d more, in order", len(got), err, len(up))
	}
	// The client's EOF arrived as a half-close: the upstream still answers.
	go func() {
		upstream.Write(down)
		upstream.CloseWrite()
	}()
	got, err = io.ReadAll(client)
	if err != nil || !bytes.Equal(got, append([]byte("hello-client"), down...)) {
		t.Fatalf("client read %d bytes (%v), want the early bytes and %d more, in order", len(got), err, len(down))
	}
	select {
	case s := <-stats:
		if s.Upstream != int64(len("hello-upstream")+len(up)) || s.Downstream != int64(len("hello-client")+len(down)) {
			t.Errorf("stats = %d up, %d down; want %d, %d", s.Upstream, s.Downstream, len("hello-upstream")+len(up), len("hello-client")+len(down))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the tunnel did not end after both sides half-closed")
	}
}

// TestPortableRelayIdle: the idle watchdog closes a tunnel of the
// portable relay that moves nothing, as it does a spliced one.
func TestPortableRelayIdle(t *testing.T) {
	client, upstream, stats := portableTunnel(t, 50*time.Millisecond, nil, nil)
	select {
	case <-stats:
	case <-time.After(30 * time.Second):
		t.Fatal("an idle tunnel was not closed by its watchdog")
	}
	for name, c := range map[string]*net.TCPConn{"client": client, "upstream": upstream} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s read %d bytes after the idle close, want EOF or a reset", name, n)
		}
	}
}
