package rules

import (
	"net/netip"
	"testing"
)

// exampleConfig is the worked example of docs/estates.md, shipped as files.
const exampleConfig = "../deploy/examples/enterprise/egressgate.yaml"

// TestWorkedExample pins the verdicts of the shipped enterprise example.
// The expectations follow from the seeds: the xdr-mdr group is for XDR and
// MDR licences only (intercept-x-advanced is neither), Live Response is
// off unless set (or authorize), newyork's regions are us-east-2 and
// us-west-2, its devices 10.2.99.0/24 are excluded from Live Response,
// and sydney's exact mode drops every wildcard.
func TestWorkedExample(t *testing.T) {
	rs, err := Load(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	const (
		ltUSEast2  = "live-terminal-us-east-2.prod.hydra.sophos.com"
		ltEUWest1  = "live-terminal-eu-west-1.prod.hydra.sophos.com"
		ltSyd      = "live-terminal.stn100syd.ctr.sophos.com"
		pushUSE2   = "mcs-push-server-us-east-2.prod.hydra.sophos.com"
		pushEUW1   = "mcs-push-server-eu-west-1.prod.hydra.sophos.com"
		mcsEUWest1 = "dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com"
		mcsUSEast2 = "mcs2-cloudstation-us-east-2.prod.hydra.sophos.com"
	)
	tests := []struct {
		client string
		host   string
		port   uint16
		estate string
		want   Reason
	}{
		// One Live Response host, four estates, four answers: what the
		// worked example exists to show.
		{"10.2.0.5", ltUSEast2, 443, "newyork", ReasonNone},
		{"10.2.99.7", ltUSEast2, 443, "newyork", ReasonDeviceExcluded},
		{"10.1.0.5", ltUSEast2, 443, "london", ReasonLiveResponseOff},
		{"10.3.0.5", ltUSEast2, 443, "sydney", ReasonNotLicensed},
		// Live Response: other regions, the default estate.
		{"10.2.0.5", ltEUWest1, 443, "newyork", ReasonRegionExcluded},
		{"10.2.99.7", ltEUWest1, 443, "newyork", ReasonRegionExcluded},
		{"10.2.0.5", ltSyd, 443, "newyork", ReasonRegionExcluded},
		{"10.1.0.5", ltEUWest1, 443, "london", ReasonLiveResponseOff},
		{"192.168.7.7", ltUSEast2, 443, "default", ReasonLiveResponseOff},
		{"10.200.0.1", ltUSEast2, 443, "default", ReasonLiveResponseOff},
		// The push servers are XDR/MDR but not Live Response: no
		// exclusion, only licence and region.
		{"10.2.0.5", pushUSE2, 443, "newyork", ReasonNone},
		{"10.2.99.7", pushUSE2, 443, "newyork", ReasonNone},
		{"10.2.0.5", pushEUW1, 443, "newyork", ReasonRegionExcluded},
		{"10.1.0.5", pushEUW1, 443, "london", ReasonNone},
		{"10.3.0.5", pushUSE2, 443, "sydney", ReasonNotLicensed},
		// Regions reach every named host, not only xdr-mdr.
		{"10.2.0.5", mcsEUWest1, 443, "newyork", ReasonRegionExcluded},
		{"10.2.0.5", mcsUSEast2, 443, "newyork", ReasonNone},
		{"10.1.0.5", mcsEUWest1, 443, "london", ReasonNone},
		{"10.3.0.5", mcsEUWest1, 443, "sydney", ReasonNone},
		// Wildcards: london and newyork are in wildcard mode, sydney in
		// exact mode.
		{"10.1.0.5", "anything.sophos.com", 443, "london", ReasonNone},
		{"10.2.0.5", "anything.sophos.com", 443, "newyork", ReasonNone},
		{"10.3.0.5", "anything.sophos.com", 443, "sydney", ReasonNotInCatalog},
		{"10.3.0.5", "central.sophos.com", 443, "sydney", ReasonNone},
		{"10.3.0.5", "ocsp.digicert.com", 80, "sydney", ReasonNone},
		// Remote assistance is on for newyork only.
		{"10.2.0.5", "x.apu.sophos.com", 22, "newyork", ReasonNone},
		{"10.1.0.5", "x.apu.sophos.com", 22, "london", ReasonPortNotAllowed},
		{"10.3.0.5", "x.apu.sophos.com", 22, "sydney", ReasonNotInCatalog},
		// Outside the catalog everywhere.
		{"10.2.0.5", "example.org", 443, "newyork", ReasonNotInCatalog},
	}
	for _, tt := range tests {
		t.Run(tt.client+"/"+tt.host, func(t *testing.T) {
			client := netip.MustParseAddr(tt.client)
			es := rs.EstateFor(client)
			if es.Name != tt.estate {
				t.Fatalf("EstateFor(%s) = %s, want %s", tt.client, es.Name, tt.estate)
			}
			v := es.Lookup(client, tt.host, tt.port)
			if v.Reason != tt.want || v.Allow != (tt.want == ReasonNone) {
				t.Errorf("%s: Lookup(%s, %s:%d) = %v %q, want %q", es.Name, tt.client, tt.host, tt.port, v.Allow, v.Reason, tt.want)
			}
		})
	}

	// Settings: inheritance as the example says.
	for _, tt := range []struct {
		estate, source, threat string
		lr                     bool
		mode                   string
		primary                string
		contacts               int
	}{
		{"default", SourceConfigured, ThreatNotify, false, ModeWildcard, "Enterprise SOC", 1},
		{"london", SourceConfigured, ThreatNotify, false, ModeWildcard, "Enterprise SOC", 1},
		{"newyork", SourceEnterprise, ThreatAuthorize, true, ModeWildcard, "Dana Reyes", 3},
		{"sydney", SourceEstate, ThreatNotify, false, ModeExact, "Sam Taylor", 1},
	} {
		es := rs.Estate(tt.estate)
		if es == nil {
			t.Fatalf("no estate %s", tt.estate)
		}
		p := es.Policy
		n := 1
		if p.Contacts.Secondary != nil {
			n++
		}
		if p.Contacts.Tertiary != nil {
			n++
		}
		if es.Source != tt.source || p.ThreatResponse != tt.threat || p.LiveResponse != tt.lr || p.Mode != tt.mode ||
			p.Contacts.Primary.Name != tt.primary || n != tt.contacts {
			t.Errorf("%s: source %s, threat %s, LR %t, mode %s, primary %q, %d contacts; want %s %s %t %s %q %d",
				tt.estate, es.Source, p.ThreatResponse, p.LiveResponse, p.Mode, p.Contacts.Primary.Name, n,
				tt.source, tt.threat, tt.lr, tt.mode, tt.primary, tt.contacts)
		}
	}
	// london and the default estate have one policy: one matcher.
	if rs.Estate("london").Matcher != rs.Estate("default").Matcher {
		t.Error("london and default have the same policy but not the same matcher")
	}
	if got := len(rs.Matchers()); got != 3 {
		t.Errorf("%d distinct matchers, want 3", got)
	}
	if len(rs.CheckErrors) != 0 || len(rs.Warnings) != 0 {
		t.Errorf("check errors %v, warnings %v; want none", rs.CheckErrors, rs.Warnings)
	}
	ec := rs.EstateContacts()
	if len(ec) != 4 || ec[0].Estate != "default" || ec[2].Contacts.Secondary == nil || !ec[2].Contacts.Secondary.OptOutReports {
		t.Errorf("EstateContacts() = %+v", ec)
	}
}
