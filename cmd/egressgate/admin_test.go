package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveChildEnv, set, makes TestServeChild run "egressgate serve" with
// the arguments it holds (separated by US, 0x1f) under a 1,024-descriptor limit.
const serveChildEnv = "EGRESSGATE_TEST_SERVE_ARGS"

// TestServeChild is the egressgate process of tests that need one of its
// own: it runs until SIGTERM.
func TestServeChild(t *testing.T) {
	args := os.Getenv(serveChildEnv)
	if args == "" {
		t.Skip("run by other tests")
	}
	lowerFileLimit(t, 1024)
	os.Exit(run(append([]string{"serve"}, strings.Split(args, "\x1f")...), os.Stdout, os.Stderr))
}

// startServeChild runs egressgate serve in a child process under a
// 1,024-descriptor limit and returns the addresses its listeners logged.
func startServeChild(t *testing.T, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+strings.Join(args, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	addrs := map[string]string{}
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var l struct{ Msg, Listener, Addr string }
		json.Unmarshal(sc.Bytes(), &l)
		if l.Msg == "listening" {
			addrs[l.Listener] = l.Addr
		}
		if addrs["proxy"] != "" && addrs["admin"] != "" && (addrs["tls"] != "" || !slices.Contains(args, "--listen-tls")) {
			go io.Copy(io.Discard, stderr)
			return addrs
		}
	}
	t.Fatalf("egressgate serve did not log its listeners (%v)", sc.Err())
	return nil
}

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
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	_, port, _ := net.SplitHostPort(up.Addr().String())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "up.list"), []byte("up.example.org:"+port+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 up.example.org\n"), 0o644)
	cfg := filepath.Join(dir, "egressgate.yaml")
	os.WriteFile(cfg, []byte("embedded: []\ncatalogs:\n  - path: up.list\n"), 0o644)
	addrs := startServeChild(t, "--config", cfg, "--hosts", filepath.Join(dir, "hosts"), "--allow-dest", "127.0.0.0/8",
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
