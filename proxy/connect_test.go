package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// TestConnectSSHLike relays a server-speaks-first byte stream (an SSH
// banner, then echo) through a CONNECT tunnel, with half-close both ways:
// the client's EOF reaches the upstream, which then answers and closes.
func TestConnectSSHLike(t *testing.T) {
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "SSH-2.0-egressgate-test\r\n")
		got, _ := io.ReadAll(c) // until the client's half-close
		c.Write(got)            // answered after the client's EOF
		c.(*net.TCPConn).CloseWrite()
	})
	port := portOf(t, up)
	rec := &recorder{}
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, fmt.Sprintf("git.example.org:%d", port))},
		Hosts:     hostsFor("git.example.org"),
		AllowDest: loopbackDest,
		Recorder:  rec,
	})
	c, head := rawConnect(t, addr, fmt.Sprintf("git.example.org:%d", port))
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT answer = %q, want 200", head)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	banner, err := br.ReadString('\n')
	if err != nil || banner != "SSH-2.0-egressgate-test\r\n" {
		t.Fatalf("banner = %q, %v", banner, err)
	}
	payload := strings.Repeat("key exchange ", 10000)
	io.WriteString(c, payload)
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != payload {
		t.Fatalf("echo after half-close: %d bytes, %v; want %d bytes", len(rest), err, len(payload))
	}
	st := rec.waitClosed(t, 1)[0]
	if st.Upstream != int64(len(payload)) || st.Downstream != int64(len(banner)+len(payload)) {
		t.Errorf("TunnelStats = %+v, want up %d down %d", st, len(payload), len(banner)+len(payload))
	}
	if d := rec.lastDecision(t); d.Action != ActionAllow || d.Verdict.Entry == nil || d.Listener != ListenerConnect {
		t.Errorf("decision = %+v, want allowed with an entry", d)
	}
}

// TestConnectGoTransportTLS makes a real TLS request through the tunnel
// with Go's http.Transport; the SNI check runs on the upstream's port.
func TestConnectGoTransportTLS(t *testing.T) {
	srv, port := tlsUpstream(t)
	addr, rec := sniCheckedProxy(t, port)
	body := getViaProxy(t, srv, addr, fmt.Sprintf("https://api.example.com:%d/", port))
	if want := fmt.Sprintf("hello from api.example.com:%d", port); string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	d := rec.lastDecision(t)
	if d.SNI != "api.example.com" || d.Action != ActionAllow {
		t.Errorf("decision SNI %q action %s, want api.example.com allow", d.SNI, d.Action)
	}
}

// TestConnectSNIMismatchRaw sends a ClientHello naming another host than
// the CONNECT line; the tunnel is cut and the upstream never gets a byte.
func TestConnectSNIMismatchRaw(t *testing.T) {
	got := make(chan int, 1)
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	})
	port := portOf(t, up)
	for _, tc := range []struct {
		name, sni string
		reason    rules.Reason
		hello     []byte
	}{
		{"other-name", "evil.example.net", rules.ReasonSNIMismatch, nil},
		{"other-allowed-name", "www.example.com", rules.ReasonSNIMismatch, nil},
		{"no-sni", "", rules.ReasonNoSNI, nil},
		{"not-tls", "", rules.ReasonNoSNI, []byte("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			addr, _ := startProxy(t, Config{
				Rules:     StaticRules{testMatcher(t, fmt.Sprintf("api.example.com:%d", port), fmt.Sprintf("www.example.com:%d", port))},
				Hosts:     hostsFor("api.example.com"),
				AllowDest: loopbackDest,
				SNIPorts:  []uint16{port},
				Recorder:  rec,
			})
			c, head := rawConnect(t, addr, fmt.Sprintf("api.example.com:%d", port))
			if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
				t.Fatalf("CONNECT answer = %q, want 200", head)
			}
			hello := tc.hello
			if hello == nil {
				hello = clientHello(t, tc.sni)
			}
			c.Write(hello)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			reply, _ := io.ReadAll(c)
			if n := <-got; n != 0 {
				t.Errorf("upstream got %d bytes, want 0", n)
			}
			if tc.hello == nil && string(reply) != string(alertAccessDenied) {
				t.Errorf("reply = %x, want access_denied alert %x", reply, alertAccessDenied)
			}
			if d := rec.lastDecision(t); d.Action != ActionDeny || d.Reason != tc.reason || d.SNI != tc.sni {
				t.Errorf("decision = %s %s sni %q, want deny %s sni %q", d.Action, d.Reason, d.SNI, tc.reason, tc.sni)
			}
		})
	}
}

// TestMonitorMode admits what the catalog denies and records would-deny,
// but still enforces the destination check.
func TestMonitorMode(t *testing.T) {
	up := echoServer(t, echo)
	port := portOf(t, up)
	rec := &recorder{}
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, "listed.example.org")},
		Hosts:     hostsFor("unlisted.example.org", "private.example.org"),
		AllowDest: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Monitor:   true,
		Recorder:  rec,
	})
	c, head := rawConnect(t, addr, fmt.Sprintf("unlisted.example.org:%d", port))
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("monitor CONNECT to an unlisted host = %q, want 200", head)
	}
	if err := roundTrip(c, "monitored"); err != nil {
		t.Fatal(err)
	}
	if d := rec.lastDecision(t); d.Action != ActionWouldDeny || d.Reason != rules.ReasonNotInCatalog {
		t.Errorf("decision = %s %s, want would-deny not-in-catalog", d.Action, d.Reason)
	}
	rec.mu.Lock()
	rec.decisions = nil
	rec.mu.Unlock()
	_, head = rawConnect(t, addr, "bad..host.example.org:443")
	if !strings.HasPrefix(head, "HTTP/1.1 403 ") || !strings.Contains(head, "invalid-host") {
		t.Errorf("monitor CONNECT to an invalid host = %q, want 403 invalid-host", head)
	}
}
