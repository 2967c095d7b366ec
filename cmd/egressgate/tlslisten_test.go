package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// TestHTTPSProxyInChromium: headless Chromium, told by a PAC file to use
// "HTTPS 127.0.0.1:PORT", speaks TLS to egressgate's --listen-tls
// listener and tunnels a catalog name through it.
func TestHTTPSProxyInChromium(t *testing.T) {
	chromium := findTool(t, "chromium", "chromium")
	up := httpsUpstream(t, nil, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><body><p>through-the-https-proxy</p></body></html>")
	})
	uport := portString(up.Listener.Addr().String())
	dir := writeFiles(t, map[string]string{
		"list":            "catalog.example.org:" + uport + "\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
		"hosts":           "127.0.0.1 catalog.example.org\n",
	})
	certFile, keyFile := proxytest.NewCert(t, 1, "127.0.0.1").Write(t, dir)
	addrs := startServeChild(t, "--config", filepath.Join(dir, "egressgate.yaml"), "--hosts", filepath.Join(dir, "hosts"),
		"--allow-dest", "127.0.0.0/8", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--listen-tls", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	pac := fmt.Sprintf("function FindProxyForURL(url, host) { return %q; }", "HTTPS "+addrs["tls"])

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		"--proxy-pac-url=data:application/x-javascript-config;base64,"+base64.StdEncoding.EncodeToString([]byte(pac)),
		// The proxy's and the upstream's certificates are the test's own.
		"--ignore-certificate-errors",
		"--dump-dom", "https://catalog.example.org:"+uport+"/")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(out), "through-the-https-proxy") {
		t.Errorf("page is not the upstream's through the HTTPS proxy:\n%s\n%s", out, stderr.String())
	}
}
