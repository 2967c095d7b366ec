package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
)

// TestPACServed fetches /proxy.pac from the proxy port and the admin
// listener of a running serve.
func TestPACServed(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"list":            "catalog.example.org\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
	})
	addrs := startServe(t, 2, "--config", filepath.Join(dir, "egressgate.yaml"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pac-fallback", "proxy").addrs
	for _, l := range []string{"proxy", "admin"} {
		resp, err := http.Get("http://" + addrs[l] + proxy.PACPath)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != proxy.PACContentType {
			t.Fatalf("%s: GET /proxy.pac = %d %q", l, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{`var PROXY = "PROXY ` + addrs["proxy"] + `";`, `var FALLBACK = "PROXY ` + addrs["proxy"] + `";`, `"catalog.example.org"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s: /proxy.pac lacks %s:\n%s", l, want, body)
			}
		}
	}
}

func TestPACFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--pac-proxy", "gate.example.net:3128", "--pac-fallback", "proxy"}, ""},
		{[]string{"--pac-proxy", "gate.example.net"}, "--pac-proxy"},
		{[]string{"--pac-proxy", "a;DIRECT:1"}, "--pac-proxy"},
		{[]string{"--pac-fallback", "socks"}, "want direct or proxy"},
	} {
		_, err := parseServeFlags(tc.args, io.Discard)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseServeFlags(%q) error = %v, want %q", tc.args, err, tc.err)
		}
	}
}

// TestPACInChromium starts headless Chromium with --proxy-pac-url on
// egressgate's proxy port. A catalog name must go through the proxy (a
// CONNECT tunnel to a local TLS upstream, counted on /rules), and a name
// outside the catalog directly (Chromium's resolver maps it to a local
// server; egressgate never sees it).
func TestPACInChromium(t *testing.T) {
	chromium := findTool(t, "chromium", "chromium")
	type seen struct{ host, proto string }
	var mu sync.Mutex
	var requests []seen
	record := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			requests = append(requests, seen{r.Host, map[bool]string{true: "tls", false: "plain"}[r.TLS != nil]})
			mu.Unlock()
			fmt.Fprintf(w, "<html><body><p id=\"via\">%s</p></body></html>", body)
		}
	}
	tunneled := httptest.NewTLSServer(record("through-the-proxy"))
	t.Cleanup(tunneled.Close)
	direct := httptest.NewServer(record("direct"))
	t.Cleanup(direct.Close)
	tport, dport := portString(tunneled.Listener.Addr().String()), portString(direct.Listener.Addr().String())

	dir := writeFiles(t, map[string]string{
		"list":            "catalog.example.org:" + tport + "\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
		"hosts":           "127.0.0.1 catalog.example.org\n",
	})
	addrs := startServe(t, 2, "--config", filepath.Join(dir, "egressgate.yaml"), "--hosts", filepath.Join(dir, "hosts"),
		"--allow-dest", "127.0.0.0/8", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0").addrs

	browse := func(target string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(),
			"--proxy-pac-url=http://"+addrs["proxy"]+proxy.PACPath,
			// Only the name outside the catalog is resolved by Chromium;
			// the catalog name is the proxy's to resolve (--hosts).
			"--host-resolver-rules=MAP direct.example.net 127.0.0.1, EXCLUDE "+addrs["proxy"],
			// The tunnel's upstream has httptest's certificate.
			"--ignore-certificate-errors",
			"--dump-dom", target)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %s: %v\n%s", target, err, stderr.String())
		}
		return string(out)
	}

	if dom := browse("https://catalog.example.org:" + tport + "/"); !strings.Contains(dom, "through-the-proxy") {
		t.Errorf("catalog name: page is not the upstream's:\n%s", dom)
	}
	if dom := browse("http://direct.example.net:" + dport + "/"); !strings.Contains(dom, ">direct<") {
		t.Errorf("name outside the catalog: page is not the direct server's:\n%s", dom)
	}

	mu.Lock()
	got := append([]seen(nil), requests...)
	mu.Unlock()
	wantTLS := seen{"catalog.example.org:" + tport, "tls"}
	wantDirect := seen{"direct.example.net:" + dport, "plain"}
	var sawTLS, sawDirect bool
	for _, s := range got {
		sawTLS = sawTLS || s == wantTLS
		sawDirect = sawDirect || s == wantDirect
	}
	if !sawTLS || !sawDirect {
		t.Errorf("upstreams saw %v, want %v and %v", got, wantTLS, wantDirect)
	}

	// The proxy counted the tunnel on the catalog entry, and saw nothing
	// of the direct name: no miss.
	var rulesPage struct {
		Rules []struct {
			Rule string `json:"rule"`
			Hits uint64 `json:"hits"`
		} `json:"rules"`
	}
	getJSON(t, "http://"+addrs["admin"]+"/rules?format=json", &rulesPage)
	if len(rulesPage.Rules) != 1 || rulesPage.Rules[0].Hits == 0 {
		t.Errorf("/rules = %+v, want a hit on catalog.example.org", rulesPage.Rules)
	}
	var misses struct {
		Total uint64 `json:"total"`
	}
	getJSON(t, "http://"+addrs["admin"]+"/misses?format=json", &misses)
	if misses.Total != 0 {
		t.Errorf("/misses total = %d, want 0: the direct name went through the proxy", misses.Total)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestPACExport checks that "catalog --format pac" writes the file
// /proxy.pac serves for the same config, proxy address and fallback, and
// that it refuses to guess the proxy address.
func TestPACExport(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"list":            "catalog.example.org\n*.wild.example.org:443,8443\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
	})
	config := filepath.Join(dir, "egressgate.yaml")
	addrs := startServe(t, 2, "--config", config, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pac-proxy", "gate.example.net:3128").addrs
	resp, err := http.Get("http://" + addrs["admin"] + proxy.PACPath)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	var stdout, stderr strings.Builder
	if code := run([]string{"catalog", "--config", config, "--format", "pac", "--pac-proxy", "gate.example.net:3128"}, &stdout, &stderr); code != 0 {
		t.Fatalf("catalog --format pac: exit %d: %s", code, stderr.String())
	}
	// The first line names the matcher's version, which counts loads.
	_, export, _ := strings.Cut(stdout.String(), "\n")
	_, page, _ := strings.Cut(string(served), "\n")
	if export != page {
		t.Errorf("catalog --format pac differs from /proxy.pac:\n--- export\n%s\n--- served\n%s", stdout.String(), served)
	}

	stderr.Reset()
	if code := run([]string{"catalog", "--config", config, "--format", "pac"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "--pac-proxy") {
		t.Errorf("catalog --format pac without --pac-proxy: exit %d, %q; want 2 naming --pac-proxy", code, stderr.String())
	}
}
