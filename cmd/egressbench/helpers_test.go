package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// miniProxy starts connectHandler on loopback for the test and returns
// its address.
func miniProxy(t *testing.T) net.Addr {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(connectHandler))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr()
}

// runTool runs the tool with args, fails the test unless it exits 0, and
// returns what it printed.
func runTool(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("run(%q) = %d, want 0; stderr:\n%s", args, code, stderr.String())
	}
	return stdout.String()
}

// connectHandler is a minimal CONNECT proxy: it dials the requested port
// on 127.0.0.1 whatever the host, and splices both ways until both are done.
func connectHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(up, brw.Reader) // bytes the server buffered before the hijack come first
		up.(*net.TCPConn).CloseWrite()
	})
	io.Copy(conn, up)
	conn.(*net.TCPConn).CloseWrite()
	wg.Wait()
}
