package metrics

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/egressgate/egressgate/rules"
)

// DefaultReportWindow is the window of FetchPrometheus when none is given:
// an entry unused for 30 days is the one to question.
const DefaultReportWindow = 30 * 24 * time.Hour

// FetchAdmin reads the report from one egressgate's admin listener at base
// (e.g. "http://127.0.0.1:9090"): /rules and /misses in JSON. estate, when
// not "", asks for that estate's view (/rules?estate=NAME); the misses
// stay the whole proxy's: denied hosts are not kept per estate.
func FetchAdmin(ctx context.Context, c *http.Client, base, estate string) (*Report, error) {
	base = strings.TrimSuffix(base, "/")
	var rp RulesPage
	q := "/rules?format=json"
	if estate != "" {
		q += "&estate=" + url.QueryEscape(estate)
	}
	if err := getJSON(ctx, c, base+q, &rp); err != nil {
		return nil, err
	}
	var mp MissesPage
	if err := getJSON(ctx, c, base+"/misses?format=json", &mp); err != nil {
		return nil, err
	}
	src := fmt.Sprintf("%s (egressgate %s; hits since the process started)", base, rp.Version)
	if estate != "" {
		src += ", estate " + estate
	}
	for i := range rp.Rules {
		u := &rp.Rules[i]
		// The state is recomputed here, as for Prometheus: one function
		// decides it, whatever the source says.
		u.State = EntryState(u.Hits, u.UpstreamFailures, u.Reason)
	}
	return &Report{Source: src, Rules: rp.Rules, Misses: &mp}, nil
}

// PromOptions select what FetchPrometheus asks.
type PromOptions struct {
	// Estate is one estate's view ("" for every estate).
	Estate string
	// Window is how far back hits count: increase(...[Window]) over
	// every replica. 0 means DefaultReportWindow.
	Window time.Duration
}

// promQueries are the instant queries of one report.
type promQueries struct {
	info, hits, hitsBorn, failures, failuresBorn, lastHit, estates, refused string
}

// newPromQueries builds the queries for o. A counter's increase over the
// window misses the first sample of a series that appeared inside it (a
// per-estate series appears with its first count; a replica that started
// inside the window has its first scrape): hitsBorn and failuresBorn add
// the earliest value of the series that had no sample a window ago.
func newPromQueries(o PromOptions) promQueries {
	w := model.Duration(o.Window).String()
	hits, failures, sel := "egressgate_rule_hits_total", "egressgate_rule_upstream_failures_total", ""
	if o.Estate != "" {
		hits, failures = "egressgate_estate_rule_hits_total", "egressgate_estate_rule_upstream_failures_total"
		sel = fmt.Sprintf("{estate=%q}", o.Estate)
	}
	increase := func(m string) string {
		return fmt.Sprintf("sum by (catalog, rule) (increase(%s%s[%s]))", m, sel, w)
	}
	born := func(m string) string {
		return fmt.Sprintf("sum by (catalog, rule) (min_over_time(%s%s[%s]) unless %s%s offset %s)", m, sel, w, m, sel, w)
	}
	q := promQueries{
		info:         `max by (catalog, rule, group, section) (egressgate_rule_info)`,
		hits:         increase(hits),
		hitsBorn:     born(hits),
		failures:     increase(failures),
		failuresBorn: born(failures),
		estates:      `max by (estate, policy) (egressgate_estate_info)`,
		refused:      `max by (policy, catalog, rule, reason) (egressgate_policy_rule_refused_info)`,
	}
	if o.Estate == "" {
		q.lastHit = fmt.Sprintf("max by (catalog, rule) (max_over_time(egressgate_rule_last_hit_timestamp_seconds[%s]))", w)
	}
	return q
}

// FetchPrometheus reads the report from a Prometheus server at base that
// scrapes every replica: hits and upstream failures are the increase over
// o.Window summed over the replicas (restarts included), joined with
// egressgate_rule_info for groups and sections and with the policies'
// refusals for the refused entries. It has no top misses.
func FetchPrometheus(ctx context.Context, c *http.Client, base string, o PromOptions) (*Report, error) {
	base = strings.TrimSuffix(base, "/")
	if o.Window <= 0 {
		o.Window = DefaultReportWindow
	}
	if o.Estate != "" && !rules.ValidEstateName(o.Estate) {
		return nil, fmt.Errorf("estate %q is not an estate name", o.Estate)
	}
	q := newPromQueries(o)
	get := func(query string) ([]promSample, error) {
		if query == "" {
			return nil, nil
		}
		return promQuery(ctx, c, base, query)
	}
	rows := &promRows{byKey: map[ruleKey]*RuleUsage{}}
	info, err := get(q.info)
	if err != nil {
		return nil, err
	}
	for _, s := range info {
		rows.addInfo(s.Metric)
	}
	for _, part := range []struct {
		query string
		add   func(u *RuleUsage, v uint64)
	}{
		{q.hits, func(u *RuleUsage, v uint64) { u.Hits += v }},
		{q.hitsBorn, func(u *RuleUsage, v uint64) { u.Hits += v }},
		{q.failures, func(u *RuleUsage, v uint64) { u.UpstreamFailures += v }},
		{q.failuresBorn, func(u *RuleUsage, v uint64) { u.UpstreamFailures += v }},
	} {
		samples, err := get(part.query)
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			// increase() extrapolates to the window's edges: round.
			part.add(rows.entry(s.Metric), uint64(math.Round(max(s.Value, 0))))
		}
	}
	last, err := get(q.lastHit)
	if err != nil {
		return nil, err
	}
	for _, s := range last {
		sec, frac := math.Modf(s.Value)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
		rows.entry(s.Metric).LastHit = &t
	}
	refused, err := fetchRefusals(get, q, o.Estate)
	if err != nil {
		return nil, err
	}
	r := &Report{Source: fmt.Sprintf("Prometheus %s (hits over the last %s, summed over every replica; never used means no hit in that window)", base, model.Duration(o.Window))}
	if o.Estate != "" {
		r.Source += ", estate " + o.Estate
	}
	r.Rules = rows.sorted(refused)
	return r, nil
}

// promRows collects the report's rows by catalog and pattern.
type promRows struct {
	byKey map[ruleKey]*RuleUsage
	order []ruleKey
}

func (p *promRows) entry(labels map[string]string) *RuleUsage {
	k := ruleKey{labels["catalog"], labels["rule"]}
	u := p.byKey[k]
	if u == nil {
		u = &RuleUsage{Catalog: k.catalog, Rule: k.pattern, Series: k.pattern, Groups: []string{}, Sections: []string{}, Ports: []uint16{}}
		p.byKey[k] = u
		p.order = append(p.order, k)
	}
	return u
}

func (p *promRows) addInfo(labels map[string]string) {
	u := p.entry(labels)
	if g := labels["group"]; g != "" && !slices.Contains(u.Groups, g) {
		u.Groups = append(u.Groups, g)
	}
	if sec := labels["section"]; sec != "" && !slices.Contains(u.Sections, sec) {
		u.Sections = append(u.Sections, sec)
	}
}

// sorted returns the rows by catalog and pattern, each with its reason
// from refused and its state.
func (p *promRows) sorted(refused map[ruleKey]string) []RuleUsage {
	slices.SortFunc(p.order, func(a, b ruleKey) int {
		return cmp.Or(strings.Compare(a.catalog, b.catalog), strings.Compare(a.pattern, b.pattern))
	})
	out := make([]RuleUsage, 0, len(p.order))
	for _, k := range p.order {
		u := p.byKey[k]
		slices.Sort(u.Groups)
		u.Reason = refused[k]
		u.State = EntryState(u.Hits, u.UpstreamFailures, u.Reason)
		out = append(out, *u)
	}
	return out
}

// fetchRefusals returns the refused entries with their reasons: those of
// the estate's policy, or with estate "" those that every policy refuses
// (with the default estate's reason, p0, when it is one of them).
func fetchRefusals(get func(string) ([]promSample, error), q promQueries, estate string) (map[ruleKey]string, error) {
	estates, err := get(q.estates)
	if err != nil {
		return nil, err
	}
	policies := map[string]bool{}
	want := ""
	for _, s := range estates {
		if p := s.Metric["policy"]; p != "" {
			policies[p] = true
			if s.Metric["estate"] == estate {
				want = p
			}
		}
	}
	if estate != "" && want == "" && len(policies) > 0 {
		return nil, fmt.Errorf("estate %q: Prometheus has no egressgate_estate_info series for it (estates are named in the config)", estate)
	}
	samples, err := get(q.refused)
	if err != nil {
		return nil, err
	}
	reasons := map[ruleKey]map[string]string{} // entry → policy → reason
	for _, s := range samples {
		k := ruleKey{s.Metric["catalog"], s.Metric["rule"]}
		if reasons[k] == nil {
			reasons[k] = map[string]string{}
		}
		reasons[k][s.Metric["policy"]] = s.Metric["reason"]
	}
	out := map[ruleKey]string{}
	for k, byPolicy := range reasons {
		switch {
		case estate != "":
			if r := byPolicy[want]; r != "" {
				out[k] = r
			}
		case len(byPolicy) >= len(policies):
			out[k] = cmp.Or(byPolicy["p0"], byPolicy[slices.Min(slices.Collect(maps.Keys(byPolicy)))])
		}
	}
	return out, nil
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

func promQuery(ctx context.Context, c *http.Client, base, query string) ([]promSample, error) {
	var resp struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	u := base + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	if err := getJSON(ctx, c, u, &resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", query, resp.ErrorType, resp.Error)
	}
	if resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", query, resp.Data.ResultType)
	}
	out := make([]promSample, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, r.Value[1], err)
		}
		out = append(out, promSample{r.Metric, v})
	}
	return out, nil
}

// getJSON GETs u and decodes its JSON body into v. An error names the URL
// and, for a non-200 reply, the status and the start of the body.
func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetching %s: %s: %q", u, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", u, err)
	}
	return nil
}
