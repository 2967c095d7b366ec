package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// telemetry is what serve takes from the metrics side: the Recorder the
// proxy reports to, the handler served on --admin, and the hooks the
// rules reloader calls after every reload (to install a new ruleset's
// per-entry counters and export the reload result).
type telemetry struct {
	recorder proxy.Recorder    // nil: nothing is recorded
	admin    http.Handler      // served on --admin
	hooks    rules.ReloadHooks // passed to rules.NewReloader
}

// newTelemetry builds the telemetry. ready reports whether the proxy
// listeners are up, for /readyz.
//
// This is the hook where metrics.New and its admin handler are mounted;
// until then it records nothing and serves /healthz and /readyz only.
func newTelemetry(log *slog.Logger, ready func() bool) telemetry {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return telemetry{admin: mux}
}
