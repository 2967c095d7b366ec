package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// adminFlood is more than the child's 1,024 descriptors leave after its
// own: without a cap of its own, the admin listener takes them all.
const adminFlood = 1020

// TestAdminCannotExhaust: the admin listener timed out no idle connection
// and shared the proxy's descriptors: 1,009 idle keep-alive admin
// connections made proxy clients get 503. It now holds at most
// --admin-max-conns; the rest wait unaccepted, costing the process no
// descriptor, and the proxy serves.
func TestAdminCannotExhaust(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections to a child process")
	}
	port := portString(proxytest.EchoUpstream(t))
	dir := writeFiles(t, map[string]string{
		"up.list":         "up.example.org:" + port + "\n",
		"hosts":           "127.0.0.1 up.example.org\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: up.list\n",
	})
	addrs := startServeChild(t, "--config", filepath.Join(dir, "egressgate.yaml"), "--hosts", filepath.Join(dir, "hosts"), "--allow-dest", "127.0.0.0/8",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--max-conns", "-1")

	for i := range adminFlood {
		c, err := net.DialTimeout("tcp", addrs["admin"], 5*time.Second)
		if err != nil {
			t.Fatalf("admin connection %d: %v", i, err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n") // then idle, kept alive
	}
	time.Sleep(time.Second) // for the admin listener to accept what it will
	c, err := net.DialTimeout("tcp", addrs["proxy"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT up.example.org:%s HTTP/1.1\r\nHost: up.example.org:%s\r\n\r\n", port, port)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("proxy client under 1,000 idle admin connections: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("proxy client under 1,000 idle admin connections = %s %s, want 200", resp.Status, resp.Header.Get("X-Egressgate-Reason"))
	}
}

func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("0123456789abcdef-token\n"), 0o600)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	srv, _, err := adminServer(nil, next, adminOptions{tokenFile: tokFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/misses", "", 401},
		{"/misses", "Bearer wrong", 401},
		{"/misses", "Bearer 0123456789abcdef-token", 200},
		{"/metrics", "Basic YTpi", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/proxy.pac", "", 200},
	} {
		rw := httptest.NewRecorder()
		r := httptest.NewRequest("GET", tc.path, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		srv.Handler.ServeHTTP(rw, r)
		if rw.Code != tc.want {
			t.Errorf("GET %s with %q = %d, want %d", tc.path, tc.auth, rw.Code, tc.want)
		}
	}
	os.WriteFile(tokFile, []byte("short"), 0o600)
	if _, _, err := adminServer(nil, next, adminOptions{tokenFile: tokFile}, nil); err == nil {
		t.Error("a 5-character token was accepted")
	}
}
