package main

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

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
	warn := &checkWarnings{log: log}
	return telemetry{
		recorder: m,
		admin: func(pac http.Handler) http.Handler {
			return m.AdminHandler(reg, metrics.AdminOptions{Ready: ready, PAC: pac, PACPath: proxy.PACPath, Pprof: withPprof})
		},
		hooks: rules.ReloadHooks{
			OnSwap: func(rs *rules.Ruleset) {
				m.Install(rs)
				m.CatalogReloaded(rs)
				// An estate file that failed is the attempt's one failure,
				// although the rest of the ruleset was stored.
				m.ReloadResult(errors.Join(rs.Problems...))
				warn.changed(rs)
			},
			OnError: m.ReloadResult,
		},
		flush: m.Flush,
		reg:   reg,
	}
}

// checkWarnings logs what check warns about (and what it would refuse
// although the proxy can serve it): once at start and again after each
// reload that changes them, so that serve's log has them too.
type checkWarnings struct {
	log  *slog.Logger
	last string // the warnings logged last, joined
}

// changed logs rs's warnings when they differ from the last ones logged.
func (c *checkWarnings) changed(rs *rules.Ruleset) {
	all := append(slices.Clone(rs.Warnings), rs.CheckErrors...)
	var b strings.Builder
	for _, w := range all {
		b.WriteString(w.Error() + "\n")
	}
	if b.String() == c.last {
		return
	}
	c.last = b.String()
	for _, w := range all {
		c.log.Warn("config warning (egressgate check says the same)", "warning", w.Error())
	}
}
