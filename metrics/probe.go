package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy/probe"
)

// ProbeMetrics exports the last probe run (probe.Prober) of the server's
// --probe-interval loop:
//
//	egressgate_probe_success{rule,port,step}           1 if the step succeeded, 0 if it failed
//	egressgate_probe_duration_seconds{rule,port,step}  how long the step took
//
// rule is a catalog entry's pattern, port one of its ports ("" for the
// dns step, which is per name), step one of dns, tcp, tls. A step that
// did not run (after a failed one, or tls on a port that is not a TLS
// port) has no series in that run. The series are the last run's: a
// whole run is swapped in at once, so a scrape never mixes two runs.
type ProbeMetrics struct {
	last     atomic.Pointer[[]probe.Result]
	success  *prometheus.Desc
	duration *prometheus.Desc
}

// NewProbeMetrics registers the probe's metrics on reg.
func NewProbeMetrics(reg prometheus.Registerer) *ProbeMetrics {
	labels := []string{"rule", "port", "step"}
	p := &ProbeMetrics{
		success: prometheus.NewDesc("egressgate_probe_success",
			"Whether the last probe of a catalog name's step (dns, tcp, tls) on a port succeeded (1) or failed (0).", labels, nil),
		duration: prometheus.NewDesc("egressgate_probe_duration_seconds",
			"How long the last probe of a catalog name's step on a port took, in seconds.", labels, nil),
	}
	reg.MustRegister(p)
	return p
}

// Observe installs a probe run's results.
func (p *ProbeMetrics) Observe(results []probe.Result) {
	p.last.Store(&results)
}

// Describe implements prometheus.Collector.
func (p *ProbeMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.success
	ch <- p.duration
}

// Collect implements prometheus.Collector.
func (p *ProbeMetrics) Collect(ch chan<- prometheus.Metric) {
	results := p.last.Load()
	if results == nil {
		return
	}
	for _, r := range *results {
		for _, s := range r.Steps {
			port := ""
			if s.Port != 0 {
				port = strconv.Itoa(int(s.Port))
			}
			ok := 0.0
			if s.OK {
				ok = 1
			}
			ch <- prometheus.MustNewConstMetric(p.success, prometheus.GaugeValue, ok, r.Rule, port, s.Step)
			ch <- prometheus.MustNewConstMetric(p.duration, prometheus.GaugeValue, s.Duration.Seconds(), r.Rule, port, s.Step)
		}
	}
}

var _ prometheus.Collector = (*ProbeMetrics)(nil)
