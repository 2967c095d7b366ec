package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// curlResult is what curl saw.
type curlResult struct {
	code   string // the final answer's status, or the CONNECT answer's when the tunnel failed
	header string // every header block curl received
	body   string
}

// curl runs /usr/bin/curl through proxyAddr, with no proxy environment.
func curl(t testing.TB, proxyAddr string, args ...string) curlResult {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed: skipping the curl end-to-end test")
	}
	full := append([]string{"-sS", "--max-time", "20", "-D", "-", "-w", "\n@@%{http_code} %{http_connect}",
		"-x", "http://" + proxyAddr}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, full...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	out, _ := cmd.Output()
	s := string(out)
	i := strings.LastIndex(s, "\n@@")
	if i < 0 {
		t.Fatalf("curl %v: no status in output %q", args, s)
	}
	codes := strings.Fields(s[i+3:])
	res := curlResult{code: codes[0]}
	if res.code == "000" && len(codes) > 1 {
		res.code = codes[1]
	}
	s = s[:i]
	// Header blocks end at an empty line; the body follows the last one.
	for {
		head, rest, ok := strings.Cut(s, "\r\n\r\n")
		if !ok || !strings.HasPrefix(head, "HTTP/") {
			break
		}
		res.header += head + "\r\n\r\n"
		s = rest
	}
	res.body = s
	return res
}

// slowDNS is a Resolver that answers only when ctx ends.
type slowDNS struct{}

func (slowDNS) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAnswersCurl checks every answer egressgate writes itself with
// curl -x: status, X-Egressgate-Reason, and the body naming host:port.
func TestAnswersCurl(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "web ok")
	}))
	t.Cleanup(web.Close)
	webPort := portOf(t, web.Listener.Addr().String())
	refused := portOf(t, proxytest.FreeAddr(t))
	list := []string{
		"a.example.org",
		fmt.Sprintf("web.example.org:%d", webPort),
		fmt.Sprintf("internal.example.org:%d", webPort),
		fmt.Sprintf("down.example.org:%d", refused),
		"nowhere.example.org:80",
		"slow.example.org:80",
	}
	hosts := hostsFor("web.example.org", "down.example.org")
	hosts["internal.example.org"] = []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("127.0.0.1")}

	for _, tc := range []struct {
		name   string
		cfg    func(*Config)
		args   []string
		code   string
		reason string
		body   string // substring of the body (plain HTTP only: curl hides a failed CONNECT's body)
	}{
		{name: "connect-not-in-catalog", args: []string{"https://b.example.org/"}, code: "403", reason: "not-in-catalog"},
		{name: "http-not-in-catalog", args: []string{"http://b.example.org/"}, code: "403", reason: "not-in-catalog", body: "egressgate: b.example.org:80 denied: not-in-catalog"},
		{name: "connect-port-not-allowed", args: []string{"https://a.example.org:8443/"}, code: "403", reason: "port-not-allowed"},
		{name: "http-port-not-allowed", args: []string{"http://a.example.org:8080/"}, code: "403", reason: "port-not-allowed", body: "a.example.org:8080 denied: port-not-allowed"},
		{name: "http-allowed", args: []string{fmt.Sprintf("http://web.example.org:%d/", webPort)}, code: "200", body: "web ok"},
		{name: "connect-allowed", args: []string{"-p", fmt.Sprintf("http://web.example.org:%d/", webPort)}, code: "200", body: "web ok"},
		{name: "connect-private-destination", cfg: func(c *Config) { c.AllowDest = nil },
			args: []string{"-p", fmt.Sprintf("http://web.example.org:%d/", webPort)}, code: "403", reason: "private-destination"},
		{name: "http-private-destination", cfg: func(c *Config) { c.AllowDest = nil },
			args: []string{fmt.Sprintf("http://web.example.org:%d/", webPort)}, code: "403", reason: "private-destination", body: fmt.Sprintf("web.example.org:%d denied: private-destination", webPort)},
		{name: "http-mixed-addresses-dials-only-permitted", args: []string{fmt.Sprintf("http://internal.example.org:%d/", webPort)}, code: "200", body: "web ok"},
		{name: "connect-refused", args: []string{"-p", fmt.Sprintf("http://down.example.org:%d/", refused)}, code: "502", reason: "upstream-refused"},
		{name: "http-refused", args: []string{fmt.Sprintf("http://down.example.org:%d/", refused)}, code: "502", reason: "upstream-refused", body: "upstream-refused"},
		{name: "connect-dns", args: []string{"-p", "http://nowhere.example.org:80/"}, code: "502", reason: "upstream-dns"},
		{name: "http-dns", args: []string{"http://nowhere.example.org/"}, code: "502", reason: "upstream-dns", body: "nowhere.example.org:80: upstream-dns"},
		{name: "connect-dns-timeout", cfg: func(c *Config) { c.Resolver = slowDNS{}; c.DialTimeout = 100 * time.Millisecond },
			args: []string{"-p", "http://slow.example.org:80/"}, code: "504", reason: "upstream-timeout"},
		{name: "http-dns-timeout", cfg: func(c *Config) { c.Resolver = slowDNS{}; c.DialTimeout = 100 * time.Millisecond },
			args: []string{"http://slow.example.org/"}, code: "504", reason: "upstream-timeout", body: "upstream-timeout"},
		{name: "connect-client-not-allowed", cfg: func(c *Config) { c.Clients = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
			args: []string{"https://a.example.org/"}, code: "403", reason: "client-not-allowed"},
		{name: "http-client-not-allowed", cfg: func(c *Config) { c.Clients = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
			args: []string{"http://a.example.org/"}, code: "403", reason: "client-not-allowed", body: "client 127.0.0.1 denied: client-not-allowed"},
		{name: "http-monitor-would-deny", cfg: func(c *Config) { c.Monitor = true; c.Hosts["b.example.org"] = hosts["web.example.org"] },
			args: []string{fmt.Sprintf("http://b.example.org:%d/", webPort)}, code: "200", body: "web ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Rules:     StaticRules{testMatcher(t, list...)},
				Hosts:     Hosts{},
				AllowDest: loopbackDest,
			}
			for k, v := range hosts {
				cfg.Hosts[k] = v
			}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			addr, _ := startProxy(t, cfg)
			got := curl(t, addr, tc.args...)
			if got.code != tc.code {
				t.Fatalf("curl %v: status %s, want %s\n%s%s", tc.args, got.code, tc.code, got.header, got.body)
			}
			if tc.reason != "" && !strings.Contains(got.header, "X-Egressgate-Reason: "+tc.reason+"\r\n") {
				t.Errorf("curl %v: headers %q, want X-Egressgate-Reason: %s", tc.args, got.header, tc.reason)
			}
			if !strings.Contains(got.body, tc.body) {
				t.Errorf("curl %v: body %q, want it to contain %q", tc.args, got.body, tc.body)
			}
		})
	}
}

// TestAnswersRaw checks the answers curl cannot provoke: malformed CONNECT
// targets and invalid hosts, with the 403/400 body.
func TestAnswersRaw(t *testing.T) {
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}})
	for _, tc := range []struct {
		target, status, reason, body string
	}{
		{"a.example.org", "400", rules.ReasonBadTarget.String(), "missing port"},
		{"a.example.org:", "400", rules.ReasonBadTarget.String(), "missing port"},
		{"a.example.org:0", "400", rules.ReasonBadTarget.String(), "bad port"},
		{"a.example.org:99999", "400", rules.ReasonBadTarget.String(), "bad port"},
		// net/http itself refuses "2001:db8::1:443", "[name]:443" and
		// "name:44x" with a bare 400 before egressgate sees them.
		{"bad..name.example.org:443", "403", rules.ReasonInvalidHost.String(), "bad..name.example.org:443 denied: invalid-host"},
		{"b.example.org:443", "403", rules.ReasonNotInCatalog.String(), "b.example.org:443 denied: not-in-catalog"},
		{"[2001:db8::1]:443", "403", rules.ReasonNotInCatalog.String(), "[2001:db8::1]:443 denied: not-in-catalog"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			c, head := rawConnect(t, addr, tc.target)
			if !strings.HasPrefix(head, "HTTP/1.1 "+tc.status+" ") || !strings.Contains(head, reasonHeader+": "+tc.reason+"\r\n") {
				t.Fatalf("CONNECT %s: answer %q, want %s with reason %s", tc.target, head, tc.status, tc.reason)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			if !strings.Contains(string(buf[:n]), tc.body) {
				t.Errorf("CONNECT %s: body %q, want it to contain %q", tc.target, buf[:n], tc.body)
			}
		})
	}
	t.Run("https-absolute-uri", func(t *testing.T) {
		c := dialProxy(t, addr)
		fmt.Fprint(c, "GET https://a.example.org/ HTTP/1.1\r\nHost: a.example.org\r\n\r\n")
		head, _ := readHead(c)
		if !strings.HasPrefix(head, "HTTP/1.1 400 ") || !strings.Contains(head, reasonHeader+": "+rules.ReasonUnsupportedScheme.String()) {
			t.Errorf("GET https://... = %q, want 400 %s", head, rules.ReasonUnsupportedScheme.String())
		}
	})
	t.Run("origin-form", func(t *testing.T) {
		got := curl(t, addr, "--noproxy", "*", "http://"+addr+"/")
		if got.code != "400" || !strings.Contains(got.header, reasonHeader+": "+rules.ReasonNotProxyRequest.String()) || !strings.Contains(got.body, "addressed to the proxy itself") {
			t.Errorf("GET / = %s %q %q, want 400 not-proxy-request", got.code, got.header, got.body)
		}
	})
}

// resolverDNS fails every lookup the way a real resolver does: the error
// names the proxy's own DNS server, which the client must not learn.
type resolverDNS struct{}

func (resolverDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.255.255.53:53", IsNotFound: true}
}

// TestUpstreamErrorBody checks that a 502's body names the host, the
// reason and what failed, and nothing of the proxy's insides (its
// resolver, the addresses it dialed, Go's error text), which go to the
// server's log instead.
func TestUpstreamErrorBody(t *testing.T) {
	refused := portOf(t, proxytest.FreeAddr(t))
	var logs proxytest.LogBuffer
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, "nowhere.example.org:443,80", fmt.Sprintf("down.example.org:%d", refused))},
		Hosts:     hostsFor("down.example.org"),
		AllowDest: loopbackDest,
		Resolver:  resolverDNS{},
		Log:       debugLogger(&logs),
	})
	down := fmt.Sprintf("down.example.org:%d", refused)
	for _, tc := range []struct {
		name, request, body, log string
	}{
		{"connect-dns", "CONNECT nowhere.example.org:443 HTTP/1.1\r\nHost: nowhere.example.org:443\r\n\r\n",
			"egressgate: nowhere.example.org:443: upstream-dns: the name does not resolve\n", "10.255.255.53:53"},
		{"http-dns", "GET http://nowhere.example.org/ HTTP/1.1\r\nHost: nowhere.example.org\r\n\r\n",
			"egressgate: nowhere.example.org:80: upstream-dns: the name does not resolve\n", "10.255.255.53:53"},
		{"connect-refused", "CONNECT " + down + " HTTP/1.1\r\nHost: " + down + "\r\n\r\n",
			"egressgate: " + down + ": upstream-refused: the server refused the connection\n", "connection refused"},
		{"http-refused", "GET http://" + down + "/ HTTP/1.1\r\nHost: " + down + "\r\n\r\n",
			"egressgate: " + down + ": upstream-refused: the server refused the connection\n", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			io.WriteString(c, tc.request)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadGateway || string(body) != tc.body {
				t.Errorf("%s: %d %q, want 502 %q", tc.name, resp.StatusCode, body, tc.body)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("%s: server log %q does not hold the cause %q", tc.name, logs.String(), tc.log)
			}
		})
	}
}
