package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/proxy/proxytest"
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
	srv := httptest.NewServer(newProxy(map[string]string{"bench.invalid": "127.0.0.1"}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(proxytest.EchoUpstream(t))
	target := "bench.invalid:" + port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, pending, err := connectclient.Dial(ctx, &net.Dialer{}, srv.Listener.Addr().String(), target, nil)
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := strings.Repeat("tunnel ", 1000)
	go io.WriteString(conn, msg)
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(io.MultiReader(bytes.NewReader(pending), conn), buf); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(buf) != msg {
		t.Errorf("echo differs from what was sent")
	}
}
