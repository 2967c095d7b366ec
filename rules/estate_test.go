package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Hosts of the embedded catalog that the estate tests judge, and the
// devices they judge them for: exdev is in the Live Response exclusions
// the tests set, dev is not.
const (
	lt    = "live-terminal-us-east-2.prod.hydra.sophos.com"
	ltEU  = "live-terminal-eu-west-1.prod.hydra.sophos.com"
	push  = "mcs-push-server-us-east-2.prod.hydra.sophos.com"
	dev   = "10.0.0.1"
	exdev = "10.9.0.7"
)

// TestPolicyMatrix walks licence × threat response × Live Response × OS ×
// mode × regions × exclusions over the embedded catalog. Each expectation
// is worked out by hand from the seeds:
//   - Domains and ports: the xdr-mdr group (live-terminal-*, mcs-push-
//     server-*) is for the XDR and MDR licences only; every other
//     intercept-x group is for all eight; ssp.sophos.com is not listed
//     for Linux; exact mode is for firewalls without wildcards.
//   - Domains and ports: the Live Response hosts are to be allowed
//     wherever a licence includes XDR or MDR, so an unset Live Response is
//     on with such a licence (or with no licence filter) and off
//     otherwise; "off" is the operator's choice. Excluded devices are kept
//     away from Live Response only.
//   - The catalog carries each named host's region.
func TestPolicyMatrix(t *testing.T) {
	const (
		ssp    = "ssp.sophos.com"
		wild   = "foo.sophos.com"
		apu    = "x.apu.sophos.com:22"
		exNet  = "10.9.0.0/16"
		xdr    = "intercept-x-advanced-xdr"
		ixa    = "intercept-x-advanced"
		ixaSrv = "intercept-x-advanced-server"
		mdrE   = "mdr-essentials"
		mdrCS  = "mdr-complete-server"
	)
	type check struct {
		client, target string
		want           Reason
	}
	tests := []struct {
		name   string
		policy Policy
		checks []check
	}{
		{"built-in defaults: every licence, LR on", Policy{}, []check{
			{dev, lt, ReasonNone}, {dev, ltEU, ReasonNone}, {dev, push, ReasonNone}, {dev, ssp, ReasonNone}, {dev, wild, ReasonNone}, {dev, apu, ReasonPortNotAllowed}}},
		{"no XDR/MDR licence", Policy{Licenses: []string{ixa}, LiveResponse: "on"}, []check{
			{dev, lt, ReasonNotLicensed}, {dev, push, ReasonNotLicensed}, {dev, ssp, ReasonNone}, {dev, wild, ReasonNone}}},
		{"server licence without XDR", Policy{Licenses: []string{ixaSrv}, ThreatResponse: ThreatAuthorize}, []check{
			{dev, lt, ReasonNotLicensed}, {dev, push, ReasonNotLicensed}, {dev, "central.sophos.com", ReasonNone}}},
		{"XDR, notify, LR unset means on", Policy{Licenses: []string{xdr}, ThreatResponse: ThreatNotify}, []check{
			{dev, lt, ReasonNone}, {dev, push, ReasonNone}}},
		{"XDR, collaborate, LR unset means on", Policy{Licenses: []string{xdr}, ThreatResponse: ThreatCollaborate}, []check{
			{dev, lt, ReasonNone}, {dev, push, ReasonNone}}},
		{"XDR, notify, LR off by the operator", Policy{Licenses: []string{xdr}, LiveResponse: "off"}, []check{
			{dev, lt, ReasonLiveResponseOff}, {dev, push, ReasonNone}}},
		{"no XDR/MDR licence, LR unset means off", Policy{Licenses: []string{ixa, ixaSrv}}, []check{
			{dev, lt, ReasonNotLicensed}, {dev, ssp, ReasonNone}}},
		{"XDR, collaborate, LR on", Policy{Licenses: []string{xdr}, ThreatResponse: ThreatCollaborate, LiveResponse: "on"}, []check{
			{dev, lt, ReasonNone}, {dev, ltEU, ReasonNone}}},
		{"MDR, authorize, LR unset means on", Policy{Licenses: []string{mdrE}, ThreatResponse: ThreatAuthorize}, []check{
			{dev, lt, ReasonNone}, {dev, push, ReasonNone}}},
		{"MDR, authorize, LR off", Policy{Licenses: []string{mdrE}, ThreatResponse: ThreatAuthorize, LiveResponse: "off"}, []check{
			{dev, lt, ReasonLiveResponseOff}, {dev, push, ReasonNone}}},
		{"MDR server, LR on, one device excluded", Policy{Licenses: []string{mdrCS}, LiveResponse: "on", LiveResponseExclusions: []string{exdev}}, []check{
			{dev, lt, ReasonNone}, {exdev, lt, ReasonDeviceExcluded}, {exdev, push, ReasonNone}, {exdev, "central.sophos.com", ReasonNone}}},
		{"LR on, a subnet excluded", Policy{LiveResponse: "on", LiveResponseExclusions: []string{exNet}}, []check{
			{"10.9.200.1", lt, ReasonDeviceExcluded}, {"10.8.0.1", lt, ReasonNone}}},
		{"exclusions with LR off change nothing", Policy{LiveResponse: "off", LiveResponseExclusions: []string{exNet}}, []check{
			{exdev, lt, ReasonLiveResponseOff}, {exdev, push, ReasonNone}}},
		{"regions: us-east-2 only", Policy{LiveResponse: "on", Regions: []string{"us-east-2"}}, []check{
			{dev, lt, ReasonNone}, {dev, ltEU, ReasonRegionExcluded}, {dev, "mcs-push-server-eu-west-1.prod.hydra.sophos.com", ReasonRegionExcluded},
			{dev, "dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com", ReasonRegionExcluded}, {dev, "central.sophos.com", ReasonNone}, {dev, wild, ReasonNone}}},
		{"regions: a station", Policy{LiveResponse: "on", Regions: []string{"stn100syd"}}, []check{
			{dev, "live-terminal.stn100syd.ctr.sophos.com", ReasonNone}, {dev, lt, ReasonRegionExcluded}}},
		{"licence beats region and LR", Policy{Licenses: []string{ixa}, Regions: []string{"eu-west-1"}}, []check{
			{dev, lt, ReasonNotLicensed}}},
		{"LR off beats region", Policy{Licenses: []string{xdr}, LiveResponse: "off", Regions: []string{"eu-west-1"}}, []check{
			{dev, lt, ReasonLiveResponseOff}, {dev, push, ReasonRegionExcluded}}},
		{"exact mode drops wildcards, keeps refusals", Policy{Mode: ModeExact, LiveResponse: "on", Licenses: []string{xdr}}, []check{
			{dev, wild, ReasonNotInCatalog}, {dev, lt, ReasonNone}, {dev, ssp, ReasonNone}}},
		{"exact mode, LR off: the host is still named", Policy{Mode: ModeExact, LiveResponse: "off"}, []check{
			{dev, lt, ReasonLiveResponseOff}}},
		{"linux: no ssp.sophos.com in exact mode", Policy{Mode: ModeExact, OS: []string{OSLinux}}, []check{
			{dev, ssp, ReasonNotInCatalog}, {dev, "central.sophos.com", ReasonNone}}},
		{"linux in wildcard mode: *.sophos.com still covers ssp", Policy{OS: []string{OSLinux}}, []check{
			{dev, ssp, ReasonNone}}},
		// A link-local client's address carries its interface as a zone,
		// which netip.Prefix.Contains refuses to match: it must not slip
		// past an exclusion that way.
		{"LR on, IPv6 and mapped clients excluded", Policy{LiveResponse: "on", LiveResponseExclusions: []string{"fe80::/64", "2001:db8::7", exdev}}, []check{
			{"fe80::5%eth0", lt, ReasonDeviceExcluded}, {"fe80::5", lt, ReasonDeviceExcluded}, {"2001:db8::7%1", lt, ReasonDeviceExcluded},
			{"::ffff:" + exdev, lt, ReasonDeviceExcluded}, {"fe80:0:0:1::5%eth0", lt, ReasonNone}, {"2001:db8::8", lt, ReasonNone}}},
		{"remote assistance on", Policy{Enable: []string{"remote-assistance"}}, []check{
			{dev, apu, ReasonNone}, {dev, lt, ReasonNone}}},
	}
	cat, err := Embedded("sophos-central")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Select(&Config{Policy: tt.policy}, []*Catalog{cat})
			if err != nil {
				t.Fatal(err)
			}
			es := rs.Estates[0]
			for _, c := range tt.checks {
				host, port := c.target, uint16(443)
				if h, p, ok := strings.Cut(c.target, ":"); ok {
					var n int
					fmt.Sscan(p, &n)
					host, port = h, uint16(n)
				}
				v := es.Lookup(netip.MustParseAddr(c.client), host, port)
				if v.Reason != c.want || v.Allow != (c.want == ReasonNone) {
					t.Errorf("Lookup(%s, %s) = %t %q, want %q", c.client, c.target, v.Allow, v.Reason, c.want)
				}
			}
		})
	}
}

// TestEstateTable compares the flattened subnet table with a linear
// longest-prefix scan over random nested subnets.
func TestEstateTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var ps []estatePrefix
		seen := map[netip.Prefix]bool{}
		for i := range 40 {
			var p netip.Prefix
			if i%4 == 3 {
				var b [16]byte
				b[0], b[1], b[2] = 0x20, 0x01, byte(r.IntN(4))
				p = netip.PrefixFrom(netip.AddrFrom16(b), 16+r.IntN(16)).Masked()
			} else {
				a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))})
				p = netip.PrefixFrom(a, 8+r.IntN(25)).Masked()
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			ps = append(ps, estatePrefix{p: p, estate: int32(i)})
		}
		tab, err := newEstateTable(ps)
		if err != nil {
			t.Fatal(err)
		}
		slow := func(a netip.Addr) int32 {
			best, bits := int32(-1), -1
			for _, p := range ps {
				if p.p.Contains(a) && p.p.Bits() > bits {
					best, bits = p.estate, p.p.Bits()
				}
			}
			return best
		}
		for range 2000 {
			var a netip.Addr
			if r.IntN(4) == 0 {
				var b [16]byte
				b[0], b[1], b[2], b[3] = 0x20, 0x01, byte(r.IntN(4)), byte(r.IntN(256))
				a = netip.AddrFrom16(b)
			} else {
				a = netip.AddrFrom4([4]byte{byte(9 + r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))})
			}
			if got, want := tab.lookup(a), slow(a); got != want {
				t.Fatalf("round %d: lookup(%s) = %d, want %d", round, a, got, want)
			}
		}
	}
	// An IPv6 subnet never holds an IPv4 client, even ::/0.
	only6, err := newEstateTable([]estatePrefix{{p: netip.MustParsePrefix("::/0"), estate: 7}, {p: netip.MustParsePrefix("2001:db8::/32"), estate: 8}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		want int32
	}{{"10.1.2.3", -1}, {"::ffff:10.1.2.3", -1}, {"::1", 7}, {"2001:db8::5", 8}, {"2001:db9::", 7}, {"::fffe:ffff:ffff", 7}, {"::1:0:0:0", 7}} {
		if got := only6.lookup(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("::/0 table: lookup(%s) = %d, want %d", tt.addr, got, tt.want)
		}
	}
	// Edges: the whole space, a single address, IPv4-mapped clients.
	tab, err := newEstateTable([]estatePrefix{
		{p: netip.MustParsePrefix("0.0.0.0/0"), estate: 1},
		{p: netip.MustParsePrefix("255.255.255.255/32"), estate: 2},
		{p: netip.MustParsePrefix("::/0"), estate: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		want int32
	}{{"1.2.3.4", 1}, {"255.255.255.255", 2}, {"::ffff:1.2.3.4", 1}, {"2001:db8::1", 3}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 3}, {"::", 3}} {
		if got := tab.lookup(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("lookup(%s) = %d, want %d", tt.addr, got, tt.want)
		}
	}
}

// TestEstateConfigErrors: every error names the file and line.
func TestEstateConfigErrors(t *testing.T) {
	tests := []struct {
		name, config, estateFile, want string
	}{
		{"bad source", "estates:\n  - name: a\n    source: elsewhere\n", "", `egressgate.yaml:3: estates: a: source: "elsewhere" is not`},
		{"policy on configured", "estates:\n  - name: a\n    policy:\n      mode: exact\n", "", `egressgate.yaml:3: estates: a: policy: only an estate with source: enterprise`},
		{"duplicate subnet", "estates:\n  - name: a\n    subnets: [10.1.0.0/16]\n  - name: b\n    subnets: [10.1.0.0/16]\n", "", `egressgate.yaml:5: subnets: 10.1.0.0/16 is already a subnet of another estate (egressgate.yaml:3)`},
		{"host bits", "estates:\n  - name: a\n    subnets: [10.1.0.1/16]\n", "", `egressgate.yaml:3: estates: a: subnets: "10.1.0.1/16" has host bits set; write 10.1.0.0/16`},
		{"bad name", "estates:\n  - name: New York\n", "", `egressgate.yaml:2: estates: name "New York"`},
		{"default is taken", "estates:\n  - name: default\n", "", `egressgate.yaml:2: estates: name "default"`},
		{"duplicate name", "estates:\n  - name: a\n  - name: a\n", "", `egressgate.yaml:3: estates: name "a" is already used at line 2`},
		{"unknown licence", "estates:\n  - name: a\n    source: enterprise\n    policy:\n      licenses: [gold]\n", "", `egressgate.yaml:5: policy.licenses: "gold" is not a licence of the catalogs`},
		{"unknown region", "policy:\n  regions: [mars-1]\n", "", `egressgate.yaml:2: policy.regions: "mars-1" is not a region the catalogs name`},
		{"bad threat response", "policy:\n  threat_response: panic\n", "", `egressgate.yaml:2: policy.threat_response: "panic" is not "notify", "collaborate" or "authorize"`},
		{"bad live response", "policy:\n  live_response: maybe\n", "", `egressgate.yaml:2: policy.live_response: "maybe" is not "on" or "off"`},
		{"bad exclusion", "policy:\n  live_response_exclusions: [printer]\n", "", `egressgate.yaml:2: policy.live_response_exclusions: "printer" is not an address or CIDR`},
		{"contacts without primary", "policy:\n  contacts:\n    secondary: {name: B, email: b@example.org}\n", "", `egressgate.yaml:2: policy.contacts: no primary contact`},
		{"bad email", "policy:\n  contacts:\n    primary:\n      name: A\n      email: not-an-address\n", "", `egressgate.yaml:5: policy.contacts.primary.email: "not-an-address" is not an email address`},
		{"bad phone", "policy:\n  contacts:\n    primary:\n      name: A\n      email: a@example.org\n      phone: call me\n", "", `egressgate.yaml:6: policy.contacts.primary.phone: "call me": 'c' is not allowed`},
		{"tertiary without secondary", "policy:\n  contacts:\n    primary: {name: A, email: a@example.org}\n    tertiary: {name: C, email: c@example.org}\n", "", `egressgate.yaml:4: policy.contacts.tertiary: set without a secondary`},
		{"missing estate file", "estates:\n  - name: sydney\n    source: estate\n", "", `egressgate.yaml:3: estates: sydney: estates.d/sydney.yaml: estate file missing`},
		{"missing estate file, flat", "estates_dir: .\nestates:\n  - name: sydney\n    source: estate\n", "", `egressgate.yaml:4: estates: sydney: sydney.yaml: estate file missing`},
		{"act if unreachable with notify", "policy:\n  threat_response: notify\n  act_if_unreachable: true\n", "", `egressgate.yaml:3: policy.act_if_unreachable: only the "collaborate" threat response acts`},
		{"estate file unknown key", "estates:\n  - name: sydney\n    source: estate\n", "mode: exact\nlicence: [x]\n", `estates.d/sydney.yaml:2: unknown field "licence" in policy`},
		{"estate file bad mode", "estates:\n  - name: sydney\n    source: estate\n", "licenses: [mdr-complete]\nmode: exacting\n", `estates.d/sydney.yaml:2: mode: "exacting" is not "wildcard" or "exact"`},
		{"estate exact with ad-sync", "estates:\n  - name: a\n    source: enterprise\n    policy:\n      mode: exact\n      enable: [ad-sync]\n", "", `egressgate.yaml:5: estate a: policy.mode: exact mode cannot be used with section "ad-sync"`},
		{"both enabled and disabled", "policy:\n  enable: [remote-assistance]\n  disable: [remote-assistance]\n", "", `egressgate.yaml:3: policy.disable: "remote-assistance" is both enabled and disabled`},
		{"auth without file", "auth:\n  password_file: users\n", "", `egressgate.yaml:2: auth.password_file: open`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "egressgate.yaml")
			writeFile(t, p, tt.config)
			if tt.estateFile != "" {
				writeFile(t, filepath.Join(dir, "estates.d", "sydney.yaml"), tt.estateFile)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatalf("Load succeeded, want %q", tt.want)
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if !strings.Contains(got, tt.want) {
				t.Errorf("Load error\n  %s\nwant it to contain\n  %s", got, tt.want)
			}
		})
	}
}

// TestEstatesDir: an estate's own file is read from estates_dir: the
// default estates.d, the config's own directory (a ConfigMap's flat
// layout), a subdirectory or an absolute path.
func TestEstatesDir(t *testing.T) {
	abs := t.TempDir()
	tests := []struct{ setting, file string }{
		{"", "estates.d/sydney.yaml"},
		{"estates_dir: .\n", "sydney.yaml"},
		{"estates_dir: estates\n", "estates/sydney.yaml"},
		{"estates_dir: " + abs + "\n", filepath.Join(abs, "sydney.yaml")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "egressgate.yaml")
			writeFile(t, p, tt.setting+"estates:\n  - name: sydney\n    subnets: [10.3.0.0/16]\n    source: estate\n")
			want := tt.file
			if !filepath.IsAbs(want) {
				want = filepath.Join(dir, want)
			}
			writeFile(t, want, "mode: exact\n")
			rs, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			es := rs.EstateFor(netip.MustParseAddr("10.3.0.5"))
			if es.Name != "sydney" || es.File != want || es.Policy.Mode != ModeExact {
				t.Errorf("estate %s from %q, mode %q; want sydney from %q, exact", es.Name, es.File, es.Policy.Mode, want)
			}
		})
	}
}

// TestCheckFindings: what the proxy serves but check refuses or warns.
func TestCheckFindings(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "egressgate.yaml")
	writeFile(t, p, `policy:
  threat_response: authorize
  live_response: "off"
estates:
  - name: a
    subnets: [10.1.0.0/16]
  - name: b
    source: enterprise
    policy:
      live_response: "on"
      contacts:
        primary: {name: B, email: b@example.org, phone: "020 7946 0000"}
`)
	rs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var errs, warns []string
	for _, e := range rs.CheckErrors {
		errs = append(errs, strings.ReplaceAll(e.Error(), dir+"/", ""))
	}
	for _, e := range rs.Warnings {
		warns = append(warns, strings.ReplaceAll(e.Error(), dir+"/", ""))
	}
	// Contacts change no verdict: estates without one pass, with one
	// warning for all of them.
	var wantErrs []string
	wantWarns := []string{
		`egressgate.yaml:12: policy.contacts.primary.phone: "020 7946 0000" has no country code; write it as +CC followed by the number, e.g. +44 20 7946 0000`,
		`egressgate.yaml:1: estate default: threat response "authorize" with Live Response off: the MDR team is prompted to use Live Response and cannot; set live_response: on, and exclude sensitive devices with live_response_exclusions`,
		`egressgate.yaml:5: estate a: threat response "authorize" with Live Response off: the MDR team is prompted to use Live Response and cannot; set live_response: on, and exclude sensitive devices with live_response_exclusions`,
		`egressgate.yaml:1: policy.contacts: estates default, a have no primary contact (none of their own, none from the enterprise): alert routing has no one to call, and egressgate alertmanager-config refuses until they have one; set policy.contacts.primary`,
	}
	if !reflect.DeepEqual(errs, wantErrs) {
		t.Errorf("CheckErrors =\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(wantErrs, "\n"))
	}
	if !reflect.DeepEqual(warns, wantWarns) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(warns, "\n"), strings.Join(wantWarns, "\n"))
	}
}

// copyExample copies the shipped example into a temporary directory.
func copyExample(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []string{"egressgate.yaml", "estates.d/sydney.yaml"} {
		data := mustRead(t, filepath.Join("../deploy/examples/enterprise", f))
		writeFile(t, filepath.Join(dir, f), string(data))
	}
	return dir, filepath.Join(dir, "egressgate.yaml")
}

// policies returns each estate's effective policy and matcher, by name.
func policies(rs *Ruleset) map[string]EffectivePolicy {
	out := map[string]EffectivePolicy{}
	for _, e := range rs.Estates {
		out[e.Name] = e.Policy
	}
	return out
}

// changed lists the estates whose effective policy differs.
func changed(a, b *Ruleset) []string {
	pa, pb := policies(a), policies(b)
	var out []string
	for _, e := range b.Estates {
		if !reflect.DeepEqual(pa[e.Name], pb[e.Name]) {
			out = append(out, e.Name)
		}
	}
	return out
}

// TestDefaultsReloadChangesExactlyTheirEstates: a change of an enterprise
// default reaches the estates that leave that setting unset, and no
// other. In the example, london and default use every default; newyork
// sets everything but os and mode; sydney sets licences, mode and
// contacts.
func TestDefaultsReloadChangesExactlyTheirEstates(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           []string
	}{
		{"threat response", "threat_response: notify", "threat_response: collaborate", []string{"default", "london", "sydney"}},
		{"licences", "licenses: [intercept-x-advanced-xdr]", "licenses: [mdr-essentials]", []string{"default", "london"}},
		{"regions", "mode: wildcard", "mode: wildcard\n  regions: [eu-west-1]", []string{"default", "london", "sydney"}},
		{"os", "os: [windows, macos, linux]", "os: [linux]", []string{"default", "london", "newyork", "sydney"}},
		{"live response", `live_response: "off"`, `live_response: "on"`, []string{"default", "london", "sydney"}},
		{"contacts", "name: Enterprise SOC", "name: Enterprise NOC", []string{"default", "london"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := copyExample(t)
			r, _, _ := newTestReloader(t, p)
			before := r.Current()
			data, _ := os.ReadFile(p)
			text := strings.Replace(string(data), tt.from, tt.to, 1)
			if text == string(data) {
				t.Fatalf("%q not in the example", tt.from)
			}
			writeFile(t, p, text)
			if err := r.Reload(); err != nil {
				t.Fatal(err)
			}
			after := r.Current()
			if got := changed(before, after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("changed estates %v, want %v", got, tt.want)
			}
			// Every group an entry or the estate names is one of the
			// ruleset's own catalogs' (metrics look groups up by pointer).
			groups := map[*Group]bool{}
			for _, c := range after.Catalogs {
				for _, g := range c.Groups {
					groups[g] = true
				}
			}
			for _, e := range after.Estates {
				for _, g := range e.Enabled {
					if !groups[g] {
						t.Fatalf("%s: enabled group %s is not of the ruleset's catalogs", e.Name, g.ID)
					}
				}
				for _, en := range e.Matcher.Entries() {
					for _, g := range en.Groups {
						if !groups[g] {
							t.Fatalf("%s: entry %s's group %s is not of the ruleset's catalogs", e.Name, en.Pattern, g.ID)
						}
					}
				}
			}
			// Estates whose policy did not change keep their matcher.
			for _, e := range after.Estates {
				if !strings.Contains(strings.Join(tt.want, ","), e.Name) && e.Matcher != before.Estate(e.Name).Matcher {
					t.Errorf("%s: unchanged policy got a new matcher", e.Name)
				}
			}
		})
	}
}

// TestEstateFileReload: an estate's own file is reloaded on its own; a
// broken one keeps that estate's last good settings, is reported with its
// file and line, and touches no other estate.
func TestEstateFileReload(t *testing.T) {
	dir, p := copyExample(t)
	r, h, lb := newTestReloader(t, p)
	startRun(t, r, lb, 20*time.Millisecond, 0)
	sydney := filepath.Join(dir, "estates.d", "sydney.yaml")
	first := r.Current()
	syd := netip.MustParseAddr("10.3.0.5")
	wildAllowed := func() bool { return r.Current().EstateFor(syd).Lookup(syd, "foo.sophos.com", 443).Allow }
	if wildAllowed() {
		t.Fatal("sydney starts in exact mode")
	}

	// An edit by sydney's admins: wildcard mode.
	writeAtomic(t, sydney, "licenses: [intercept-x-advanced]\nmode: wildcard\ncontacts:\n  primary: {name: Sam Taylor, email: sam.taylor@example.net}\n")
	waitFor(t, "sydney in wildcard mode", wildAllowed)
	second := r.Current()
	if got := changed(first, second); !reflect.DeepEqual(got, []string{"sydney"}) {
		t.Errorf("changed estates %v, want [sydney]", got)
	}

	// A broken edit: sydney keeps wildcard mode, the error names the line.
	// The attempt is one failure: one ERROR line, no "rules reloaded",
	// one hook call (OnSwap with the problem: the rest is stored).
	writeAtomic(t, sydney, "licenses: [intercept-x-advanced]\nmode: wildcards\n")
	withProblems := func() (n int, last *Ruleset) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, rs := range h.swaps {
			if len(rs.Problems) > 0 {
				n, last = n+1, rs
			}
		}
		return n, last
	}
	waitFor(t, "the error", func() bool { n, _ := withProblems(); return n > 0 })
	want := sydney + `:2: mode: "wildcards" is not "wildcard" or "exact"`
	if err := r.Current().Estate("sydney").Stale; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	n, last := withProblems()
	if _, errs := h.counts(); n != 1 || errs != 0 {
		t.Errorf("hooks: %d swaps with a problem, %d errors for one broken estate file; want 1 swap (with the problem), 0 errors", n, errs)
	}
	if p := last.Problems; len(p) != 1 || p[0].Error() != want {
		t.Errorf("the swapped ruleset's problems %v, want [%s]", p, want)
	}
	logged := lb.String()
	if n := strings.Count(logged, "level=ERROR"); n != 1 || strings.Count(logged, `msg="rules reloaded"`) != 1 || !strings.Contains(logged, "sydney.yaml:2") {
		t.Errorf("log of one good and one broken estate file: %d ERROR lines (want 1 naming sydney.yaml:2, and one \"rules reloaded\" for the good edit):\n%s", n, logged)
	}
	cur := r.Current()
	if !wildAllowed() || cur.Estate("sydney").Stale == nil {
		t.Error("sydney lost its last good settings")
	}
	if got := changed(second, cur); len(got) != 0 {
		t.Errorf("a broken estate file changed %v", got)
	}

	// Meanwhile the enterprise changes newyork: that still applies.
	data, _ := os.ReadFile(p)
	writeAtomic(t, p, strings.Replace(string(data), "regions: [us-east-2, us-west-2]", "regions: [us-east-2]", 1))
	ny := netip.MustParseAddr("10.2.0.5")
	waitFor(t, "newyork without us-west-2", func() bool {
		return !r.Current().EstateFor(ny).Lookup(ny, "live-terminal-us-west-2.prod.hydra.sophos.com", 443).Allow
	})
	if !wildAllowed() {
		t.Error("sydney lost its last good settings on another estate's change")
	}

	// The fix is picked up.
	writeAtomic(t, sydney, "licenses: [intercept-x-advanced]\nmode: exact\n")
	waitFor(t, "sydney fixed", func() bool { return !wildAllowed() && r.Current().Estate("sydney").Stale == nil })
	if c := r.Current().Estate("sydney").Policy.Contacts.Primary.Name; c != "Enterprise SOC" {
		t.Errorf("sydney without contacts has primary %q, want the enterprise's", c)
	}
}

// TestRefusalsBeatWildcardsOnEveryPort: a wildcard that a layered catalog
// opens on another port must not admit a host the estate's policy refuses,
// nor a Live Response host to an excluded device. The host's own entry
// names it on 443 only; on 80 it is refused for its own reason, or (when
// the policy admits it) port-not-allowed, never admitted by the wildcard.
func TestRefusalsBeatWildcardsOnEveryPort(t *testing.T) {
	const other = "foo.hydra.sophos.com"
	extra, err := Parse("extra.catalog.yaml", []byte(`catalog: extra
groups:
  - id: hydra-web
    title: "Hydra on other ports"
    ports: [80, 8443]
entries:
  - pattern: "*.hydra.sophos.com"
    groups: [hydra-web]
`))
	if err != nil {
		t.Fatal(err)
	}
	central, err := Embedded("sophos-central")
	if err != nil {
		t.Fatal(err)
	}
	type check struct {
		client, host string
		port         uint16
		want         Reason
	}
	tests := []struct {
		name   string
		policy Policy
		checks []check
	}{
		{"LR off", Policy{LiveResponse: "off"}, []check{
			{dev, lt, 443, ReasonLiveResponseOff}, {dev, lt, 80, ReasonLiveResponseOff}, {dev, lt, 8443, ReasonLiveResponseOff},
			{dev, other, 80, ReasonNone}, {dev, push, 443, ReasonNone}}},
		{"not licensed", Policy{Licenses: []string{"intercept-x-advanced"}}, []check{
			{dev, push, 80, ReasonNotLicensed}, {dev, lt, 8443, ReasonNotLicensed}, {dev, other, 8443, ReasonNone}}},
		{"region excluded", Policy{Regions: []string{"us-east-2"}, LiveResponse: "on"}, []check{
			{dev, ltEU, 80, ReasonRegionExcluded}, {dev, lt, 443, ReasonNone}}},
		{"LR on, a device excluded", Policy{LiveResponse: "on", LiveResponseExclusions: []string{exdev}}, []check{
			{exdev, lt, 443, ReasonDeviceExcluded}, {exdev, lt, 80, ReasonPortNotAllowed}, {dev, lt, 80, ReasonPortNotAllowed},
			{dev, lt, 443, ReasonNone}, {exdev, other, 80, ReasonNone}}},
		{"exact mode: no wildcard at all", Policy{Mode: ModeExact, LiveResponse: "off"}, []check{
			{dev, lt, 80, ReasonLiveResponseOff}, {dev, other, 80, ReasonNotInCatalog}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Select(&Config{Policy: tt.policy}, []*Catalog{central, extra})
			if err != nil {
				t.Fatal(err)
			}
			es := rs.Estates[0]
			for _, c := range tt.checks {
				v := es.Lookup(netip.MustParseAddr(c.client), c.host, c.port)
				if v.Reason != c.want || v.Allow != (c.want == ReasonNone) {
					t.Errorf("Lookup(%s, %s:%d) = %t %q, want %q", c.client, c.host, c.port, v.Allow, v.Reason, c.want)
				}
			}
		})
	}
}

// TestEstateFileCreatedLater: the config names a new estate with its own
// file before its admins have written it. The reload fails (the file is
// missing) and every estate keeps serving; when the file appears, the
// watcher picks it up at once, without waiting for the poll.
func TestEstateFileCreatedLater(t *testing.T) {
	dir, p := copyExample(t)
	r, h, lb := newTestReloader(t, p)
	startRun(t, r, lb, 20*time.Millisecond, 0)
	first := r.Current()

	data := mustRead(t, p)
	writeAtomic(t, p, string(data)+"\n  - name: perth\n    subnets: [10.4.0.0/16]\n    source: estate\n")
	waitFor(t, "the error for perth's missing file", func() bool { _, errs := h.counts(); return errs > 0 })
	perthFile := filepath.Join(dir, EstatesDir, "perth.yaml")
	if err := h.lastErr(); err == nil || !strings.Contains(err.Error(), perthFile) {
		t.Fatalf("error %v does not name %s", err, perthFile)
	}
	if r.Current() != first {
		t.Fatal("a missing estate file changed the ruleset")
	}

	writeAtomic(t, perthFile, "licenses: [intercept-x-advanced]\nmode: exact\n")
	waitFor(t, "perth from its new file", func() bool { return r.Current().Estate("perth") != nil })
	perth := netip.MustParseAddr("10.4.0.5")
	if es := r.Current().EstateFor(perth); es.Name != "perth" || es.Policy.Mode != ModeExact {
		t.Errorf("10.4.0.5 is in estate %s (mode %s), want perth in exact mode", es.Name, es.Policy.Mode)
	}
}

// TestCheckActIfUnreachableIgnored: act_if_unreachable acts only with the
// collaborate threat response; set where the effective threat response is
// another, check warns at the line that set it.
func TestCheckActIfUnreachableIgnored(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "egressgate.yaml")
	writeFile(t, p, `policy:
  act_if_unreachable: true
  contacts:
    primary: {name: A, email: a@example.org, phone: "+44 20 7946 0000"}
estates:
  - name: b
    source: enterprise
    subnets: [10.1.0.0/16]
    policy:
      threat_response: authorize
  - name: c
    source: enterprise
    subnets: [10.2.0.0/16]
    policy:
      threat_response: collaborate
  - name: d
    source: estate
    subnets: [10.3.0.0/16]
  - name: e
    source: enterprise
    subnets: [10.4.0.0/16]
    policy:
      threat_response: collaborate
      act_if_unreachable: false
`)
	writeFile(t, filepath.Join(dir, "estates.d", "d.yaml"), "regions: [eu-west-1]\nact_if_unreachable: true\n")
	rs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, e := range rs.Warnings {
		warns = append(warns, strings.ReplaceAll(e.Error(), dir+"/", ""))
	}
	wantWarns := []string{
		`egressgate.yaml:2: estate default: act_if_unreachable is ignored: only the "collaborate" threat response acts when the contacts cannot be reached, and its threat response is "notify"`,
		`egressgate.yaml:2: estate b: act_if_unreachable is ignored: only the "collaborate" threat response acts when the contacts cannot be reached, and its threat response is "authorize"`,
		`estates.d/d.yaml:2: estate d: act_if_unreachable is ignored: only the "collaborate" threat response acts when the contacts cannot be reached, and its threat response is "notify"`,
	}
	if !reflect.DeepEqual(warns, wantWarns) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(warns, "\n"), strings.Join(wantWarns, "\n"))
	}
	for _, es := range rs.Estates {
		want := es.Name == "c"
		if es.Policy.ActIfUnreachable != want {
			t.Errorf("estate %s: ActIfUnreachable = %v, want %v", es.Name, es.Policy.ActIfUnreachable, want)
		}
	}
}
