package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/rules"
)

// vendorSite serves the HTML rendering of the page excerpt, as a
// documentation site does (navigation, scripts, styles), and can be
// edited or made to fail between reads.
type vendorSite struct {
	mu   sync.Mutex
	page string
	fail bool
}

func (s *vendorSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		http.Error(w, "maintenance", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(s.page))
}

func (s *vendorSite) set(page string, fail bool) {
	s.mu.Lock()
	s.page, s.fail = page, fail
	s.mu.Unlock()
}

// TestCatalogWatch: the watch reads the vendor page over HTTPS, compares
// it with the catalog in force (the excerpt imported and put in service
// with embedded: []), logs one line per change and exports the counts;
// a failing server leaves the last success's time; nothing it does
// changes what is admitted.
func TestCatalogWatch(t *testing.T) {
	html, err := os.ReadFile("testdata/watch/page-excerpt.html")
	if err != nil {
		t.Fatal(err)
	}
	site := &vendorSite{page: string(html)}
	srv := httpsUpstream(t, nil, site.ServeHTTP)

	var out, errOut bytes.Buffer
	if code := run([]string{"catalog", "import", "testdata/configs/page-excerpt.txt"}, &out, &errOut); code != 0 {
		t.Fatalf("catalog import: %s", errOut.String())
	}
	dir := writeFiles(t, map[string]string{
		"sophos-central.yaml": out.String(),
		"egressgate.yaml":     "embedded: []\ncatalogs:\n  - path: sophos-central.yaml\n",
	})
	rs := loadRuleset(t, filepath.Join(dir, "egressgate.yaml"))
	before := rs.Matcher

	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	w, err := newCatalogWatch(watchOptions{url: srv.URL + "/central/domains", interval: 24 * time.Hour, client: srv.Client()},
		func() *rules.Ruleset { return rs }, slog.New(slog.NewTextHandler(&logs, nil)), metrics.NewCatalogWatch(reg))
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name, change string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if change == "" || m.GetLabel()[0].GetValue() == change {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{change=%q}", name, change)
		return 0
	}

	// The page as the catalog has it: no change.
	if err := w.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "differs") {
		t.Errorf("unchanged page logged a change:\n%s", logs.String())
	}
	first := gauge("egressgate_catalog_watch_last_success_timestamp_seconds", "")
	if first < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success = %v, want now", first)
	}

	// A host added, one removed, and a section the importer does not know.
	edited := strings.Replace(string(html), "<li>dc.services.visualstudio.com</li>", "<li>dc.services.visualstudio.com</li><li>api.example-telemetry.net</li>", 1)
	edited = strings.Replace(edited, "<li>live-terminal.stn100yul.ctr.sophos.com</li>", "", 1)
	edited = strings.Replace(edited, "<h2>Remote assistance</h2>", "<h2>Domains for Sophos Firewall integration</h2><ul><li>fw-telemetry.sophos.com</li></ul><h2>Remote assistance</h2>", 1)
	site.set(edited, false)
	logs.Reset()
	if err := w.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="catalog watch: the vendor page differs" change=removed rule=live-terminal.stn100yul.ctr.sophos.com detail="- live-terminal.stn100yul.ctr.sophos.com (ports 443; groups xdr-mdr)"`,
		`msg="catalog watch: the vendor page differs" change=added rule=api.example-telemetry.net detail="+ api.example-telemetry.net (ports 443; groups non-sophos)"`,
		`change=added rule=fw-telemetry.sophos.com detail="+ fw-telemetry.sophos.com (unknown section \"Domains for Sophos Firewall integration\", line `,
		`added=2 removed=1 changed=0 unclassified=1`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s\n%s", want, logs.String())
		}
	}
	for change, want := range map[string]float64{"added": 2, "removed": 1, "changed": 0} {
		if got := gauge("egressgate_catalog_watch_changes", change); got != want {
			t.Errorf("egressgate_catalog_watch_changes{change=%q} = %v, want %v", change, got, want)
		}
	}

	// The server fails: an error, the counts and the last success stay.
	site.set("", true)
	if err := w.check(context.Background()); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("check on a failing server = %v, want the 502", err)
	}
	if got := gauge("egressgate_catalog_watch_changes", "added"); got != 2 {
		t.Errorf("after a failure, added = %v, want the last success's 2", got)
	}
	if got := gauge("egressgate_catalog_watch_last_success_timestamp_seconds", ""); got < first {
		t.Errorf("after a failure, last success = %v, want at least %v", got, first)
	}

	// Nothing admitted changed: the same matcher, the removed host still in.
	if v := rs.Matcher.Lookup("live-terminal.stn100yul.ctr.sophos.com", 443); rs.Matcher != before || v.Reason == rules.ReasonNotInCatalog {
		t.Error("the watch changed what is admitted")
	}
	if rs.Matcher.Lookup("fw-telemetry.sophos.com", 443).Allow {
		t.Error("the watch admitted a host the page added")
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

func TestWatchDelay(t *testing.T) {
	const day = 24 * time.Hour
	for _, tt := range []struct {
		interval time.Duration
		failures int
		r        float64
		want     time.Duration
	}{
		{day, 0, 0, day * 9 / 10},
		{day, 0, 0.5, day},
		{day, 1, 0, 30 * time.Second},
		{day, 1, 0.999999, time.Minute - 60*time.Microsecond},
		{day, 3, 0.5, 3 * time.Minute},
		{day, 40, 0.999999, maxWatchBackoff - maxWatchBackoff/2000000},
		{time.Hour, 40, 0, 30 * time.Minute},
	} {
		if got := watchDelay(tt.interval, tt.failures, tt.r); got.Round(time.Millisecond) != tt.want.Round(time.Millisecond) {
			t.Errorf("watchDelay(%s, %d, %v) = %s, want %s", tt.interval, tt.failures, tt.r, got, tt.want)
		}
	}
}

func TestCatalogWatchFlags(t *testing.T) {
	for _, tt := range []struct {
		o    watchOptions
		want string
	}{
		{watchOptions{url: "http://example.org/page", interval: time.Hour}, "want the page's https:// URL"},
		{watchOptions{url: "https://example.org/page", interval: time.Second}, "want at least a minute"},
		{watchOptions{url: "https://example.org/page", interval: time.Hour, via: "ftp://p:1"}, "--catalog-watch-via"},
	} {
		if _, err := newCatalogWatch(tt.o, nil, nil, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("newCatalogWatch(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
}
