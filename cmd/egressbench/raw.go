package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// The raw target: the bare CONNECT-and-splice loop, the practical limit of
// a Go proxy on this machine. It reads a request head with no HTTP
// library, dials the target (the bench name mapped to 127.0.0.1, as the
// proxies' hosts files do), answers 200 and copies both ways with io.Copy
// between the two *net.TCPConn, which Go turns into splice(2). No policy,
// no SNI check, no metrics, no limits, no logs: what a proxy costs beyond
// it is what its own work costs. It runs as a child process of the tool
// (egressbench serve-raw), so its CPU and memory are its own.

// serveRawCmd is the first argument that makes egressbench the raw loop.
const serveRawCmd = "serve-raw"

// rawMaxHead bounds the request head the loop reads.
const rawMaxHead = 4096

var (
	rawEstablished = []byte("HTTP/1.1 200 Connection established\r\n\r\n")
	rawBadRequest  = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
	rawBadGateway  = []byte("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
)

// serveRaw is egressbench serve-raw --listen ADDR --map NAME=ADDR: it
// serves until SIGTERM or SIGINT.
func serveRaw(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(serveRawCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	name := fs.String("name", benchHost, "the name that maps to 127.0.0.1; others are dialled as they are")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "egressbench serve-raw:", err)
		return 1
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		ln.Close()
	}()
	loop := rawLoop{name: *name}
	if err := loop.serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(stderr, "egressbench serve-raw:", err)
		return 1
	}
	return 0
}

// rawLoop is the bare loop's state: the one name it maps.
type rawLoop struct{ name string }

// serve accepts until ln fails, one goroutine per connection.
func (l rawLoop) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go l.tunnel(c.(*net.TCPConn))
	}
}

// tunnel serves one CONNECT and its tunnel.
func (l rawLoop) tunnel(c *net.TCPConn) {
	buf := make([]byte, rawMaxHead)
	n, end := 0, -1
	for end < 0 {
		if n == len(buf) {
			c.Write(rawBadRequest)
			c.Close()
			return
		}
		m, err := c.Read(buf[n:])
		if err != nil {
			c.Close()
			return
		}
		n += m
		end = bytes.Index(buf[:n], []byte("\r\n\r\n"))
	}
	addr, ok := l.target(buf[:end])
	if !ok {
		c.Write(rawBadRequest)
		c.Close()
		return
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		c.Write(rawBadGateway)
		c.Close()
		return
	}
	if _, err := c.Write(rawEstablished); err != nil {
		c.Close()
		up.Close()
		return
	}
	if early := buf[end+4 : n]; len(early) > 0 {
		up.Write(early)
	}
	l.splice(c, up.(*net.TCPConn))
}

// target is the address to dial for a request head, and whether the head
// is a CONNECT to host:port.
func (l rawLoop) target(head []byte) (string, bool) {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) != 3 || string(f[0]) != "CONNECT" {
		return "", false
	}
	host, port, err := net.SplitHostPort(string(f[1]))
	if err != nil {
		return "", false
	}
	if host == l.name {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), true
}

// splice copies both ways, half-closing each side at the other's EOF, and
// closes both once both directions are done.
func (l rawLoop) splice(c, up *net.TCPConn) {
	var running atomic.Int32
	running.Store(2)
	done := func() {
		if running.Add(-1) == 0 {
			c.Close()
			up.Close()
		}
	}
	go func() {
		io.Copy(up, c)
		up.CloseWrite()
		done()
	}()
	io.Copy(c, up)
	c.CloseWrite()
	done()
}

// rawTarget starts raw loops as children of the tool.
type rawTarget struct {
	dir string
	n   int // instances started, to name logs
}

// launch starts a fresh raw loop: this executable, serve-raw.
func (r *rawTarget) launch() (*instance, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the tool's own executable for the raw loop: %w", err)
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r.n++
	c, err := startChild("raw", addr, filepath.Join(r.dir, fmt.Sprintf("raw-%d.out", r.n)),
		[]string{self, serveRawCmd, "--listen", addr, "--name", benchHost})
	if err != nil {
		return nil, err
	}
	return c.instance(addr), nil
}

// runChild runs the tool as one of its own children when args name one,
// and reports whether they did.
func runChild(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case serveRawCmd:
		return serveRaw(args[1:], stderr), true
	case holdChildCmd:
		return runHoldChild(args[1:], stdin, stdout, stderr), true
	}
	return 0, false
}
