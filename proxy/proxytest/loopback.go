package proxytest

import (
	"io"
	"net"
)

// Listen listens on a free port of 127.0.0.1 until the test ends.
func Listen(t TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// FreeAddr returns a loopback address nothing listens on: a port that was
// free a moment ago, for a listener a test starts, or to be refused.
func FreeAddr(t TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Serve hands each connection ln accepts to handle, in a goroutine of its
// own, until ln closes, as it does when the test ends.
func Serve(t TB, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// EchoUpstream serves TCP on a loopback port until the test ends, sending
// each connection back what it reads, and returns its address.
func EchoUpstream(t TB) string {
	t.Helper()
	ln := Listen(t)
	Serve(t, ln, func(c net.Conn) { io.Copy(c, c); c.Close() })
	return ln.Addr().String()
}
