package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// runArgsEnv, when set in the environment, makes the test binary run
// egressgate with these arguments (one per line) instead of the tests:
// a process of its own, so that SSL_CERT_FILE can make it trust a test
// server, as an operator's system roots trust the vendor's.
const runArgsEnv = "EGRESSGATE_TEST_RUN_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(runArgsEnv); args != "" {
		os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runTrusting runs egressgate in a child process that trusts srv's
// certificate.
func runTrusting(t *testing.T, srv *httptest.Server, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runArgsEnv+"="+strings.Join(args, "\n"), "SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
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
