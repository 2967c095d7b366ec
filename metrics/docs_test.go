package metrics

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// TestDocsReportExample replays the traffic behind the `egressgate report`
// example of docs/metrics.md on the embedded catalog, fetches the report
// from the admin handler as the command does, and checks it prints what
// the example shows; a line "..." stands for any number of lines.
func TestDocsReportExample(t *testing.T) {
	want := docExample(t, "(?s)```\n\\$ egressgate report --from http://127.0.0.1:9128 --top 5\n(.*?)```",
		"`$ egressgate report --from http://127.0.0.1:9128 --top 5` example")
	srv := docsTraffic(t)
	out := reportText(t, fetchReport(t, srv), 5)
	checkExample(t, "report", want, strings.ReplaceAll(out, srv.URL, "http://127.0.0.1:9128"))
}

// TestDocsRulesExample checks the plain-text /rules example of
// docs/metrics.md against /rules after the same traffic (the install time
// aside, which is the test's).
func TestDocsRulesExample(t *testing.T) {
	want := docExample(t, "(?s)```text\n(egressgate 0\\.1\\.0, matcher .*?)```", "plain-text /rules example")
	srv := docsTraffic(t)
	_, _, body := getAccept(t, srv.URL+"/rules", "*/*")
	body = regexp.MustCompile(`matcher v\d+ installed [0-9-]+ [0-9:]+ UTC`).ReplaceAllString(body, "matcher v1 installed 2025-06-02 09:00:00 UTC")
	checkExample(t, "/rules", want, body)
}

// docExample returns what re's group holds in docs/metrics.md; it fails
// when the doc has no such example (what).
func docExample(t *testing.T, re, what string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(re).FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/metrics.md has no %s", what)
	}
	return string(m[1])
}

// checkExample fails unless got, the output of page, shows the lines of
// its example in docs/metrics.md, where a line "..." stands for any lines.
func checkExample(t *testing.T, page, example, got string) {
	t.Helper()
	gotLines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if !proxytest.MatchLines(gotLines, strings.Split(strings.TrimRight(example, "\n"), "\n")) {
		t.Errorf("docs/metrics.md's %s example shows\n%s\nbut %s is\n%s", page, example, page, strings.Join(gotLines, "\n"))
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

var (
	jsonBlockRE  = regexp.MustCompile("(?s)```json\n(.*?)```")
	jsoncBlockRE = regexp.MustCompile("(?s)```jsonc\n(.*?)```")
	jsoncComment = regexp.MustCompile(`(?m)\s+//.*$`)
)

// TestDocsJSONExamples checks the JSON examples of docs/metrics.md: each
// miss-log line is what the miss log writes for that decision (time
// aside), and the /rules and /misses examples decode into RulesPage and
// MissesPage with no unknown field.
func TestDocsJSONExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, _, logs := newTest(t, rs, Options{})
	for _, tc := range []struct {
		host     string
		listener proxy.Listener
		client   string
		n        int
	}{
		{"telemetry.example.com", proxy.ListenerConnect, "10.0.3.40:33120", 7}, // 5 logged, 2 folded
		{"evil.example\x1b[2J", proxy.ListenerSNI, "10.0.3.42:33122", 1},
	} {
		d := decide(rs, tc.listener, tc.host, 443)
		d.Client = netip.MustParseAddrPort(tc.client)
		for range tc.n {
			r.Decided(d)
		}
	}
	r.Flush()
	var logged []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(m, "time")
		logged = append(logged, m)
	}
	lines := 0
	for _, b := range jsonBlockRE.FindAllSubmatch(doc, -1) {
		for line := range strings.Lines(string(b[1])) {
			var want map[string]any
			if err := json.Unmarshal([]byte(line), &want); err != nil {
				t.Errorf("docs/metrics.md: JSON example %q: %v", line, err)
				continue
			}
			delete(want, "time")
			lines++
			if !slices.ContainsFunc(logged, func(m map[string]any) bool { return reflect.DeepEqual(m, want) }) {
				t.Errorf("docs/metrics.md shows the log line\n%s\nwhich the miss log does not write; it wrote\n%s", line, logs.String())
			}
		}
	}
	if lines < 3 {
		t.Errorf("found %d miss-log lines in docs/metrics.md, want the three examples", lines)
	}

	pages := jsoncBlockRE.FindAllSubmatch(doc, -1)
	if len(pages) != 2 {
		t.Fatalf("docs/metrics.md has %d jsonc examples, want /rules and /misses", len(pages))
	}
	for i, into := range []any{&RulesPage{}, &MissesPage{}} {
		dec := json.NewDecoder(strings.NewReader(jsoncComment.ReplaceAllString(string(pages[i][1]), "")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Errorf("docs/metrics.md: jsonc example %d does not decode into %T: %v", i+1, into, err)
		}
	}
}
