package probe

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// loopback is the AllowDest that lets the proxy dial the tests' servers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// noDNS is a Resolver under which every name the hosts do not list
// does not exist: no test leaves the process.
type noDNS struct{}

func (noDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// startProxy runs egressgate on 127.0.0.1:0 with cfg, admitting the
// plain-list patterns, and returns its address.
func startProxy(t *testing.T, cfg proxy.Config, patterns ...string) string {
	t.Helper()
	c, err := rules.ParseList("t.list", "t", []byte(strings.Join(patterns, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules, cfg.Resolver = proxy.StaticRules{M: rs.Matcher}, noDNS{}
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := proxytest.Listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// tlsServer accepts TLS connections with cert on 127.0.0.1 and counts
// completed handshakes. It returns its port.
func tlsServer(t testing.TB, cert tls.Certificate) (uint16, *atomic.Int64) {
	t.Helper()
	ln := tls.NewListener(proxytest.Listen(t), &tls.Config{Certificates: []tls.Certificate{cert}})
	var n atomic.Int64
	proxytest.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if c.(*tls.Conn).Handshake() == nil {
			n.Add(1)
		}
	})
	return uint16(ln.Addr().(*net.TCPAddr).Port), &n
}
