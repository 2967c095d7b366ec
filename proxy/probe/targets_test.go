package probe

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

func TestTargets(t *testing.T) {
	c1, err := rules.ParseList("t.list", "t", []byte("b.example.org:443\n*.example.org\ntf-*-x.example.net\n192.0.2.0/24\na.example.org:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A second catalog lists b.example.org again, on another port.
	c2, err := rules.ParseList("u.list", "u", []byte("b.example.org:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c1, c2})
	if err != nil {
		t.Fatal(err)
	}
	targets, skipped := Targets(rs.Matcher)
	var got []string
	for _, tg := range targets {
		ports := make([]string, len(tg.Ports))
		for i, p := range tg.Ports {
			ports[i] = itoa(p)
		}
		got = append(got, tg.Name+" "+strings.Join(ports, ","))
	}
	if want := []string{"a.example.org 80", "b.example.org 80,443"}; !slices.Equal(got, want) {
		t.Errorf("targets = %q, want %q", got, want)
	}
	var skip []string
	for _, s := range skipped {
		skip = append(skip, s.Rule)
	}
	if want := []string{"*.example.org", "tf-*-x.example.net", "192.0.2.0/24"}; !slices.Equal(skip, want) {
		t.Errorf("skipped = %q, want %q", skip, want)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// TestTargetsEstates probes the union of what the worked example's
// estates admit: a Live Response host that only newyork admits is probed
// once; one in a region no estate uses is skipped with its reason.
func TestTargetsEstates(t *testing.T) {
	rs, err := rules.Load("../../deploy/examples/enterprise/egressgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	targets, skipped := Targets(rs.Matchers()...)
	probed := map[string]bool{}
	for _, tg := range targets {
		if probed[tg.Name] {
			t.Errorf("%s probed twice", tg.Name)
		}
		probed[tg.Name] = true
	}
	why := map[string]string{}
	for _, s := range skipped {
		if _, dup := why[s.Rule]; dup {
			t.Errorf("%s skipped twice", s.Rule)
		}
		why[s.Rule] = s.Reason
	}
	for _, tc := range []struct{ name, skip string }{
		{"central.sophos.com", ""},
		{"live-terminal-us-east-2.prod.hydra.sophos.com", ""}, // newyork only
		{"live-terminal-eu-west-1.prod.hydra.sophos.com", "refused by every policy: live-response-off, region-excluded, not-licensed"},
		{"*.sophos.com", "wildcard: no single name to try"},
	} {
		if tc.skip == "" && !probed[tc.name] {
			t.Errorf("%s not probed (skipped: %q)", tc.name, why[tc.name])
		}
		if tc.skip != "" && (probed[tc.name] || why[tc.name] != tc.skip) {
			t.Errorf("%s: probed %v, skipped %q; want skipped %q", tc.name, probed[tc.name], why[tc.name], tc.skip)
		}
	}
}
