package metrics

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Report is the usage report `egressgate report` prints: which entries
// were used, which were admitted but never reached their upstream, which
// were never used, and the most denied hosts.
type Report struct {
	// Source says where the numbers come from, for the heading.
	Source string
	// Rules are every entry known to the source; Hits and LastHit are
	// summed (latest) over replicas when the source is Prometheus, which
	// knows neither kinds nor ports.
	Rules []RuleUsage
	// Misses is nil when the source cannot tell (Prometheus: denied hosts
	// are never label values).
	Misses *MissesPage
}

// FetchAdmin reads the report from one egressgate's admin listener at base
// (e.g. "http://127.0.0.1:9090"): /rules and /misses in JSON.
func FetchAdmin(ctx context.Context, c *http.Client, base string) (*Report, error) {
	return FetchAdminEstate(ctx, c, base, "")
}

// FetchAdminEstate is FetchAdmin for one estate's entries and hits
// (/rules?estate=NAME); "" means every estate. The misses are the
// whole proxy's: denied hosts are not kept per estate.
func FetchAdminEstate(ctx context.Context, c *http.Client, base, estate string) (*Report, error) {
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
	src := fmt.Sprintf("%s (egressgate %s)", base, rp.Version)
	if estate != "" {
		src += ", estate " + estate
	}
	return &Report{Source: src, Rules: rp.Rules, Misses: &mp}, nil
}

// Queries FetchPrometheus sends to /api/v1/query.
const (
	promHitsQuery     = `sum by (catalog, rule) (egressgate_rule_hits_total)`
	promFailuresQuery = `sum by (catalog, rule) (egressgate_rule_upstream_failures_total)`
	promLastHitQuery  = `max by (catalog, rule) (egressgate_rule_last_hit_timestamp_seconds)`
	promInfoQuery     = `max by (catalog, rule, group, section) (egressgate_rule_info)`
)

// FetchPrometheus reads the report from a Prometheus server at base that
// scrapes egressgate: hits summed over every replica (each replica's
// counts since it started), joined with egressgate_rule_info for groups
// and sections. It has no top misses.
func FetchPrometheus(ctx context.Context, c *http.Client, base string) (*Report, error) {
	return FetchPrometheusEstate(ctx, c, base, "")
}

// FetchPrometheusEstate is FetchPrometheus with the hits of one estate
// (egressgate_estate_rule_hits_total); "" means every estate. Every entry
// of the catalogs is listed, with 0 where the estate never used it.
func FetchPrometheusEstate(ctx context.Context, c *http.Client, base, estate string) (*Report, error) {
	base = strings.TrimSuffix(base, "/")
	hitsQuery, lastQuery := promHitsQuery, promLastHitQuery
	if estate != "" {
		if !estateLabelRE.MatchString(estate) {
			return nil, fmt.Errorf("estate %q is not an estate name", estate)
		}
		hitsQuery = fmt.Sprintf(`sum by (catalog, rule) (egressgate_estate_rule_hits_total{estate=%q})`, estate)
		lastQuery = ""
	}
	byKey := map[ruleKey]*RuleUsage{}
	var order []ruleKey
	entry := func(labels map[string]string) *RuleUsage {
		k := ruleKey{labels["catalog"], labels["rule"]}
		u := byKey[k]
		if u == nil {
			u = &RuleUsage{Catalog: k.catalog, Rule: k.pattern, Series: k.pattern, Groups: []string{}, Sections: []string{}, Ports: []uint16{}}
			byKey[k] = u
			order = append(order, k)
		}
		return u
	}
	info, err := promQuery(ctx, c, base, promInfoQuery)
	if err != nil {
		return nil, err
	}
	for _, s := range info {
		u := entry(s.Metric)
		if g := s.Metric["group"]; g != "" && !slices.Contains(u.Groups, g) {
			u.Groups = append(u.Groups, g)
		}
		if sec := s.Metric["section"]; sec != "" && !slices.Contains(u.Sections, sec) {
			u.Sections = append(u.Sections, sec)
		}
	}
	hits, err := promQuery(ctx, c, base, hitsQuery)
	if err != nil {
		return nil, err
	}
	for _, s := range hits {
		entry(s.Metric).Hits = uint64(s.Value)
	}
	// Replicas older than this metric have no series: their failures
	// read as 0, their entries as reached. Failures are not kept per
	// estate: with --estate the report shows none.
	if estate == "" {
		failures, err := promQuery(ctx, c, base, promFailuresQuery)
		if err != nil {
			return nil, err
		}
		for _, s := range failures {
			entry(s.Metric).UpstreamFailures = uint64(s.Value)
		}
	}
	var last []promSample
	if lastQuery != "" {
		if last, err = promQuery(ctx, c, base, lastQuery); err != nil {
			return nil, err
		}
	}
	for _, s := range last {
		sec, frac := int64(s.Value), s.Value-float64(int64(s.Value))
		t := time.Unix(sec, int64(frac*1e9)).UTC()
		entry(s.Metric).LastHit = &t
	}
	slices.SortFunc(order, func(a, b ruleKey) int {
		return cmp.Or(strings.Compare(a.catalog, b.catalog), strings.Compare(a.pattern, b.pattern))
	})
	r := &Report{Source: "Prometheus " + base + " (hits summed over all replicas since each started)"}
	if estate != "" {
		r.Source += ", estate " + estate
	}
	for _, k := range order {
		slices.Sort(byKey[k].Groups)
		r.Rules = append(r.Rules, *byKey[k])
	}
	return r, nil
}

// estateLabelRE is what an estate name may be (rules checks the same).
var estateLabelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

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

// termSafe returns s if it holds only printable characters, else s
// escaped with escapeHost: what /rules and /misses send is escaped
// already, so only a broken or hostile source gets here.
func termSafe(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return escapeHost(s)
		}
	}
	return s
}

// WriteText prints the report as tables: used entries (most hits first),
// entries admitted but never reached (most hits first), never-used
// entries (in catalog order) and the top misses (at most
// topMisses; 0 for all). Strings from the source with non-printable characters are escaped,
// so a hostile source cannot write control sequences to the terminal.
func (r *Report) WriteText(w io.Writer, topMisses int) error {
	var used, unreached, never []RuleUsage
	for _, u := range r.Rules {
		switch u.State() {
		case StateUsed:
			used = append(used, u)
		case StateNeverReached:
			unreached = append(unreached, u)
		default:
			never = append(never, u)
		}
	}
	byHits := func(a, b RuleUsage) int { return cmp.Compare(b.Hits, a.Hits) }
	slices.SortStableFunc(used, byHits)
	slices.SortStableFunc(unreached, byHits)
	lastHit := func(u RuleUsage) string {
		if u.LastHit == nil {
			return "-"
		}
		return u.LastHit.UTC().Format("2006-01-02 15:04:05")
	}

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "egressgate usage report from %s\n", termSafe(r.Source))
	fmt.Fprintf(tw, "Entries: %d (%d used, %d admitted but never reached, %d never used)\n", len(r.Rules), len(used), len(unreached), len(never))

	fmt.Fprintf(tw, "\nUSED ENTRIES\n")
	if len(used) == 0 {
		fmt.Fprintln(tw, "(none)")
	} else {
		fmt.Fprintln(tw, "CATALOG\tRULE\tHITS\tFAILED UPSTREAM\tLAST HIT (UTC)\tGROUPS")
		for _, u := range used {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), u.Hits, u.UpstreamFailures, lastHit(u), termSafe(strings.Join(u.Groups, ",")))
		}
	}

	// Clients asked for these and the catalog admitted them, but no
	// connection got through: the vendor's own connectivity check, failed.
	fmt.Fprintf(tw, "\nADMITTED, NEVER REACHED (every upstream connection failed: DNS, refused, timeout, ...)\n")
	if len(unreached) == 0 {
		fmt.Fprintln(tw, "(none)")
	} else {
		fmt.Fprintln(tw, "CATALOG\tRULE\tADMITTED\tLAST ADMITTED (UTC)\tGROUPS")
		for _, u := range unreached {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), u.Hits, lastHit(u), termSafe(strings.Join(u.Groups, ",")))
		}
	}

	fmt.Fprintf(tw, "\nNEVER USED ENTRIES\n")
	if len(never) == 0 {
		fmt.Fprintln(tw, "(none)")
	} else {
		fmt.Fprintln(tw, "CATALOG\tRULE\tGROUPS")
		for _, u := range never {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", termSafe(u.Catalog), termSafe(u.Rule), termSafe(strings.Join(u.Groups, ",")))
		}
	}

	fmt.Fprintf(tw, "\nTOP MISSES\n")
	switch {
	case r.Misses == nil:
		fmt.Fprintln(tw, "(not available from Prometheus: denied hosts are never label values; see /misses on each egressgate or its miss log)")
	case len(r.Misses.Misses) == 0:
		fmt.Fprintln(tw, "(none)")
	default:
		ms := r.Misses.Misses
		if topMisses > 0 && len(ms) > topMisses {
			ms = ms[:topMisses]
		}
		fmt.Fprintf(tw, "Top %d of %d hosts tracked; %d misses in all\n", len(ms), len(r.Misses.Misses), r.Misses.Total)
		fmt.Fprintln(tw, "HOST\tCOUNT\tLAST REASON\tLAST CLIENT\tLISTENER\tPORT\tLAST SEEN (UTC)")
		for _, m := range ms {
			count := strconv.FormatUint(m.Count, 10)
			if m.Error > 0 {
				count += fmt.Sprintf(" (at least %d)", m.Count-m.Error)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", termSafe(m.Host), count, termSafe(m.LastReason),
				termSafe(m.LastClient), termSafe(m.LastListener), m.LastPort, m.LastSeen.UTC().Format("2006-01-02 15:04:05"))
		}
		writeAccountHostHints(tw, ms)
	}
	return tw.Flush()
}
