package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeTransparent drives the SNI listener as a port-443 redirect
// does: clients that believe they connect to up.example.com reach the
// SNI listener instead, with the real server name in their ClientHello
// and no proxy protocol at all. An admitted name is relayed to the
// upstream the hosts file names; another gets a TLS access_denied alert;
// both are counted on listener "sni". curl --connect-to, which connects
// elsewhere while keeping the name, is the redirected client.
func TestServeTransparent(t *testing.T) {
	up := httpsUpstream(t, nil, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	})
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())

	dir := writeFiles(t, map[string]string{
		"up.list":         "up.example.com:" + port + "\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: up.list\nlisteners:\n  proxy: 127.0.0.1:0\n  sni: 127.0.0.1:0\n  admin: 127.0.0.1:0\n",
		"hosts":           "127.0.0.1 up.example.com evil.example.com\n",
	})
	cfg, hosts := filepath.Join(dir, "egressgate.yaml"), filepath.Join(dir, "hosts")
	addrs := startServe(t, 3, "--config", cfg, "--hosts", hosts, "--allow-dest", "127.0.0.0/8",
		"--sni-dest-port", port, "--drain-timeout", "100ms").addrs
	sni := addrs["sni"]

	// A TLS client that dials the SNI listener where it meant the
	// server: the redirect's view of the world.
	redirected := func(name string) (string, error) {
		c, err := net.DialTimeout("tcp", sni, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(c, &tls.Config{ServerName: name, RootCAs: up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", name, port)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	if body, err := redirected("up.example.com"); err != nil || body != "hello up.example.com:"+port {
		t.Errorf("redirected GET of up.example.com = %q, %v; want the upstream's answer", body, err)
	}
	if _, err := redirected("evil.example.com"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("redirected GET of evil.example.com: %v, want a TLS access denied alert", err)
	}
	if curl, err := exec.LookPath("curl"); err == nil && !testing.Short() {
		out, err := exec.CommandContext(t.Context(), curl, "-sS", "-k", "--max-time", "10",
			"--connect-to", "up.example.com:"+port+":"+sni, "https://up.example.com:"+port+"/").CombinedOutput()
		if err != nil || string(out) != "hello up.example.com:"+port {
			t.Errorf("curl --connect-to = %q, %v; want the upstream's answer", out, err)
		}
	}
	metrics := httpGet(t, "http://"+addrs["admin"]+"/metrics")
	for _, want := range []string{
		`egressgate_requests_total{decision="allow",listener="sni",reason="none"}`,
		`egressgate_requests_total{decision="deny",listener="sni",reason="not-in-catalog"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// httpGet returns the body of a GET of u.
func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// netnsChild marks the copy of the test binary that runs inside the
// network namespace TestTransparentRedirect makes.
const netnsChild = "EGRESSGATE_TEST_NETNS_CHILD"

// TestTransparentRedirect is the transparent mode with a real redirect:
// in a network namespace of its own (unshare -n; skipped where that or
// iptables is not available, and under -short), an iptables REDIRECT
// sends TCP 443 for 127.0.0.3 to the SNI listener, and clients that know
// nothing of the proxy (Go's TLS client, curl) reach up.example.com's
// server, which listens on 127.0.0.2:443, through it. Another name is
// refused with the TLS alert.
func TestTransparentRedirect(t *testing.T) {
	if os.Getenv(netnsChild) == "" {
		if testing.Short() {
			t.Skip("starts iptables in a network namespace")
		}
		unshare, err1 := exec.LookPath("unshare")
		_, err2 := exec.LookPath("iptables")
		_, err3 := exec.LookPath("ip")
		if err1 != nil || err2 != nil || err3 != nil || exec.Command(unshare, "-n", "true").Run() != nil {
			t.Skip("needs unshare -n (root), ip and iptables")
		}
		cmd := exec.CommandContext(t.Context(), unshare, "-n", os.Args[0], "-test.run", "^TestTransparentRedirect$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), netnsChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTransparentRedirect") {
			t.Fatalf("in a network namespace: %v\n%s", err, out)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.2:443")
	if err != nil {
		t.Fatal(err)
	}
	up := httpsUpstream(t, ln, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	})

	dir := writeFiles(t, map[string]string{
		"up.list":         "up.example.com:443\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: up.list\nlisteners:\n  proxy: 127.0.0.1:0\n  sni: 127.0.0.1:0\n  admin: \"off\"\n",
		"hosts":           "127.0.0.2 up.example.com evil.example.com\n",
	})
	cfg, hosts := filepath.Join(dir, "egressgate.yaml"), filepath.Join(dir, "hosts")
	addrs := startServe(t, 2, "--config", cfg, "--hosts", hosts, "--allow-dest", "127.0.0.0/8", "--drain-timeout", "100ms").addrs
	// Only what is addressed to 127.0.0.3 is redirected: egressgate's
	// own connection to 127.0.0.2:443 is not, as on a gateway only what
	// arrives from the endpoints' side is.
	rule := []string{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.3", "--dport", "443", "-j", "REDIRECT", "--to-ports", portString(addrs["sni"])}
	if out, err := exec.Command("iptables", rule...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %s: %v\n%s", strings.Join(rule, " "), err, out)
	}

	roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	get := func(name string) (string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.3:443") // what DNS would say
			}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + name + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get("up.example.com"); err != nil || body != "hello up.example.com" {
		t.Errorf("GET https://up.example.com/ through the redirect = %q, %v", body, err)
	}
	if _, err := get("evil.example.com"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("GET https://evil.example.com/ through the redirect: %v, want a TLS access denied alert", err)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.CommandContext(t.Context(), curl, "-sS", "-k", "--max-time", "10",
			"--resolve", "up.example.com:443:127.0.0.3", "https://up.example.com/").CombinedOutput()
		if err != nil || string(out) != "hello up.example.com" {
			t.Errorf("curl through the redirect = %q, %v", out, err)
		}
	}
}
