package proxy

import (
	"net/netip"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

// loadExample loads the shipped enterprise example: four estates on the
// subnets 10.1/16 (london), 10.2/16 (newyork, 10.2.99/24 excluded from
// Live Response) and 10.3/16 (sydney).
func loadExample(t testing.TB) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load("../deploy/examples/enterprise/egressgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestAdmit(t *testing.T) {
	rs := loadExample(t)
	literals := &rules.Estate{Name: rules.DefaultEstate,
		Matcher: testMatcher(t, "10.0.0.0/8:443", "93.184.0.0/16:443", "[2001:db8::/32]:443")}
	const lr = "live-terminal-us-east-2.prod.hydra.sophos.com"
	addr := netip.MustParseAddr
	served := Gate{Clients: DefaultClients()}
	tests := []struct {
		name       string
		gate       Gate
		q          Query
		action     Action
		reason     rules.Reason
		estate     string // "" when refused before an estate
		wantsEntry bool
	}{
		{"client outside the ACL", served, Query{Client: addr("203.0.113.7"), Ruleset: rs, Host: "central.sophos.com", Port: 443},
			ActionDeny, rules.ReasonClientNotAllowed, "", false},
		{"no client ACL asks only the destination", Gate{}, Query{Client: addr("203.0.113.7"), Ruleset: rs, Host: "central.sophos.com", Port: 443},
			ActionAllow, rules.ReasonNone, "default", true},
		{"estate by address", served, Query{Client: addr("10.2.0.5"), Ruleset: rs, Host: lr, Port: 443},
			ActionAllow, rules.ReasonNone, "newyork", true},
		{"excluded device", served, Query{Client: addr("10.2.99.7"), Ruleset: rs, Host: lr, Port: 443},
			ActionDeny, rules.ReasonDeviceExcluded, "newyork", true},
		{"monitor keeps the estate's policy", Gate{Clients: DefaultClients(), Monitor: true}, Query{Client: addr("10.2.99.7"), Ruleset: rs, Host: lr, Port: 443},
			ActionDeny, rules.ReasonDeviceExcluded, "newyork", true},
		{"not licensed", served, Query{Client: addr("10.3.0.5"), Ruleset: rs, Host: lr, Port: 443},
			ActionDeny, rules.ReasonNotLicensed, "sydney", true},
		{"estate given wins over the address", served, Query{Client: addr("10.3.0.5"), Estate: rs.Estate("newyork"), Ruleset: rs, Host: lr, Port: 443},
			ActionAllow, rules.ReasonNone, "newyork", true},
		{"not in catalog", served, Query{Client: addr("10.1.0.5"), Ruleset: rs, Host: "example.org", Port: 443},
			ActionDeny, rules.ReasonNotInCatalog, "london", false},
		{"monitor admits not-in-catalog", Gate{Clients: DefaultClients(), Monitor: true}, Query{Client: addr("10.1.0.5"), Ruleset: rs, Host: "example.org", Port: 443},
			ActionWouldDeny, rules.ReasonNotInCatalog, "london", false},
		{"invalid host", Gate{Clients: DefaultClients(), Monitor: true}, Query{Client: addr("10.1.0.5"), Ruleset: rs, Host: "a..b", Port: 443},
			ActionDeny, rules.ReasonInvalidHost, "london", false},
		{"private literal", served, Query{Client: addr("127.0.0.1"), Estate: literals, Host: "10.1.2.3", Port: 443},
			ActionDeny, rules.ReasonPrivateDestination, "default", true},
		{"private literal allowed by AllowDest", Gate{Clients: DefaultClients(), AllowDest: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
			Query{Client: addr("127.0.0.1"), Estate: literals, Host: "10.1.2.3", Port: 443},
			ActionAllow, rules.ReasonNone, "default", true},
		{"mapped private literal", served, Query{Client: addr("127.0.0.1"), Estate: literals, Host: "[::ffff:10.1.2.3]", Port: 443},
			ActionDeny, rules.ReasonPrivateDestination, "default", true},
		{"documentation IPv6 literal", served, Query{Client: addr("::1"), Estate: literals, Host: "[2001:db8::1]", Port: 443},
			ActionDeny, rules.ReasonPrivateDestination, "default", true},
		{"public literal", served, Query{Client: addr("127.0.0.1"), Estate: literals, Host: "93.184.216.34", Port: 443},
			ActionAllow, rules.ReasonNone, "default", true},
		{"private literal's port comes first", served, Query{Client: addr("127.0.0.1"), Estate: literals, Host: "10.1.2.3", Port: 22},
			ActionDeny, rules.ReasonPortNotAllowed, "default", true},
		{"monitor does not admit a private literal", Gate{Clients: DefaultClients(), Monitor: true}, Query{Client: addr("127.0.0.1"), Estate: literals, Host: "192.168.1.1", Port: 443},
			ActionDeny, rules.ReasonPrivateDestination, "default", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Admit(tt.gate, tt.q)
			if a.Action != tt.action || a.Reason != tt.reason {
				t.Errorf("Admit = %s %s, want %s %s", a.Action, a.Reason, tt.action, tt.reason)
			}
			estate := ""
			if a.Estate != nil {
				estate = a.Estate.Name
			}
			if estate != tt.estate {
				t.Errorf("estate = %q, want %q", estate, tt.estate)
			}
			if (a.Verdict.Entry != nil) != tt.wantsEntry {
				t.Errorf("verdict entry = %v, want one: %v", a.Verdict.Entry, tt.wantsEntry)
			}
		})
	}
}

// TestAdmitAllocs pins the admission decision at zero allocations on
// every path: it runs for every request the proxy serves.
func TestAdmitAllocs(t *testing.T) {
	rs := loadExample(t)
	literals := &rules.Estate{Name: rules.DefaultEstate, Matcher: testMatcher(t, "10.0.0.0/8:443")}
	g := Gate{Clients: DefaultClients()}
	addr := netip.MustParseAddr
	queries := map[string]Query{
		"allow":           {Client: addr("10.2.0.5"), Ruleset: rs, Host: "central.sophos.com", Port: 443},
		"allow mixed":     {Client: addr("10.2.0.5"), Ruleset: rs, Host: "Central.Sophos.COM.", Port: 443},
		"device excluded": {Client: addr("10.2.99.7"), Ruleset: rs, Host: "live-terminal-us-east-2.prod.hydra.sophos.com", Port: 443},
		"not in catalog":  {Client: addr("10.1.0.5"), Ruleset: rs, Host: "example.org", Port: 443},
		"client refused":  {Client: addr("203.0.113.7"), Ruleset: rs, Host: "central.sophos.com", Port: 443},
		"private literal": {Client: addr("::1"), Estate: literals, Host: "10.1.2.3", Port: 443},
	}
	for name, q := range queries {
		if n := testing.AllocsPerRun(100, func() { Admit(g, q) }); n != 0 {
			t.Errorf("%s: Admit allocates %v times, want 0", name, n)
		}
	}
}

func BenchmarkAdmit(b *testing.B) {
	rs := loadExample(b)
	g := Gate{Clients: DefaultClients()}
	q := Query{Client: netip.MustParseAddr("10.2.0.5"), Ruleset: rs, Host: "central.sophos.com", Port: 443}
	b.ReportAllocs()
	for b.Loop() {
		if Admit(g, q).Action != ActionAllow {
			b.Fatal("denied")
		}
	}
}
