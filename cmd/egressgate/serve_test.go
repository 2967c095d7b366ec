package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
)

// serveFlagsCase is serve's command line and environment with what
// parseServeFlags must make of them: options check accepts, or an error
// containing err.
type serveFlagsCase struct {
	name  string
	env   map[string]string
	args  []string
	check func(*serveOptions) bool
	err   string
}

// testServeFlags runs each case as a subtest, its environment set.
func testServeFlags(t *testing.T, cases []serveFlagsCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parseServeFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseServeFlags(%q) with %v: error = %v, want %q", tc.args, tc.env, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServeFlags(%q) with %v: %v", tc.args, tc.env, err)
			}
			if !tc.check(o) {
				t.Errorf("parseServeFlags(%q) with %v = %+v", tc.args, tc.env, o)
			}
		})
	}
}

func TestParseServeFlags(t *testing.T) {
	testServeFlags(t, []serveFlagsCase{
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
		{name: "tls-without-cert", args: []string{"--listen-tls", ":3129"}, err: "go together"},
		{name: "tls", args: []string{"--listen-tls", ":3129", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, check: func(o *serveOptions) bool {
			return o.tlsListen == ":3129" && o.tlsCert == "c.pem" && o.tlsKey == "k.pem"
		}},
		{name: "extra-arg", args: []string{"foo"}, err: "unexpected argument"},
	})
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
// plain-HTTP request, answers a refused upstream without its internals,
// shows the entry as admitted but never reached on /rules (as text, for
// curl), says "rules unchanged" on a SIGHUP that changes nothing, and on
// cancel cuts the tunnel still open and logs one last line.
func TestServeEndToEnd(t *testing.T) {
	port := portString(upstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "crl") }))
	refused := portString(proxytest.FreeAddr(t))

	dir := writeFiles(t, map[string]string{
		"crl.list":        "crl.example.org:" + port + "\ndown.example.org:" + refused + "\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: crl.list\nlisteners:\n  proxy: 127.0.0.1:0\n  admin: 127.0.0.1:0\n",
		"hosts":           "127.0.0.1 crl.example.org down.example.org # test upstreams\n",
	})
	cfgPath, hostsPath := filepath.Join(dir, "egressgate.yaml"), filepath.Join(dir, "hosts")

	s := startServe(t, 2, "--config", cfgPath, "--hosts", hostsPath, "--allow-dest", "127.0.0.0/8", "--drain-timeout", "300ms")
	proxyAddr := s.addrs["proxy"]
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
	if code, body := get("http://down.example.org:" + refused + "/"); code != 502 || body != "egressgate: down.example.org:"+refused+": upstream-refused: the server refused the connection\n" {
		t.Errorf("refused upstream = %d %q, want 502 with the reason only", code, body)
	}
	admin := s.addrs["admin"]
	resp, err := http.Get("http://" + admin + "/rules") // as curl asks: no Accept for HTML
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") ||
		!regexp.MustCompile(`(?m)^admitted-never-reached +- +crl +down\.example\.org +1 +1 `).Match(rules) ||
		!regexp.MustCompile(`(?m)^used +- +crl +crl\.example\.org +1 +0 `).Match(rules) {
		t.Errorf("GET /rules = %s\n%s\nwant a text table with down.example.org admitted but never reached", ct, rules)
	}

	// A tunnel left open is cut when the drain timeout ends.
	tc, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	fmt.Fprintf(tc, "CONNECT crl.example.org:%s HTTP/1.1\r\nHost: crl.example.org:%s\r\n\r\n", port, port)
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if head, err := bufio.NewReader(tc).ReadString('\n'); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200") {
		t.Fatalf("CONNECT = %q, %v; want 200", head, err)
	}

	s.hup <- syscall.SIGHUP
	if want := `"msg":"rules unchanged; reload skipped"`; !s.waitLogged(want, 5*time.Second) {
		t.Errorf("log lacks %s", want)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("serve returned %v, want nil", err)
	}
	logs := s.logged()
	if !strings.Contains(logs, `"msg":"shutting down","tunnels_open":1`) {
		t.Errorf("log lacks the shutdown line:\n%s", logs)
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`"msg":"stopped","tunnels_drained":0,"tunnels_cut":1,"uptime_seconds":[0-9.]+}$`).MatchString(last) {
		t.Errorf("last log line = %s, want the stopped line with 0 drained, 1 cut and the uptime", last)
	}
}
