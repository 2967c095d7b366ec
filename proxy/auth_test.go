package proxy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// authConfig is the configuration of a proxy that requires proxy
// authentication and admits up.example.org:port (on loopback) only to the
// estate "inside", which every user of the password file belongs to.
// users maps a name to its password, hashed at cost; authExtra adds lines
// to the auth: block. The proxy records to the counter returned.
func authConfig(t *testing.T, port uint16, users map[string]string, cost int, authExtra string) (Config, *authCounter) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users"), usersFile(t, cost, "inside", users), 0o600)
	os.WriteFile(filepath.Join(dir, "local.txt"), []byte(fmt.Sprintf("up.example.org:%d\n", port)), 0o644)
	cfg := filepath.Join(dir, "egressgate.yaml")
	os.WriteFile(cfg, []byte(`embedded: []
catalogs: [{path: local.txt}]
policy:
  disable: [local]
estates:
  - name: inside
    subnets: [127.200.0.0/16]
    source: enterprise
    policy:
      enable: [local]
auth:
  password_file: users
  required: true
`+authExtra), 0o644)
	rl, err := rules.NewReloader(cfg, nil, rules.ReloadHooks{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &authCounter{}
	return Config{Rules: rl, Recorder: rec, Hosts: hostsFor("up.example.org"), AllowDest: loopbackDest}, rec
}

// usersFile is a password file that puts every user of users (a name
// and its password, hashed at cost) in estate.
func usersFile(t *testing.T, cost int, estate string, users map[string]string) []byte {
	t.Helper()
	var file bytes.Buffer
	for name, pass := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&file, "%s:%s:%s\n", name, hash, estate)
	}
	return file.Bytes()
}

// authProxy starts a proxy with authConfig's rules for users, hashed at
// the lowest cost, and returns its address.
func authProxy(t *testing.T, port uint16, users map[string]string) string {
	t.Helper()
	cfg, _ := authConfig(t, port, users, bcrypt.MinCost, "")
	addr, _ := startProxy(t, cfg)
	return addr
}

// authEcho starts an echo upstream and returns authConfig for it, with
// the one user alice ("correct horse"), its counter, and the upstream's
// up.example.org:port.
func authEcho(t *testing.T, cost int, authExtra string) (Config, *authCounter, string) {
	t.Helper()
	port := portOf(t, echoServer(t, echo))
	cfg, rec := authConfig(t, port, map[string]string{"alice": "correct horse"}, cost, authExtra)
	return cfg, rec, fmt.Sprintf("up.example.org:%d", port)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestAuthTunnelHalfClose: with proxy authentication on, CONNECTs are read
// by net/http, not the front end; the tunnel must still half-close. The
// upstream speaks, half-closes, and then reads what the client sends after
// it saw that EOF.
func TestAuthTunnelHalfClose(t *testing.T) {
	got := make(chan string, 1)
	up := echoServer(t, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "banner")
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	port := portOf(t, up)
	addr := authProxy(t, port, map[string]string{"bob": "hunter2-secret"})
	c, code, _ := connectFrom(t, addr, "127.0.0.1", fmt.Sprintf("up.example.org:%d", port), basic("bob", "hunter2-secret"))
	if code != 200 {
		t.Fatalf("CONNECT with credentials = %d, want 200", code)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "banner" {
		t.Fatalf("read until upstream's EOF = %q, %v", b, err)
	}
	io.WriteString(c, "after-eof")
	c.(*net.TCPConn).CloseWrite()
	select {
	case s := <-got:
		if s != "after-eof" {
			t.Errorf("upstream read %q after its half-close, want %q", s, "after-eof")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never saw the client's bytes and EOF")
	}
}

// TestAuthCacheKeyUnambiguous: a cached success for one name and password
// must not admit a different name and password that join to the same
// bytes. Names cannot hold ':' (Basic splits at the first), passwords can
// hold anything, NUL included.
func TestAuthCacheKeyUnambiguous(t *testing.T) {
	up := echoServer(t, echo)
	port := portOf(t, up)
	addr := authProxy(t, port, map[string]string{"a": "b\x00c"})
	target := fmt.Sprintf("up.example.org:%d", port)
	if _, code, _ := connectFrom(t, addr, "127.0.0.1", target, basic("a", "b\x00c")); code != 200 {
		t.Fatalf("CONNECT as a = %d, want 200", code)
	}
	if _, code, _ := connectFrom(t, addr, "127.0.0.1", target, basic("a\x00b", "c")); code != 407 {
		t.Errorf("CONNECT as %q after a's success = %d, want 407", "a\x00b", code)
	}
}

// TestAuthTunnelEarlyBytes: with proxy authentication on, bytes a client
// pipelines after its CONNECT head (more than one buffer's worth) reach
// the upstream whole and in order, whichever reader held them.
func TestAuthTunnelEarlyBytes(t *testing.T) {
	up := echoServer(t, echo)
	port := portOf(t, up)
	addr := authProxy(t, port, map[string]string{"bob": "hunter2-secret"})
	target := fmt.Sprintf("up.example.org:%d", port)
	early := make([]byte, 64<<10)
	for i := range early {
		early[i] = byte(i * 7)
	}
	c := dialProxy(t, addr)
	head := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic("bob", "hunter2-secret"))
	go func() {
		c.Write(append([]byte(head), early...))
		c.(*net.TCPConn).CloseWrite()
	}()
	answer, err := readHead(c)
	if err != nil || !strings.HasPrefix(answer, "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT = %q, %v; want 200", answer, err)
	}
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, early) {
		t.Fatalf("echo of %d early bytes: %d back, equal %v, %v", len(early), len(back), bytes.Equal(back, early), err)
	}
}

// TestProxyAuthForward: a plain-HTTP request that authenticates is judged
// as the user's estate, its Proxy-Authorization never reaches the
// upstream, and neither the user nor the password appears in the log or
// in what the proxy records.
func TestProxyAuthForward(t *testing.T) {
	var gotAuth []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Proxy-Authorization"))
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(upstream.Close)
	port := portOf(t, upstream.Listener.Addr().String())
	cfg, rec := authConfig(t, port, map[string]string{"bob": "hunter2-secret"}, bcrypt.MinCost, "")
	var logs proxytest.LogBuffer
	cfg.Log = debugLogger(&logs)
	proxyAddr, _ := startProxy(t, cfg)

	get := func(user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://up.example.org:%d/", port), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
			req.Header.Set("Proxy-Authorization", req.Header.Get("Authorization"))
			req.Header.Del("Authorization")
		}
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Proxy-Authenticate") + " " + string(body)
	}
	// From 127.0.0.1 (the default estate, where local is off), only bob's
	// estate admits the upstream.
	if code, body := get("bob", "hunter2-secret"); code != 200 || !strings.HasSuffix(body, "ok") {
		t.Errorf("bob: %d %q, want 200 ok", code, body)
	}
	if d := rec.lastDecision(t); d.Estate == nil || d.Estate.Name != "inside" {
		t.Errorf("bob's decision estate = %v, want inside", d.Estate)
	}
	if code, body := get("", ""); code != http.StatusProxyAuthRequired || !strings.HasPrefix(body, "Basic realm=") {
		t.Errorf("no credentials with required auth: %d %q, want 407 with a challenge", code, body)
	}
	if code, _ := get("bob", "wrong"); code != http.StatusProxyAuthRequired {
		t.Errorf("wrong password: %d, want 407", code)
	}
	if len(gotAuth) != 1 || gotAuth[0] != "" {
		t.Errorf("upstream saw Proxy-Authorization %q, want it removed", gotAuth)
	}
	logged := logs.String()
	rec.mu.Lock()
	recorded := fmt.Sprintf("%+v", rec.decisions)
	rec.mu.Unlock()
	for _, secret := range []string{"hunter2-secret", "Ym9i", "bob"} {
		if strings.Contains(logged, secret) || strings.Contains(recorded, secret) {
			t.Errorf("%q appears in the log or the recorded decisions", secret)
		}
	}
}

// FuzzParseBasic: parseBasic never panics, and what it accepts is a Basic
// credential that encodes back to the same user and password.
func FuzzParseBasic(f *testing.F) {
	addSeeds[string](f, "Basic YWxpY2U6czNjcmV0", "basic YWxpY2U6", "Basic OnBhc3M=", "Bearer x", "Basic !!!", "", "Basic")
	f.Fuzz(func(t *testing.T, hdr string) {
		name, pass, ok := parseBasic(hdr)
		if !ok {
			return
		}
		if name == "" || strings.Contains(name, ":") {
			t.Fatalf("parseBasic(%q) = %q, %q: a user name is never empty or holds a colon", hdr, name, pass)
		}
		if n2, p2, ok2 := parseBasic(basic(name, pass)); !ok2 || n2 != name || p2 != pass {
			t.Fatalf("round trip of %q, %q failed", name, pass)
		}
	})
}
