package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The fixtures the tests of this package share: tools, loopback
// addresses and upstreams.

// findTool returns the path of a program a test starts, from PATH or
// /usr/sbin, or skips the test: under -short, which leaves out every test
// that starts a real component, and when the program is not installed,
// naming the Debian package (`make deps` installs it).
func findTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: not starting %s", name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Skipf("%s not installed (apt-get install %s); skipping", name, pkg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeFiles writes name → content under a temporary directory and
// returns the directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// freeLoopbackAddr returns a loopback address nothing listens on: a port
// that was free a moment ago, for a listener a test starts, or to be
// refused.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// upstream serves h on a loopback port for the test's life and returns
// its address.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// portString returns the port of a host:port address.
func portString(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// waitListening waits until addr accepts connections; log says why not.
func waitListening(t *testing.T, addr string, limit time.Duration, log func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s:\n%s", addr, limit, log())
}
