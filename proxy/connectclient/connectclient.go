// Package connectclient opens tunnels through an HTTP forward proxy: it
// sends CONNECT host:port, reads the proxy's answer, and hands back the
// connection with the bytes the proxy sent after its 2xx, which belong to
// the tunnel; ReplayConn reads such bytes back ahead of the connection.
// egressgate's parent-proxy dial, its probe and its load tool all open
// their tunnels with it.
package connectclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxAnswer bounds the proxy's answer header.
const maxAnswer = 16 << 10

// Refusal is a proxy's answer other than 2xx to a CONNECT.
type Refusal struct {
	Status int
	Line   string      // the status line after the protocol, "403 Forbidden"
	Header http.Header // its fields; nil when they did not parse
}

func (e *Refusal) Error() string { return "proxy answered " + strconv.Quote(e.Line) }

// Dial connects to the proxy at proxyAddr (host:port) with d and opens a
// tunnel to target through it, as Open does.
func Dial(ctx context.Context, d *net.Dialer, proxyAddr, target string, header http.Header) (net.Conn, []byte, error) {
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	pending, err := Open(ctx, c, target, header)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	return c, pending, nil
}

// Open sends "CONNECT target" with header's fields on c, a connection to
// the proxy, and reads the answer. target is sent as given, in the
// request line and in Host. It returns the bytes the proxy sent after a
// 2xx answer (nil for none), or a *Refusal for any other status. ctx's
// deadline bounds both; the connection has no deadline afterwards.
func Open(ctx context.Context, c net.Conn, target string, header http.Header) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	if _, err := c.Write(request(target, header)); err != nil {
		return nil, fmt.Errorf("sending CONNECT: %w", err)
	}
	head, rest, err := readAnswer(c)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	status, ok := statusOf(line)
	if !ok {
		return nil, fmt.Errorf("the answer to CONNECT has a bad status line %q", line)
	}
	if status/100 != 2 {
		return nil, refusal(status, head)
	}
	if len(rest) == 0 {
		return nil, nil
	}
	return rest, nil
}

// ReplayConn is a connection whose reads return Pending, bytes already
// read past a header (a proxy's answer, a client's request), before
// reading Conn itself: they belong to what follows the header.
type ReplayConn struct {
	net.Conn
	Pending []byte
}

func (c *ReplayConn) Read(p []byte) (int, error) {
	if len(c.Pending) > 0 {
		n := copy(p, c.Pending)
		c.Pending = c.Pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// request is the CONNECT request for target with header's fields.
func request(target string, header http.Header) []byte {
	b := make([]byte, 0, 64+2*len(target))
	b = append(b, "CONNECT "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, target...)
	b = append(b, "\r\n"...)
	if len(header) > 0 {
		var buf bytes.Buffer
		header.Write(&buf)
		b = append(b, buf.Bytes()...)
	}
	return append(b, "\r\n"...)
}

// readAnswer reads c up to the end of the answer's header, and returns
// the header (without its blank line) and the bytes read past it.
func readAnswer(c net.Conn) (head, rest []byte, err error) {
	buf := make([]byte, 0, 512)
	for {
		if len(buf) >= maxAnswer {
			return nil, nil, fmt.Errorf("the answer to CONNECT has a header longer than %d bytes", maxAnswer)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):min(cap(buf), maxAnswer)])
		buf = buf[:len(buf)+n]
		if end := bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			return buf[:end+2], buf[end+4:], nil
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil, nil, fmt.Errorf("reading the answer to CONNECT: the proxy closed the connection after %d bytes", len(buf))
			}
			return nil, nil, fmt.Errorf("reading the answer to CONNECT: %w", rerr)
		}
	}
}

// statusOf parses "HTTP/1.x NNN reason".
func statusOf(line []byte) (int, bool) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return 0, false
	}
	n := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	return n, n >= 100
}

// refusal parses a refused answer's header for its fields.
func refusal(status int, head []byte) *Refusal {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	r := &Refusal{Status: status, Line: string(line[len("HTTP/1.1 "):])}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(head, '\r', '\n'))), &http.Request{Method: http.MethodConnect})
	if err == nil {
		r.Header = resp.Header
	}
	return r
}
