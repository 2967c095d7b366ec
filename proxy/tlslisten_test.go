package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// startTLSProxy serves srv's forward proxy behind TLS on 127.0.0.1:0.
func startTLSProxy(t testing.TB, srv *Server, certFile, keyFile string) string {
	t.Helper()
	cfg, err := NewTLSConfig(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := proxytest.Listen(t)
	go srv.ServeTLS(ln, cfg)
	return ln.Addr().String()
}

// TestTLSListenerCurl: curl speaks TLS to the HTTPS proxy listener, then
// plain HTTP and CONNECT inside it.
func TestTLSListenerCurl(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer up.Close()
	port := portOf(t, up.Listener.Addr().String())
	_, srv := startProxy(t, Config{Rules: StaticRules{testMatcher(t, fmt.Sprintf("up.example.org:%d", port))},
		Hosts: hostsFor("up.example.org"), AllowDest: loopbackDest})
	certFile, keyFile := proxytest.NewCert(t, 1, "127.0.0.1", "localhost").Write(t, t.TempDir())
	addr := startTLSProxy(t, srv, certFile, keyFile)
	target := fmt.Sprintf("http://up.example.org:%d/", port)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"forward", nil},
		{"connect", []string{"--proxytunnel"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-x", "https://" + addr, "--proxy-cacert", certFile}, tc.args...)
			res := curl(t, addr, append(args, target)...)
			if res.code != "200" || res.body != "upstream" {
				t.Errorf("curl --proxy https://%s %s = %s %q", addr, target, res.code, res.body)
			}
		})
	}
}

// TestRequireTLS: with auth.require_tls, credentials sent to the plain
// listener are refused before any check (403 tls-required), and the same
// credentials over the HTTPS listener are admitted.
func TestRequireTLS(t *testing.T) {
	cfg, rec, target := authEcho(t, 4, "  require_tls: true\n")
	plain, srv := startProxy(t, cfg)
	cert := proxytest.NewCert(t, 1, "127.0.0.1", "localhost")
	certFile, keyFile := cert.Write(t, t.TempDir())
	secure := startTLSProxy(t, srv, certFile, keyFile)

	if code := authStatus(plain, "127.0.0.1", target, basic("alice", "correct horse")); code != 403 {
		t.Errorf("credentials on the plain listener = %d, want 403 tls-required", code)
	}
	if n := rec.count(AuthTLSRequired); n != 1 {
		t.Errorf("tls-required refusals counted: %d, want 1", n)
	}
	c, err := tls.Dial("tcp", secure, &tls.Config{RootCAs: cert.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic("alice", "correct horse"))
	head, err := readHead(c)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT over TLS with credentials = %q, %v; want 200", head, err)
	}
	if err := roundTrip(c, "through"); err != nil {
		t.Errorf("tunnel inside TLS: %v", err)
	}
}

// TestTLSKeyPairReload: a renewed certificate is served without a
// restart.
func TestTLSKeyPairReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := proxytest.NewCert(t, 1, "127.0.0.1", "localhost").Write(t, dir)
	cfg, err := NewTLSConfig(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		return leaf.SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}
	time.Sleep(keyPairCheck + 50*time.Millisecond)
	proxytest.NewCert(t, 2, "127.0.0.1", "localhost").Write(t, dir)
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(certFile, later, later) // mtime granularity must not hide the change
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for serial() != 2 {
		if ctx.Err() != nil {
			t.Fatal("the renewed certificate was never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.WriteFile(certFile, []byte("not a certificate"), 0o644)
	os.Chtimes(certFile, later.Add(time.Second), later.Add(time.Second))
	time.Sleep(keyPairCheck + 50*time.Millisecond)
	if s := serial(); s != 2 {
		t.Errorf("after a broken renewal: serial %d, want the last good one (2)", s)
	}
}
