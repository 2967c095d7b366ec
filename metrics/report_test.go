package metrics

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"

	"github.com/egressgate/egressgate/metrics/internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// TestReportGolden runs every testdata/report-*.txtar: an admin report
// from a Recorder fed the "decisions" section, or a Prometheus report
// from a fake /api/v1/query serving the "*.json" sections; the output must
// equal the "want" section.
func TestReportGolden(t *testing.T) {
	txtar.Each(t, "testdata/report-*.txtar", func(t *testing.T, file string, a txtar.Archive) {
		top := 0
		if s, ok := a.File("top"); ok {
			var err error
			if top, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
				t.Fatal(err)
			}
		}
		var (
			rep *Report
			url string
		)
		if _, ok := a.File("decisions"); ok {
			rep, url = adminReport(t, a)
		} else {
			rep, url = prometheusReport(t, a)
		}
		got := strings.ReplaceAll(reportText(t, rep, top), url, "URL")
		want, _ := a.File("want")
		if got == want {
			return
		}
		if *update {
			a.SetFile("want", got)
			txtar.Rewrite(t, file, a)
			return
		}
		t.Errorf("%s: report differs (go test -run TestReportGolden -update to accept)\n--- got\n%s--- want\n%s", file, got, want)
	})
}

// adminReport installs the archive's catalog.list, records its decisions
// ("HOST PORT [COUNT] [LISTENER] [DIALERROR]" per line, HOST possibly a
// quoted Go string; DIALERROR, e.g. dns, makes every one of them fail
// upstream) and fetches the report from
// the admin handler.
func adminReport(t *testing.T, a txtar.Archive) (*Report, string) {
	t.Helper()
	list, _ := a.File("catalog.list")
	rs := loadList(t, "test", list)
	r, reg, _ := newTest(t, rs, Options{})
	decisions, _ := a.File("decisions")
	for line := range strings.Lines(decisions) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		port, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("decisions: %q: %v", line, err)
		}
		n := 1
		if len(f) > 2 {
			n, _ = strconv.Atoi(f[2])
		}
		l := proxy.ListenerConnect
		if len(f) > 3 {
			l = proxy.Listener(f[3])
		}
		host := f[0]
		if strings.HasPrefix(host, `"`) {
			if host, err = strconv.Unquote(host); err != nil {
				t.Fatalf("decisions: %q: %v", line, err)
			}
		}
		dialErr := proxy.DialOK
		if len(f) > 4 {
			dialErr = proxy.DialError(f[4])
		}
		d := decide(rs, l, host, uint16(port))
		for range n {
			r.Decided(d)
			if d.Action == proxy.ActionAllow {
				r.Dialed(d, 0, time.Millisecond, dialErr)
			}
		}
	}
	srv := newAdmin(t, r, reg, nil)
	return fetchReport(t, srv), srv.URL
}

// prometheusReport serves the archive's hits.json, last_hit.json and
// info.json as the answers to the report's three queries.
func prometheusReport(t *testing.T, a txtar.Archive) (*Report, string) {
	t.Helper()
	answers := map[string]string{}
	q := newPromQueries(PromOptions{Window: DefaultReportWindow})
	const empty = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	for q, name := range map[string]string{q.hits: "hits.json", q.hitsBorn: "hits_born.json", q.lastHit: "last_hit.json", q.info: "info.json",
		q.failures: "failures.json", q.failuresBorn: "failures_born.json", q.estates: "estates.json", q.refused: "refused.json"} {
		data, ok := a.File(name)
		if !ok && name != "hits.json" && name != "info.json" {
			data, ok = empty, true // replicas without the metric, or nothing born in the window
		}
		if !ok {
			t.Fatalf("no %s section", name)
		}
		answers[q] = data
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ans, ok := answers[r.URL.Query().Get("query")]
		if r.URL.Path != "/api/v1/query" || !ok {
			http.Error(w, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, ans)
	}))
	t.Cleanup(srv.Close)
	rep, err := FetchPrometheus(context.Background(), srv.Client(), srv.URL, PromOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep, srv.URL
}

func TestFetchErrors(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	promErr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	}))
	t.Cleanup(promErr.Close)
	admin := func(ctx context.Context, c *http.Client, base string) (*Report, error) {
		return FetchAdmin(ctx, c, base, "")
	}
	prom := func(ctx context.Context, c *http.Client, base string) (*Report, error) {
		return FetchPrometheus(ctx, c, base, PromOptions{})
	}
	tests := []struct {
		name  string
		fetch func(context.Context, *http.Client, string) (*Report, error)
		url   string
		want  string
	}{
		{"admin down", admin, down.URL, "connection refused"},
		{"admin 404", admin, notFound.URL, "404 Not Found"},
		{"prometheus error", prom, promErr.URL, "bad_data: parse error"},
		{"prometheus 404", prom, notFound.URL, "/api/v1/query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.fetch(context.Background(), http.DefaultClient, tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("fetch(%s) error = %v, want one containing %q", tt.url, err, tt.want)
			}
		})
	}
}
