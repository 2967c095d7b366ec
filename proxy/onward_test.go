package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

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
