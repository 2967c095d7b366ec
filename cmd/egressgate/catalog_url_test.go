package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// runTrusting runs egressgate in a child process that trusts srv's
// certificate.
func runTrusting(t *testing.T, srv *httptest.Server, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"ca.pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))})
	return runChild(t, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem"), "SSL_CERT_DIR=" + t.TempDir()}, args...)
}

// connectProxy is a minimal HTTP CONNECT proxy on loopback that counts
// the tunnels it opens.
func connectProxy(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		n.Add(1)
		w.WriteHeader(http.StatusOK)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { io.Copy(up, brw); up.Close() }()
		io.Copy(c, up)
		c.Close()
	}))
	t.Cleanup(p.Close)
	return p, &n
}

// TestCatalogDiffURL: catalog diff and import read the vendor page from
// its https:// URL, directly and through --via, HTML reduced to its text.
func TestCatalogDiffURL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	html, err := os.ReadFile("testdata/watch/page-excerpt.html")
	if err != nil {
		t.Fatal(err)
	}
	site := &vendorSite{page: strings.Replace(string(html), "<h2>Remote assistance</h2>",
		"<h2>Domains for Sophos Firewall integration</h2><ul><li>fw-telemetry.sophos.com</li></ul><h2>Remote assistance</h2>", 1)}
	srv := httptest.NewTLSServer(site)
	defer srv.Close()
	page, _ := filepath.Abs("testdata/configs/page-excerpt.txt")
	proxy, tunnels := connectProxy(t)

	for _, via := range []string{"", proxy.Listener.Addr().String()} {
		args := []string{"catalog", "diff", page, srv.URL + "/domains"}
		if via != "" {
			args = append(args, "--via", via)
		}
		stdout, stderr, code := runTrusting(t, srv, args...)
		if code != 3 || !strings.Contains(stdout, "0 removed, 0 changed\n+ fw-telemetry.sophos.com (unknown section \"Domains for Sophos Firewall integration\", line ") ||
			!strings.Contains(stderr, "warning: \"fw-telemetry.sophos.com\" is listed under \"Domains for Sophos Firewall integration\"") {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	if tunnels.Load() != 1 {
		t.Errorf("the proxy opened %d tunnels, want 1 (the --via run)", tunnels.Load())
	}
	stdout, stderr, code := runTrusting(t, srv, "catalog", "import", "--strict", srv.URL+"/domains")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "is listed under no lead-in the importer knows") {
		t.Errorf("import --strict: exit %d\n%s%s", code, stdout, stderr)
	}
	// Without the certificate in its roots, the page is refused.
	var out, errOut bytes.Buffer
	if code := run([]string{"catalog", "import", srv.URL + "/domains"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "certificate") {
		t.Errorf("import from an untrusted server: exit %d %s", code, errOut.String())
	}
}
