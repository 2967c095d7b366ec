package metrics

import (
	"cmp"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// Messages of the lines the Recorder logs. The "time" field is slog's own:
// the decision's time for "miss", the time written otherwise.
const (
	// MsgMiss is one denied or would-deny decision.
	MsgMiss = "miss"
	// MsgMissFolded counts the misses of one host and reason that were not
	// logged on their own line in the last fold interval.
	MsgMissFolded = "miss-folded"
	// MsgMissOverflow counts the misses not logged on their own line in
	// the last fold interval because the fold table was full.
	MsgMissOverflow = "miss-overflow"
	// MsgAccess is one closed tunnel or forwarded request (Options.AccessLog).
	MsgAccess = "access"
)

// Field names of the logged lines.
const (
	FieldClient     = "client"   // client address and port
	FieldListener   = "listener" // connect, http or sni
	FieldHost       = "host"     // as the client sent it, escaped and capped
	FieldPort       = "port"
	FieldReason     = "reason" // rules.Reason name
	FieldSNI        = "sni"    // TLS server name, when one was read; escaped and capped
	FieldAction     = "action" // deny or would-deny; allow or would-deny on access lines
	FieldEstate     = "estate" // the client's estate, from the config
	FieldCount      = "count"  // misses summarised by a miss-folded or miss-overflow line
	FieldCatalog    = "catalog"
	FieldRule       = "rule" // admitting entry's pattern
	FieldUpstream   = "upstream_bytes"
	FieldDownstream = "downstream_bytes"
	FieldDuration   = "duration_seconds"
	FieldInterval   = "interval_seconds" // fold interval of a summary line
)

// maxLoggedHost caps a client-supplied name in logs and on /misses.
const maxLoggedHost = 255

// escapeHost makes a client-supplied name safe to log and show: invalid
// UTF-8, control and other non-printable characters and backslashes are
// escaped as in a Go string literal (without the quotes), and the result
// is cut at maxLoggedHost bytes with "…" appended. A plain name is
// returned as is, without allocating.
func escapeHost(s string) string {
	if len(s) <= maxLoggedHost && plainName(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = `\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:]
		case r == '\\':
			piece = `\\`
		case unicode.IsPrint(r):
			piece = s[i : i+size]
		default:
			q := strconv.QuoteRune(r)
			piece = q[1 : len(q)-1]
		}
		if b.Len()+len(piece) > maxLoggedHost {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// plainName reports whether s holds only printable ASCII other than space
// and backslash.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// Outcomes of a miss in the miss log, the values of
// egressgate_misslog_misses_total{outcome}.
const (
	outcomeLogged   = iota // on its own "miss" line
	outcomeFolded          // in a "miss-folded" line
	outcomeOverflow        // in the "miss-overflow" line
)

// missLog writes one line per miss, folding repeats: per host and reason,
// the first Options.MissLogBurst misses of an interval are logged, the
// rest are counted and summarised at the end of the interval. Every miss
// is counted in exactly one outcome.
type missLog struct {
	log      *slog.Logger
	burst    int
	outcomes [3]prometheus.Counter
	fold     *foldTable[foldKey, foldCount] // misses in this interval
}

type foldKey struct {
	host   string // escaped, lower case
	reason rules.Reason
}

type foldCount struct{ seen, folded int }

func newMissLog(log *slog.Logger, o Options, outcomes *prometheus.CounterVec) *missLog {
	m := &missLog{log: log, burst: o.MissLogBurst}
	m.fold = newFoldTable[foldKey, foldCount](o.MissLogInterval, o.MissLogHosts, m.flushOnTimer)
	for i, name := range []string{"logged", "folded", "overflow"} {
		m.outcomes[i] = outcomes.WithLabelValues(name)
	}
	return m
}

func (m *missLog) record(d *proxy.Decision) {
	host := escapeHost(d.Host)
	key := foldKey{strings.ToLower(host), d.Reason}
	outcome := outcomeLogged
	if !m.fold.note(key, func(c foldCount, _ bool) foldCount {
		c.seen++
		if c.seen > m.burst {
			c.folded++
			outcome = outcomeFolded
		}
		return c
	}) {
		outcome = outcomeOverflow
	}
	m.outcomes[outcome].Inc()
	if outcome != outcomeLogged {
		return
	}
	ctx := context.Background()
	if !m.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	rec := slog.NewRecord(t, slog.LevelInfo, MsgMiss, 0)
	if d.Client.IsValid() {
		rec.AddAttrs(slog.String(FieldClient, d.Client.String()))
	}
	rec.AddAttrs(
		slog.String(FieldListener, string(d.Listener)),
		slog.String(FieldHost, host),
		slog.Int(FieldPort, int(d.Port)),
		slog.String(FieldReason, d.Reason.String()),
	)
	if d.SNI != "" {
		rec.AddAttrs(slog.String(FieldSNI, escapeHost(d.SNI)))
	}
	if d.Estate != nil {
		rec.AddAttrs(slog.String(FieldEstate, d.Estate.Name))
	}
	rec.AddAttrs(slog.String(FieldAction, string(d.Action)))
	_ = m.log.Handler().Handle(ctx, rec)
}

func (m *missLog) flushOnTimer() { m.flush(context.Background()) }

// flush ends the interval: it logs one miss-folded line per host and
// reason with folded misses, one miss-overflow line if the table was
// full, and starts a new interval.
func (m *missLog) flush(ctx context.Context) {
	lines, overflow := m.fold.drain(func(c foldCount) bool { return c.folded > 0 }, func(a, b foldKey) int {
		return cmp.Or(strings.Compare(a.host, b.host), cmp.Compare(a.reason, b.reason))
	})
	interval := slog.Float64(FieldInterval, m.fold.interval.Seconds())
	for _, l := range lines {
		m.log.LogAttrs(ctx, slog.LevelInfo, MsgMissFolded,
			slog.String(FieldHost, l.key.host), slog.String(FieldReason, l.key.reason.String()),
			slog.Int(FieldCount, l.v.folded), interval)
	}
	if overflow > 0 {
		m.log.LogAttrs(ctx, slog.LevelInfo, MsgMissOverflow, slog.Int(FieldCount, overflow), interval)
	}
}

// judgedHost is an admitted host as it was judged (canonical), the
// spelling it went on in; a host that does not canonicalize is returned
// as sent.
func judgedHost(host string) string {
	if name, err := rules.CanonicalHost(host); err == nil {
		return name
	}
	return host
}

// logAccess writes the access line of a closed tunnel.
func logAccess(log *slog.Logger, d *proxy.Decision, s proxy.TunnelStats) {
	attrs := make([]slog.Attr, 0, 12)
	if d.Client.IsValid() {
		attrs = append(attrs, slog.String(FieldClient, d.Client.String()))
	}
	attrs = append(attrs,
		slog.String(FieldListener, string(d.Listener)),
		slog.String(FieldHost, escapeHost(judgedHost(d.Host))),
		slog.Int(FieldPort, int(d.Port)))
	if d.SNI != "" {
		attrs = append(attrs, slog.String(FieldSNI, escapeHost(d.SNI)))
	}
	attrs = append(attrs, slog.String(FieldAction, string(d.Action)))
	if e := d.Verdict.Entry; e != nil {
		attrs = append(attrs, slog.String(FieldCatalog, e.Catalog), slog.String(FieldRule, e.Pattern))
	}
	attrs = append(attrs,
		slog.Int64(FieldUpstream, s.Upstream),
		slog.Int64(FieldDownstream, s.Downstream),
		slog.Float64(FieldDuration, s.Duration.Seconds()))
	log.LogAttrs(context.Background(), slog.LevelInfo, MsgAccess, attrs...)
}
