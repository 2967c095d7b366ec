package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// testList is a small catalog in the plain-list format.
const testList = `
example.org:443
*.example.net:443
api.example.com:443,8443
10.1.0.0/16:443
`

// loadList compiles a plain list named name into a ruleset.
func loadList(t testing.TB, name, list string) *rules.Ruleset {
	t.Helper()
	c, err := rules.ParseList(name+".list", name, []byte(list))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// newTest returns a Recorder on a fresh registry with rs installed (when
// not nil), logging JSON into the returned buffer.
func newTest(t testing.TB, rs *rules.Ruleset, opts Options) (*Recorder, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	r := New(reg, slog.New(slog.NewJSONHandler(&logs, nil)), opts)
	if rs != nil {
		r.Install(rs)
	}
	return r, reg, &logs
}

// newListTest returns testList's ruleset and a Recorder on a fresh
// registry with it installed.
func newListTest(t testing.TB) (*rules.Ruleset, *Recorder, *prometheus.Registry) {
	t.Helper()
	rs := loadList(t, "test", testList)
	r, reg, _ := newTest(t, rs, Options{})
	return rs, r, reg
}

var testClient = netip.MustParseAddrPort("192.0.2.7:50123")

// decideConnects records, in r, a CONNECT to each of hosts on port 443 as
// rs decides it.
func decideConnects(r *Recorder, rs *rules.Ruleset, hosts ...string) {
	for _, h := range hosts {
		r.Decided(decide(rs, proxy.ListenerConnect, h, 443))
	}
}

// decide looks host:port up in rs and returns the Decision the proxy would
// record for it.
func decide(rs *rules.Ruleset, l proxy.Listener, host string, port uint16) *proxy.Decision {
	v := rs.Matcher.Lookup(host, port)
	d := &proxy.Decision{Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Listener: l, Client: testClient,
		Host: host, Port: port, Action: proxy.ActionAllow, Reason: v.Reason, Verdict: v, Matcher: rs.Matcher, Estate: rs.Estates[0]}
	if !v.Allow {
		d.Action = proxy.ActionDeny
	}
	return d
}

func counterValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

func hits(t testing.TB, g prometheus.Gatherer, catalog, rule string) float64 {
	t.Helper()
	v, ok := counterValue(t, g, "egressgate_rule_hits_total", map[string]string{"catalog": catalog, "rule": rule})
	if !ok {
		t.Fatalf("no egressgate_rule_hits_total{catalog=%q,rule=%q}", catalog, rule)
	}
	return v
}

func seriesCount(t testing.TB, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, _, body := getAccept(t, url, "")
	return code, body
}

// getAccept GETs url with the Accept header accept (none when empty) and
// returns the status, the Content-Type and the body.
func getAccept(t *testing.T, url, accept string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// hostileHost is a client-chosen name that would break HTML, the log and
// a terminal if it were not escaped.
const hostileHost = "<script>alert(1)</script>\x1b[2J.example"

// newAdmin serves r's admin handler on loopback.
func newAdmin(t *testing.T, r *Recorder, reg *prometheus.Registry, ready func() bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(r.AdminHandler(reg, AdminOptions{Ready: ready}))
	t.Cleanup(srv.Close)
	return srv
}

// loadExample loads the shipped enterprise example.
func loadExample(t *testing.T) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load("../deploy/examples/enterprise/egressgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// decideFrom judges host:443 as the proxy does for a client address.
func decideFrom(rs *rules.Ruleset, client, host string) *proxy.Decision {
	a := netip.MustParseAddr(client)
	es := rs.EstateFor(a)
	v := es.Lookup(a, host, 443)
	d := &proxy.Decision{Time: time.Now(), Listener: proxy.ListenerConnect, Client: netip.AddrPortFrom(a, 40000),
		Host: host, Port: 443, Action: proxy.ActionAllow, Reason: v.Reason, Verdict: v, Matcher: es.Matcher, Estate: es}
	if !v.Allow {
		d.Action = proxy.ActionDeny
	}
	return d
}

// needTool returns the path of a program a test starts, or skips the test:
// under -short, which leaves out every test that starts a real component,
// and when the program is not installed (`make deps` installs it; how says
// where from).
func needTool(t *testing.T, how, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: not starting %s", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (%s)", name, how)
	}
	return p
}

// startPrometheus runs the Prometheus at bin, scraping targets every
// second, on a free loopback port until ctx ends or the test does. It
// returns Prometheus's base URL and its log.
func startPrometheus(t *testing.T, ctx context.Context, bin string, targets ...string) (base string, logs *strings.Builder) {
	t.Helper()
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, target := range targets {
		quoted[i] = fmt.Sprintf("%q", target)
	}
	cfg := "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: egressgate\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs: [{targets: [" + strings.Join(quoted, ", ") + "]}]\n"
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := proxytest.FreeAddr(t)
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	logs = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return "http://" + addr, logs
}

// fetchReport fetches the report from the admin handler at srv, as
// `egressgate report --from` does.
func fetchReport(t *testing.T, srv *httptest.Server) *Report {
	t.Helper()
	rep, err := FetchAdmin(context.Background(), srv.Client(), srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// reportText prints rep as `egressgate report` does, with top misses.
func reportText(t *testing.T, rep *Report, top int) string {
	t.Helper()
	var out bytes.Buffer
	if err := rep.WriteText(&out, top); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
