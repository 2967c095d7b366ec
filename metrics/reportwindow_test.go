package metrics

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/egressgate/egressgate/proxy"
)

// replica is one egressgate's metrics served on a fixed loopback address,
// so that it can be stopped and started again there (a restart).
type replica struct {
	addr string
	r    *Recorder
	srv  *http.Server
}

func startReplica(t *testing.T, addr string) *replica {
	t.Helper()
	_, r, reg := newListTest(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &replica{ln.Addr().String(), r, srv}
}

func (p *replica) hit(t *testing.T, host string, n int) {
	rs := p.r.binding.Load().ruleset
	for range n {
		p.r.Decided(decide(rs, proxy.ListenerConnect, host, 443))
	}
}

// TestReportPrometheusWindow runs report --prometheus on a real Prometheus
// scraping two replicas, one restarted inside the window: the hits before
// the restart still count (increase over the window, not the raw
// counters), and an entry hit only before the restart is used.
func TestReportPrometheusWindow(t *testing.T) {
	bin := needTool(t, "apt-get install prometheus", "prometheus")
	a := startReplica(t, "127.0.0.1:0")
	b := startReplica(t, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base, logs := startPrometheus(t, ctx, bin, a.addr, b.addr)
	// waitSamples waits until Prometheus holds n more samples of every
	// replica's up series than it did.
	samples := func() int {
		s, err := promQuery(ctx, http.DefaultClient, base, "min(count_over_time(up[5m]))")
		if err != nil || len(s) == 0 {
			return 0
		}
		return int(s[0].Value)
	}
	waitSamples := func(n int) {
		t.Helper()
		want := samples() + n
		for samples() < want {
			select {
			case <-ctx.Done():
				t.Fatalf("prometheus did not scrape both replicas\n%s", logs.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	waitSamples(2) // both at 0 first: what a replica exports from its start

	a.hit(t, "example.org", 3)
	b.hit(t, "example.org", 4)
	b.hit(t, "api.example.com", 1) // only before B's restart
	waitSamples(3)
	addr := b.addr
	b.srv.Close()
	waitSamples(2) // B down: up == 0 still counts as a sample
	b = startReplica(t, addr)
	waitSamples(2) // B back at 0
	b.hit(t, "example.org", 2)
	waitSamples(3)

	rep, err := FetchPrometheus(ctx, http.DefaultClient, base, PromOptions{Window: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]RuleUsage{}
	for _, u := range rep.Rules {
		got[u.Rule] = u
	}
	// increase() extrapolates to the window's edges: allow one hit over.
	t.Logf("example.org: %d hits over the window", got["example.org"].Hits)
	if h := got["example.org"].Hits; h < 9 || h > 10 {
		t.Errorf("example.org: %d hits over the window, want 9 (3 on A, 4 on B before its restart, 2 after; the raw counters say 5)", h)
	}
	if u := got["api.example.com"]; u.State != StateUsed {
		t.Errorf("api.example.com, hit only before B's restart: %s (%d hits), want used", u.State, u.Hits)
	}
	if u := got["10.1.0.0/16"]; u.State != StateNeverUsed || u.Hits != 0 {
		t.Errorf("10.1.0.0/16: %s (%d hits), want never-used", u.State, u.Hits)
	}
	if !strings.Contains(rep.Source, "hits over the last 5m") {
		t.Errorf("report source %q does not say its window", rep.Source)
	}
}
