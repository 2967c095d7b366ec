package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressgate/egressgate/proxy/probe"
)

func TestProbeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := NewProbeMetrics(reg)
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d series before the first run, want 0", n)
	}
	run := func(tcpOK bool) []probe.Result {
		tcp := probe.Step{Step: probe.StepTCP, Port: 443, OK: tcpOK, Duration: 20 * time.Millisecond}
		steps := []probe.Step{{Step: probe.StepDNS, OK: true, Duration: 5 * time.Millisecond}, tcp}
		if tcpOK {
			steps = append(steps, probe.Step{Step: probe.StepTLS, Port: 443, OK: true, Duration: 30 * time.Millisecond})
		}
		return []probe.Result{
			{Target: probe.Target{Name: "a.example.org", Rule: "a.example.org", Ports: []uint16{443}}, Steps: steps},
			{Target: probe.Target{Name: "b.example.org", Rule: "b.example.org", Ports: []uint16{443}},
				Steps: []probe.Step{{Step: probe.StepDNS, OK: false, Duration: time.Second}}},
		}
	}
	p.Observe(run(true))
	want := `
# HELP egressgate_probe_success Whether the last probe of a catalog name's step (dns, tcp, tls) on a port succeeded (1) or failed (0).
# TYPE egressgate_probe_success gauge
egressgate_probe_success{port="",rule="a.example.org",step="dns"} 1
egressgate_probe_success{port="443",rule="a.example.org",step="tcp"} 1
egressgate_probe_success{port="443",rule="a.example.org",step="tls"} 1
egressgate_probe_success{port="",rule="b.example.org",step="dns"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "egressgate_probe_success"); err != nil {
		t.Error(err)
	}
	// The next run replaces the last: tls did not run, so its series goes.
	p.Observe(run(false))
	want = `
# HELP egressgate_probe_success Whether the last probe of a catalog name's step (dns, tcp, tls) on a port succeeded (1) or failed (0).
# TYPE egressgate_probe_success gauge
egressgate_probe_success{port="",rule="a.example.org",step="dns"} 1
egressgate_probe_success{port="443",rule="a.example.org",step="tcp"} 0
egressgate_probe_success{port="",rule="b.example.org",step="dns"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "egressgate_probe_success"); err != nil {
		t.Error(err)
	}
	if got, ok := counterValue(t, reg, "egressgate_probe_duration_seconds", map[string]string{"rule": "b.example.org"}); !ok || got != 1 {
		t.Errorf("duration of b.example.org dns = %v (series found: %v), want 1", got, ok)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checkFamilies(t, mfs)
}
