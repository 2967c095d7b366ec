package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// TestSNIListener connects raw TLS to the SNI listener: a listed name is
// spliced to its upstream (a real TLS handshake and request succeed), an
// unlisted name and a hello without SNI get an access_denied alert.
func TestSNIListener(t *testing.T) {
	srv, port := tlsUpstream(t)
	rec := &recorder{}
	_, s := startProxy(t, Config{
		Rules:       StaticRules{testMatcher(t, fmt.Sprintf("api.example.com:%d", port))},
		Hosts:       hostsFor("api.example.com", "evil.example.com"),
		AllowDest:   loopbackDest,
		SNIDestPort: port,
		Recorder:    rec,
	})
	sniAddr := startSNI(t, s)

	t.Run("allowed", func(t *testing.T) {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", sniAddr)
		}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://api.example.com/")
		if err != nil {
			t.Fatalf("GET via the SNI listener: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from api.example.com" {
			t.Errorf("body = %q", body)
		}
		if d := rec.lastDecision(t); d.Listener != ListenerSNI || d.Action != ActionAllow || d.SNI != "api.example.com" || d.Port != port {
			t.Errorf("decision = %+v", d)
		}
	})
	for _, tc := range []struct {
		name, sni string
		reason    rules.Reason
	}{
		{"not-in-catalog", "evil.example.com", rules.ReasonNotInCatalog},
		{"no-sni", "", rules.ReasonNoSNI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, sniAddr)
			err := tls.Client(c, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true}).Handshake()
			if err == nil || !strings.Contains(err.Error(), "access denied") {
				t.Errorf("handshake error = %v, want an access denied alert", err)
			}
			if d := rec.lastDecision(t); d.Listener != ListenerSNI || d.Action != ActionDeny || d.Reason != tc.reason {
				t.Errorf("decision = %s %s, want deny %s", d.Action, d.Reason, tc.reason)
			}
		})
	}
}

// TestOpenSSLSNIMismatch is the operator's check: openssl s_client
// through the proxy, CONNECT to one name with -servername another.
func TestOpenSSLSNIMismatch(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: skipping the s_client test")
	}
	_, port := tlsUpstream(t)
	addr, rec := sniCheckedProxy(t, port)
	run := func(servername string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-proxy", addr,
			"-connect", fmt.Sprintf("api.example.com:%d", port), "-servername", servername, "-brief")
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := run("api.example.com"); !strings.Contains(out, "CONNECTION ESTABLISHED") {
		t.Errorf("s_client with the matching name:\n%s", out)
	}
	out := run("other.example.com")
	if !strings.Contains(out, "access denied") {
		t.Errorf("s_client with another -servername: want an access denied alert, got:\n%s", out)
	}
	if d := rec.lastDecision(t); d.Reason != rules.ReasonSNIMismatch || d.SNI != "other.example.com" {
		t.Errorf("decision = %s sni %q, want sni-mismatch other.example.com", d.Reason, d.SNI)
	}
}

// TestConnectIPLiteralSNI: a CONNECT to an address admitted by a CIDR
// entry must carry an SNI that the catalog allows in its own right.
func TestConnectIPLiteralSNI(t *testing.T) {
	_, port := tlsUpstream(t)
	m := testMatcher(t, fmt.Sprintf("127.0.0.0/8:%d", port), fmt.Sprintf("api.example.com:%d", port))
	rec := &recorder{}
	addr, _ := startProxy(t, Config{Rules: StaticRules{m}, AllowDest: loopbackDest, SNIPorts: []uint16{port}, Recorder: rec})
	for _, tc := range []struct {
		sni    string
		reason rules.Reason
	}{
		{"api.example.com", rules.ReasonNone},
		{"unlisted.example.com", rules.ReasonSNIMismatch},
		{"", rules.ReasonNoSNI},
	} {
		t.Run("sni="+tc.sni, func(t *testing.T) {
			c, head := rawConnect(t, addr, fmt.Sprintf("127.0.0.1:%d", port))
			if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
				t.Fatalf("CONNECT = %q", head)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			err := tls.Client(c, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true}).Handshake()
			if (err == nil) != (tc.reason == rules.ReasonNone) {
				t.Errorf("handshake = %v, want success %v", err, tc.reason == rules.ReasonNone)
			}
			if d := rec.lastDecision(t); d.Reason != tc.reason {
				t.Errorf("reason = %s, want %s", d.Reason, tc.reason)
			}
		})
	}
}
