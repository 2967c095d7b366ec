package proxy

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

var targetCases = []struct {
	in   string
	host string
	port uint16
	err  error
}{
	{"api.example.com:443", "api.example.com", 443, nil},
	{"API.Example.COM.:8443", "API.Example.COM.", 8443, nil},
	{"127.0.0.1:22", "127.0.0.1", 22, nil},
	{"[2001:db8::1]:443", "2001:db8::1", 443, nil},
	{"[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443, nil},
	{"bücher.example:443", "bücher.example", 443, nil}, // the matcher does IDNA
	{"a.example:00443", "a.example", 443, nil},
	{"a.example:65535", "a.example", 65535, nil},
	{"", "", 0, errBadTarget},
	{"a.example", "", 0, errMissingPort},
	{"a.example:", "", 0, errMissingPort},
	{"[2001:db8::1]", "", 0, errMissingPort},
	{"a.example:0", "", 0, errBadPort},
	{"a.example:65536", "", 0, errBadPort},
	{"a.example:123456", "", 0, errBadPort},
	{"a.example:+443", "", 0, errBadPort},
	{"a.example:44 3", "", 0, errBadPort},
	{"2001:db8::1:443", "", 0, errBadTarget},
	{"[2001:db8::1:443", "", 0, errBadTarget},
	{"[2001:db8::1]x:443", "", 0, errBadTarget},
	{"[a.example]:443", "", 0, errBadTarget},
	{":443", "", 0, errBadTarget},
	{"user@a.example:443", "", 0, errBadTarget},
	{"/path:443", "", 0, errBadTarget},
	{"a example:443", "", 0, errBadTarget},
	{"a.example\x00:443", "", 0, errBadTarget},
}

func TestParseTarget(t *testing.T) {
	for _, tc := range targetCases {
		t.Run(tc.in, func(t *testing.T) {
			host, port, err := parseTarget(tc.in)
			if host != tc.host || port != tc.port || !errors.Is(err, tc.err) {
				t.Errorf("parseTarget(%q) = %q, %d, %v; want %q, %d, %v", tc.in, host, port, err, tc.host, tc.port, tc.err)
			}
		})
	}
}

func TestParseTargetAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { parseTarget("api.example.com:443") }); n != 0 {
		t.Errorf("parseTarget allocates %v times, want 0", n)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, tc := range targetCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		host, port, err := parseTarget(in)
		if err != nil {
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("parseTarget(%q) = %q, %d without error", in, host, port)
		}
		// What we accept, net.SplitHostPort reads the same way.
		h, p, serr := net.SplitHostPort(in)
		if serr != nil || h != host {
			t.Fatalf("parseTarget(%q) = %q; SplitHostPort = %q, %v", in, host, h, serr)
		}
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || uint16(n) != port {
			t.Fatalf("parseTarget(%q) port %d; SplitHostPort port %q", in, port, p)
		}
		// Format and parse again: the same answer.
		again := net.JoinHostPort(host, strconv.Itoa(int(port)))
		h2, p2, err := parseTarget(again)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("round trip %q -> %q: %q, %d, %v", in, again, h2, p2, err)
		}
	})
}

func BenchmarkParseTarget(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseTarget("api.example.com:443"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerdict is the verdict step on a small catalog: what a CONNECT
// costs between parsing and dialing.
func BenchmarkVerdict(b *testing.B) {
	m := testMatcher(b, "api.example.com", "*.cdn.example.com", "crl.example.org:80", "10.0.0.0/8:443", "git.example.org:22,443")
	s := &Server{cfg: Config{Rules: StaticRules{m}}}
	d := &Decision{Client: netip.MustParseAddrPort("127.0.0.1:50000"), Host: "edge7.cdn.example.com", Port: 443}
	b.ReportAllocs()
	for b.Loop() {
		if !s.judge(d) {
			b.Fatal("denied")
		}
	}
}

func TestVerdictAllocs(t *testing.T) {
	m := testMatcher(t, "api.example.com", "*.cdn.example.com")
	s := &Server{cfg: Config{Rules: StaticRules{m}}}
	d := &Decision{Client: netip.MustParseAddrPort("127.0.0.1:50000"), Host: "Edge7.CDN.example.com", Port: 443}
	// A fresh Decision each run, as the proxy makes one per request: the
	// sole estate is made once, not per judgment.
	if n := testing.AllocsPerRun(100, func() { e := *d; s.judge(&e) }); n != 0 {
		t.Errorf("judge allocates %v times, want 0", n)
	}
}
