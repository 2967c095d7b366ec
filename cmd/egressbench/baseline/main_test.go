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
	"strings"
	"testing"
	"time"
)

func TestReadHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	text := "# comment\n127.0.0.1\tlocalhost\n127.0.0.2 Bench.Example.org. other # trailing\nnot-an-ip name\n127.0.0.3 other\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"localhost": "127.0.0.1", "bench.example.org": "127.0.0.2", "other": "127.0.0.2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readHosts = %v, want %v", got, want)
	}
}

// TestConnect sends a CONNECT for a name only the hosts map knows through
// the proxy and echoes bytes over the tunnel, both ways.
func TestConnect(t *testing.T) {
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
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	srv := httptest.NewServer(newProxy(map[string]string{"bench.invalid": "127.0.0.1"}))
	defer srv.Close()

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, port, _ := net.SplitHostPort(up.Addr().String())
	target := "bench.invalid:" + port
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %s", target, resp.Status)
	}
	msg := strings.Repeat("tunnel ", 1000)
	go io.WriteString(conn, msg)
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(br, buf); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(buf) != msg {
		t.Errorf("echo differs from what was sent")
	}
}
