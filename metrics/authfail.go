package metrics

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/egressgate/egressgate/proxy"
)

// Messages of the authentication-failure lines.
const (
	// MsgAuthFailure is the first refused authentication of a client
	// address and user name in a fold interval.
	MsgAuthFailure = "auth-failure"
	// MsgAuthFailureFolded counts the further refusals of that client and
	// user in the interval.
	MsgAuthFailureFolded = "auth-failure-folded"
	// MsgAuthFailureOverflow counts the refusals of clients and users the
	// full fold table could not take.
	MsgAuthFailureOverflow = "auth-failure-overflow"
)

// Fields of the authentication-failure lines; the client's is FieldClient
// (an address, without the port: the port changes with every try).
const (
	FieldUser   = "user"   // the user name sent, escaped and capped; never the password
	FieldResult = "result" // a proxy.AuthResult
)

// authFoldHosts bounds the clients and users an interval keeps apart.
const authFoldHosts = 1000

// authFailures counts refused authentications by result and logs them
// folded: per client address and user name, one line for the first
// refusal of an interval and one with the count of the rest. A refusal for
// sending no credentials where they are required is the ordinary first
// step of a Basic challenge: it is counted, not logged.
type authFailures struct {
	log     *slog.Logger
	results map[proxy.AuthResult]prometheus.Counter
	fold    *foldTable[authFoldKey, authFold]
}

type authFoldKey struct {
	client netip.Addr
	user   string // escaped
}

type authFold struct {
	folded int
	last   proxy.AuthResult
}

func newAuthFailures(reg prometheus.Registerer, log *slog.Logger, interval time.Duration) *authFailures {
	vec := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "egressgate_auth_failures_total",
		Help: "Refused proxy authentications, by result: no-credentials, malformed, unknown-user, wrong-password, queue-full and backoff (refused without a check), tls-required.",
	}, []string{"result"})
	a := &authFailures{log: log, results: map[proxy.AuthResult]prometheus.Counter{}}
	a.fold = newFoldTable[authFoldKey, authFold](interval, authFoldHosts, a.flushOnTimer)
	for _, res := range proxy.AuthResults() {
		a.results[res] = vec.WithLabelValues(string(res))
	}
	return a
}

// AuthFailed counts and logs one refused authentication (proxy.AuthRecorder).
func (r *Recorder) AuthFailed(client netip.Addr, user string, result proxy.AuthResult) {
	r.auth.failed(client, user, result)
}

var _ proxy.AuthRecorder = (*Recorder)(nil)

func (a *authFailures) failed(client netip.Addr, user string, result proxy.AuthResult) {
	if c := a.results[result]; c != nil {
		c.Inc()
	}
	if result == proxy.AuthNoCredentials {
		return
	}
	key := authFoldKey{client.Unmap(), escapeHost(user)}
	first := false
	a.fold.note(key, func(f authFold, seen bool) authFold {
		if seen {
			f.folded++
			f.last = result
		} else {
			first = true
		}
		return f
	})
	if !first {
		return
	}
	a.log.LogAttrs(context.Background(), slog.LevelWarn, MsgAuthFailure,
		slog.String(FieldClient, key.client.String()), slog.String(FieldUser, key.user),
		slog.String(FieldResult, string(result)))
}

func (a *authFailures) flushOnTimer() { a.flush(context.Background()) }

// flush ends the interval: one auth-failure-folded line per client and
// user refused more than once, one auth-failure-overflow line when the
// table was full.
func (a *authFailures) flush(ctx context.Context) {
	lines, overflow := a.fold.drain(func(f authFold) bool { return f.folded > 0 }, func(x, y authFoldKey) int {
		return cmp.Or(x.client.Compare(y.client), strings.Compare(x.user, y.user))
	})
	interval := slog.Float64(FieldInterval, a.fold.interval.Seconds())
	for _, l := range lines {
		a.log.LogAttrs(ctx, slog.LevelWarn, MsgAuthFailureFolded,
			slog.String(FieldClient, l.key.client.String()), slog.String(FieldUser, l.key.user),
			slog.String(FieldResult, string(l.v.last)), slog.Int(FieldCount, l.v.folded), interval)
	}
	if overflow > 0 {
		a.log.LogAttrs(ctx, slog.LevelWarn, MsgAuthFailureOverflow, slog.Int(FieldCount, overflow), interval)
	}
}
