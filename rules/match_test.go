package rules

import "testing"

// testMatcher compiles a plain-list catalog from testdata.
func testMatcher(t testing.TB, file string) *Matcher {
	t.Helper()
	data := mustRead(t, file)
	c, err := ParseList(file, "test", data)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Select(&Config{}, []*Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	return rs.Matcher
}

// lookupCase is one row of a Lookup table: the entry the verdict must
// name ("" for none) and its reason (ReasonNone: allowed).
type lookupCase struct {
	host   string
	port   uint16
	rule   string
	reason Reason
}

func checkLookups(t *testing.T, m *Matcher, tests []lookupCase) {
	t.Helper()
	for _, tt := range tests {
		v := m.Lookup(tt.host, tt.port)
		var rule string
		if v.Entry != nil {
			rule = v.Entry.Pattern
		}
		if rule != tt.rule || v.Reason != tt.reason || v.Allow != (tt.reason == ReasonNone) {
			t.Errorf("Lookup(%q, %d) = %q %v allow=%v, want %q %v", tt.host, tt.port, rule, v.Reason, v.Allow, tt.rule, tt.reason)
		}
	}
}

func TestLookup(t *testing.T) {
	m := testMatcher(t, "testdata/match.txt")
	tests := []lookupCase{
		{"a.example.com", 443, "a.example.com", ReasonNone},
		{"A.Example.COM.", 443, "a.example.com", ReasonNone},
		{"x.example.com", 443, "*.example.com", ReasonNone},
		{"y.x.example.com", 443, "*.example.com", ReasonNone},
		{"example.com", 443, "", ReasonNotInCatalog}, // the apex is not in *.example.com
		{"notexample.com", 443, "", ReasonNotInCatalog},
		{"a.deep.example.com", 8443, "*.deep.example.com", ReasonNone},
		{"a.deep.example.com", 443, "*.deep.example.com", ReasonNone}, // longest suffix first
		{"deep.example.com", 443, "*.example.com", ReasonNone},
		{"a.example.com", 80, "a.example.com", ReasonPortNotAllowed},
		{"a.deep.example.com", 80, "*.deep.example.com", ReasonPortNotAllowed},
		{"tf-1-bucket.s3.example.net", 443, "tf-*-bucket.s3.example.net", ReasonNone},
		{"tf--bucket.s3.example.net", 443, "tf-*-bucket.s3.example.net", ReasonNone},
		{"tf-a.b-bucket.s3.example.net", 443, "", ReasonNotInCatalog}, // '*' never crosses a dot
		{"x.tf-1-bucket.s3.example.net", 443, "", ReasonNotInCatalog},
		{"s3.example.net", 443, "", ReasonNotInCatalog},
		{"xay.zb.glob.example.org", 22, "*.example.org", ReasonNone},            // the glob names the host, not the port
		{"xay.zb.glob.example.org", 443, "x*y.z*.glob.example.org", ReasonNone}, // glob beats wildcard
		{"XaY.Zb.glob.Example.org", 443, "x*y.z*.glob.example.org", ReasonNone},
		{"tf-1-bucket.s3.example.net", 22, "tf-*-bucket.s3.example.net", ReasonPortNotAllowed},
		{"ssh.example.org", 22, "ssh.example.org", ReasonNone},
		{"ssh.example.org", 443, "ssh.example.org", ReasonPortNotAllowed},
		{"q.example.org", 22, "*.example.org", ReasonNone},
		{"b.example.org", 22, "*.example.org", ReasonNone}, // exact names the host, not the port: wildcard admits
		{"b.example.org", 443, "b.example.org", ReasonNone},
		{"10.2.3.4", 443, "10.0.0.0/8", ReasonNone},
		{"10.1.3.4", 8443, "10.1.0.0/16", ReasonNone},
		{"10.1.3.4", 443, "10.0.0.0/8", ReasonNone},
		{"10.1.3.4", 22, "10.1.0.0/16", ReasonPortNotAllowed},
		{"[2001:db8::5]", 443, "2001:db8::/32", ReasonNone},
		{"::ffff:10.0.0.1", 443, "10.0.0.0/8", ReasonNone},
		{"11.0.0.1", 443, "", ReasonNotInCatalog},
		{"ex..ample.com", 443, "", ReasonInvalidHost},
		{"", 443, "", ReasonInvalidHost},
	}
	checkLookups(t, m, tests)
}

func TestLookupDefaultCatalog(t *testing.T) {
	rs, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	m := rs.Matcher
	tests := []lookupCase{
		{"central.sophos.com", 443, "central.sophos.com", ReasonNone},
		{"sophos.com", 443, "sophos.com", ReasonNone},
		{"foo.sophos.com", 443, "*.sophos.com", ReasonNone},
		{"us.analysis.sophos.com", 443, "us.analysis.sophos.com", ReasonNone},
		{"xx.analysis.sophos.com", 443, "*.analysis.sophos.com", ReasonNone},
		{"az416426.vo.msecnd.net", 443, "az416426.vo.msecnd.net", ReasonNone},
		{"ocsp.digicert.com", 80, "ocsp.digicert.com", ReasonNone},
		{"crl.globalsign.net", 443, "crl.globalsign.net", ReasonNone},
		{"central.sophos.com", 80, "central.sophos.com", ReasonPortNotAllowed},
		{"amazonaws.com", 443, "amazonaws.com", ReasonNone},
		{"s3.amazonaws.com", 443, "", ReasonNotInCatalog},
		// AD Sync and remote assistance are off by default.
		{"tf-presigned-url-eu-west-1-prod-abc-bucket.s3.eu-west-1.amazonaws.com", 443, "", ReasonNotInCatalog},
		{"x.apu.sophos.com", 22, "*.sophos.com", ReasonPortNotAllowed},
		{"example.org", 443, "", ReasonNotInCatalog},
	}
	// The catalog page asks for the Live Response hosts wherever a
	// licence includes XDR or MDR; with no config every licence is
	// held, so all nine are admitted, each by its own entry.
	for _, h := range []string{
		"live-terminal-eu-west-1.prod.hydra.sophos.com", "live-terminal-eu-central-1.prod.hydra.sophos.com",
		"live-terminal-us-west-2.prod.hydra.sophos.com", "live-terminal-us-east-2.prod.hydra.sophos.com",
		"live-terminal.stn100yul.ctr.sophos.com", "live-terminal.stn100syd.ctr.sophos.com",
		"live-terminal.stn100hnd.ctr.sophos.com", "live-terminal.stn100gru.ctr.sophos.com",
		"live-terminal.stn100bom.ctr.sophos.com",
	} {
		tests = append(tests, lookupCase{h, 443, h, ReasonNone})
	}
	checkLookups(t, m, tests)
}

// TestDefaultAdmitsThePage: with no config, every entry of the embedded
// catalog whose groups are on by default is admitted, by name, on each of
// its ports, and refused by none of the policy's reasons: a zero-config
// egressgate admits the page as published.
func TestDefaultAdmitsThePage(t *testing.T) {
	rs, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Embedded(DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	onByDefault := func(e *Entry) bool {
		for _, g := range e.Groups {
			if !g.Optional && (g.Section == nil || !g.Section.Optional) {
				return true
			}
		}
		return false
	}
	admitted, liveResponse := 0, 0
	for _, e := range c.Entries {
		if !onByDefault(e) {
			continue
		}
		host := e.Pattern
		switch e.Kind {
		case KindWildcard:
			host = "a" + e.Pattern[1:]
		case KindGlob, KindCIDR:
			t.Fatalf("%s: a %s entry in a default section; derive a host for it here", e.Pattern, e.Kind)
		}
		for _, port := range e.Ports {
			v := rs.Matcher.Lookup(host, port)
			if !v.Allow || v.Entry == nil || v.Entry.Pattern != e.Pattern {
				got := ""
				if v.Entry != nil {
					got = v.Entry.Pattern
				}
				t.Errorf("Lookup(%s, %d) = %t %q by %q; want admitted by its own entry", host, port, v.Allow, v.Reason, got)
			}
		}
		admitted++
		if e.LiveResponse {
			liveResponse++
		}
	}
	for _, e := range rs.Matcher.Entries() {
		if e.Deny != ReasonNone {
			t.Errorf("%s: refused (%s) by the built-in default policy", e.Pattern, e.Deny)
		}
	}
	if n := len(rs.Matcher.Entries()); liveResponse != 9 || admitted != n {
		t.Errorf("%d entries on by default, %d of them Live Response hosts; want the matcher's %d, 9 of them Live Response hosts", admitted, liveResponse, n)
	}
}

// TestLookupAllocs pins the zero-allocation paths of Lookup.
func TestLookupAllocs(t *testing.T) {
	m := testMatcher(t, "testdata/match.txt")
	for _, host := range []string{"a.example.com", "A.EXAMPLE.COM", "y.x.example.com", "tf-1-bucket.s3.example.net", "miss.example.net", "10.2.3.4", "bad..name"} {
		if n := testing.AllocsPerRun(100, func() { m.Lookup(host, 443) }); n != 0 {
			t.Errorf("Lookup(%q): %v allocs, want 0", host, n)
		}
	}
}
