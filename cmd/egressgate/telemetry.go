package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// telemetry is what serve takes from the metrics side: the Recorder the
// proxy reports to, the handler served on --admin, the hooks the rules
// reloader calls after every reload (to install a new ruleset's per-entry
// counters and export the reload result), and flush, called once at
// shutdown so that folded miss-log summaries are written.
type telemetry struct {
	recorder proxy.Recorder    // nil: nothing is recorded
	admin    http.Handler      // served on --admin
	hooks    rules.ReloadHooks // passed to rules.NewReloader
	flush    func()
}

// newTelemetry builds the metrics on a registry of their own. ready
// reports whether the proxy listeners are up, for /readyz.
func newTelemetry(log *slog.Logger, ready func() bool, opts metrics.Options) telemetry {
	reg := prometheus.NewRegistry()
	opts.Version = version
	m := metrics.New(reg, log, opts)
	return telemetry{
		recorder: m,
		admin:    m.AdminHandler(reg, ready),
		hooks: rules.ReloadHooks{
			OnSwap:  func(rs *rules.Ruleset) { m.Install(rs); m.ReloadResult(nil) },
			OnError: m.ReloadResult,
		},
		flush: m.Flush,
	}
}
