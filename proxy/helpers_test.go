package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// loopbackDest lets tests dial their own upstreams on 127.0.0.0/8.
var loopbackDest = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// testMatcher compiles a plain list, one pattern per line.
func testMatcher(t testing.TB, lines ...string) *rules.Matcher {
	t.Helper()
	c, err := rules.ParseList("test.list", "test", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("ParseList: %v", err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	return rs.Matcher
}

// noDNS is a Resolver that never leaves the process: every name it is
// asked about does not exist. Tests resolve through Config.Hosts only.
type noDNS struct{}

func (noDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// hostsFor maps each name to 127.0.0.1.
func hostsFor(names ...string) Hosts {
	h := Hosts{}
	for _, n := range names {
		h[n] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	return h
}

// startProxy runs a Server with cfg on 127.0.0.1:0 and returns its
// address. It never resolves through real DNS. Shutdown runs at cleanup.
func startProxy(t testing.TB, cfg Config) (string, *Server) {
	t.Helper()
	if cfg.Resolver == nil {
		cfg.Resolver = noDNS{}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lc := cfg.ListenConfig()
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), srv
}

// proxyFor starts a proxy with cfg that admits the upstream at addr
// (on 127.0.0.1) as host: unless cfg has rules, they name host and the
// upstream's port; host resolves to loopback, which it may dial. It
// returns the proxy's address, the CONNECT target host:port and the
// server.
func proxyFor(t testing.TB, host, addr string, cfg Config) (proxyAddr, target string, srv *Server) {
	t.Helper()
	target = fmt.Sprintf("%s:%d", host, portOf(t, addr))
	if cfg.Rules == nil {
		cfg.Rules = StaticRules{testMatcher(t, target)}
	}
	cfg.Hosts = hostsFor(host)
	cfg.AllowDest = loopbackDest
	proxyAddr, srv = startProxy(t, cfg)
	return proxyAddr, target, srv
}

// echoProxy is proxyFor an echo upstream, echo.example.org.
func echoProxy(t testing.TB, cfg Config) (proxyAddr, target string, srv *Server) {
	t.Helper()
	return proxyFor(t, "echo.example.org", echoServer(t, echo), cfg)
}

// startSNI runs srv's SNI listener on 127.0.0.1:0.
func startSNI(t testing.TB, srv *Server) string {
	t.Helper()
	ln := proxytest.Listen(t)
	go srv.ServeSNI(ln)
	return ln.Addr().String()
}

// portOf returns the port of a host:port address.
func portOf(t testing.TB, addr string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// recorder keeps what the proxy recorded.
type recorder struct {
	mu        sync.Mutex
	decisions []Decision
	dials     []DialError
	closed    []TunnelStats
}

func (r *recorder) Decided(d *Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, *d)
}

func (r *recorder) Dialed(_ *Decision, _, _ time.Duration, err DialError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dials = append(r.dials, err)
}

func (r *recorder) TunnelOpened(*Decision) {}

func (r *recorder) TunnelClosed(_ *Decision, s TunnelStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = append(r.closed, s)
}

// lastDecision returns the last decision recorded.
func (r *recorder) lastDecision(t testing.TB) Decision {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.decisions) == 0 {
		t.Fatal("no decision recorded")
	}
	return r.decisions[len(r.decisions)-1]
}

// waitClosed waits (bounded) until n tunnels were recorded closed and
// returns their stats.
func (r *recorder) waitClosed(t testing.TB, n int) []TunnelStats {
	t.Helper()
	for range 500 {
		r.mu.Lock()
		got := append([]TunnelStats(nil), r.closed...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d tunnels closed, want %d", len(r.closed), n)
	return nil
}

var _ Recorder = (*recorder)(nil)

// echoServer accepts connections on 127.0.0.1:0 and runs serve on each.
func echoServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln := proxytest.Listen(t)
	proxytest.Serve(t, ln, serve)
	return ln.Addr().String()
}

// echo copies a connection back to itself and half-closes at EOF.
func echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

// dialProxy connects to addr, a listener under test, and closes the
// connection when the test ends. Its 10-second deadline turns a server
// that never answers into a failure instead of a hung test.
func dialProxy(t testing.TB, addr string) net.Conn {
	t.Helper()
	return dialFrom(t, "", addr)
}

// dialFrom is dialProxy from the loopback address src ("" for any).
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// connectAnswer sends opening (a PROXY header or nothing) and a CONNECT
// for target on c, with a Proxy-Authorization of auth unless it is empty,
// and returns the answer.
func connectAnswer(t testing.TB, c net.Conn, opening []byte, target, auth string) *http.Response {
	t.Helper()
	req := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	c.Write(append(opening, req+"\r\n"...))
	head, err := readHead(c)
	if err != nil {
		t.Fatalf("reading the answer: %v (read %q)", err, head)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head)), nil)
	if err != nil {
		t.Fatalf("parsing %q: %v", head, err)
	}
	return resp
}

// connectFrom sends CONNECT target from the loopback address src, with
// an optional Proxy-Authorization, and returns the connection and the
// answer's status code and header.
func connectFrom(t testing.TB, proxyAddr, src, target, auth string) (net.Conn, int, http.Header) {
	t.Helper()
	c := dialFrom(t, src, proxyAddr)
	resp := connectAnswer(t, c, nil, target, auth)
	return c, resp.StatusCode, resp.Header
}

// debugLogger returns a logger, debug level and up, that writes into l.
func debugLogger(l *proxytest.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tlsUpstream starts a TLS server whose certificate names example.com and
// *.example.com, and returns it with its port.
func tlsUpstream(t testing.TB) (*httptest.Server, uint16) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	}))
	// Denied tunnels close the upstream before a byte: quiet the
	// server's "TLS handshake error ... EOF" lines.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, portOf(t, srv.Listener.Addr().String())
}

// sniCheckedProxy starts a proxy that admits api.example.com on port,
// resolved to loopback, with the SNI check on that port.
func sniCheckedProxy(t testing.TB, port uint16) (string, *recorder) {
	t.Helper()
	rec := &recorder{}
	addr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, fmt.Sprintf("api.example.com:%d", port))},
		Hosts:     hostsFor("api.example.com"),
		AllowDest: loopbackDest,
		SNIPorts:  []uint16{port},
		Recorder:  rec,
	})
	return addr, rec
}

// clientHello returns the first flight of a crypto/tls client for sni
// ("" sends none).
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	c := &captureConn{}
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true}
	if sni == "" {
		// crypto/tls omits SNI when ServerName is empty.
		cfg.ServerName = ""
	}
	tls.Client(c, cfg).Handshake() // fails when the first read finds nothing
	if len(c.buf) == 0 {
		t.Fatal("no ClientHello captured")
	}
	return c.buf
}

// captureConn keeps what is written and ends every read at EOF.
type captureConn struct {
	net.Conn
	buf []byte
}

func (c *captureConn) Write(p []byte) (int, error) { c.buf = append(c.buf, p...); return len(p), nil }
func (c *captureConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *captureConn) Close() error                { return nil }
func (c *captureConn) SetDeadline(time.Time) error { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error {
	return nil
}
func (c *captureConn) SetReadDeadline(time.Time) error { return nil }
func (c *captureConn) LocalAddr() net.Addr             { return &net.TCPAddr{} }
func (c *captureConn) RemoteAddr() net.Addr            { return &net.TCPAddr{} }

// rawConnect opens a connection to the proxy, sends CONNECT target and
// returns the connection and the status line and header block.
func rawConnect(t testing.TB, proxyAddr, target string) (net.Conn, string) {
	t.Helper()
	c := dialProxy(t, proxyAddr)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	head, err := readHead(c)
	if err != nil {
		t.Fatalf("reading CONNECT answer: %v", err)
	}
	c.SetDeadline(time.Time{})
	return c, head
}

// readHead reads up to the end of an HTTP header, one byte at a time so
// that nothing after it is consumed.
func readHead(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 64<<10 {
		if _, err := c.Read(one); err != nil {
			return string(b), err
		}
		b = append(b, one[0])
		if strings.HasSuffix(string(b), "\r\n\r\n") {
			return string(b), nil
		}
	}
	return string(b), errors.New("header too long")
}

// getViaProxy GETs u with a client that trusts srv's certificate and uses
// the proxy at proxyAddr, and returns the body.
func getViaProxy(t *testing.T, srv *httptest.Server, proxyAddr, u string) string {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s via %s: %v", u, proxyAddr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// addSeeds adds each of seeds to f's corpus as a T, the type of the fuzz
// target's one argument.
func addSeeds[T string | []byte](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add(T(s))
	}
}
