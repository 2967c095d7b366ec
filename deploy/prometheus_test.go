package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct {
	base string
}

// startPrometheus runs Prometheus on loopback, scraping targets every
// second with scrape.yml's static job (targets replaced) and evaluating
// alerts.yml every second. It returns when Prometheus is ready, at most
// 20 s later.
func startPrometheus(t *testing.T, ctx context.Context, targets []string) *prometheus {
	t.Helper()
	bin := needTool(t, "apt-get install prometheus", "prometheus")
	dir := t.TempDir()

	var scrape struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	readYAML(t, scrapeFile, &scrape)
	i := slices.IndexFunc(scrape.ScrapeConfigs, func(sc map[string]any) bool { return sc["job_name"] == "egressgate" })
	if i < 0 {
		t.Fatalf("%s: no job egressgate", scrapeFile)
	}
	job := scrape.ScrapeConfigs[i]
	job["scrape_interval"] = "1s"
	job["scrape_timeout"] = "1s"
	job["static_configs"] = []map[string]any{{"targets": targets}}
	copyFile(t, alertsFile, filepath.Join(dir, "alerts.yml"))
	writeYAML(t, filepath.Join(dir, "prometheus.yml"), map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{"alerts.yml"},
		"scrape_configs": []map[string]any{job},
	})
	return &prometheus{base: runPrometheus(t, ctx, bin, dir)}
}

// runPrometheus starts bin on loopback with dir's prometheus.yml and its
// own storage there, and returns its base URL once it is ready, at most
// 20 s later.
func runPrometheus(t *testing.T, ctx context.Context, bin, dir string) string {
	t.Helper()
	return startReadyServer(t, ctx, dir, "prometheus", bin,
		"--config.file=prometheus.yml",
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--log.level=warn")
}

// sample is one element of an instant query's result.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	var f float64
	fmt.Sscan(fmt.Sprint(s.Value[1]), &f)
	return f
}

// query evaluates expr now. It returns an error for anything but a
// successful evaluation: a parse error, an unknown function, a
// many-to-many join.
func (p *prometheus) query(ctx context.Context, expr string) ([]sample, error) {
	u := p.base + "/api/v1/query?" + url.Values{"query": {expr}}.Encode()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var out []sample
		err := json.Unmarshal(r.Data.Result, &out)
		return out, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(r.Data.Result, &v)
		return []sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("result type %s, want vector or scalar", r.Data.ResultType)
}

// check is one PromQL expression that must evaluate and return data.
type check struct {
	where string
	expr  string // ready to send: Grafana variables expanded
	// cond is set for an alert's full condition, which only has to
	// evaluate: it is empty when all is well.
	cond bool
}

// artefactChecks returns every expression of the dashboard and the alerts,
// the alerts' conditions split by conditionParts.
func artefactChecks(t *testing.T) []check {
	t.Helper()
	var cs []check
	for _, q := range dashboardQueries(t) {
		e, err := expandVars(q.Expr)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		cs = append(cs, check{q.Where, e, false})
	}
	for _, r := range loadAlerts(t) {
		cs = append(cs, check{"alert " + r.Alert, r.Expr, true})
		for i, part := range conditionParts(r.Expr) {
			cs = append(cs, check{fmt.Sprintf("alert %s operand %d", r.Alert, i+1), part, false})
		}
	}
	return cs
}

// evaluateAll evaluates every check until each evaluates and each that
// must return data does, or until ctx ends; then it reports the ones that
// did not. Data arrives with the scrapes, and rate() needs two of them
// inside its window, so the first rounds may come back empty.
func evaluateAll(t *testing.T, ctx context.Context, p *prometheus, cs []check) {
	t.Helper()
	failed := map[int]string{}
	for round := 0; ; round++ {
		clear(failed)
		for i, c := range cs {
			res, err := p.query(ctx, c.expr)
			switch {
			case err != nil:
				failed[i] = fmt.Sprintf("does not evaluate: %v", err)
			case !c.cond && len(res) == 0:
				failed[i] = "returns no data"
			}
		}
		if len(failed) == 0 {
			t.Logf("%d expressions evaluated, all returned data (round %d)", len(cs), round+1)
			return
		}
		select {
		case <-ctx.Done():
			for i, c := range cs {
				if msg, ok := failed[i]; ok {
					t.Errorf("%s: %s\n\t%s", c.where, msg, c.expr)
				}
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkRulesHealthy waits until Prometheus has evaluated every rule of
// alerts.yml and none of them failed.
func checkRulesHealthy(t *testing.T, ctx context.Context, p *prometheus) {
	t.Helper()
	want := len(loadAlerts(t))
	for {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string `json:"name"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/rules", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		var evaluated int
		var problems []string
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health == "ok" {
					evaluated++
				} else if rule.Health == "err" {
					problems = append(problems, fmt.Sprintf("%s: %s", rule.Name, rule.LastError))
				}
			}
		}
		if len(problems) > 0 {
			t.Errorf("rules failed to evaluate:\n%s", strings.Join(problems, "\n"))
			return
		}
		if evaluated == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("%d of %d rules evaluated in time (last error %v)", evaluated, want, err)
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// fakeReplica serves, in the exposition format, the metrics egressgate
// documents, with counters that grow on every scrape. scale sets how busy
// it is; at 0 the entry a.example.org has no hits, so that "used" must
// be decided across replicas.
func fakeReplica(scale int) http.Handler {
	var scrapes atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(scrapes.Add(1))
		c := n * scale
		now := time.Now().Unix()
		var b strings.Builder
		line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
		hist := func(name, labels string, count int) {
			sep := ""
			if labels != "" {
				sep = ","
			}
			for _, le := range []string{"0.01", "0.1", "1", "+Inf"} {
				line(`%s_bucket{%s%sle="%s"} %d`, name, labels, sep, le, count)
			}
			line(`%s_sum{%s} %g`, name, labels, float64(count)*0.005)
			line(`%s_count{%s} %d`, name, labels, count)
		}
		line("# TYPE egressgate_rule_hits_total counter")
		line(`egressgate_rule_hits_total{catalog="site",rule="a.example.org"} %d`, 3*c)
		line(`egressgate_rule_hits_total{catalog="site",rule="b.example.org"} %d`, n)
		line(`egressgate_rule_hits_total{catalog="site",rule="*.c.example.net"} 0`)
		line(`egressgate_rule_hits_total{catalog="site",rule="d.example.org"} 0`)
		// b.example.org is admitted but never reached: every hit fails.
		line("# TYPE egressgate_rule_upstream_failures_total counter")
		line(`egressgate_rule_upstream_failures_total{catalog="site",rule="a.example.org"} %d`, c)
		line(`egressgate_rule_upstream_failures_total{catalog="site",rule="b.example.org"} %d`, n)
		line(`egressgate_rule_upstream_failures_total{catalog="site",rule="*.c.example.net"} 0`)
		line("# TYPE egressgate_rule_last_hit_timestamp_seconds gauge")
		line(`egressgate_rule_last_hit_timestamp_seconds{catalog="site",rule="a.example.org"} %d`, now*int64(min(scale, 1)))
		line(`egressgate_rule_last_hit_timestamp_seconds{catalog="site",rule="b.example.org"} %d`, now)
		line(`egressgate_rule_last_hit_timestamp_seconds{catalog="site",rule="*.c.example.net"} 0`)
		line("# TYPE egressgate_rule_info gauge")
		// a.example.org is in two groups: one series per group.
		line(`egressgate_rule_info{catalog="site",rule="a.example.org",group="web",section="main"} 1`)
		line(`egressgate_rule_info{catalog="site",rule="a.example.org",group="api",section="main"} 1`)
		line(`egressgate_rule_info{catalog="site",rule="b.example.org",group="web",section="main"} 1`)
		line(`egressgate_rule_info{catalog="site",rule="*.c.example.net",group="spare",section=""} 1`)
		line(`egressgate_rule_info{catalog="site",rule="d.example.org",group="spare",section=""} 1`)
		// d.example.org is refused by the one policy: refused, not unused.
		line("# TYPE egressgate_policy_rule_refused_info gauge")
		line(`egressgate_policy_rule_refused_info{policy="p0",catalog="site",rule="d.example.org",reason="live-response-off"} 1`)
		line("# TYPE egressgate_catalog_entries gauge")
		line(`egressgate_catalog_entries{catalog="site",group="web"} 2`)
		line(`egressgate_catalog_entries{catalog="site",group="api"} 1`)
		line(`egressgate_catalog_entries{catalog="site",group="spare"} 1`)
		line("# TYPE egressgate_requests_total counter")
		line(`egressgate_requests_total{listener="connect",decision="allow",reason="none"} %d`, 3*c+n)
		line(`egressgate_requests_total{listener="connect",decision="deny",reason="not-in-catalog"} %d`, 5*n)
		line(`egressgate_requests_total{listener="connect",decision="deny",reason="port-not-allowed"} %d`, n)
		line(`egressgate_requests_total{listener="connect",decision="deny",reason="private-destination"} 0`)
		line(`egressgate_requests_total{listener="http",decision="allow",reason="none"} %d`, c)
		line("# TYPE egressgate_estate_info gauge")
		line(`egressgate_estate_info{estate="default",source="configured",policy="p0"} 1`)
		line(`egressgate_estate_info{estate="newyork",source="enterprise",policy="p0"} 1`)
		line("# TYPE egressgate_estate_requests_total counter")
		line(`egressgate_estate_requests_total{estate="newyork",decision="allow",reason="none"} %d`, 3*c+n)
		line(`egressgate_estate_requests_total{estate="newyork",decision="deny",reason="live-response-off"} %d`, n)
		line(`egressgate_estate_requests_total{estate="default",decision="deny",reason="port-not-allowed"} %d`, n)
		line("# TYPE egressgate_estate_rule_hits_total counter")
		line(`egressgate_estate_rule_hits_total{estate="newyork",catalog="site",rule="a.example.org"} %d`, 3*c)
		line("# TYPE egressgate_tunnels_active gauge")
		line(`egressgate_tunnels_active{listener="connect"} %d`, scale)
		line("# TYPE egressgate_tunnel_duration_seconds histogram")
		hist("egressgate_tunnel_duration_seconds", `listener="connect"`, c)
		line("# TYPE egressgate_tunnel_bytes_total counter")
		line(`egressgate_tunnel_bytes_total{listener="connect",direction="upstream"} %d`, 1000*c)
		line(`egressgate_tunnel_bytes_total{listener="connect",direction="downstream"} %d`, 9000*c)
		line("# TYPE egressgate_upstream_dial_duration_seconds histogram")
		hist("egressgate_upstream_dial_duration_seconds", "", c)
		line("# TYPE egressgate_dns_lookup_duration_seconds histogram")
		hist("egressgate_dns_lookup_duration_seconds", "", c)
		line("# TYPE egressgate_upstream_errors_total counter")
		line(`egressgate_upstream_errors_total{reason="refused"} %d`, n)
		line("# TYPE egressgate_catalog_reloads_total counter")
		line(`egressgate_catalog_reloads_total{result="success"} %d`, n)
		line(`egressgate_catalog_reloads_total{result="failure"} 0`)
		line("# TYPE egressgate_catalog_last_reload_successful gauge")
		line(`egressgate_catalog_last_reload_successful 1`)
		line("# TYPE egressgate_catalog_last_reload_success_timestamp_seconds gauge")
		line(`egressgate_catalog_last_reload_success_timestamp_seconds %d`, now-60)
		line("# TYPE egressgate_build_info gauge")
		line(`egressgate_build_info{version="test",goversion="go1.26.8"} 1`)
		line("# TYPE egressgate_probe_success gauge")
		line(`egressgate_probe_success{rule="a.example.org",port="",step="dns"} 1`)
		line(`egressgate_probe_success{rule="a.example.org",port="443",step="tcp"} %d`, min(scale, 1))
		line("# TYPE egressgate_probe_duration_seconds gauge")
		line(`egressgate_probe_duration_seconds{rule="a.example.org",port="",step="dns"} 0.002`)
		line(`egressgate_probe_duration_seconds{rule="a.example.org",port="443",step="tcp"} 0.02`)
		// The busy replica is at 95% of its cap and ran out of descriptors
		// once per scrape; the idle one has none in use.
		line("# TYPE egressgate_proxy_connections_max gauge")
		line(`egressgate_proxy_connections_max 1000`)
		line("# TYPE egressgate_proxy_connections_active gauge")
		line(`egressgate_proxy_connections_active %d`, 950*scale)
		line("# TYPE egressgate_proxy_refused_total counter")
		line(`egressgate_proxy_refused_total{reason="max-conns"} %d`, 4*c)
		line(`egressgate_proxy_refused_total{reason="out-of-descriptors"} %d`, c)
		line("# TYPE egressgate_proxy_descriptor_exhaustion_total counter")
		line(`egressgate_proxy_descriptor_exhaustion_total %d`, c)
		line("# TYPE egressgate_catalog_watch_changes gauge")
		line(`egressgate_catalog_watch_changes{change="added"} %d`, c)
		line(`egressgate_catalog_watch_changes{change="removed"} 0`)
		line(`egressgate_catalog_watch_changes{change="changed"} 0`)
		line("# TYPE egressgate_catalog_watch_last_success_timestamp_seconds gauge")
		line(`egressgate_catalog_watch_last_success_timestamp_seconds %d`, now-60)
		line("# TYPE process_start_time_seconds gauge")
		line(`process_start_time_seconds %d`, now-3600)
		line("# TYPE process_resident_memory_bytes gauge")
		line(`process_resident_memory_bytes 2e+07`)
		line("# TYPE process_open_fds gauge")
		line(`process_open_fds 12`)
		line("# TYPE process_max_fds gauge")
		line(`process_max_fds 65536`)
		line("# TYPE go_goroutines gauge")
		line(`go_goroutines 20`)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, b.String())
	})
}

// TestQueriesOnFakeReplicas evaluates every expression of the dashboard
// and the alerts on a real Prometheus scraping two fake replicas that
// serve the documented metrics, one of whose entries is in two groups.
// It runs without egressgate, and pins the joins: rule_info has one series
// per group, so a join that puts it on the "one" side fails with
// "many-to-many matching not allowed", and one that leaves out instance
// fails as soon as there are two replicas.
func TestQueriesOnFakeReplicas(t *testing.T) {
	needTool(t, "apt-get install prometheus", "prometheus")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	busy := httptest.NewServer(fakeReplica(1))
	t.Cleanup(busy.Close)
	idle := httptest.NewServer(fakeReplica(0))
	t.Cleanup(idle.Close)
	p := startPrometheus(t, ctx, []string{busy.Listener.Addr().String(), idle.Listener.Addr().String()})
	// rate() and increase() need two samples of a series: until each
	// replica has been scraped twice, an expression can return data from
	// one replica while the other's rate is still missing.
	waitQuery(t, ctx, p, `min(count_over_time(up{job="egressgate"}[1m])) >= 2 and count(up{job="egressgate"}) == 2`, "both fake replicas scraped twice")

	evalCtx, cancelEval := context.WithTimeout(ctx, 30*time.Second)
	defer cancelEval()
	evaluateAll(t, evalCtx, p, artefactChecks(t))
	checkRulesHealthy(t, evalCtx, p)

	// What the fakes make true, read through the dashboard's own queries.
	panelQuery := func(title string) string { return panelExpr(t, title) }
	res, err := p.query(ctx, panelQuery("Never used in range"))
	if err != nil || len(res) != 1 || res[0].value() != 1 {
		t.Errorf("Never used in range = %v (%v), want 1 (*.c.example.net; a.example.org is used on one replica only, d.example.org is refused)", res, err)
	}
	res, err = p.query(ctx, panelQuery("Refused by the policy"))
	if err != nil || len(res) != 1 || res[0].value() != 1 {
		t.Errorf("Refused by the policy = %v (%v), want 1 (d.example.org)", res, err)
	}
	// The busy replica holds 950 of its 1000 connections and runs out of
	// descriptors on every scrape; the idle one does neither.
	busyInstance := busy.Listener.Addr().String()
	for _, name := range []string{"EgressgateConnectionsNearLimit", "EgressgateDescriptorsExhausted"} {
		res, err := p.query(ctx, alertExpr(t, name))
		if err != nil || len(res) != 1 || res[0].Metric["instance"] != busyInstance {
			t.Errorf("alert %s condition = %v (%v), want the busy replica %s only", name, res, err, busyInstance)
		}
	}
	res, err = p.query(ctx, panelQuery("Refused by reason"))
	refused := map[string]bool{}
	for _, s := range res {
		if s.value() > 0 {
			refused[s.Metric["instance"]+" "+s.Metric["reason"]] = true
		}
	}
	if want := map[string]bool{busyInstance + " max-conns": true, busyInstance + " out-of-descriptors": true}; err != nil || !maps.Equal(refused, want) {
		t.Errorf("Refused by reason: refusing %v (%v), want %v (the idle replica refuses nothing)", refused, err, want)
	}
	res, err = p.query(ctx, panelQuery("Admitted, never reached"))
	if err != nil || len(res) != 1 || res[0].Metric["rule"] != "b.example.org" {
		t.Errorf("Admitted, never reached = %v (%v), want b.example.org only (a.example.org gets through on the busy replica, *.c.example.net is never asked for)", res, err)
	}
	res, err = p.query(ctx, panelQuery("Hits per group"))
	var groups []string
	for _, s := range res {
		groups = append(groups, s.Metric["group"])
	}
	slices.Sort(groups)
	if want := []string{"api", "spare", "web"}; err != nil || !slices.Equal(groups, want) {
		t.Errorf("Hits per group: groups %q (%v), want %q", groups, err, want)
	}
	res, err = p.query(ctx, panelQuery("Catalog entries: used and never used"))
	var rows []string
	for _, s := range res {
		rows = append(rows, s.Metric["rule"]+" "+s.Metric["group"])
	}
	slices.Sort(rows)
	if want := []string{"*.c.example.net spare", "a.example.org api", "a.example.org web", "b.example.org web", "d.example.org spare"}; err != nil || !slices.Equal(rows, want) {
		t.Errorf("Catalog entries table: rows %q (%v), want %q", rows, err, want)
	}
}
