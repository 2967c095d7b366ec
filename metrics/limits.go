package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// RegisterLimits exports the proxy's connection cap and its refusals on
// reg, read from limits at each scrape (proxy.Server.Limits): nothing is
// counted on the connection path beyond the proxy's own atomics.
//
//	egressgate_proxy_connections_max              the cap (-1: none)
//	egressgate_proxy_connections_active           tunnels plus requests holding a slot
//	egressgate_proxy_refused_total{reason}        503s: max-conns, out-of-descriptors
//	egressgate_proxy_descriptor_exhaustion_total  EMFILE/ENFILE met accepting or dialing
func RegisterLimits(reg prometheus.Registerer, limits func() proxy.Limits) {
	reg.MustRegister(&limitsCollector{limits: limits})
}

var (
	maxConnsDesc = prometheus.NewDesc("egressgate_proxy_connections_max",
		"Cap on tunnels plus requests in flight (--max-conns); -1 means no cap.", nil, nil)
	activeConnsDesc = prometheus.NewDesc("egressgate_proxy_connections_active",
		"Tunnels plus requests in flight, counted against the cap.", nil, nil)
	refusedDesc = prometheus.NewDesc("egressgate_proxy_refused_total",
		"Connections answered 503 for a limit, by reason: max-conns (the cap) or out-of-descriptors (the process ran out of file descriptors).",
		[]string{"reason"}, nil)
	exhaustionDesc = prometheus.NewDesc("egressgate_proxy_descriptor_exhaustion_total",
		"Times accepting or dialing failed with EMFILE or ENFILE, answered or not.", nil, nil)
)

// limitsCollector reads proxy.Limits at scrape time.
type limitsCollector struct {
	limits func() proxy.Limits
}

func (c *limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- maxConnsDesc
	ch <- activeConnsDesc
	ch <- refusedDesc
	ch <- exhaustionDesc
}

func (c *limitsCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.limits()
	maxConns := float64(l.MaxConns)
	if l.MaxConns < 0 {
		maxConns = -1
	}
	ch <- prometheus.MustNewConstMetric(maxConnsDesc, prometheus.GaugeValue, maxConns)
	ch <- prometheus.MustNewConstMetric(activeConnsDesc, prometheus.GaugeValue, float64(l.Active))
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(l.RefusedMaxConns), rules.ReasonMaxConns.String())
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(l.RefusedNoDescriptors), rules.ReasonOutOfDescriptors.String())
	ch <- prometheus.MustNewConstMetric(exhaustionDesc, prometheus.CounterValue, float64(l.OutOfDescriptors))
}

var _ prometheus.Collector = (*limitsCollector)(nil)
