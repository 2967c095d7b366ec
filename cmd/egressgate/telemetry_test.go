package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/rules"
)

// TestTelemetryAdmin checks what the admin listener serves, with and
// without --pprof, once a ruleset is installed through the reload hook.
func TestTelemetryAdmin(t *testing.T) {
	rs := loadRuleset(t, "")
	for _, withPprof := range []bool{false, true} {
		tel := newTelemetry(nil, func() bool { return true }, metrics.Options{}, withPprof)
		tel.hooks.OnSwap(rs)
		get := func(path string) (int, string) {
			rec := httptest.NewRecorder()
			tel.admin(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			return rec.Code, rec.Body.String()
		}
		if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `egressgate_rule_hits_total{catalog="sophos-central",rule="central.sophos.com"} 0`) {
			t.Errorf("pprof=%v: /metrics = %d, lacks the per-entry counter", withPprof, code)
		}
		if code, _ := get("/readyz"); code != 200 {
			t.Errorf("pprof=%v: /readyz = %d, want 200", withPprof, code)
		}
		want := http.StatusNotFound
		if withPprof {
			want = http.StatusOK
		}
		if code, _ := get("/debug/pprof/"); code != want {
			t.Errorf("pprof=%v: /debug/pprof/ = %d, want %d", withPprof, code, want)
		}
	}
}

// TestReloadLogsCatalogDiff: a reload through the Reloader and serve's
// hooks logs the entries it changed and counts them on /metrics.
func TestReloadLogsCatalogDiff(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"config.yaml": "embedded: []\ncatalogs:\n  - path: local.list\n",
		"local.list":  "a.example.org\nb.example.org\n",
	})
	list, config := filepath.Join(dir, "local.list"), filepath.Join(dir, "config.yaml")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	tel := newTelemetry(log, func() bool { return true }, metrics.Options{}, false)
	r, err := rules.NewReloader(config, log, tel.hooks)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte("a.example.org:443,8443\nc.example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"msg":"catalog changed","added":1,"removed":1,"changed":1`,
		`"detail":"~ local/a.example.org: ports 443 -> 443,8443"`,
		`"detail":"- local/b.example.org (ports 443; groups local)"`,
		`"detail":"+ local/c.example.org (ports 443; groups local)"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("reload log lacks %s:\n%s", want, logs.String())
		}
	}
	rec := httptest.NewRecorder()
	tel.admin(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`egressgate_catalog_changes_total{change="added"} 1`,
		`egressgate_catalog_changes_total{change="removed"} 1`,
		`egressgate_catalog_changes_total{change="changed"} 1`,
		`egressgate_tunnels_on_removed_entries 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
