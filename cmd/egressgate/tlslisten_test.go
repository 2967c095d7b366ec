package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a certificate for 127.0.0.1 and its key, in PEM.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "egressgate test proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(priv)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// TestHTTPSProxyInChromium: headless Chromium, told by a PAC file to use
// "HTTPS 127.0.0.1:PORT", speaks TLS to egressgate's --listen-tls
// listener and tunnels a catalog name through it.
func TestHTTPSProxyInChromium(t *testing.T) {
	chromium := findTool(t, "chromium", "chromium")
	up := httpsUpstream(t, nil, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><body><p>through-the-https-proxy</p></body></html>")
	})
	uport := portString(up.Listener.Addr().String())
	cert, key := selfSigned(t)
	dir := writeFiles(t, map[string]string{
		"list":            "catalog.example.org:" + uport + "\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: list\n",
		"hosts":           "127.0.0.1 catalog.example.org\n",
		"cert.pem":        cert,
		"key.pem":         key,
	})
	addrs := startServeChild(t, "--config", filepath.Join(dir, "egressgate.yaml"), "--hosts", filepath.Join(dir, "hosts"),
		"--allow-dest", "127.0.0.0/8", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--listen-tls", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
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
