package metrics

import (
	"bytes"
	"context"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// TestDocsReportExample replays the traffic behind the `egressgate report`
// example of docs/metrics.md on the embedded catalog, fetches the report
// from the admin handler as the command does, and checks it prints what
// the example shows; a line "..." stands for any number of lines.
func TestDocsReportExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```\n\\$ egressgate report --from http://127.0.0.1:9128 --top 5\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/metrics.md has no `$ egressgate report --from http://127.0.0.1:9128 --top 5` example")
	}
	srv := docsTraffic(t)
	rep, err := FetchAdmin(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out, 5); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimRight(strings.ReplaceAll(out.String(), srv.URL, "http://127.0.0.1:9128"), "\n"), "\n")
	want := strings.Split(strings.TrimRight(string(m[1]), "\n"), "\n")
	if !matchLines(got, want) {
		t.Errorf("docs/metrics.md's report example shows\n%s\nbut the report is\n%s", m[1], strings.Join(got, "\n"))
	}
}

// TestDocsRulesExample checks the plain-text /rules example of
// docs/metrics.md against /rules after the same traffic (the install time
// aside, which is the test's).
func TestDocsRulesExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```text\n(egressgate 0\\.1\\.0, matcher .*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/metrics.md has no plain-text /rules example")
	}
	srv := docsTraffic(t)
	_, _, body := getAccept(t, srv.URL+"/rules", "*/*")
	body = regexp.MustCompile(`matcher v\d+ installed [0-9-]+ [0-9:]+ UTC`).ReplaceAllString(body, "matcher v1 installed 2025-06-02 09:00:00 UTC")
	got := strings.Split(strings.TrimRight(body, "\n"), "\n")
	want := strings.Split(strings.TrimRight(string(m[1]), "\n"), "\n")
	if !matchLines(got, want) {
		t.Errorf("docs/metrics.md's /rules example shows\n%s\nbut /rules is\n%s", m[1], strings.Join(got, "\n"))
	}
}

// docsTraffic records, on the embedded catalog, the traffic the examples
// of docs/metrics.md show, and serves the admin handler.
func docsTraffic(t *testing.T) *httptest.Server {
	t.Helper()
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, reg, _ := newTest(t, rs, Options{Version: "0.1.0"})
	at := func(hhmm string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", "2025-06-02 "+hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		host     string
		port     uint16
		listener proxy.Listener
		client   string
		n        int
		failed   int // of the n, how many fail upstream
		when     string
	}{
		{"central.sophos.com", 443, proxy.ListenerConnect, "10.0.3.40:33120", 1210, 2, "09:30"},
		{"d1.sophosupd.com", 443, proxy.ListenerConnect, "10.0.3.40:33120", 77, 0, "09:30"},
		{"ocsp.digicert.com", 80, proxy.ListenerHTTP, "10.0.3.40:33120", 12, 0, "09:30"},
		{"cloud-assets.sophos.com", 443, proxy.ListenerConnect, "10.0.3.40:33120", 4, 4, "09:25"},
		{"telemetry.example.com", 443, proxy.ListenerConnect, "10.0.3.40:33120", 4, 0, "09:30"},
		{"central.sophos.com", 80, proxy.ListenerHTTP, "10.0.3.41:33121", 1, 0, "09:30"},
		{"evil.example\x1b[2J", 443, proxy.ListenerSNI, "10.0.3.42:33122", 1, 0, "09:30"},
	} {
		d := decide(rs, tc.listener, tc.host, tc.port)
		d.Client = netip.MustParseAddrPort(tc.client)
		d.Time = at(tc.when)
		for i := range tc.n {
			r.Decided(d)
			if d.Action == proxy.ActionAllow {
				dialErr := proxy.DialOK
				if i < tc.failed {
					dialErr = proxy.DialDNS
				}
				r.Dialed(d, time.Millisecond, time.Millisecond, dialErr)
			}
		}
	}
	return newAdmin(t, r, reg, nil)
}

// matchLines reports whether got shows want's lines in order, where a
// want line "..." matches any run of lines (possibly empty).
func matchLines(got, want []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if strings.TrimSpace(want[0]) == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(got[i:], want[1:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && strings.TrimRight(got[0], " ") == strings.TrimRight(want[0], " ") && matchLines(got[1:], want[1:])
}
