package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestForwardHopByHop checks RFC 9110 section 7.6.1 both ways: the
// fields the Connection header names, and the fixed hop-by-hop fields, are
// not forwarded; end-to-end fields are.
func TestForwardHopByHop(t *testing.T) {
	// A raw upstream, as net/http's server would rewrite Connection.
	port, seen := rawUpstream(t, "HTTP/1.1 200 OK\r\nConnection: X-Upstream-Hop, close\r\nX-Upstream-Hop: 1\r\n"+
		"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-End-To-End: kept\r\nContent-Length: 2\r\n\r\nok")
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, fmt.Sprintf("crl.example.org:%d", port))},
		Hosts:     hostsFor("crl.example.org"),
		AllowDest: loopbackDest,
	})
	got := curl(t, addr,
		"-H", "Connection: X-Client-Hop, keep-alive", "-H", "X-Client-Hop: 1",
		"-H", "Keep-Alive: timeout=5", "-H", "Proxy-Authorization: Basic c2VjcmV0",
		"-H", "TE: trailers", "-H", "Upgrade: h2c", "-H", "Trailer: X-T",
		"-H", "X-Client-End: kept", "-H", "Accept-Encoding: br",
		fmt.Sprintf("http://crl.example.org:%d/", port))
	if got.code != "200" || got.body != "ok" {
		t.Fatalf("status %s body %q, want 200 ok", got.code, got.body)
	}
	var h http.Header
	select {
	case req := <-seen:
		h = req.Header
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw no request")
	}
	if v := h.Values("Connection"); len(v) != 1 || v[0] != "close" {
		t.Errorf("upstream got Connection %q, want only the proxy's own \"close\"", v)
	}
	for _, name := range []string{"X-Client-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Upgrade", "Trailer"} {
		if v, ok := h[name]; ok {
			t.Errorf("upstream got hop-by-hop %s: %q", name, v)
		}
	}
	if h.Get("X-Client-End") != "kept" || h.Get("Accept-Encoding") != "br" {
		t.Errorf("upstream lost end-to-end fields: %v", sortedKeys(h))
	}
	for _, name := range []string{"X-Upstream-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if strings.Contains(got.header, name+":") {
			t.Errorf("client got hop-by-hop %s in %q", name, got.header)
		}
	}
	if !strings.Contains(got.header, "X-End-To-End: kept") {
		t.Errorf("client lost X-End-To-End in %q", got.header)
	}
}

// TestForwardHeaders: the upstream sees the client's User-Agent, or none
// when the client sent none (never Go's default), and the URL's authority
// as Host whatever Host the client sent: an allowed URL with another Host
// must not reach that other host through a shared front end.
func TestForwardHeaders(t *testing.T) {
	port, seen := rawUpstream(t, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, fmt.Sprintf("crl.example.org:%d", port))},
		Hosts:     hostsFor("crl.example.org"),
		AllowDest: loopbackDest,
	})
	authority := fmt.Sprintf("crl.example.org:%d", port)
	for _, tc := range []struct {
		name, header string
		wantUA       []string
	}{
		{"no-user-agent", "Host: " + authority + "\r\n", nil},
		{"client-user-agent", "Host: " + authority + "\r\nUser-Agent: ocsp-client/1\r\n", []string{"ocsp-client/1"}},
		{"other-host", "Host: not-allowed.example.net\r\nUser-Agent: x\r\n", []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\n%sConnection: close\r\n\r\n", authority, tc.header)
			if head, err := readHead(c); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
				t.Fatalf("answer %q, %v", head, err)
			}
			select {
			case req := <-seen:
				if ua := req.Header.Values("User-Agent"); strings.Join(ua, "|") != strings.Join(tc.wantUA, "|") {
					t.Errorf("upstream got User-Agent %q, want %q", ua, tc.wantUA)
				}
				if req.Host != authority {
					t.Errorf("upstream got Host %q, want %q", req.Host, authority)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("upstream saw no request")
			}
		})
	}
}

// rawUpstream is an HTTP upstream that reads one request per connection,
// hands it to the test, answers with the raw bytes of answer and closes:
// what it sent is on the wire as written, not rewritten by net/http.
func rawUpstream(t *testing.T, answer string) (uint16, <-chan *http.Request) {
	seen := make(chan *http.Request, 1)
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		seen <- req
		io.WriteString(c, answer)
	})
	return portOf(t, up), seen
}

func sortedKeys(h http.Header) []string {
	var k []string
	for n := range h {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
