package proxy

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/egressgate/egressgate/rules"
)

// TestFrontEnd pins what the CONNECT front end must answer exactly as
// net/http did before it: bad heads, a second request on a connection
// whose CONNECT was refused, and a first request that is not CONNECT.
func TestFrontEnd(t *testing.T) {
	addr, target, _ := echoProxy(t, Config{MaxHeaderBytes: 1024})
	send := func(t *testing.T, raw string) (net.Conn, string) {
		t.Helper()
		c := dialProxy(t, addr)
		io.WriteString(c, raw)
		head, _ := readHead(c)
		return c, head
	}
	for _, tc := range []struct {
		name, raw, status string
		reason            string // of a 400: net/http gives none, the front end does
	}{
		{"no-version", "CONNECT " + target + "\r\n\r\n", "400", rules.ReasonBadRequest.String()},
		{"bad-version", "CONNECT " + target + " HTTP/9\r\n\r\n", "400", rules.ReasonBadRequest.String()},
		{"bad-authority", "CONNECT [name]:443 HTTP/1.1\r\n\r\n", "400", rules.ReasonBadTarget.String()},
		{"bad-port", "CONNECT example.org:443abc HTTP/1.1\r\n\r\n", "400", rules.ReasonBadTarget.String()},
		{"escaped-host", "CONNECT example%2eorg:443 HTTP/1.1\r\n\r\n", "400", rules.ReasonBadTarget.String()},
		{"two-hosts", "CONNECT " + target + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400", rules.ReasonBadRequest.String()},
		{"bad-header-name", "CONNECT " + target + " HTTP/1.1\r\nBad Name: x\r\n\r\n", "400", rules.ReasonBadRequest.String()},
		{"long-bad-line", "CONNECT " + strings.Repeat("é", 900) + "\r\n\r\n", "400", rules.ReasonBadRequest.String()},
		{"http2-version", "CONNECT " + target + " HTTP/2.0\r\nHost: " + target + "\r\n\r\n", "505", ""},
		{"http0-version", "CONNECT " + target + " HTTP/0.9\r\nHost: " + target + "\r\n\r\n", "505", ""},
		{"head-too-large", "CONNECT " + target + " HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", "431", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, head := send(t, tc.raw)
			if !strings.HasPrefix(head, "HTTP/1.1 "+tc.status+" ") {
				t.Errorf("answer %q, want %s", head, tc.status)
			}
			if tc.reason == "" {
				return
			}
			if !strings.Contains(head, "\r\n"+reasonHeader+": "+tc.reason+"\r\n") {
				t.Errorf("answer %q, want reason %s", head, tc.reason)
			}
			// The body says what was wrong, and then the connection closes.
			body, err := io.ReadAll(c)
			if err != nil || !strings.HasPrefix(string(body), "egressgate: bad request: ") || len(body) > 300 || !utf8.Valid(body) {
				t.Errorf("body %q, %v: want the fault, at most 300 bytes of UTF-8", body, err)
			}
		})
	}
	t.Run("early-bytes", func(t *testing.T) {
		// The client sends its first bytes with the CONNECT, before the 200.
		c, head := send(t, fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nearly", target, target))
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("answer %q, want 200", head)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "early" {
			t.Fatalf("echo of early bytes = %q, %v", buf, err)
		}
	})
	t.Run("second-request-after-refusal", func(t *testing.T) {
		// A refused CONNECT leaves the connection open (Content-Length
		// is set); the next CONNECT on it, now served by net/http, works.
		c, head := send(t, "CONNECT denied.example.org:443 HTTP/1.1\r\nHost: denied.example.org:443\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 403 ") {
			t.Fatalf("answer %q, want 403", head)
		}
		var n int
		fmt.Sscanf(head[strings.Index(head, "Content-Length: ")+len("Content-Length: "):], "%d", &n)
		io.ReadFull(c, make([]byte, n))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		head, err := readHead(c)
		if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("second CONNECT = %q, %v; want 200", head, err)
		}
		if err := roundTrip(c, "second"); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct{ name, raw string }{
		{"http1.0-refused-closes", "CONNECT denied.example.org:443 HTTP/1.0\r\n\r\n"},
		{"connection-close-refused-closes", "CONNECT denied.example.org:443 HTTP/1.1\r\nHost: denied.example.org:443\r\nConnection: close\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The client asked for no second request: after the answer
			// the proxy closes, as net/http does, rather than holding the
			// connection for a keep-alive the client never wanted.
			c, head := send(t, tc.raw)
			if !strings.HasPrefix(head, "HTTP/1.1 403 ") || !strings.Contains(head, "Connection: close\r\n") {
				t.Fatalf("answer %q, want 403 with Connection: close", head)
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("connection not closed after the answer: %v", err)
			}
		})
	}
	t.Run("slow-prefix", func(t *testing.T) {
		// "CONN", a pause, then the rest: the front end waits for the method.
		c := dialProxy(t, addr)
		io.WriteString(c, "CONN")
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintf(c, "ECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		if head, err := readHead(c); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("answer %q, %v; want 200", head, err)
		}
	})
}

// FuzzFrontHead feeds arbitrary first bytes to the CONNECT front end.
// Invariants: no panic; the front end either answers with an HTTP/1.1
// status line, hands the connection on (anything not CONNECT), or closes
// it, and does so without waiting for the header timeout when the client
// has stopped sending. The only admitted target is a name the test's
// hosts map to loopback; nothing else is dialed.
func FuzzFrontHead(f *testing.F) {
	addSeeds[[]byte](f,
		"CONNECT a.example.org:443 HTTP/1.1\r\nHost: a.example.org:443\r\n\r\n",
		"CONNECT a.example.org:443 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"CONNECT [name]:443 HTTP/1.1\r\n\r\n",
		"CONNECT a.example.org HTTP/1.1\r\n\r\n",
		"CONNECT a.example.org:443\r\n\r\n",
		"CONNECT a.example.org:443 HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"CONNECT a.example.org:443 HTTP/1.1\r\nX: \x00\r\n\r\nearly",
		"GET http://a.example.org/ HTTP/1.1\r\nHost: a.example.org\r\n\r\n",
		"CONNECT ",
		"",
	)
	srv, err := New(Config{Rules: StaticRules{testMatcher(f, "a.example.org")}, Resolver: noDNS{},
		HeaderTimeout: 200 * time.Millisecond, MaxHeaderBytes: 1024})
	if err != nil {
		f.Fatal(err)
	}
	h := newHandoff(nopListener{})
	h.Close() // nothing serves handed-off connections: give closes them
	f.Fuzz(func(t *testing.T, head []byte) {
		client, proxySide := net.Pipe()
		defer client.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.serveFront(proxySide, h)
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			client.Write(head)
		}()
		// Read whatever comes back until the front end closes; a stalled
		// head is cut by the header timeout (200 ms).
		buf := make([]byte, 4096)
		var got []byte
		for {
			n, err := client.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				if isTimeout(err) {
					t.Fatalf("no end after 5 s for %q; got %q", head, got)
				}
				break
			}
			if len(got) > 64<<10 {
				t.Fatalf("answer over 64 KiB for %q", head)
			}
		}
		client.Close()
		<-done
		if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 ") {
			t.Fatalf("answer to %q does not start with a status line: %q", head, got)
		}
	})
}

// nopListener is a closed listener for a handoff nobody serves.
type nopListener struct{}

func (nopListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (nopListener) Close() error              { return nil }
func (nopListener) Addr() net.Addr            { return &net.TCPAddr{} }
