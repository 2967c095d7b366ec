//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// TestACLAtAcceptDescriptors: the front end read a whole request head
// before the client ACL, so 1,100 connections from outside --clients
// holding one byte each took every descriptor under a 1,024 limit and the
// allowed client got 503 out-of-descriptors, while
// requests_total{reason="client-not-allowed"} stayed 0. The ACL now
// refuses at accept: the allowed client is served, and each refusal is
// counted.
func TestACLAtAcceptDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("1,100 connections to a child process")
	}
	up := echoServer(t, copyEcho)
	target := fmt.Sprintf("echo.example.org:%d", portOf(t, up))
	child := startFDChild(t, 1024, target, -1, false, fdChildClients+"=127.0.0.1/32")
	const outsiders = 1100
	for range outsiders {
		dialFrom(t, "127.0.0.9", child.addr).Write([]byte("C")) // held open until the test ends
	}
	c, code, reason := connectStatus(t, child.addr, target)
	defer c.Close()
	st := child.stats(t)
	t.Logf("allowed client with %d outsiders holding a byte each: %s %s; child %v", outsiders, code, reason, st)
	if code != "200" {
		t.Fatalf("allowed client = %s %s, want 200", code, reason)
	}
	if err := roundTrip(c, "x"); err != nil {
		t.Fatalf("tunnel: %v", err)
	}
	if st["no-fd"] != 0 {
		t.Errorf("child ran out of descriptors %d times", st["no-fd"])
	}
	// An outsider reads its 403 rather than a reset.
	o := dialFrom(t, "127.0.0.9", child.addr)
	io.WriteString(o, "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	o.SetReadDeadline(time.Now().Add(5 * time.Second))
	head, _ := readHead(o)
	if !strings.HasPrefix(head, "HTTP/1.1 403 ") || !strings.Contains(head, reasonHeader+": client-not-allowed") {
		t.Errorf("outsider's answer = %q, want 403 client-not-allowed", head)
	}
}

// TestACLCountedAtAccept: a refusal at accept is a decision like any
// other.
func TestACLCountedAtAccept(t *testing.T) {
	rec := &recorder{}
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "up.example.org:443")}, Recorder: rec,
		Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	c := dialFrom(t, "127.0.0.9", addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	head, _ := readHead(c) // answered before a byte was sent
	if !strings.HasPrefix(head, "HTTP/1.1 403 ") {
		t.Fatalf("answer = %q, want 403", head)
	}
	waitFor(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.decisions) == 1 && rec.decisions[0].Reason.String() == "client-not-allowed"
	})
}

// TestOpenConnectionsCapped: connections still reading a head and idle
// keep-alive connections were counted nowhere. They now count against
// --max-conns with the tunnels: with a cap of 2, one idle keep-alive
// connection and one silent connection leave no room for a third.
func TestOpenConnectionsCapped(t *testing.T) {
	addr, srv := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "up.example.org:443")}, MaxConns: 2})
	idle := dialProxy(t, addr)
	io.WriteString(idle, "GET /proxy.pac HTTP/1.1\r\nHost: x\r\n\r\n")
	if head, _ := readHead(idle); !strings.HasPrefix(head, "HTTP/1.1 ") {
		t.Fatalf("first request on the keep-alive connection: %q", head)
	}
	silent := dialProxy(t, addr)
	waitFor(t, func() bool { return srv.open.Load() == 2 })
	third := dialProxy(t, addr)
	head, _ := readHead(third)
	if !strings.HasPrefix(head, "HTTP/1.1 503 ") || !strings.Contains(head, reasonHeader+": "+rules.ReasonMaxConns.String()) {
		t.Errorf("third connection = %q, want 503 max-conns", head)
	}
	silent.Close()
	waitFor(t, func() bool { return srv.open.Load() == 1 })
}

// TestClientIdleTimeout: an idle keep-alive connection is closed after
// Config.ClientIdleTimeout.
func TestClientIdleTimeout(t *testing.T) {
	addr, srv := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "up.example.org:443")}, ClientIdleTimeout: 200 * time.Millisecond})
	c := dialProxy(t, addr)
	io.WriteString(c, "GET /proxy.pac HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on the idle connection = %v, want EOF within 5 s", err)
	}
	waitFor(t, func() bool { return srv.open.Load() == 0 })
}

// TestRefusedConnectBodySmuggling: a refused CONNECT with a body used to
// have its body served as the connection's next request on the front
// end's path: the 403, then a 200 for a GET the refusal never judged. It
// now closes after the answer, on the front end's path and on net/http's
// (proxy authentication on).
func TestRefusedConnectBodySmuggling(t *testing.T) {
	reached := make(chan string, 4)
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
	}))
	defer upSrv.Close()
	port := portOf(t, upSrv.Listener.Addr().String())
	plain, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, fmt.Sprintf("up.example.org:%d", port))},
		Hosts: hostsFor("up.example.org"), AllowDest: loopbackDest})
	withAuth := authProxy(t, port, map[string]string{"alice": "pw"})
	get := fmt.Sprintf("GET http://up.example.org:%d/smuggled HTTP/1.1\r\nHost: up.example.org:%d\r\n\r\n", port, port)
	for name, addr := range map[string]string{"front": plain, "net/http": withAuth} {
		t.Run(name, func(t *testing.T) {
			c := dialProxy(t, addr)
			fmt.Fprintf(c, "CONNECT denied.example.net:443 HTTP/1.1\r\nHost: denied.example.net:443\r\nContent-Length: %d\r\n\r\n%s", len(get), get)
			all, _ := io.ReadAll(c)
			if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 || strings.Contains(string(all), " 200 ") {
				t.Errorf("answers = %q, want one refusal and the connection closed", all)
			}
			select {
			case p := <-reached:
				t.Errorf("the smuggled GET reached the upstream (%s)", p)
			default:
			}
		})
	}
}
