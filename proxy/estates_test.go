package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/egressgate/egressgate/rules"
)

// exampleOnLoopback loads the shipped enterprise example with its
// subnets 10.N. read as 127.N., so that test clients binding loopback
// source addresses land in its estates, plus extra config appended and
// users as the password file "users" beside it.
func exampleOnLoopback(t *testing.T, extra string, users []byte) *rules.Reloader {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "estates.d"), 0o755)
	for _, name := range []string{"egressgate.yaml", filepath.Join("estates.d", "sydney.yaml")} {
		data, err := os.ReadFile(filepath.Join("../deploy/examples/enterprise", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "[10.", "[127.")
		if strings.Contains(text, " 10.") || strings.Contains(text, "[10.") {
			t.Fatalf("%s has a 10. address the test does not map", name)
		}
		if name == "egressgate.yaml" {
			text += extra
		}
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "users"), users, 0o600)
	rl, err := rules.NewReloader(filepath.Join(dir, "egressgate.yaml"), nil, rules.ReloadHooks{})
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

// tlsUpstream443 starts a TLS server on port 443, the port the catalog
// admits, of a loopback address from 127.0.9.9 up: the first that no
// other process holds, since test runs of other checkouts on the same
// machine bind it too, and a server of theirs would answer this test's
// tunnels. It returns that address, and false when port 443 cannot be
// bound at all (not root): the test then checks the verdicts without the
// tunnel's far end.
func tlsUpstream443(t *testing.T) (netip.Addr, bool) {
	t.Helper()
	addr := netip.MustParseAddr("127.0.9.9")
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 443).String())
	for errors.Is(err, syscall.EADDRINUSE) && addr.As4()[3] < 254 {
		addr = addr.Next()
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 443).String())
	}
	if err != nil {
		t.Logf("cannot listen on %s:443 (%v): checking admitted tunnels up to the upstream dial", addr, err)
		return addr, false
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return addr, true
}

// TestEstatesEndToEnd runs the worked example through the proxy: clients
// on 127.1.0.5 (london), 127.2.0.5 (newyork), 127.2.99.7 (a newyork
// device excluded from Live Response) and 127.3.0.5 (sydney) ask for the
// same hosts and get their estate's verdicts.
func TestEstatesEndToEnd(t *testing.T) {
	users := usersFile(t, bcrypt.MinCost, "newyork", map[string]string{"alice": "s3cret-pass"})
	rl := exampleOnLoopback(t, "auth:\n  password_file: users\n", append([]byte("# test users\n"), users...))
	const (
		lt     = "live-terminal-us-east-2.prod.hydra.sophos.com"
		push   = "mcs-push-server-eu-west-1.prod.hydra.sophos.com"
		apu    = "x.apu.sophos.com"
		anyone = "anything.sophos.com"
	)
	upstreamAddr, upstream := tlsUpstream443(t)
	rec := &recorder{}
	hosts := Hosts{}
	for _, h := range []string{lt, push, apu, anyone} {
		hosts[h] = []netip.Addr{upstreamAddr}
	}
	proxyAddr, _ := startProxy(t, Config{Rules: rl, Recorder: rec, Hosts: hosts, AllowDest: loopbackDest})

	tests := []struct {
		name, src, target, auth string
		estate                  string
		reason                  rules.Reason
	}{
		{"newyork-lr", "127.2.0.5", lt + ":443", "", "newyork", rules.ReasonNone},
		{"newyork-excluded-device", "127.2.99.7", lt + ":443", "", "newyork", rules.ReasonDeviceExcluded},
		{"london-lr-off", "127.1.0.5", lt + ":443", "", "london", rules.ReasonLiveResponseOff},
		{"sydney-not-licensed", "127.3.0.5", lt + ":443", "", "sydney", rules.ReasonNotLicensed},
		{"default-estate", "127.9.0.5", lt + ":443", "", "default", rules.ReasonLiveResponseOff},
		{"newyork-region", "127.2.0.5", push + ":443", "", "newyork", rules.ReasonRegionExcluded},
		{"london-push", "127.1.0.5", push + ":443", "", "london", rules.ReasonNone},
		{"sydney-exact", "127.3.0.5", anyone + ":443", "", "sydney", rules.ReasonNotInCatalog},
		{"london-wildcard", "127.1.0.5", anyone + ":443", "", "london", rules.ReasonNone},
		{"newyork-remote-assistance", "127.2.0.5", apu + ":22", "", "newyork", rules.ReasonNone},
		{"london-remote-assistance", "127.1.0.5", apu + ":22", "", "london", rules.ReasonPortNotAllowed},
		// A user overrides the subnet: alice is newyork's, even from
		// london's and sydney's addresses.
		{"user-over-subnet", "127.1.0.5", lt + ":443", basic("alice", "s3cret-pass"), "newyork", rules.ReasonNone},
		{"user-from-sydney", "127.3.0.5", lt + ":443", basic("alice", "s3cret-pass"), "newyork", rules.ReasonNone},
		// The device exclusion follows the device, whoever logs in.
		{"user-excluded-device", "127.2.99.7", lt + ":443", basic("alice", "s3cret-pass"), "newyork", rules.ReasonDeviceExcluded},
		{"wrong-password", "127.2.0.5", lt + ":443", basic("alice", "wrong"), "", rules.ReasonProxyAuth},
		{"unknown-user", "127.2.0.5", lt + ":443", basic("mallory", "s3cret-pass"), "", rules.ReasonProxyAuth},
		{"not-basic", "127.2.0.5", lt + ":443", "Bearer abc", "", rules.ReasonProxyAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, status, hdr := connectFrom(t, proxyAddr, tt.src, tt.target, tt.auth)
			switch {
			case tt.reason == rules.ReasonProxyAuth:
				if status != http.StatusProxyAuthRequired || !strings.HasPrefix(hdr.Get("Proxy-Authenticate"), `Basic realm="egressgate"`) {
					t.Fatalf("status %d, Proxy-Authenticate %q; want 407 with a Basic challenge", status, hdr.Get("Proxy-Authenticate"))
				}
			case tt.reason != rules.ReasonNone:
				if status != http.StatusForbidden || hdr.Get(reasonHeader) != tt.reason.String() {
					t.Fatalf("status %d %s, want 403 %s", status, hdr.Get(reasonHeader), tt.reason)
				}
			case !upstream || strings.HasSuffix(tt.target, ":22"):
				// Admitted: the proxy went on to dial, which nothing answers.
				if status != http.StatusBadGateway {
					t.Fatalf("status %d %s, want 502 after an admitted verdict", status, hdr.Get(reasonHeader))
				}
			default:
				if status != http.StatusOK {
					t.Fatalf("status %d %s, want 200", status, hdr.Get(reasonHeader))
				}
				host, _, _ := strings.Cut(tt.target, ":")
				tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
				fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
				resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
				if err != nil {
					t.Fatalf("GET through the tunnel: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				if string(body) != "hello "+host {
					t.Fatalf("body %q", body)
				}
			}
			d := rec.lastDecision(t)
			if d.Reason != tt.reason {
				t.Errorf("recorded reason %q, want %q", d.Reason, tt.reason)
			}
			if tt.estate != "" && (d.Estate == nil || d.Estate.Name != tt.estate) {
				t.Errorf("recorded estate %v, want %s", d.Estate, tt.estate)
			}
		})
	}
}

// TestPACPerEstate: each client gets the PAC file of its own estate, and
// fetching it needs no proxy credentials even when they are required.
func TestPACPerEstate(t *testing.T) {
	rl := exampleOnLoopback(t, "auth:\n  password_file: users\n  required: true\n", nil)
	proxyAddr, srv := startProxy(t, Config{Rules: rl})
	pac := func(src string) string {
		t.Helper()
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://proxy.example.net/proxy.pac", nil)
		r.RemoteAddr = src + ":40000"
		srv.PACHandler(3128).ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("PAC for %s: %d %s", src, w.Code, w.Body)
		}
		return w.Body.String()
	}
	// Remote assistance (*.apu.sophos.com:22) is on for newyork only.
	if ny, ldn := pac("127.2.0.5"), pac("127.1.0.5"); !strings.Contains(ny, "apu.sophos.com") || strings.Contains(ldn, "apu.sophos.com") {
		t.Errorf("newyork's PAC names apu.sophos.com: %t, london's: %t; want true, false",
			strings.Contains(ny, "apu.sophos.com"), strings.Contains(ldn, "apu.sophos.com"))
	}
	// On the proxy port, without credentials.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.3.0.5")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /proxy.pac HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", proxyAddr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.Contains(string(body), "apu.sophos.com") {
		t.Errorf("sydney's PAC on the proxy port: %d, names apu.sophos.com: %t; want 200, false", resp.StatusCode, strings.Contains(string(body), "apu.sophos.com"))
	}
}
