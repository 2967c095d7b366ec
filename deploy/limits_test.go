package deploy

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// Sizing per held tunnel and at start (docs/deploying.md#sizing): what the
// Deployment's --max-conns is derived from.
const (
	memoryPerTunnel = 20 << 10 // process and kernel, charged to the pod
	memoryAtStart   = 32 << 20
)

// TestMaxConnsFollowsMemoryLimit pins, in the base and the overlay as
// rendered, that the Deployment passes --max-conns equal to
// (memory limit - 32 MiB) / 20 KiB, so that a change to one without the
// other fails here.
func TestMaxConnsFollowsMemoryLimit(t *testing.T) {
	for _, dir := range []string{kubeDir, kubeOverlay} {
		dep := one[*appsv1.Deployment](t, buildKit(t, dir), "egressgate")
		c := dep.Spec.Template.Spec.Containers[0]
		limit := c.Resources.Limits.Memory()
		if limit.IsZero() {
			t.Errorf("%s: no memory limit", dir)
			continue
		}
		want := (limit.Value() - memoryAtStart) / memoryPerTunnel
		v, ok := flagValue(c.Args, "max-conns")
		if !ok {
			t.Errorf("%s: no --max-conns; want %d for the memory limit %s", dir, want, limit)
			continue
		}
		if got, err := strconv.ParseInt(v, 10, 64); err != nil || got != want {
			t.Errorf("%s: --max-conns=%s, want (%s - 32Mi) / 20Ki = %d", dir, v, limit, want)
		}
	}
}

// TestSystemdNofileMatchesSizing pins that the unit's LimitNOFILE is the
// row of docs/deploying.md's sizing table that names it, and that every
// row's --max-conns is the default egressgate computes from nofile.
func TestSystemdNofileMatchesSizing(t *testing.T) {
	nofile, err := strconv.Atoi(strings.Join(unitDirectives(t, systemdUnit)["LimitNOFILE"], ""))
	if err != nil {
		t.Fatalf("%s: LimitNOFILE: %v", systemdUnit, err)
	}
	data := readFile(t, deployingDoc)
	number := func(s string) int {
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		if err != nil {
			t.Fatalf("%s: sizing table: %q is not a number", deployingDoc, s)
		}
		return n
	}
	rows := regexp.MustCompile("(?m)^\\| ([0-9,]+)( \\([^|]*\\))? \\| ([0-9,]+) \\|$").FindAllStringSubmatch(string(data), -1)
	if len(rows) == 0 {
		t.Fatalf("%s: no sizing table of nofile and default --max-conns", deployingDoc)
	}
	unitRow := false
	for _, r := range rows {
		limit, maxConns := number(r[1]), number(r[3])
		if want := (limit - 256 - limit/16) / 2; maxConns != want {
			t.Errorf("%s: nofile %d: default --max-conns %d, want (nofile - 256 - nofile/16) / 2 = %d", deployingDoc, limit, maxConns, want)
		}
		if strings.Contains(r[2], "LimitNOFILE") {
			unitRow = true
			if limit != nofile {
				t.Errorf("%s: the sizing table gives the unit's LimitNOFILE as %d; %s has %d", deployingDoc, limit, systemdUnit, nofile)
			}
		}
	}
	if !unitRow {
		t.Errorf("%s: no sizing table row names the systemd unit's LimitNOFILE", deployingDoc)
	}
}
