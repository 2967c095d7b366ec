package metrics

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var promqlBlockRE = regexp.MustCompile("(?s)```promql\n(.*?)```")

// TestDocsPromQL evaluates every PromQL example of the README and
// docs/*.md (one expression per line, # comments skipped) on a real
// Prometheus scraping a Recorder after the docs' example traffic: each
// must evaluate without error (no parse error, no many-to-many join), and
// the "never used" and "admitted but never reached" queries must find
// the entries the traffic leaves so.
func TestDocsPromQL(t *testing.T) {
	bin := needTool(t, "apt-get install prometheus", "prometheus")
	files, _ := filepath.Glob("../docs/*.md")
	files = append([]string{"../README.md"}, files...)
	var exprs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range promqlBlockRE.FindAllStringSubmatch(string(data), -1) {
			for line := range strings.Lines(m[1]) {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					exprs = append(exprs, line)
				}
			}
		}
	}
	if len(exprs) < 4 {
		t.Fatalf("found %d PromQL examples in the docs; metrics.md alone has four", len(exprs))
	}

	target := docsTraffic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base, logs := startPrometheus(t, ctx, bin, strings.TrimPrefix(target.URL, "http://"))

	// The examples go through the report's own Prometheus client.
	query := func(expr string) ([]promSample, error) { return promQuery(ctx, http.DefaultClient, base, expr) }
	// Ready once the target has been scraped twice: rate() and increase()
	// need two samples, and without them the joins the examples make
	// would never see a series (a wrong join errs only on data).
	for {
		if res, err := query("increase(egressgate_rule_hits_total[1m])"); err == nil && len(res) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus never scraped the test target\n%s", logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	for _, expr := range exprs {
		res, err := query(expr)
		if err != nil {
			t.Errorf("docs PromQL %s: %v", expr, err)
			continue
		}
		switch {
		case strings.Contains(expr, "== sum by (catalog, rule) (egressgate_rule_upstream_failures_total)"):
			// admitted but never reached: cloud-assets.sophos.com only
			if len(res) != 1 || res[0].Metric["rule"] != "cloud-assets.sophos.com" {
				t.Errorf("docs PromQL %s = %v, want cloud-assets.sophos.com alone", expr, res)
			}
		case strings.HasPrefix(expr, "sum by (catalog, rule) (egressgate_rule_hits_total) == 0"):
			if len(res) != 85 {
				t.Errorf("docs PromQL %s: %d entries never used, want 85", expr, len(res))
			}
		}
	}
}
