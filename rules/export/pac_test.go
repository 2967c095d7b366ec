package export

import (
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dop251/goja"

	"github.com/egressgate/egressgate/rules"
)

// pacHelpers are the standard PAC functions the generated file may call,
// written here from their definitions (the Netscape PAC specification as
// browsers implement it): a JavaScript engine has none of them built in.
const pacHelpers = `
function dnsDomainIs(host, domain) {
  return host.length >= domain.length &&
    host.substring(host.length - domain.length) == domain;
}
function shExpMatch(str, shexp) {
  var re = shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp("^" + re + "$").test(str);
}
`

// pacRuntime loads a PAC file into a JavaScript engine with the standard
// helpers. isInNet is Go: a literal address against a dotted mask, and
// false for a name (the browser would resolve it; the file must never ask).
func pacRuntime(t *testing.T, script []byte) func(rawURL, host string) string {
	t.Helper()
	vm := goja.New()
	if _, err := vm.RunString(pacHelpers); err != nil {
		t.Fatal(err)
	}
	var resolved []string
	vm.Set("isInNet", func(host, pattern, mask string) bool {
		a, err := netip.ParseAddr(host)
		if err != nil {
			resolved = append(resolved, host)
			return false
		}
		p, _ := netip.ParseAddr(pattern)
		m, _ := netip.ParseAddr(mask)
		if !a.Is4() || !p.Is4() || !m.Is4() {
			return false
		}
		ab, pb, mb := a.As4(), p.As4(), m.As4()
		for i := range ab {
			if ab[i]&mb[i] != pb[i]&mb[i] {
				return false
			}
		}
		return true
	})
	if _, err := vm.RunScript("proxy.pac", string(script)); err != nil {
		t.Fatalf("PAC does not load: %v\n%s", err, script)
	}
	find, ok := goja.AssertFunction(vm.Get("FindProxyForURL"))
	if !ok {
		t.Fatal("PAC has no FindProxyForURL")
	}
	t.Cleanup(func() {
		if len(resolved) > 0 {
			t.Errorf("PAC called isInNet on names %q: a browser would resolve them", resolved)
		}
	})
	return func(rawURL, host string) string {
		v, err := find(goja.Undefined(), vm.ToValue(rawURL), vm.ToValue(host))
		if err != nil {
			t.Fatalf("FindProxyForURL(%q, %q): %v", rawURL, host, err)
		}
		return v.String()
	}
}

// urlTarget returns the host a browser passes to FindProxyForURL (no
// brackets) and the port the proxy would be asked for.
func urlTarget(t *testing.T, raw string) (string, uint16) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	port := map[string]uint16{"http": 80, "ws": 80, "https": 443, "wss": 443, "ftp": 21}[u.Scheme]
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		port = uint16(n)
	}
	return u.Hostname(), port
}

// loadPAC generates m's PAC file for proxyAddr and fallback and loads it
// as pacRuntime does.
func loadPAC(t *testing.T, m *rules.Matcher, proxyAddr string, fallback PACFallback) func(rawURL, host string) string {
	t.Helper()
	script, err := PAC(m, proxyAddr, fallback)
	if err != nil {
		t.Fatal(err)
	}
	return pacRuntime(t, script)
}

const testProxy = "PROXY 192.0.2.10:3128"

func TestPACMatchesMatcher(t *testing.T) {
	m := testMatcher(t, "../testdata/match.txt")
	find := loadPAC(t, m, "192.0.2.10:3128", PACDirect)
	tests := []struct {
		url   string
		proxy bool
		// limit: PAC cannot say what the matcher does (IPv6 CIDR); the
		// row pins the fallback instead of the matcher's verdict.
		limit bool
	}{
		{url: "https://a.example.com/", proxy: true},
		{url: "https://A.Example.COM./x", proxy: true},
		{url: "https://x.example.com/", proxy: true},
		{url: "https://y.x.example.com/", proxy: true},
		{url: "https://example.com/"},              // the apex is not in *.example.com
		{url: "https://notexample.com/"},           // suffix without the dot
		{url: "https://example.com.evil.example/"}, // prefix, not suffix
		{url: "http://a.example.com/"},             // port 80 is not among the entry's
		{url: "https://a.example.com:8443/"},
		{url: "https://a.deep.example.com:8443/", proxy: true},
		{url: "https://a.deep.example.com/", proxy: true},
		{url: "http://a.deep.example.com/"},
		{url: "https://tf-1-bucket.s3.example.net/", proxy: true},
		{url: "https://tf--bucket.s3.example.net/", proxy: true},
		{url: "https://tf-a.b-bucket.s3.example.net/"}, // '*' never crosses a dot
		{url: "https://x.tf-1-bucket.s3.example.net/"},
		{url: "https://tf-1-bucket.s3.example.net.example/"},
		{url: "https://s3.example.net/"},
		{url: "https://tf-1-bucketx.s3.example.net/"},
		{url: "https://xay.zb.glob.example.org/", proxy: true},
		{url: "https://xy.z.glob.example.org/", proxy: true},
		{url: "https://xay.q.zb.glob.example.org/"},
		{url: "https://ay.zb.glob.example.org/"},
		{url: "https://xay.zb.glob.example.org:22/", proxy: true}, // *.example.org:22
		{url: "https://ssh.example.org:22/", proxy: true},
		{url: "https://ssh.example.org/"},
		{url: "https://b.example.org/", proxy: true},
		{url: "http://b.example.org/"},
		{url: "https://user:pw@b.example.org/", proxy: true},
		{url: "https://b.example.org/a:80", proxy: true}, // a colon in the path is not a port
		{url: "wss://b.example.org/socket", proxy: true},
		{url: "ws://b.example.org/socket"},
		{url: "https://10.2.3.4/", proxy: true},
		{url: "https://10.1.3.4:8443/", proxy: true},
		{url: "https://10.1.3.4:22/"},
		{url: "https://11.0.0.1/"},
		{url: "https://[2001:db8::5]/", limit: true},
		{url: "https://[2001:db9::5]/"},
	}
	for _, tt := range tests {
		host, port := urlTarget(t, tt.url)
		if v := m.Lookup(host, port); v.Allow != tt.proxy && !tt.limit {
			t.Errorf("Lookup(%q, %d) = %v, want %v: the table is wrong", host, port, v.Allow, tt.proxy)
		}
		want := "DIRECT"
		if tt.proxy {
			want = testProxy
		}
		if got := find(tt.url, host); got != want {
			t.Errorf("FindProxyForURL(%q, %q) = %q, want %q", tt.url, host, got, want)
		}
	}

	// A URL whose port is unknown goes by the name alone: the proxy
	// judges the port.
	for _, tt := range []struct{ url, host, want string }{
		{"gopher://ssh.example.org/", "ssh.example.org", testProxy},
		{"gopher://nothing.example.net/", "nothing.example.net", "DIRECT"},
	} {
		if got := find(tt.url, tt.host); got != tt.want {
			t.Errorf("FindProxyForURL(%q, %q) = %q, want %q", tt.url, tt.host, got, tt.want)
		}
	}
}

func TestPACFallbackProxy(t *testing.T) {
	m := testMatcher(t, "../testdata/match.txt")
	find := loadPAC(t, m, "[2001:db8::1]:3128", PACProxy)
	for _, u := range []string{"https://a.example.com/", "https://example.com/", "http://nothing.example.net/"} {
		host, _ := urlTarget(t, u)
		if got, want := find(u, host), "PROXY [2001:db8::1]:3128"; got != want {
			t.Errorf("FindProxyForURL(%q) = %q, want %q", u, got, want)
		}
	}
}

// TestPACEveryEntry derives hosts from every entry of the embedded
// catalog with every section on (a concrete name, a name under a
// wildcard, a name for each glob, and their near misses) and compares
// the PAC's answer with the matcher's on each entry's ports and a port
// it lacks.
func TestPACEveryEntry(t *testing.T) {
	var catalogs []*rules.Catalog
	var enable []string
	for _, name := range rules.EmbeddedNames() {
		c, err := rules.Embedded(name)
		if err != nil {
			t.Fatal(err)
		}
		catalogs = append(catalogs, c)
		for _, s := range c.Sections {
			if s.Optional {
				enable = append(enable, s.ID)
			}
		}
		for _, g := range c.Groups {
			if g.Optional {
				enable = append(enable, g.ID)
			}
		}
	}
	rs, err := rules.Select(&rules.Config{Policy: rules.Policy{Enable: enable}}, catalogs)
	if err != nil {
		t.Fatal(err)
	}
	m := rs.Matcher
	find := loadPAC(t, m, "proxy.example.net:3128", PACDirect)
	star := regexp.MustCompile(`\*`)
	var kinds [rules.KindCIDR + 1]int
	checked := 0
	for _, e := range m.Entries() {
		kinds[e.Kind]++
		var hosts []string
		switch e.Kind {
		case rules.KindExact:
			hosts = []string{e.Pattern, "x" + e.Pattern, "x." + e.Pattern}
		case rules.KindWildcard:
			apex := e.Pattern[2:]
			hosts = []string{"a." + apex, "a.b." + apex, apex, "x" + apex}
		case rules.KindGlob:
			hosts = []string{star.ReplaceAllString(e.Pattern, "q1"), star.ReplaceAllString(e.Pattern, ""),
				star.ReplaceAllString(e.Pattern, "a.b"), "x." + star.ReplaceAllString(e.Pattern, "q")}
		case rules.KindCIDR:
			hosts = []string{e.Prefix.Addr().String()}
		}
		ports := append([]uint16{1}, e.Ports...)
		for _, h := range hosts {
			for _, p := range ports {
				u := "https://" + h + ":" + strconv.Itoa(int(p)) + "/"
				if strings.Contains(h, ":") {
					u = "https://[" + h + "]:" + strconv.Itoa(int(p)) + "/"
				}
				want := "DIRECT"
				if m.Lookup(h, p).Allow {
					want = "PROXY proxy.example.net:3128"
				}
				if got := find(u, h); got != want {
					t.Errorf("entry %q: FindProxyForURL(%q, %q) = %q, want %q (the matcher's)", e.Pattern, u, h, got, want)
				}
				checked++
			}
		}
	}
	if kinds[rules.KindWildcard] == 0 || kinds[rules.KindGlob] == 0 || kinds[rules.KindExact] == 0 {
		t.Fatalf("catalog lacks a kind the test must cover: %v", kinds)
	}
	t.Logf("%d URLs over %d entries agree", checked, len(m.Entries()))
}

func TestPACProxyAddress(t *testing.T) {
	m := testMatcher(t, "../testdata/match.txt")
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"proxy.example.net:3128", true},
		{"192.0.2.1:3128", true},
		{"[2001:db8::1]:8080", true},
		{"proxy.example.net", false},
		{"proxy.example.net:0", false},
		{"proxy.example.net:99999", false},
		{"a;DIRECT:3128", false},
		{"a\";alert(1)//:80", false},
		{"2001:db8::1:80", false},
		{"[fe80::1%eth0]:80", false},
		{"bücher.example:80", false},
		{"Gate.Example.org:80", true},
		{"gate.example.org.:80", false},
		{"010.1.1.1:80", false},
	} {
		_, err := PAC(m, tt.addr, PACDirect)
		if (err == nil) != tt.ok {
			t.Errorf("PAC(%q) error = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestParsePACFallback(t *testing.T) {
	for in, want := range map[string]PACFallback{"direct": PACDirect, "DIRECT": PACDirect, "proxy": PACProxy} {
		if got, err := ParsePACFallback(in); err != nil || got != want {
			t.Errorf("ParsePACFallback(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParsePACFallback("socks"); err == nil {
		t.Error("ParsePACFallback(socks) = nil error")
	}
}

// BenchmarkPAC generates the file for the default catalog: the cost of
// the first fetch after a reload (later fetches are served from a cache).
func BenchmarkPAC(b *testing.B) {
	rs, err := rules.Load("")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		script, err := PAC(rs.Matcher, "proxy.example.net:3128", PACDirect)
		if err != nil {
			b.Fatal(err)
		}
		n = len(script)
	}
	b.ReportMetric(float64(n), "bytes/file")
}

// TestPACDocExample pins the excerpt docs/endpoints.md shows: every line
// of its js block is in the file generated from the page's own example
// catalog.
func TestPACDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/endpoints.md")
	if err != nil {
		t.Fatal(err)
	}
	list := regexp.MustCompile("(?s)```text\n(# pac-example.txt\n.*?)```").FindSubmatch(doc)
	excerpt := regexp.MustCompile("(?s)```js\n(.*?)```").FindSubmatch(doc)
	if list == nil || excerpt == nil {
		t.Fatal("docs/endpoints.md lacks the pac-example.txt catalog or the js excerpt")
	}
	c, err := rules.ParseList("pac-example.txt", "local", list[1])
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	script, err := PAC(rs.Matcher, "gate.example.org:3128", PACDirect)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(excerpt[1]), "\n") {
		if line != "" && !strings.Contains(string(script), line+"\n") {
			t.Errorf("docs/endpoints.md shows %q, which the generated file lacks:\n%s", line, script)
		}
	}
}

// FuzzPAC: for any catalog the parser accepts, with some of its entries
// refused as an estate's policy refuses them, the PAC file is valid
// JavaScript, loads, and sends each exact name to the proxy exactly when
// the matcher admits it.
func FuzzPAC(f *testing.F) {
	for _, s := range []string{
		"a.example.com\n*.example.org:22\n10.0.0.0/8:443\n[2001:db8::1]:443\n",
		"tf-*-bucket.s3.example.net # comment\n",
		"x\\u2028.example.com\n",
		"entries:\n  - pattern: \"a.example.com\"\n  - pattern: \"*.example.com\"\n",
		"entries: [{pattern: 'b.example.com', notes: [\"*/ \\u2028 </script>\"]}]\n",
		"entries: [{pattern: 'xn--bcher-kva.example', ports: [443, 8443]}]\n",
		"a.example.com:443\n*.example.com:1\n",
		"groups: [{id: g}]\nentries:\n  - {pattern: 'lr.example.com', groups: [g], live_response: true}\n  - {pattern: '*.example.com', groups: [g], ports: [1]}\n",
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(0x55))
	}
	f.Fuzz(func(t *testing.T, text string, refuse uint8) {
		c, err := rules.Parse("fuzz.txt", []byte(text))
		if err != nil {
			return
		}
		// Refuse the entries selected by the bits of refuse, with the
		// reasons an estate's policy gives.
		reasons := []rules.Reason{rules.ReasonNotLicensed, rules.ReasonLiveResponseOff, rules.ReasonRegionExcluded}
		for i, e := range c.Entries {
			if refuse&(1<<(i%8)) != 0 {
				e.Deny = reasons[i%len(reasons)]
			}
		}
		m, err := rules.Compile(c.Entries)
		if err != nil {
			t.Fatalf("parsed catalog does not compile: %v", err)
		}
		script, err := PAC(m, "192.0.2.10:3128", PACDirect)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := goja.Compile("proxy.pac", string(script), true); err != nil {
			t.Fatalf("PAC is not valid JavaScript: %v\n%s", err, script)
		}
		find := pacRuntime(t, script)
		// Each call walks every row in goja: keep a fuzzed catalog of
		// thousands of names from stalling the fuzzer.
		checks := 0
		for _, e := range m.Entries() {
			if e.Kind != rules.KindExact || checks > 200 {
				continue
			}
			checks++
			// Its own ports, and one it lacks: a refused name is not
			// sent to the proxy on any port, as the matcher refuses it
			// on every port.
			for _, p := range append([]uint16{1}, e.Ports...) {
				want := "DIRECT"
				if m.Lookup(e.Pattern, p).Allow {
					want = testProxy
				}
				u := "https://" + e.Pattern + ":" + strconv.Itoa(int(p)) + "/"
				if got := find(u, e.Pattern); got != want {
					t.Errorf("FindProxyForURL(%q) = %q, want %q (the matcher's)", u, got, want)
				}
			}
		}
	})
}

// TestPACHTTPSDirective: a proxy address with the https:// prefix names
// the HTTPS proxy listener, and the file says HTTPS rather than PROXY.
func TestPACHTTPSDirective(t *testing.T) {
	m := testMatcher(t, "../testdata/match.txt")
	for _, fb := range []PACFallback{PACDirect, PACProxy} {
		b, err := PAC(m, PACHTTPSPrefix+"gate.example.org:3129", fb)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `var PROXY = "HTTPS gate.example.org:3129";`) || strings.Contains(string(b), "PROXY gate") {
			t.Errorf("fallback %v: file does not name the HTTPS listener:\n%.400s", fb, b)
		}
	}
	if err := CheckPACProxy("https://gate.example.org:3129;DIRECT"); err == nil {
		t.Error("CheckPACProxy accepted a ';' after the https:// prefix")
	}
}
