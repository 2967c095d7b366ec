package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/egressgate/egressgate/rules"
)

// balancerAddr is the loopback address the tests' load balancer connects
// from; balancerNet is what they list in ProxyProtocolFrom.
const balancerAddr = "127.0.50.1"

var balancerNet = []netip.Prefix{netip.MustParsePrefix("127.0.50.0/24")}

// proxyHeader formats a PROXY header of version 1 or 2 naming client as
// the source of a connection to 127.0.0.1:3128.
func proxyHeader(t testing.TB, version byte, client string) []byte {
	t.Helper()
	ap := netip.MustParseAddrPort(client)
	dst := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3128}
	if ap.Addr().Is6() {
		dst = &net.TCPAddr{IP: net.IPv6loopback, Port: 3128}
	}
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(ap), dst)
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyProtocolEstates runs the worked example of docs/estates.md
// behind a load balancer: v1 and v2 headers carry client addresses in
// each estate's subnet, and the proxy and SNI listeners judge each
// connection as its carried client's, ACL and Live Response exclusions
// included, and record that address.
func TestProxyProtocolEstates(t *testing.T) {
	rl, err := rules.NewReloader("../deploy/examples/enterprise/egressgate.yaml", nil, rules.ReloadHooks{})
	if err != nil {
		t.Fatal(err)
	}
	const lt = "live-terminal-us-east-2.prod.hydra.sophos.com"
	rec := &recorder{}
	// The balancer itself is outside --clients: only the carried
	// addresses are judged by the ACL, wherever it is checked.
	clients := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7")}
	proxyAddr, srv := startProxy(t, Config{Rules: rl, Recorder: rec, Hosts: hostsFor(lt), Clients: clients,
		AllowDest: loopbackDest, ProxyProtocolFrom: balancerNet})
	sniAddr := startSNI(t, srv)

	tests := []struct {
		name    string
		version byte
		client  string
		estate  string
		reason  rules.Reason
	}{
		{"v1-newyork", 1, "10.2.0.5:50001", "newyork", rules.ReasonNone},
		{"v2-newyork", 2, "10.2.0.5:50002", "newyork", rules.ReasonNone},
		{"v1-newyork-excluded-device", 1, "10.2.99.7:50003", "newyork", rules.ReasonDeviceExcluded},
		{"v2-newyork-excluded-device", 2, "10.2.99.7:50004", "newyork", rules.ReasonDeviceExcluded},
		{"v1-london", 1, "10.1.0.5:50005", "london", rules.ReasonLiveResponseOff},
		{"v2-sydney", 2, "10.3.0.5:50006", "sydney", rules.ReasonNotLicensed},
		{"v2-default", 2, "192.168.7.7:50007", "default", rules.ReasonLiveResponseOff},
		{"v1-ipv6-default", 1, "[fd00::7]:50008", "default", rules.ReasonLiveResponseOff},
		// The client ACL judges the carried address, not the balancer's.
		{"v2-client-not-allowed", 2, "192.0.2.7:50009", "", rules.ReasonClientNotAllowed},
	}
	for _, tt := range tests {
		t.Run("connect-"+tt.name, func(t *testing.T) {
			c := dialFrom(t, balancerAddr, proxyAddr)
			resp := connectAnswer(t, c, proxyHeader(t, tt.version, tt.client), lt+":443", "")
			want := http.StatusBadGateway // admitted: nothing listens on the upstream's port 443
			if tt.reason != rules.ReasonNone {
				want = http.StatusForbidden
			}
			if resp.StatusCode == http.StatusOK {
				resp.StatusCode = http.StatusBadGateway // something does, on a machine where 443 is bound
			}
			if resp.StatusCode != want || tt.reason != rules.ReasonNone && resp.Header.Get(reasonHeader) != tt.reason.String() {
				t.Errorf("answer %d %s, want %d %s", resp.StatusCode, resp.Header.Get(reasonHeader), want, tt.reason)
			}
			checkCarried(t, rec, tt.client, tt.estate, tt.reason)
		})
		t.Run("sni-"+tt.name, func(t *testing.T) {
			c := dialFrom(t, balancerAddr, sniAddr)
			c.Write(proxyHeader(t, tt.version, tt.client))
			tls.Client(c, &tls.Config{ServerName: lt, InsecureSkipVerify: true}).Handshake()
			checkCarried(t, rec, tt.client, tt.estate, tt.reason)
		})
	}
}

// checkCarried checks the last decision: made for the carried client, in
// its estate, for reason.
func checkCarried(t *testing.T, rec *recorder, client, estate string, reason rules.Reason) {
	t.Helper()
	d := rec.lastDecision(t)
	if want := netip.MustParseAddrPort(client); d.Client != want {
		t.Errorf("recorded client %s, want the carried %s", d.Client, want)
	}
	if d.Reason != reason {
		t.Errorf("recorded reason %q, want %q", d.Reason, reason)
	}
	if estate != "" && (d.Estate == nil || d.Estate.Name != estate) {
		t.Errorf("recorded estate %v, want %s", d.Estate, estate)
	}
}

// TestProxyProtocolRefused: a listed source must send a header, and a
// direct client's header is a bad request; neither reaches a verdict.
func TestProxyProtocolRefused(t *testing.T) {
	rec := &recorder{}
	proxyAddr, srv := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "example.org:443")},
		Recorder: rec, ProxyProtocolFrom: balancerNet, HeaderTimeout: time.Second})
	sniAddr := startSNI(t, srv)
	tests := []struct {
		name, src string
		opening   []byte
		body      string // in the 400's body
	}{
		{"listed-without-header", balancerAddr, nil, "no PROXY protocol header"},
		{"listed-bad-v1", balancerAddr, []byte("PROXY TCP4 10.0.0.300 127.0.0.1 1 3128\r\n"), "PROXY protocol header"},
		{"listed-v1-not-tcp", balancerAddr, []byte("PROXY UDP4 10.0.0.3 127.0.0.1 1 3128\r\n"), `v1 protocol "UDP4"`},
		{"listed-v1-lf-only", balancerAddr, []byte("PROXY TCP4 10.0.0.3 127.0.0.1 1 3128\n"), "CRLF"},
		{"direct-v1", "127.0.0.1", proxyHeader(t, 1, "10.1.0.5:1"), ""},
		{"direct-v2", "127.0.0.1", proxyHeader(t, 2, "10.1.0.5:1"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, tt.src, proxyAddr)
			resp := connectAnswer(t, c, tt.opening, "example.org:443", "")
			body, _ := io.ReadAll(io.LimitReader(c, 4096))
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tt.body) {
				t.Errorf("answer %d %s %q, want 400 naming %q", resp.StatusCode, resp.Header.Get(reasonHeader), body, tt.body)
			}
			if tt.body != "" && resp.Header.Get(reasonHeader) != rules.ReasonBadRequest.String() {
				t.Errorf("reason %q, want %s", resp.Header.Get(reasonHeader), rules.ReasonBadRequest)
			}
		})
	}
	// On the SNI listener, a listed source's ClientHello without a header
	// is closed unanswered, before any verdict; so is a silent balancer,
	// once HeaderTimeout has passed.
	for _, name := range []string{"sni-listed-without-header", "sni-listed-silent"} {
		t.Run(name, func(t *testing.T) {
			c := dialFrom(t, balancerAddr, sniAddr)
			var err error
			if name == "sni-listed-silent" {
				_, err = c.Read(make([]byte, 1))
			} else {
				err = tls.Client(c, &tls.Config{ServerName: "example.org"}).Handshake()
			}
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("got %v, want the connection closed", err)
			}
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.decisions) != 0 {
		t.Errorf("%d decisions recorded, want none: %+v", len(rec.decisions), rec.decisions)
	}
}

// TestFrameProxyHeader: a header is framed to its last byte and no
// further, whatever the client sent after it.
func TestFrameProxyHeader(t *testing.T) {
	after := "CONNECT example.org:443 HTTP/1.1\r\n\r\n"
	v2 := string(proxyHeader(t, 2, "10.2.0.5:4000"))
	v2tlv := v2[:14] + "\x00\x11" + v2[16:] + "\x04\x00\x02ab" // a NOOP TLV
	tests := []struct {
		name, in, header string
		client           string // "" with no error: LOCAL or UNKNOWN
		err              string
	}{
		{"v1-tcp4", "PROXY TCP4 10.2.0.5 127.0.0.1 4000 3128\r\n" + after, "PROXY TCP4 10.2.0.5 127.0.0.1 4000 3128\r\n", "10.2.0.5:4000", ""},
		{"v1-tcp4-short", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + after, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "1.2.3.4:1", ""},
		{"v1-tcp6", "PROXY TCP6 fd00::1 ::1 4000 3128\r\n" + after, "PROXY TCP6 fd00::1 ::1 4000 3128\r\n", "[fd00::1]:4000", ""},
		{"v1-unknown", "PROXY UNKNOWN\r\n" + after, "PROXY UNKNOWN\r\n", "", ""},
		{"v1-unknown-tail", "PROXY UNKNOWN anything at all\r\n" + after, "PROXY UNKNOWN anything at all\r\n", "", ""},
		{"v2-tcp4", v2 + after, v2, "10.2.0.5:4000", ""},
		{"v2-tlv", v2tlv + after, v2tlv, "10.2.0.5:4000", ""},
		{"v2-local", string(proxyproto.SIGV2) + "\x20\x00\x00\x00" + after, string(proxyproto.SIGV2) + "\x20\x00\x00\x00", "", ""},
		{"none", after, "", "", "no PROXY protocol header"},
		{"none-short", "GET", "", "", "no PROXY protocol header"},
		{"closed", "", "", "", "EOF"},
		{"cut-v1", "PROXY TCP4 10.2.0", "", "", "unexpected EOF"},
		{"cut-v2", v2[:20], "", "", "unexpected EOF"},
		{"v1-too-long", "PROXY UNKNOWN " + strings.Repeat("x", 200), "", "", "longer than 107 bytes"},
		{"v1-bad-proto", "PROXY TCP5 10.2.0.5 127.0.0.1 4000 3128\r\n", "", "", `v1 protocol "TCP5"`},
		{"v1-bad-address", "PROXY TCP4 10.2.0.500 127.0.0.1 4000 3128\r\n", "", "", "PROXY protocol header"},
		{"v1-spaces", "PROXY           \r\n", "", "", `v1 protocol ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := strings.NewReader(tt.in)
			raw, err := frameProxyHeader(r)
			var client netip.AddrPort
			if err == nil {
				client, err = parseProxyHeader(raw)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tt.header {
				t.Errorf("framed %q, want %q", raw, tt.header)
			}
			if rest, _ := io.ReadAll(r); string(rest) != after {
				t.Errorf("left %q unread, want %q", rest, after)
			}
			if got := client.String(); tt.client == "" && client.IsValid() || tt.client != "" && got != tt.client {
				t.Errorf("client %s, want %q", got, tt.client)
			}
		})
	}
}

// oneByteReader returns one byte per Read, as a slow network may.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

// FuzzFrameProxyHeader: framing never panics, never reads past the
// header, and agrees with go-proxyproto reading the whole input at once:
// whatever header the library reads, framing finds the same bytes and
// the same client.
func FuzzFrameProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 10.2.0.5 127.0.0.1 4000 3128\r\nGET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("PROXY TCP6 fd00::1 ::1 4000 3128\r\n\x16\x03\x01"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"))
	f.Add(append(proxyHeader(f, 2, "10.2.0.5:4000"), "tail"...))
	f.Add(append(proxyHeader(f, 2, "[fd00::5]:4000"), "tail"...))
	f.Add(append([]byte(nil), proxyproto.SIGV2...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		raw, err := frameProxyHeader(oneByteReader{r})
		if err == nil && (!bytes.HasPrefix(data, raw) || r.Len() != len(data)-len(raw)) {
			t.Fatalf("framed %q of %q, leaving %d bytes: not the prefix it read", raw, data, r.Len())
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		h, lerr := proxyproto.Read(br)
		if lerr != nil || len(data) > 4096 {
			return
		}
		used := len(data) - br.Buffered()
		if err != nil {
			t.Fatalf("go-proxyproto read a %d-byte header from %q; framing failed: %v", used, data, err)
		}
		if len(raw) != used {
			t.Fatalf("framed %d bytes of %q, go-proxyproto read %d", len(raw), data, used)
		}
		client, perr := parseProxyHeader(raw)
		if src, _, ok := h.TCPAddrs(); ok && !h.Command.IsLocal() && (perr != nil || client.Addr() != src.AddrPort().Addr().Unmap()) {
			t.Fatalf("client %s, %v; go-proxyproto says %s", client, perr, src)
		}
	})
}
