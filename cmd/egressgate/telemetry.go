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
	recorder proxy.Recorder // nil: nothing is recorded
	// admin returns the handler served on --admin, with pac (nil for
	// none) at proxy.PACPath.
	admin func(pac http.Handler) http.Handler
	hooks rules.ReloadHooks // passed to rules.NewReloader
	flush func()
	reg   prometheus.Registerer // for collectors serve adds (the probe's)
}

// newTelemetry builds the metrics on a registry of their own. ready
// reports whether the proxy listeners are up, for /readyz.
//
// With withPprof, the admin listener also serves the Go profiler under
// /debug/pprof/: off by default, since profiles show internals and cost
// CPU while they run.
func newTelemetry(log *slog.Logger, ready func() bool, opts metrics.Options, withPprof bool) telemetry {
	reg := prometheus.NewRegistry()
	opts.Version = version
	m := metrics.New(reg, log, opts)
	return telemetry{
		recorder: m,
		admin: func(pac http.Handler) http.Handler {
			return m.AdminHandler(reg, metrics.AdminOptions{Ready: ready, PAC: pac, PACPath: proxy.PACPath, Pprof: withPprof})
		},
		hooks: rules.ReloadHooks{
			OnSwap:  func(rs *rules.Ruleset) { m.Install(rs); m.CatalogReloaded(rs); m.ReloadResult(nil) },
			OnError: m.ReloadResult,
		},
		flush: m.Flush,
		reg:   reg,
	}
}
