package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

	s := startServe(t, 2, "--config", cfgPath, "--hosts", hostsPath, "--allow-dest", "127.0.0.0/8", "--drain-timeout", "100ms")
	proxyAddr := s.addrs["proxy"]
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
	for deadline := time.Now().Add(10 * time.Second); healthcheck(s.addrs["admin"], "/readyz", time.Second) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", healthcheck(s.addrs["admin"], "/readyz", time.Second))
		}
	}
	if code := get(); code != http.StatusBadGateway {
		t.Fatalf("GET with up.example.org at 127.0.0.2 = %d, want 502", code)
	}
	save("127.0.0.1 up.example.org\n")
	waitFor(http.StatusOK)

	save("127.0.0.1 up.example.org\n127.0.0.1\n")
	want := `"msg":"hosts file not reloaded; the last good one keeps serving","path":"` + hostsPath + `","err":"` + hostsPath + `:2: address 127.0.0.1 has no name`
	if !s.waitLogged(want, 10*time.Second) {
		t.Fatalf("log lacks %s", want)
	}
	if code := get(); code != http.StatusOK {
		t.Errorf("GET after a bad edit = %d, want 200 from the last good hosts", code)
	}
}
