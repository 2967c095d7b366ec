package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressgate/egressgate/proxy"
)

func TestRegisterLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := proxy.Limits{MaxConns: 9247, Active: 12, RefusedMaxConns: 3, RefusedNoDescriptors: 2, OutOfDescriptors: 5}
	RegisterLimits(reg, func() proxy.Limits { return l })
	want := `
# HELP egressgate_proxy_connections_active Tunnels plus requests in flight, counted against the cap.
# TYPE egressgate_proxy_connections_active gauge
egressgate_proxy_connections_active 12
# HELP egressgate_proxy_connections_max Cap on tunnels plus requests in flight (--max-conns); -1 means no cap.
# TYPE egressgate_proxy_connections_max gauge
egressgate_proxy_connections_max 9247
# HELP egressgate_proxy_descriptor_exhaustion_total Times accepting or dialing failed with EMFILE or ENFILE, answered or not.
# TYPE egressgate_proxy_descriptor_exhaustion_total counter
egressgate_proxy_descriptor_exhaustion_total 5
# HELP egressgate_proxy_refused_total Connections answered 503 for a limit, by reason: max-conns (the cap) or out-of-descriptors (the process ran out of file descriptors).
# TYPE egressgate_proxy_refused_total counter
egressgate_proxy_refused_total{reason="max-conns"} 3
egressgate_proxy_refused_total{reason="out-of-descriptors"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checkFamilies(t, mfs)
}
