package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeHostsReload: an edit of the --hosts file takes effect in a
// running serve without a restart (the watcher sees the editor's
// rename), and an edit that does not parse keeps the last good hosts and
// says file:line in the log.
func TestServeHostsReload(t *testing.T) {
	port := portString(upstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "up") }))

	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	// As an editor saves: write beside, then rename over.
	save := func(data string) {
		t.Helper()
		tmp := hostsPath + ".swp"
		if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, hostsPath); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "up.list"), []byte("up.example.org:"+port+"\n"), 0o644)
	cfgPath := filepath.Join(dir, "egressgate.yaml")
	os.WriteFile(cfgPath, []byte("embedded: []\ncatalogs:\n  - path: up.list\nlisteners:\n  proxy: 127.0.0.1:0\n  admin: 127.0.0.1:0\n"), 0o644)
	save("127.0.0.2 up.example.org # nothing listens there\n")

	addrs, lw := serveLogged(t, 2, "--config", cfgPath, "--hosts", hostsPath, "--allow-dest", "127.0.0.0/8", "--drain-timeout", "100ms")
	proxyAddr := addrs["proxy"]
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}), DisableKeepAlives: true}}
	get := func() int {
		resp, err := client.Get("http://up.example.org:" + port + "/")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// waitFor polls (bounded) until the proxy answers code.
	waitFor := func(code int) {
		t.Helper()
		got := 0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = get(); got == code {
				return
			}
		}
		t.Fatalf("GET = %d, want %d after the hosts file's edit", got, code)
	}
	// Serve watches the hosts file before it reports ready: edits from
	// then on must be seen.
	for deadline := time.Now().Add(10 * time.Second); healthcheck(addrs["admin"], "/readyz", time.Second) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", healthcheck(addrs["admin"], "/readyz", time.Second))
		}
	}
	if code := get(); code != http.StatusBadGateway {
		t.Fatalf("GET with up.example.org at 127.0.0.2 = %d, want 502", code)
	}
	save("127.0.0.1 up.example.org\n")
	waitFor(http.StatusOK)

	save("127.0.0.1 up.example.org\n127.0.0.1\n")
	want := `"msg":"hosts file not reloaded; the last good one keeps serving","path":"` + hostsPath + `","err":"` + hostsPath + `:2: address 127.0.0.1 has no name`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lw.mu.Lock()
		found := strings.Contains(lw.w.(*strings.Builder).String(), want)
		lw.mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %s", want)
		}
	}
	if code := get(); code != http.StatusOK {
		t.Errorf("GET after a bad edit = %d, want 200 from the last good hosts", code)
	}
}

// serveLogged runs serve with args until the test ends and returns the
// addresses of its first n listeners, by name, and its log.
func serveLogged(t *testing.T, n int, args ...string) (map[string]string, *syncWriter) {
	t.Helper()
	o, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan [2]string, 3)
	done := make(chan error, 1)
	lw := &syncWriter{w: &strings.Builder{}}
	go func() {
		done <- serve(ctx, o, make(chan os.Signal), lw, func(name, addr string) { listening <- [2]string{name, addr} })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addrs := map[string]string{}
	for len(addrs) < n {
		select {
		case l := <-listening:
			addrs[l[0]] = l[1]
		case err := <-done:
			t.Fatalf("serve: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("serve listens on %v only", addrs)
		}
	}
	return addrs, lw
}
