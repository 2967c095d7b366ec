package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
)

func TestParseServeFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(*serveOptions) bool
		err   string
	}{
		{name: "defaults", args: nil, check: func(o *serveOptions) bool {
			c := o.cfg
			return o.listen == ":3128" && o.sniListen == "off" && o.admin == "127.0.0.1:9128" &&
				!c.AllowNoSNI && slices.Equal(c.SNIPorts, []uint16{443}) && c.SNIDestPort == 443 &&
				c.MaxConns == proxy.DefaultMaxConns() && c.IdleTimeout == 0 && c.KeepAlive == proxy.DefaultKeepAlive &&
				c.Clients == nil && c.AllowDest == nil && o.drainTimeout == 30*time.Second
		}},
		{name: "repeatable-cidrs", args: []string{"--clients", "10.0.0.0/8", "--clients", "192.0.2.7", "--allow-dest", "127.0.0.0/8,::1/128"}, check: func(o *serveOptions) bool {
			return slices.Equal(o.cfg.Clients, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}) &&
				slices.Equal(o.cfg.AllowDest, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
		}},
		{name: "sni-optional", args: []string{"--sni-required=false", "--sni-ports", "443,8443"}, check: func(o *serveOptions) bool {
			return o.cfg.AllowNoSNI && slices.Equal(o.cfg.SNIPorts, []uint16{443, 8443})
		}},
		{name: "upstream", args: []string{"--upstream-proxy", "http://127.0.0.1:3129"}, check: func(o *serveOptions) bool {
			return o.cfg.UpstreamProxy != nil && o.cfg.UpstreamProxy.Host == "127.0.0.1:3129"
		}},
		{name: "bad-cidr", args: []string{"--clients", "10.0.0.0/33"}, err: "not a CIDR prefix"},
		{name: "bad-port", args: []string{"--sni-ports", "0"}, err: "not a port"},
		{name: "zero-max-conns", args: []string{"--max-conns", "0"}, err: "--max-conns"},
		{name: "extra-arg", args: []string{"foo"}, err: "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseServeFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseServeFlags(%q) error = %v, want %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServeFlags(%q): %v", tc.args, err)
			}
			if !tc.check(o) {
				t.Errorf("parseServeFlags(%q) = %+v", tc.args, o)
			}
		})
	}
}

func TestListenAddrPrecedence(t *testing.T) {
	o, err := parseServeFlags([]string{"--admin", "127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.listenAddr("admin", o.admin, "127.0.0.1:2"); got != "127.0.0.1:1" {
		t.Errorf("flag given: listenAddr = %q, want the flag", got)
	}
	if got := o.listenAddr("listen", o.listen, "127.0.0.1:2"); got != "127.0.0.1:2" {
		t.Errorf("flag not given: listenAddr = %q, want the config's", got)
	}
	if got := o.listenAddr("listen", o.listen, ""); got != ":3128" {
		t.Errorf("neither: listenAddr = %q, want the default", got)
	}
}

// TestServeEndToEnd runs serve on a config and a hosts file, proxies a
// plain-HTTP request, reloads on "SIGHUP" and drains on cancel.
func TestServeEndToEnd(t *testing.T) {
	web := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "crl") })}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(wln)
	t.Cleanup(func() { web.Close() })
	_, port, _ := strings.Cut(wln.Addr().String(), ":")

	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("crl.list", "crl.example.org:"+port+"\n")
	cfgPath := write("egressgate.yaml", "embedded: []\ncatalogs:\n  - path: crl.list\nlisteners:\n  proxy: 127.0.0.1:0\n  admin: 'off'\n")
	hostsPath := write("hosts", "127.0.0.1 crl.example.org # test upstream\n")

	o, err := parseServeFlags([]string{"--config", cfgPath, "--hosts", hostsPath, "--allow-dest", "127.0.0.0/8", "--drain-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 3)
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	var logs strings.Builder
	lw := &syncWriter{w: &logs}
	go func() {
		done <- serve(ctx, o, hup, lw, func(name, addr string) {
			if name == "proxy" {
				addrs <- addr
			}
		})
	}()
	var proxyAddr string
	select {
	case proxyAddr = <-addrs:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not listen")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})}}
	get := func(u string) (int, string) {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://crl.example.org:" + port + "/x.crl"); code != 200 || body != "crl" {
		t.Errorf("allowed GET = %d %q, want 200 crl", code, body)
	}
	if code, _ := get("http://other.example.org:" + port + "/"); code != 403 {
		t.Errorf("unlisted GET = %d, want 403", code)
	}
	hup <- syscall.SIGHUP
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("log lacks the shutdown line:\n%s", logs.String())
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
