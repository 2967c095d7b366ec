package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// tlsUpstream starts a TLS server on 127.0.0.1 whose self-signed
// certificate names name. It returns the server's port and the path of
// the certificate in PEM, the CA that trusts it.
func tlsUpstream(t *testing.T, name string) (string, string) {
	t.Helper()
	cert := proxytest.NewCert(t, 1, name)
	ln := tls.NewListener(proxytest.Listen(t), &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	proxytest.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.(*tls.Conn).Handshake()
	})
	caFile, _ := cert.Write(t, t.TempDir())
	return portString(ln.Addr().String()), caFile
}

// probeFixture is a config whose catalog names a TLS upstream, a closed
// port and a wildcard, with the hosts file and CA to probe them.
type probeFixture struct {
	dir, config, hosts, ca, tlsPort, closedPort string
}

func newProbeFixture(t *testing.T) probeFixture {
	t.Helper()
	tport, ca := tlsUpstream(t, "ok.example.org")
	closed := portString(proxytest.FreeAddr(t))
	dir := writeFiles(t, map[string]string{
		"list":            "ok.example.org:" + tport + "\nclosed.example.org:" + closed + "\n*.cdn.example.net\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
		"hosts":           "127.0.0.1 ok.example.org closed.example.org\n",
	})
	return probeFixture{dir, filepath.Join(dir, "egressgate.yaml"), filepath.Join(dir, "hosts"), ca, tport, closed}
}

func runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestProbeCommand(t *testing.T) {
	f := newProbeFixture(t)
	// The catalog's names are not in any real DNS: every run goes
	// through the hosts file or the proxy, never a resolver.
	// The hosts file maps them to loopback, which serve dials only with
	// --allow-dest, and so does the probe.
	direct := []string{"probe", "--config", f.config, "--hosts", f.hosts, "--allow-dest", "127.0.0.0/8", "--ca", f.ca, "--tls-ports", f.tlsPort, "--timeout", "5s"}

	t.Run("json", func(t *testing.T) {
		code, out, stderr := runCmd(append(direct, "--json")...)
		if code != 1 {
			t.Fatalf("exit %d, want 1 (closed.example.org fails); stderr %s", code, stderr)
		}
		var rep probeReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if rep.OK || len(rep.Results) != 2 || len(rep.Skipped) != 1 || rep.Skipped[0].Rule != "*.cdn.example.net" {
			t.Fatalf("report = %+v", rep)
		}
		summary := map[string]string{}
		for _, r := range rep.Results {
			var steps []string
			for _, s := range r.Steps {
				steps = append(steps, s.Step+"="+map[bool]string{true: "ok", false: "fail"}[s.OK])
			}
			summary[r.Name] = strings.Join(steps, " ")
		}
		if got, want := summary["ok.example.org"], "dns=ok tcp=ok tls=ok"; got != want {
			t.Errorf("ok.example.org: %s, want %s", got, want)
		}
		if got, want := summary["closed.example.org"], "dns=ok tcp=fail"; got != want {
			t.Errorf("closed.example.org: %s, want %s", got, want)
		}
		if stderr != "" {
			t.Errorf("stderr = %q, want nothing (not a terminal: no progress line)", stderr)
		}
	})

	t.Run("table", func(t *testing.T) {
		_, out, _ := runCmd(direct...)
		for _, re := range []string{
			`(?m)^NAME\s+PORT\s+DNS\s+TCP\s+TLS$`,
			`(?m)^ok\.example\.org\s+` + f.tlsPort + `\s+ok \S+\s+ok \S+\s+ok \S+$`,
			`(?m)^closed\.example\.org\s+` + f.closedPort + `\s+ok \S+\s+FAIL\s+-$`,
			`(?m)^  closed\.example\.org:` + f.closedPort + ` tcp: .*refused`,
			`(?m)^  \*\.cdn\.example\.net\s+wildcard: no single name to try$`,
			`(?m)^probed directly: 1 passed, 1 failed \(names\); skipped: 1 \(entries\)$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("table lacks %s:\n%s", re, out)
			}
		}
	})

	t.Run("system roots", func(t *testing.T) {
		_, out, _ := runCmd("probe", "--config", f.config, "--hosts", f.hosts, "--allow-dest", "127.0.0.0/8", "--tls-ports", f.tlsPort, "--timeout", "5s")
		if !regexp.MustCompile(`ok\.example\.org:` + f.tlsPort + ` tls: .*(unknown authority|not trusted)`).MatchString(out) {
			t.Errorf("a certificate from a CA outside the system roots passed:\n%s", out)
		}
	})

	// Without --allow-dest, a name on loopback is refused as serve
	// would refuse it: the dns step fails, and nothing is dialed.
	t.Run("private destination", func(t *testing.T) {
		code, out, _ := runCmd("probe", "--config", f.config, "--hosts", f.hosts, "--ca", f.ca, "--tls-ports", f.tlsPort, "--timeout", "5s")
		for _, re := range []string{
			`(?m)^ok\.example\.org\s+` + f.tlsPort + `\s+FAIL\s+-\s+-$`,
			`(?m)^  ok\.example\.org dns: private-destination: every address is private, loopback or reserved: the proxy refuses it unless --allow-dest lists it$`,
		} {
			if code != 1 || !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("exit %d, table lacks %s:\n%s", code, re, out)
			}
		}
	})

	t.Run("via egressgate", func(t *testing.T) {
		addrs := startServe(t, 1, "--config", f.config, "--hosts", f.hosts, "--allow-dest", "127.0.0.0/8",
			"--listen", "127.0.0.1:0", "--admin", "off", "--sni-ports", f.tlsPort).addrs
		_, out, stderr := runCmd("probe", "--config", f.config, "--via", "http://"+addrs["proxy"], "--ca", f.ca, "--tls-ports", f.tlsPort, "--timeout", "5s")
		for _, re := range []string{
			`(?m)^ok\.example\.org\s+` + f.tlsPort + `\s+by proxy\s+ok \S+\s+ok \S+$`,
			`(?m)^  closed\.example\.org:` + f.closedPort + ` tcp: proxy answered 502 Bad Gateway \(upstream-refused\)$`,
			`(?m)^probed through http://` + regexp.QuoteMeta(addrs["proxy"]) + `: 1 passed, 1 failed`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("table lacks %s:\n%s%s", re, out, stderr)
			}
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"bad via", []string{"--via", "socks5://127.0.0.1:1080"}, "want http://host:port"},
		{"via without port", []string{"--via", "http://127.0.0.1"}, "want http://host:port"},
		{"missing ca", []string{"--ca", filepath.Join(f.dir, "nope.pem")}, "reading --ca"},
		{"ca not pem", []string{"--ca", f.hosts}, "no PEM certificate"},
		{"zero concurrency", []string{"--concurrency", "0"}, "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(append([]string{"probe", "--config", f.config}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.err) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.err)
			}
		})
	}
}

// TestServeProbeInterval runs serve with --probe-interval and reads the
// probe's series from /metrics. serve's --allow-dest lets it dial the
// hosts file's loopback addresses, and its probe with it.
func TestServeProbeInterval(t *testing.T) {
	f := newProbeFixture(t)
	addrs := startServe(t, 2, "--config", f.config, "--hosts", f.hosts, "--allow-dest", "127.0.0.0/8", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--sni-ports", f.tlsPort, "--probe-interval", "100ms", "--dial-timeout", "5s").addrs
	want := []string{
		`egressgate_probe_success{port="",rule="ok.example.org",step="dns"} 1`,
		`egressgate_probe_success{port="` + f.tlsPort + `",rule="ok.example.org",step="tcp"} 1`,
		// The server verifies with the system roots, which do not hold
		// the test's CA.
		`egressgate_probe_success{port="` + f.tlsPort + `",rule="ok.example.org",step="tls"} 0`,
		`egressgate_probe_success{port="` + f.closedPort + `",rule="closed.example.org",step="tcp"} 0`,
		`egressgate_probe_duration_seconds{port="` + f.tlsPort + `",rule="ok.example.org",step="tcp"} `,
	}
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addrs["admin"] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, w)
		}
		if !missing {
			if regexp.MustCompile(`egressgate_probe_\w+\{[^}]*rule="\*\.cdn\.example\.net"`).MatchString(body) {
				t.Errorf("a wildcard was probed:\n%s", body)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}
