package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/export"
)

// rawGet sends one request with the given Host to addr and returns the
// answer.
func rawGet(t *testing.T, addr, method, path, host string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(body)
}

func proxyLine(body string) string {
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, "var PROXY = ") {
			return line
		}
	}
	return ""
}

func TestPACOnProxyPort(t *testing.T) {
	r := &swapRules{}
	r.p.Store(testMatcher(t, "first.example.org"))
	addr, _ := startProxy(t, Config{Rules: r})
	port := strconv.Itoa(int(portOf(t, addr)))

	tests := []struct {
		name, method, path, host string
		status                   int
		proxy                    string // the PROXY line's address; "" for no file
		reason                   string
	}{
		{"host as reached", "GET", "/proxy.pac", addr, 200, addr, ""},
		{"name and mapped port", "GET", "/proxy.pac", "proxy.example.net:8080", 200, "proxy.example.net:8080", ""},
		{"name without port", "GET", "/proxy.pac", "proxy.example.net", 200, "proxy.example.net:" + port, ""},
		{"ipv6 without port", "GET", "/proxy.pac", "[2001:db8::1]", 200, "[2001:db8::1]:" + port, ""},
		{"unusable host", "GET", "/proxy.pac", "a;DIRECT", 200, addr, ""},
		{"empty host", "GET", "/proxy.pac", "", 200, addr, ""},
		{"head", "HEAD", "/proxy.pac", addr, 200, "", ""},
		{"post", "POST", "/proxy.pac", addr, 400, "", rules.ReasonNotProxyRequest.String()},
		{"other path", "GET", "/wpad.dat", addr, 400, "", rules.ReasonNotProxyRequest.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawGet(t, addr, tt.method, tt.path, tt.host)
			if resp.StatusCode != tt.status || resp.Header.Get(reasonHeader) != tt.reason {
				t.Fatalf("%s %s = %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get(reasonHeader), tt.status, tt.reason)
			}
			if tt.status != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != PACContentType {
				t.Errorf("Content-Type = %q, want %q", ct, PACContentType)
			}
			if tt.method == "HEAD" {
				if body != "" || resp.ContentLength <= 0 {
					t.Errorf("HEAD: body %d bytes, Content-Length %d", len(body), resp.ContentLength)
				}
				return
			}
			if got, want := proxyLine(body), `var PROXY = "PROXY `+tt.proxy+`";`; got != want {
				t.Errorf("PROXY line = %q, want %q", got, want)
			}
			if !strings.Contains(body, `"first.example.org"`) {
				t.Errorf("file does not name the catalog entry:\n%s", body)
			}
		})
	}

	// A reload regenerates the file.
	r.p.Store(testMatcher(t, "second.example.org"))
	_, body := rawGet(t, addr, "GET", "/proxy.pac", addr)
	if !strings.Contains(body, `"second.example.org"`) || strings.Contains(body, `"first.example.org"`) {
		t.Errorf("after a reload the file is not the new catalog's:\n%s", body)
	}
}

func TestPACHandlerAdmin(t *testing.T) {
	m := testMatcher(t, "all.example.org")
	estate := testMatcher(t, "estate.example.org")
	srv, err := New(Config{Rules: StaticRules{m}, PAC: PACOptions{
		Fallback: export.PACProxy,
		// The client of an httptest server is 127.0.0.1: give it the
		// estate's matcher, to show the file is chosen per client.
		For: func(client netip.Addr) *rules.Matcher {
			if client == netip.MustParseAddr("127.0.0.1") {
				return estate
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(srv.PACHandler(3128))
	t.Cleanup(admin.Close)
	resp, body := rawGet(t, strings.TrimPrefix(admin.URL, "http://"), "GET", "/proxy.pac", "gate.example.net:9128")
	if resp.StatusCode != 200 {
		t.Fatalf("GET = %d %s", resp.StatusCode, body)
	}
	if got, want := proxyLine(body), `var PROXY = "PROXY gate.example.net:3128";`; got != want {
		t.Errorf("PROXY line = %q, want %q (the admin port replaced by the proxy's)", got, want)
	}
	if !strings.Contains(body, `var FALLBACK = "PROXY gate.example.net:3128";`) {
		t.Errorf("fallback is not the proxy:\n%s", body)
	}
	if !strings.Contains(body, `"estate.example.org"`) || strings.Contains(body, `"all.example.org"`) {
		t.Errorf("file is not the client's estate's:\n%s", body)
	}
}

func TestPACFixedProxy(t *testing.T) {
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}, PAC: PACOptions{Proxy: "gate.example.net:3128"}})
	_, body := rawGet(t, addr, "GET", "/proxy.pac", "elsewhere.example.org:1")
	if got, want := proxyLine(body), `var PROXY = "PROXY gate.example.net:3128";`; got != want {
		t.Errorf("PROXY line = %q, want %q", got, want)
	}
}

// TestPACCacheBounded pins the cache bound: made-up Host fields must not
// grow memory without limit.
func TestPACCacheBounded(t *testing.T) {
	var c pacCache
	m := testMatcher(t, "a.example.org")
	first, err := c.get(m, "a.example.net:1", export.PACDirect)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.get(m, "a.example.net:1", export.PACDirect)
	if &first[0] != &again[0] {
		t.Error("second get regenerated the file")
	}
	for i := range 10 * maxPACCache {
		if _, err := c.get(m, "h"+strconv.Itoa(i)+".example.net:1", export.PACDirect); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.files); n > maxPACCache {
		t.Errorf("cache holds %d files, want at most %d", n, maxPACCache)
	}
}

// FuzzPACHost feeds client-chosen Host fields to the proxy address
// derivation. Whatever a client sends, the file either names a plain
// host:port (nothing that could end the JavaScript string or add a
// directive) or is refused, and servePAC then names the local address.
func FuzzPACHost(f *testing.F) {
	addSeeds[string](f, "gate.example.org:3128", "gate.example.org", "[2001:db8::1]", "[2001:db8::1]:8080",
		"192.0.2.1:80", "", ":3128", "a;DIRECT:1", "a\";alert(1)//:80", "[::1%eth0]:1", "x:99999", "ünïcode.example:1", "a b:1")
	m := testMatcher(f, "a.example.org")
	local := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, host string) {
		for _, keep := range []bool{true, false} {
			addr := pacProxyFor(host, 3128, local, keep)
			file, err := export.PAC(m, addr, export.PACDirect)
			if err != nil {
				continue
			}
			for _, c := range addr {
				if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune(".-_:[]", c)) {
					t.Fatalf("pacProxyFor(%q) = %q, accepted with %q in it", host, addr, c)
				}
			}
			if want := `var PROXY = "PROXY ` + addr + `";` + "\n"; !strings.Contains(string(file), want) {
				t.Fatalf("pacProxyFor(%q) = %q: file lacks %s", host, addr, want)
			}
		}
	})
}

// TestPACVaryHost: the file's proxy address comes from the Host header,
// and there was no Vary: Host, so a shared cache could hand one Host's
// file (an attacker's address) to every client. The answer now varies
// on Host whenever Host shapes it, and not when --pac-proxy fixes it.
func TestPACVaryHost(t *testing.T) {
	derived, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}})
	fixed, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "a.example.org")}, PAC: PACOptions{Proxy: "gate.example.net:3128"}})
	for _, tc := range []struct {
		name, addr, vary string
	}{
		{"derived", derived, "Host"},
		{"fixed", fixed, ""},
	} {
		resp, _ := rawGet(t, tc.addr, "GET", "/proxy.pac", "attacker.example.net:3128")
		if got := resp.Header.Get("Vary"); got != tc.vary {
			t.Errorf("%s: Vary = %q, want %q", tc.name, got, tc.vary)
		}
	}
}
