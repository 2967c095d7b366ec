package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

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
	reg      prometheus.Registerer // for collectors serve adds (the probe's)
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
	var admin http.Handler = m.AdminHandler(reg, ready)
	if withPprof {
		mux := http.NewServeMux()
		mux.Handle("/", admin)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		admin = mux
	}
	return telemetry{
		recorder: m,
		admin:    admin,
		hooks: rules.ReloadHooks{
			OnSwap:  func(rs *rules.Ruleset) { m.Install(rs); m.CatalogReloaded(rs); m.ReloadResult(nil) },
			OnError: m.ReloadResult,
		},
		flush: m.Flush,
		reg:   reg,
	}
}
