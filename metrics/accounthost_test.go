package metrics

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMissesPageAccountHosts: /misses flags a denied host of an account
// host's shape, in JSON and HTML, with the line to add; other hosts carry
// no hint.
func TestMissesPageAccountHosts(t *testing.T) {
	rs, r, reg := newListTest(t)
	decideConnects(r, rs, "mcs.stn200fra.ctr.sophos.com", "www.sophos.com.example")
	srv := newAdmin(t, r, reg, nil)

	_, body := get(t, srv.URL+"/misses?format=json")
	var p MissesPage
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Misses {
		switch m.Host {
		case "mcs.stn200fra.ctr.sophos.com":
			if m.AccountHost == nil || m.AccountHost.Add != "mcs.stn200fra.ctr.sophos.com:443" || m.AccountHost.Role != "management (MCS)" {
				t.Errorf("%s: account_host = %+v", m.Host, m.AccountHost)
			}
		default:
			if m.AccountHost != nil {
				t.Errorf("%s: account_host = %+v, want none", m.Host, m.AccountHost)
			}
		}
	}
	_, _, html := getAccept(t, srv.URL+"/misses", "text/html")
	if !strings.Contains(html, "probably this account&#39;s own host: confirm it, then add it") ||
		!strings.Contains(html, "<code>mcs.stn200fra.ctr.sophos.com:443</code>") {
		t.Errorf("/misses HTML lacks the hint:\n%s", html)
	}
	_, _, text := getAccept(t, srv.URL+"/misses", "*/*")
	if !strings.Contains(text, "mcs.stn200fra.ctr.sophos.com: probably this account's own host: confirm it, then add it (management (MCS)): add mcs.stn200fra.ctr.sophos.com:443") {
		t.Errorf("/misses text lacks the hint:\n%s", text)
	}
}
