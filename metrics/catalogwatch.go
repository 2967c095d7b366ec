package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/egressgate/egressgate/rules"
)

// CatalogWatch exports what the watch of the vendor page (serve
// --catalog-watch) found the last time it read the page. It is
// registered only when the watch runs, so the alerts on it stay quiet
// where nobody asked for it.
type CatalogWatch struct {
	changes     [3]prometheus.Gauge // by rules.ChangeKind
	lastSuccess prometheus.Gauge
}

// NewCatalogWatch registers the watch's metrics on reg.
func NewCatalogWatch(reg prometheus.Registerer) *CatalogWatch {
	f := promauto.With(reg)
	vec := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egressgate_catalog_watch_changes",
		Help: "Entries in which the vendor page differed from the catalog in force at the watch's last successful read: added (the page lists, the catalog lacks), removed, changed.",
	}, []string{"change"})
	w := &CatalogWatch{lastSuccess: f.NewGauge(prometheus.GaugeOpts{
		Name: "egressgate_catalog_watch_last_success_timestamp_seconds",
		Help: "Unix time of the watch's last successful read and comparison of the vendor page; 0 before the first.",
	})}
	for _, k := range rules.ChangeKinds() {
		w.changes[k] = vec.WithLabelValues(k.String())
	}
	return w
}

// Compared records a successful comparison at t.
func (w *CatalogWatch) Compared(changes []rules.Change, t time.Time) {
	n := rules.CountChanges(changes)
	for k, g := range w.changes {
		g.Set(float64(n[k]))
	}
	w.lastSuccess.Set(float64(t.UnixNano()) / 1e9)
}
