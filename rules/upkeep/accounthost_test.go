package upkeep

import (
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

func TestLooksLikeAccountHost(t *testing.T) {
	tests := []struct {
		host string
		role string // "" for no
	}{
		{"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com", "management (MCS)"},
		{"dzr-mcs-amzn-ap-southeast-2-0b1c.upe.p.hmr.sophos.com", "management (MCS)"},
		{"dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com", "API"},
		{"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com", "management (MCS)"},
		{"mcs-cloudstation-ap-south-1.prod.hydra.sophos.com", "management (MCS)"},
		{"api-cloudstation-us-east-2.prod.hydra.sophos.com", "API"},
		{"mcs.stn100yul.ctr.sophos.com", "management (MCS)"},
		{"mcs2.stn200fra.ctr.sophos.com", "management (MCS)"},
		{"api.stn100yul.ctr.sophos.com", "API"},
		{"api-eu01.central.sophos.com", "API"},
		{"live-terminal-ap-south-1.prod.hydra.sophos.com", "regional station"},
		{"mcs-push-server.stn200fra.ctr.sophos.com", "regional station"},
		{"rca-upload.stn200fra.ctr.sophos.com", "regional station"},
		// near misses
		{"central.sophos.com", ""},
		{"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com.evil.example", ""},
		{"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.net", ""},
		{"dzr-mcs-amzn-eu-west-1-zz.upe.p.hmr.sophos.com", ""},
		{"mcs-cloudstation-eu-west-1.prod.hydra.sophos.com.example.org", ""},
		{"xmcs.stn100yul.ctr.sophos.com", ""},
		{"api.stn100yul.ctr.sophos.com.", ""}, // canonical names have no trailing dot
		{"api-cloudstation-moon-base-1.prod.hydra.sophos.com", ""},
		{"api.example.org", ""},
		{"", ""},
		{strings.Repeat("a", 300) + ".api.stn100yul.ctr.sophos.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := LooksLikeAccountHost(tt.host)
			if ok != (tt.role != "") || got.Role != tt.role {
				t.Errorf("LooksLikeAccountHost(%q) = %+v, %v; want role %q", tt.host, got, ok, tt.role)
			}
		})
	}
}

// TestAccountHostExamplesOfCatalog: every installer-log example and MCS
// host the embedded catalog lists has one of the shapes; no host of the
// fixed, non-regional lists has.
func TestAccountHostExamplesOfCatalog(t *testing.T) {
	c, err := rules.Embedded(rules.DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Entries {
		if e.Kind != rules.KindExact {
			continue
		}
		_, ok := LooksLikeAccountHost(e.Pattern)
		ids := strings.Join(e.GroupIDs(), ",")
		perAccount := strings.Contains(ids, "installer-hosts") || strings.Contains(ids, "mcs") ||
			e.Region != "" && strings.HasSuffix(e.Pattern, ".sophos.com")
		if ok != perAccount {
			t.Errorf("LooksLikeAccountHost(%q) = %v; its groups %s, region %q", e.Pattern, ok, ids, e.Region)
		}
	}
}

func FuzzLooksLikeAccountHost(f *testing.F) {
	for _, s := range []string{"mcs.stn100yul.ctr.sophos.com", "dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com", "api-eu01.central.sophos.com", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		h, ok := LooksLikeAccountHost(host)
		if !ok {
			return
		}
		if !strings.HasSuffix(host, ".sophos.com") || h.Role == "" || h.Shape == "" {
			t.Fatalf("LooksLikeAccountHost(%q) = %+v", host, h)
		}
		if c, err := rules.CanonicalHost(host); err != nil || c != host {
			t.Fatalf("%q matched a shape but is not canonical: %q, %v", host, c, err)
		}
	})
}

func BenchmarkLooksLikeAccountHost(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		LooksLikeAccountHost("api.stn200fra.ctr.sophos.com")
		LooksLikeAccountHost("www.example.org.somewhere.example")
	}
}
