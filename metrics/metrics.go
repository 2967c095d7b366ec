package metrics

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxRuleSeries   = 10000
	DefaultMissLogBurst    = 5
	DefaultMissLogInterval = time.Minute
	DefaultMissLogHosts    = 10000
	DefaultTopMisses       = 1000
)

// Options tune a Recorder. The zero value is the default everywhere.
type Options struct {
	// Version is the build version exported by egressgate_build_info and
	// shown on /rules; "" means "dev".
	Version string
	// MaxRuleSeries caps the catalog entries exported with their own
	// rule label; entries beyond it (in matcher order) share one
	// rule="_other" series per catalog. 0 means DefaultMaxRuleSeries.
	// /rules always shows every entry on its own.
	MaxRuleSeries int
	// MissLogBurst is how many misses per host and reason are logged one
	// by one in each MissLogInterval before the rest are folded into one
	// "miss-folded" line at the end of the interval. 0 means
	// DefaultMissLogBurst.
	MissLogBurst int
	// MissLogInterval is the folding window. 0 means DefaultMissLogInterval.
	MissLogInterval time.Duration
	// MissLogHosts bounds the hosts the fold table tracks per interval;
	// misses of further hosts are counted in one "miss-overflow" line.
	// 0 means DefaultMissLogHosts.
	MissLogHosts int
	// TopMisses is the capacity of the /misses top-k table. 0 means
	// DefaultTopMisses.
	TopMisses int
	// AccessLog logs one "access" line per closed tunnel or forwarded
	// request. Off by default.
	AccessLog bool
	// MaxEstateSeries caps the per-estate series (requests by decision
	// and reason, hits per entry) that get their own estate label; the
	// counts beyond it share estate="_other". 0 means
	// DefaultMaxEstateSeries.
	MaxEstateSeries int
}

func (o Options) withDefaults() Options {
	if o.Version == "" {
		o.Version = "dev"
	}
	o.MaxRuleSeries = positiveOr(o.MaxRuleSeries, DefaultMaxRuleSeries)
	o.MissLogBurst = positiveOr(o.MissLogBurst, DefaultMissLogBurst)
	o.MissLogInterval = positiveOr(o.MissLogInterval, DefaultMissLogInterval)
	o.MissLogHosts = positiveOr(o.MissLogHosts, DefaultMissLogHosts)
	o.TopMisses = positiveOr(o.TopMisses, DefaultTopMisses)
	o.MaxEstateSeries = positiveOr(o.MaxEstateSeries, DefaultMaxEstateSeries)
	return o
}

// positiveOr returns v, or def when v is zero or negative: an Options
// field that is not positive asks for its default.
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Label values of the fixed enums; a value's position is its index in
// the tables of counters.
var (
	listeners  = []proxy.Listener{proxy.ListenerConnect, proxy.ListenerHTTP, proxy.ListenerSNI}
	actions    = []proxy.Action{proxy.ActionAllow, proxy.ActionDeny, proxy.ActionWouldDeny}
	dialErrors = []proxy.DialError{proxy.DialDNS, proxy.DialRefused, proxy.DialTimeout, proxy.DialReset, proxy.DialUnreach, proxy.DialOther}
)

// reasonNone is the reason label of allowed requests.
const reasonNone = "none"

// numReasonSlots sizes per-reason tables: every rules.Reason including
// ReasonNone.
var numReasonSlots = len(rules.Reasons()) + 1

// Recorder implements proxy.Recorder with Prometheus collectors, the miss
// log and the usage tables behind /rules and /misses. It is safe for
// concurrent use. Build it with New.
type Recorder struct {
	opts Options
	log  *slog.Logger

	// requests[listener][action][reason]; nil where the combination
	// cannot happen (allow with a reason, deny without one).
	requests [3][3][]prometheus.Counter
	// requestsVec counts combinations outside the fixed enums, should
	// the proxy ever send one.
	requestsVec *prometheus.CounterVec

	tunnelsActive   [3]prometheus.Gauge
	tunnelDuration  [3]prometheus.Observer
	bytesUpstream   [3]prometheus.Counter
	bytesDownstream [3]prometheus.Counter
	dialDuration    prometheus.Histogram
	dnsDuration     prometheus.Histogram
	upstreamErrors  map[proxy.DialError]prometheus.Counter

	reloads           *prometheus.CounterVec
	reloadSuccessful  prometheus.Gauge
	reloadSuccessTime prometheus.Gauge

	// binding is the installed ruleset with its per-entry counters.
	binding atomic.Pointer[binding]
	// estateSeries counts the per-estate series claimed, against
	// Options.MaxEstateSeries.
	estateSeries atomic.Int64
	// namesEvicted counts the names behind wildcard and glob entries
	// evicted from their bounded tables, global and per estate.
	namesEvicted atomic.Uint64

	misses *missLog
	top    *topMisses
	auth   *authFailures

	catalog *catalogChanges // reload diffs, tunnels on removed entries
}

// Compile-time check that Recorder is what the proxy calls.
var _ proxy.Recorder = (*Recorder)(nil)

// New registers egressgate's collectors, the Go and process collectors and
// egressgate_build_info on reg, and returns the Recorder that feeds them.
// Misses (and, with Options.AccessLog, closed tunnels) are logged to log;
// nil discards them. Call Install before the proxy records anything.
func New(reg prometheus.Registerer, log *slog.Logger, opts Options) *Recorder {
	opts = opts.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	r := &Recorder{opts: opts, log: log}
	r.catalog = newCatalogChanges(reg, log)

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egressgate_build_info",
		Help: "A metric with a constant value of 1, labelled by the egressgate version and the Go version it was built with.",
	}, []string{"version", "goversion"}).WithLabelValues(opts.Version, runtime.Version()).Set(1)
	r.newRequestMetrics(f)
	r.newTunnelMetrics(f)
	r.newUpstreamMetrics(f)
	r.newReloadMetrics(f)

	reg.MustRegister(&catalogCollector{r: r})
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "egressgate_rule_names_evicted_total",
		Help: "Names admitted through a wildcard or glob entry that were evicted, least used first, from the entry's table of at most 32 names (kept globally and per estate, shown on /rules).",
	}, func() float64 { return float64(r.namesEvicted.Load()) })

	missOutcomes := f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_misslog_misses_total",
		Help: "Denied and would-deny decisions by what the miss log did with them: logged on their own line, folded into a miss-folded line, or counted in a miss-overflow line.",
	}, []string{"outcome"})
	r.misses = newMissLog(log, opts, missOutcomes)
	r.top = newTopMisses(opts.TopMisses)
	r.auth = newAuthFailures(reg, log, opts.MissLogInterval)
	return r
}

// newRequestMetrics makes egressgate_requests_total with every
// combination of the fixed enums bound in advance.
func (r *Recorder) newRequestMetrics(f promauto.Factory) {
	r.requestsVec = f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_requests_total",
		Help: "Admission decisions, by listener, decision (allow, deny, would-deny) and deny reason (none when allowed).",
	}, []string{"listener", "decision", "reason"})
	for li, l := range listeners {
		for ai, a := range actions {
			r.requests[li][ai] = make([]prometheus.Counter, numReasonSlots)
			if a == proxy.ActionAllow {
				r.requests[li][ai][rules.ReasonNone] = r.requestsVec.WithLabelValues(string(l), string(a), reasonNone)
				continue
			}
			for _, reason := range rules.Reasons() {
				r.requests[li][ai][reason] = r.requestsVec.WithLabelValues(string(l), string(a), reason.String())
			}
		}
	}
}

// newTunnelMetrics makes the per-listener tunnel gauges, histograms and
// byte counters.
func (r *Recorder) newTunnelMetrics(f promauto.Factory) {
	active := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egressgate_tunnels_active",
		Help: "Tunnels and forwarded requests open now, by listener.",
	}, []string{"listener"})
	duration := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "egressgate_tunnel_duration_seconds",
		Help:    "How long tunnels and forwarded requests stayed open, by listener.",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400},
	}, []string{"listener"})
	bytes := f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_tunnel_bytes_total",
		Help: "Bytes moved by closed tunnels and forwarded requests, by listener and direction (upstream is client to server).",
	}, []string{"listener", "direction"})
	for li, l := range listeners {
		r.tunnelsActive[li] = active.WithLabelValues(string(l))
		r.tunnelDuration[li] = duration.WithLabelValues(string(l))
		r.bytesUpstream[li] = bytes.WithLabelValues(string(l), "upstream")
		r.bytesDownstream[li] = bytes.WithLabelValues(string(l), "downstream")
	}
}

// newUpstreamMetrics makes the dial and DNS histograms and the upstream
// error counters.
func (r *Recorder) newUpstreamMetrics(f promauto.Factory) {
	r.dialDuration = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "egressgate_upstream_dial_duration_seconds",
		Help:    "Time to connect to the upstream server of an admitted request, DNS lookup excluded.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
	})
	r.dnsDuration = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "egressgate_dns_lookup_duration_seconds",
		Help:    "Time to resolve the upstream name of an admitted request.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10),
	})
	errs := f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_upstream_errors_total",
		Help: "Failed upstream dials of admitted requests, by reason.",
	}, []string{"reason"})
	r.upstreamErrors = make(map[proxy.DialError]prometheus.Counter, len(dialErrors))
	for _, e := range dialErrors {
		r.upstreamErrors[e] = errs.WithLabelValues(string(e))
	}
}

// newReloadMetrics makes the reload counters and gauges.
func (r *Recorder) newReloadMetrics(f promauto.Factory) {
	r.reloads = f.NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_catalog_reloads_total",
		Help: "Catalog reload attempts, by result (success or failure).",
	}, []string{"result"})
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	r.reloadSuccessful = f.NewGauge(prometheus.GaugeOpts{
		Name: "egressgate_catalog_last_reload_successful",
		Help: "Whether the last catalog load or reload succeeded (1) or failed (0).",
	})
	r.reloadSuccessTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "egressgate_catalog_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful catalog load or reload.",
	})
}

// Decided counts the decision, a hit on the admitting entry when allowed,
// and logs and ranks it as a miss when denied or would-be denied. An
// allowed decision neither allocates nor locks.
func (r *Recorder) Decided(d *proxy.Decision) {
	r.countRequest(d)
	r.countEstate(d)
	switch d.Action {
	case proxy.ActionAllow:
		if d.Verdict.Entry != nil {
			r.hit(d)
		}
	case proxy.ActionDeny, proxy.ActionWouldDeny:
		r.misses.record(d)
		r.top.record(d)
	}
}

func (r *Recorder) countRequest(d *proxy.Decision) {
	li, ai := slices.Index(listeners, d.Listener), slices.Index(actions, d.Action)
	if li >= 0 && ai >= 0 && int(d.Reason) < numReasonSlots {
		if c := r.requests[li][ai][d.Reason]; c != nil {
			c.Inc()
			return
		}
	}
	// Outside the fixed combinations: the label values still come from
	// the proxy's and rules' enums, never from the client.
	reason := d.Reason.String()
	if d.Reason == rules.ReasonNone {
		reason = reasonNone
	}
	r.requestsVec.WithLabelValues(string(d.Listener), string(d.Action), reason).Inc()
}

// Dialed records the DNS and connect times of an admitted request and
// counts a failed dial by its reason and, for an allowed decision, on its
// entry: admitted, but the vendor was not reached.
func (r *Recorder) Dialed(d *proxy.Decision, lookup, dial time.Duration, err proxy.DialError) {
	if lookup > 0 {
		r.dnsDuration.Observe(lookup.Seconds())
	}
	if dial > 0 {
		r.dialDuration.Observe(dial.Seconds())
	}
	if err == proxy.DialOK {
		return
	}
	c, ok := r.upstreamErrors[err]
	if !ok {
		c = r.upstreamErrors[proxy.DialOther]
	}
	c.Inc()
	if d.Action == proxy.ActionAllow && d.Verdict.Entry != nil {
		r.failedUpstream(d)
		r.countEstateFailure(d)
	}
}

// TunnelOpened counts an open tunnel or forwarded request.
func (r *Recorder) TunnelOpened(d *proxy.Decision) {
	if li := slices.Index(listeners, d.Listener); li >= 0 {
		r.tunnelsActive[li].Inc()
	}
	r.catalog.tunnel(d, 1)
}

// TunnelClosed records what a tunnel moved and for how long, and logs it
// when Options.AccessLog is set.
func (r *Recorder) TunnelClosed(d *proxy.Decision, s proxy.TunnelStats) {
	if li := slices.Index(listeners, d.Listener); li >= 0 {
		r.tunnelsActive[li].Dec()
		r.tunnelDuration[li].Observe(s.Duration.Seconds())
		r.bytesUpstream[li].Add(float64(s.Upstream))
		r.bytesDownstream[li].Add(float64(s.Downstream))
	}
	r.catalog.tunnel(d, -1)
	if r.opts.AccessLog {
		logAccess(r.log, d, s)
	}
}

// ReloadResult records a catalog load or reload attempt: err nil for
// success. With rules.ReloadHooks: OnSwap calls Install then
// ReloadResult(nil) (the first load then counts as one success), OnError
// calls ReloadResult(err).
func (r *Recorder) ReloadResult(err error) {
	if err != nil {
		r.reloads.WithLabelValues("failure").Inc()
		r.reloadSuccessful.Set(0)
		return
	}
	r.reloads.WithLabelValues("success").Inc()
	r.reloadSuccessful.Set(1)
	r.reloadSuccessTime.SetToCurrentTime()
}

// Flush writes the pending miss-folded and miss-overflow lines now instead
// of at the end of the fold interval. Call it on shutdown.
func (r *Recorder) Flush() {
	r.misses.flush(context.Background())
	r.auth.flush(context.Background())
}
