package deploy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Files under test, relative to this package's directory.
const (
	dashboardFile  = "grafana/egressgate.json"
	alertsFile     = "prometheus/alerts.yml"
	alertsTestFile = "prometheus/alerts_test.yml"
	scrapeFile     = "prometheus/scrape.yml"
)

func TestAlertRulesCheck(t *testing.T) {
	promtool := needTool(t, "apt-get install prometheus", "promtool")
	out, err := run(t, 30*time.Second, ".", promtool, "check", "rules", alertsFile)
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertsFile, err, out)
	}
}

func TestAlertRulesUnit(t *testing.T) {
	promtool := needTool(t, "apt-get install prometheus", "promtool")
	out, err := run(t, 30*time.Second, ".", promtool, "test", "rules", alertsTestFile)
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", alertsTestFile, err, out)
	}
}

// TestAlertsTested pins that every alert in alerts.yml has a case in
// alerts_test.yml that expects it to fire, and one that expects it quiet.
func TestAlertsTested(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertsTestFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range loadAlerts(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: alert %s has no test case that expects it to fire", alertsTestFile, r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: alert %s has no test case that expects it to stay quiet", alertsTestFile, r.Alert)
		}
	}
}

// TestAlertRulesShape checks what promtool does not: every alert has a
// for:, a severity and both annotations.
func TestAlertRulesShape(t *testing.T) {
	rules := loadAlerts(t)
	if len(rules) == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}
	for _, r := range rules {
		if r.For == "" {
			t.Errorf("alert %s: no for:", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("alert %s: severity = %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if r.Annotations[a] == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
	}
}

// TestScrapeConfig runs `promtool check config` on a prometheus.yml made
// of scrape.yml's scrape_configs and alerts.yml as a rule file.
//
// Debian's prometheus is built without Kubernetes service discovery (its
// client libraries are not packaged), so its promtool rejects
// kubernetes_sd_configs as an unknown field. When it does, the Kubernetes
// job is checked without its discovery block, and its relabelling is
// checked against the Deployment in TestScrapeMatchesDeployment.
func TestScrapeConfig(t *testing.T) {
	promtool := needTool(t, "apt-get install prometheus", "promtool")
	var scrape struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	readYAML(t, scrapeFile, &scrape)
	if len(scrape.ScrapeConfigs) == 0 {
		t.Fatalf("%s: no scrape_configs", scrapeFile)
	}
	dir := t.TempDir()
	copyFile(t, alertsFile, filepath.Join(dir, "alerts.yml"))
	check := func(scs []map[string]any) (string, error) {
		cfg := map[string]any{
			"global":         map[string]any{"scrape_interval": "15s", "evaluation_interval": "15s"},
			"rule_files":     []string{"alerts.yml"},
			"scrape_configs": scs,
		}
		writeYAML(t, filepath.Join(dir, "prometheus.yml"), cfg)
		return run(t, 30*time.Second, dir, promtool, "check", "config", "prometheus.yml")
	}
	out, err := check(scrape.ScrapeConfigs)
	if err != nil && strings.Contains(out, "field kubernetes_sd_configs not found") {
		t.Logf("this promtool has no Kubernetes discovery (Debian build); checking the Kubernetes job without kubernetes_sd_configs")
		var without []map[string]any
		for _, sc := range scrape.ScrapeConfigs {
			c := map[string]any{}
			for k, v := range sc {
				if k != "kubernetes_sd_configs" {
					c[k] = v
				}
			}
			without = append(without, c)
		}
		out, err = check(without)
	}
	if err != nil {
		t.Fatalf("promtool check config (scrape_configs of %s): %v\n%s", scrapeFile, err, out)
	}
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data := readFile(t, dashboardFile)
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels returns the dashboard's panels, those in collapsed rows too.
func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// TestDashboard checks the dashboard's structure: the datasource is a
// variable and no panel hard-codes one, every query panel has queries,
// panel IDs are unique, and the panels docs/deploying.md describes are there.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid = %q, title = %q; want both set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want >= 36 (datasource references by uid)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && string(v.Query) != `"prometheus"` {
			t.Errorf("variable %s: query = %s, want \"prometheus\"", v.Name, v.Query)
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: datasource = %+v, want uid ${datasource}", v.Name, v.Datasource)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel %q: id %d already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: no gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource = %+v, want {prometheus ${datasource}}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource = %+v, want uid ${datasource}", p.Title, q.RefID, q.Datasource)
			}
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s: empty expr", p.Title, q.RefID)
			}
			if !strings.Contains(q.Expr, `job=~"$job"`) && strings.Contains(q.Expr, "{") {
				t.Errorf("panel %q query %s: %s does not select job=~\"$job\"", p.Title, q.RefID, q.Expr)
			}
		}
	}
	// Hard-coded datasource UIDs sneak in when a dashboard is exported
	// from a live Grafana; the only uid allowed is the variable's.
	data := readFile(t, dashboardFile)
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(data), -1) {
		if m[1] != "${datasource}" && m[1] != "-- Grafana --" && m[1] != d.UID {
			t.Errorf("hard-coded uid %q", m[1])
		}
	}
	titles := map[string]bool{}
	for _, p := range d.allPanels() {
		titles[p.Title] = true
	}
	for _, want := range []string{"Requests by decision", "Top deny reasons (range)", "Catalog entries: used and never used",
		"Never used in range", "Refused by the policy", "Hits per group", "Active tunnels", "Tunnel throughput", "Upstream errors by reason",
		"Last catalog reload", "Since last good reload", "Connections: active vs max", "Refused by reason"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

// query is one PromQL expression found in an artefact.
type query struct {
	Where string // "dashboard panel \"X\" A", "alert Y"
	Expr  string // as written, with Grafana variables
}

// dashboardQueries returns every PromQL expression of the dashboard: the
// panels' queries, and the metric selector of each label_values() variable.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := loadDashboard(t)
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: definition %q is not label_values(SELECTOR, LABEL)", v.Name, v.Definition)
		}
		qs = append(qs, query{fmt.Sprintf("dashboard variable %s", v.Name), m[1]})
	}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("dashboard panel %q %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	return qs
}

// panelExpr returns the expression of query A of the dashboard panel
// with the given title, Grafana's variables expanded.
func panelExpr(t *testing.T, title string) string {
	t.Helper()
	for _, q := range dashboardQueries(t) {
		if q.Where == fmt.Sprintf("dashboard panel %q A", title) {
			e, err := expandVars(q.Expr)
			if err != nil {
				t.Fatalf("%s: %v", q.Where, err)
			}
			return e
		}
	}
	t.Fatalf("%s: no panel %q", dashboardFile, title)
	return ""
}

// alertExpr returns the expression of the alert with the given name.
func alertExpr(t *testing.T, name string) string {
	t.Helper()
	for _, r := range loadAlerts(t) {
		if r.Alert == name {
			return r.Expr
		}
	}
	t.Fatalf("%s: no alert %s", alertsFile, name)
	return ""
}

// alertRule is one rule of alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &f)
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// grafanaVars are the values the dashboard's variables take when its
// queries are evaluated outside Grafana: ranges a test's few minutes of
// data can fill, and the job and instance every target has.
var grafanaVars = map[string]string{
	"__range":         "5m",
	"__rate_interval": "1m",
	"__interval":      "15s",
	"job":             "egressgate",
	"instance":        ".*",
	"estate":          ".*",
}

// expandVars replaces Grafana's $var and ${var} in expr.
func expandVars(expr string) (string, error) {
	var unknown []string
	out := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`).ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := grafanaVars[name]
		if !ok {
			unknown = append(unknown, name)
		}
		return v
	})
	if unknown != nil {
		return "", fmt.Errorf("unknown Grafana variables %q in %s", unknown, expr)
	}
	return out, nil
}

// conditionParts returns the expressions inside an alert condition that
// must return data for the condition to be able to fire. A condition is
// usually empty when all is well (`x == 0` on a healthy target,
// `absent(up)` while up exists), so a live test cannot tell "quiet" from
// "misspelt metric" by evaluating it. What it can check is the operand:
// the condition is split at top-level and/or/unless, a trailing comparison
// with a number is cut off, and absent(X) becomes X.
func conditionParts(expr string) []string {
	var parts []string
	for _, p := range splitTopLevel(expr, []string{"and", "or", "unless"}) {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, "absent(") && strings.HasSuffix(p, ")") {
			p = p[len("absent(") : len(p)-1]
		} else if lhs, ok := cutComparison(p); ok {
			p = lhs
		}
		parts = append(parts, strings.TrimSpace(p))
	}
	return parts
}

// splitTopLevel splits expr at the keywords that stand outside any
// parentheses, braces, brackets and strings.
func splitTopLevel(expr string, keywords []string) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		}
		if depth != 0 || (i > 0 && isWordByte(expr[i-1])) {
			continue
		}
		for _, k := range keywords {
			end := i + len(k)
			if strings.HasPrefix(expr[i:], k) && (end == len(expr) || !isWordByte(expr[end])) {
				parts = append(parts, expr[start:i])
				start = end
				i = end - 1
				break
			}
		}
	}
	return append(parts, expr[start:])
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// comparisonRE matches a trailing comparison with a number, with an
// optional bool modifier.
var comparisonRE = regexp.MustCompile(`(?s)^(.*?)\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*$`)

// cutComparison returns the left-hand side of "X OP NUMBER".
func cutComparison(expr string) (string, bool) {
	m := comparisonRE.FindStringSubmatch(expr)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func TestConditionParts(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="egressgate"} == 0`, []string{`up{job="egressgate"}`}},
		{`absent(up{job="egressgate"})`, []string{`up{job="egressgate"}`}},
		{`sum(rate(x[5m])) > 0.1`, []string{`sum(rate(x[5m]))`}},
		{"(a / b) > 0.1\nand\nsum by (job) (c) > 0.05", []string{`(a / b)`, `sum by (job) (c)`}},
		{`x{reason=~"deny|and"} > bool 1e3`, []string{`x{reason=~"deny|and"}`}},
		{`count(sum by (catalog, rule) (h) == 0) or vector(0)`, []string{`count(sum by (catalog, rule) (h) == 0)`, `vector(0)`}},
		{`rate(random_total[5m])`, []string{`rate(random_total[5m])`}},
	} {
		if got := conditionParts(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("conditionParts(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// knownMetrics are the metrics egressgate exports (docs/metrics.md), the
// Go and process collectors' that the dashboard uses, and Prometheus's up.
// Histograms are listed by their base name.
var knownMetrics = map[string]string{
	"egressgate_rule_hits_total":                               "counter",
	"egressgate_rule_upstream_failures_total":                  "counter",
	"egressgate_rule_info":                                     "gauge",
	"egressgate_rule_last_hit_timestamp_seconds":               "gauge",
	"egressgate_requests_total":                                "counter",
	"egressgate_estate_requests_total":                         "counter",
	"egressgate_estate_rule_hits_total":                        "counter",
	"egressgate_estate_info":                                   "gauge",
	"egressgate_policy_rule_refused_info":                      "gauge",
	"egressgate_tunnels_active":                                "gauge",
	"egressgate_tunnel_duration_seconds":                       "histogram",
	"egressgate_tunnel_bytes_total":                            "counter",
	"egressgate_upstream_dial_duration_seconds":                "histogram",
	"egressgate_upstream_errors_total":                         "counter",
	"egressgate_dns_lookup_duration_seconds":                   "histogram",
	"egressgate_catalog_reloads_total":                         "counter",
	"egressgate_catalog_last_reload_successful":                "gauge",
	"egressgate_catalog_last_reload_success_timestamp_seconds": "gauge",
	"egressgate_catalog_entries":                               "gauge",
	"egressgate_build_info":                                    "gauge",
	"egressgate_probe_success":                                 "gauge",
	"egressgate_probe_duration_seconds":                        "gauge",
	"egressgate_proxy_connections_max":                         "gauge",
	"egressgate_proxy_connections_active":                      "gauge",
	"egressgate_proxy_refused_total":                           "counter",
	"egressgate_proxy_descriptor_exhaustion_total":             "counter",
	"egressgate_catalog_watch_changes":                         "gauge",
	"egressgate_catalog_watch_last_success_timestamp_seconds":  "gauge",
	"process_start_time_seconds":                               "gauge",
	"process_resident_memory_bytes":                            "gauge",
	"process_open_fds":                                         "gauge",
	"process_max_fds":                                          "gauge",
	"go_goroutines":                                            "gauge",
	"up":                                                       "gauge",
}

var metricNameRE = regexp.MustCompile(`\b(egressgate_\w+|process_\w+|go_\w+|up)\b\s*(\{|\[|\)|$)`)

// TestQueriesUseKnownMetrics checks, without any Prometheus, that every
// metric name in the dashboard and the alerts is one egressgate exports,
// that histograms are read through _bucket, and that counters are not
// graphed raw.
func TestQueriesUseKnownMetrics(t *testing.T) {
	qs := dashboardQueries(t)
	for _, r := range loadAlerts(t) {
		qs = append(qs, query{"alert " + r.Alert, r.Expr})
	}
	used := map[string]bool{}
	for _, q := range qs {
		names := metricNameRE.FindAllStringSubmatch(q.Expr, -1)
		if len(names) == 0 && !strings.Contains(q.Expr, "vector(") {
			t.Errorf("%s: no metric in %s", q.Where, q.Expr)
		}
		for _, m := range names {
			name, base := m[1], m[1]
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suf); ok && knownMetrics[b] == "histogram" {
					base = b
				}
			}
			typ, ok := knownMetrics[base]
			switch {
			case !ok:
				t.Errorf("%s: unknown metric %s in %s", q.Where, name, q.Expr)
			case typ == "histogram" && name == base:
				t.Errorf("%s: histogram %s used without _bucket/_sum/_count", q.Where, name)
			}
			used[base] = true
		}
	}
	for name := range knownMetrics {
		if strings.HasPrefix(name, "egressgate_") && !used[name] {
			t.Errorf("metric %s is on no panel and in no alert", name)
		}
	}
}
