package connectclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeProxy answers one CONNECT on the far end of a pipe with answer, and
// sends the request it read on got.
func fakeProxy(t *testing.T, answer string) (net.Conn, <-chan *http.Request) {
	t.Helper()
	a, b := net.Pipe()
	got := make(chan *http.Request, 1)
	go func() {
		defer b.Close()
		req, err := http.ReadRequest(bufio.NewReader(b))
		if err != nil {
			got <- nil
			return
		}
		got <- req
		io.WriteString(b, answer)
	}()
	t.Cleanup(func() { a.Close() })
	return a, got
}

func TestOpen(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("x", maxAnswer) + "\r\n\r\n"
	tests := []struct {
		name    string
		answer  string
		pending string
		status  int    // of a Refusal
		reason  string // its X-Egressgate-Reason
		errText string // of another error
	}{
		{"established", "HTTP/1.1 200 Connection established\r\n\r\n", "", 0, "", ""},
		{"bytes after the 200", "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01hello", "\x16\x03\x01hello", 0, "", ""},
		{"another 2xx, HTTP/1.0", "HTTP/1.0 204 No Content\r\nVia: x\r\n\r\n", "", 0, "", ""},
		{"refused with a reason", "HTTP/1.1 403 Forbidden\r\nX-Egressgate-Reason: not-in-catalog\r\nContent-Length: 3\r\n\r\nno\n", "", 403, "not-in-catalog", ""},
		{"refused by another proxy", "HTTP/1.1 502 Bad Gateway\r\n\r\n", "", 502, "", ""},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "", 0, "", "bad status line"},
		{"status not a number", "HTTP/1.1 2x0 OK\r\n\r\n", "", 0, "", "bad status line"},
		{"closed before the header ended", "HTTP/1.1 200 OK\r\n", "", 0, "", "closed the connection"},
		{"header too long", long, "", 0, "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, got := fakeProxy(t, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pending, err := Open(ctx, c, "api.example.com:443", http.Header{"Proxy-Authorization": {"Basic Ym9iOnB3"}})
			if req := <-got; req == nil || req.Method != http.MethodConnect || req.RequestURI != "api.example.com:443" ||
				req.Host != "api.example.com:443" || req.Header.Get("Proxy-Authorization") != "Basic Ym9iOnB3" {
				t.Errorf("the proxy read %+v", req)
			}
			var ref *Refusal
			switch {
			case tt.status != 0:
				if !errors.As(err, &ref) || ref.Status != tt.status || ref.Header.Get("X-Egressgate-Reason") != tt.reason {
					t.Fatalf("Open = %v, want a refusal %d %q", err, tt.status, tt.reason)
				}
				if !strings.HasPrefix(ref.Line, "403 Forbidden") && !strings.HasPrefix(ref.Line, "502 Bad Gateway") {
					t.Errorf("refusal line %q", ref.Line)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) || errors.As(err, &ref) {
					t.Fatalf("Open = %v, want an error with %q", err, tt.errText)
				}
			case err != nil:
				t.Fatalf("Open: %v", err)
			case string(pending) != tt.pending:
				t.Errorf("pending = %q, want %q", pending, tt.pending)
			}
		})
	}
}

// TestOpenDeadline: a proxy that never answers is given up at ctx's
// deadline, not waited for.
func TestOpenDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, a, "api.example.com:443", nil); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("Open against a silent proxy = %v, want a timeout", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestDial opens a tunnel through a real loopback listener and sends
// bytes both ways.
func TestDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		line, _ := br.ReadString('\n')
		io.WriteString(c, "echo "+line)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, pending, err := Dial(ctx, &net.Dialer{}, ln.Addr().String(), "api.example.com:443", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pending != nil {
		t.Errorf("pending = %q", pending)
	}
	io.WriteString(c, "ping\n")
	b, _ := io.ReadAll(c)
	if string(b) != "echo ping\n" {
		t.Errorf("through the tunnel: %q", b)
	}
}

// TestReplayConn: the pending bytes come first, across reads smaller than
// them, and then the connection's own.
func TestReplayConn(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		io.WriteString(b, " world")
		b.Close()
	}()
	c := &ReplayConn{Conn: a, Pending: []byte("hello")}
	defer c.Close()
	var got []byte
	buf := make([]byte, 3)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "hello world" {
		t.Errorf("read %q, want %q", got, "hello world")
	}
}
