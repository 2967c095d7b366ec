package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/metrics"
)

func TestReport(t *testing.T) {
	rs := loadRuleset(t, "")
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, nil, metrics.Options{})
	m.Install(rs)
	admin := httptest.NewServer(m.AdminHandler(reg, metrics.AdminOptions{}))
	t.Cleanup(admin.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	tests := []struct {
		name       string
		args       []string
		exit       int
		wantStdout string
		wantStderr string
	}{
		{"from admin", []string{"--from", admin.URL}, 0, "NEVER USED ENTRIES", ""},
		{"admin down", []string{"--from", down.URL}, 1, "", "connection refused"},
		{"prometheus down", []string{"--prometheus", down.URL}, 1, "", "/api/v1/query"},
		{"no source", nil, 2, "", "exactly one of --from and --prometheus"},
		{"two sources", []string{"--from", admin.URL, "--prometheus", admin.URL}, 2, "", "exactly one of"},
		{"stray argument", []string{"--from", admin.URL, "extra"}, 2, "", `unexpected argument "extra"`},
		{"bad flag", []string{"--nope"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			exit := run(append([]string{"report"}, tt.args...), &stdout, &stderr)
			if exit != tt.exit || !strings.Contains(stdout.String(), tt.wantStdout) || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("egressgate report %s = exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout containing %q, stderr containing %q",
					strings.Join(tt.args, " "), exit, stdout.String(), stderr.String(), tt.exit, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}
