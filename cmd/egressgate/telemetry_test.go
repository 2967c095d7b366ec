package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/metrics"
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
