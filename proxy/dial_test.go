package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// TestUpstreamProxy chains a CONNECT tunnel and a plain-HTTP request
// through a parent proxy (a second egressgate), which resolves the names:
// the child has no hosts entry for them and checks only the parent's
// address.
func TestUpstreamProxy(t *testing.T) {
	srv, tlsPort := tlsUpstream(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "via parent") }))
	t.Cleanup(web.Close)
	webPort := portOf(t, web.Listener.Addr().String())
	list := []string{fmt.Sprintf("api.example.com:%d", tlsPort), fmt.Sprintf("crl.example.org:%d", webPort)}
	parentAddr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, list...)},
		Hosts:     hostsFor("api.example.com", "crl.example.org"),
		AllowDest: loopbackDest,
		SNIPorts:  []uint16{tlsPort},
	})
	rec := &recorder{}
	childAddr, _ := startProxy(t, Config{
		Rules:         StaticRules{testMatcher(t, list...)},
		AllowDest:     loopbackDest, // the parent is on loopback
		UpstreamProxy: &url.URL{Scheme: "http", Host: parentAddr},
		SNIPorts:      []uint16{tlsPort},
		Recorder:      rec,
	})

	body := getViaProxy(t, srv, childAddr, fmt.Sprintf("https://api.example.com:%d/", tlsPort))
	if !strings.HasPrefix(string(body), "hello from api.example.com") {
		t.Errorf("CONNECT via parent: body %q", body)
	}

	got := curl(t, childAddr, fmt.Sprintf("http://crl.example.org:%d/", webPort))
	if got.code != "200" || got.body != "via parent" {
		t.Errorf("HTTP via parent = %s %q, want 200 \"via parent\"", got.code, got.body)
	}

	// The parent's deny comes back as the parent's 403 for plain HTTP,
	// and as a 502 upstream-proxy for CONNECT (the child cannot pass on
	// a CONNECT answer's body).
	childOpen, _ := startProxy(t, Config{
		Rules:         StaticRules{testMatcher(t, "*.example.net:443")},
		AllowDest:     loopbackDest,
		UpstreamProxy: &url.URL{Scheme: "http", Host: parentAddr},
	})
	got = curl(t, childOpen, "https://x.example.net/")
	if got.code != "502" || !strings.Contains(got.header, reasonHeader+": "+rules.ReasonUpstreamProxy.String()) {
		t.Errorf("CONNECT the parent denies = %s %q, want 502 %s", got.code, got.header, rules.ReasonUpstreamProxy.String())
	}
}

// TestParentGetsJudgedName: with --upstream-proxy, the parent used to get
// the client's raw host: "allo\u00adwed.test" (soft hyphen), fullwidth dots
// and "ALLOWED.TEST." were admitted as allowed.test and sent on verbatim.
// The parent now gets the name that was judged, in canonical form.
func TestParentGetsJudgedName(t *testing.T) {
	lines := make(chan string, 8)
	parent := echoServer(t, func(c net.Conn) {
		defer c.Close()
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		lines <- r.Method + " " + r.RequestURI + " Host=" + r.Host
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	u, _ := url.Parse("http://" + parent)
	addr, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "allowed.test:8443,80")},
		UpstreamProxy: u, AllowDest: loopbackDest, SNIPorts: []uint16{}})
	for _, host := range []string{"allo\u00adwed.test", "allowed\uff0etest", "ALLOWED.TEST."} {
		t.Run("connect/"+host, func(t *testing.T) {
			c, _ := rawConnect(t, addr, host+":8443")
			c.Close()
			select {
			case got := <-lines:
				if want := "CONNECT allowed.test:8443 Host=allowed.test:8443"; got != want {
					t.Errorf("parent got %q, want %q", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("parent got nothing")
			}
		})
		t.Run("http/"+host, func(t *testing.T) {
			if !isASCII(host) {
				t.Skip("net/http refuses a request line or Host that is not ASCII")
			}
			c := dialProxy(t, addr)
			fmt.Fprintf(c, "GET http://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
			readHead(c)
			select {
			case got := <-lines:
				if !strings.HasPrefix(got, "GET http://allowed.test/x ") || !strings.HasSuffix(got, "Host=allowed.test") {
					t.Errorf("parent got %q, want GET http://allowed.test/x with Host allowed.test", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("parent got nothing")
			}
		})
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
