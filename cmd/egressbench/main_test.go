package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunTiny runs the whole tool in a tiny mode against direct and a
// minimal CONNECT proxy inside the test (and a second one as the
// reference), and checks the report parses and holds every scenario for
// each. No timing is asserted: the machine is shared.
func TestRunTiny(t *testing.T) {
	proxy, ref := miniProxy(t), miniProxy(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{
		"--targets", "direct",
		"--external", fmt.Sprintf("mini=%s,pid=%d", proxy, os.Getpid()),
		"--external", fmt.Sprintf("ref=%s", ref),
		"--subject", "mini", "--baseline", "direct", "--reference", "ref",
		"--rounds", "1", "--clients", "1,4", "--bulk-tunnels", "1,2",
		"--rate-time", "200ms", "--bulk-time", "200ms", "--idle", "20", "--settle", "10ms",
		"--hold", "50", "--hold-idle", "100ms", "--hold-clients", "2",
		"--json", jsonPath,
	}
	out := runTool(t, args)
	for _, want := range []string{"tunnels/s", "MB/s", "p99 CONNECT ms", "mini/direct", "mini/ref", "ref/direct", "ref: "} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report JSON does not parse: %v\n%s", err, b)
	}
	got := map[string]sample{}
	for _, s := range r.Samples {
		got[s.Target+" "+s.Scenario] = s
	}
	if r.Reference != "ref" {
		t.Errorf("report's reference is %q, want ref", r.Reference)
	}
	for _, target := range []string{"direct", "mini", "ref"} {
		for _, sc := range []string{"rate-1", "rate-4", "bulk-down-1", "bulk-up-1", "bulk-down-2", "bulk-up-2", "idle"} {
			s, ok := got[target+" "+sc]
			switch {
			case !ok:
				t.Errorf("no sample for %s %s", target, sc)
			case s.Errors > 0:
				t.Errorf("%s %s: %d errors, first: %s", target, sc, s.Errors, s.FirstError)
			case sc != "idle" && s.Tunnels == 0:
				t.Errorf("%s %s: no tunnels", target, sc)
			case strings.HasPrefix(sc, "bulk") && s.Bytes == 0:
				t.Errorf("%s %s: no bytes moved", target, sc)
			}
		}
	}
	if s := got["mini idle"]; s.RSSPerTunnelKiB == nil {
		t.Errorf("mini idle: no RSS per tunnel; sample %+v", s)
	}
	// The hold scenario needs a PID: measured on mini (this process), not
	// on direct or ref.
	if s := got["mini hold"]; s.Held == nil || *s.Held != 50 || s.Errors > 0 || s.FDsPerHeld == nil || s.IdleCPUPct == nil || s.P99HeldRatio == nil {
		t.Errorf("mini hold: want 50 held tunnels with descriptors, idle CPU and p99 ratio; sample %+v (first error %s)", s, s.FirstError)
	}
	if len(r.Checks) != len(checks) {
		t.Errorf("report has %d checks, want %d", len(r.Checks), len(checks))
	}
	for _, c := range r.Checks {
		if c.Against == "direct" && (c.Reference == nil || c.RefResult == "n/a") {
			t.Errorf("check %s %s: no value for the reference", c.Metric, c.Scenario)
		}
	}
}

func TestParseExternal(t *testing.T) {
	tests := []struct {
		in      string
		want    external
		wantErr bool
	}{
		{"p=127.0.0.1:3128", external{name: "p", addr: "127.0.0.1:3128"}, false},
		{"p=127.0.0.1:3128,pid=42", external{name: "p", addr: "127.0.0.1:3128", pid: 42}, false},
		{"127.0.0.1:3128", external{}, true},
		{"p=127.0.0.1:3128,pid=x", external{}, true},
	}
	for _, tt := range tests {
		got, err := parseExternal(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseExternal(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 2, 3}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got == nil || *got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := median(nil); got != nil {
		t.Errorf("median(nil) = %v, want nil", *got)
	}
}

// TestMain lets the test binary be the tool's own children, as the tool
// re-executes itself for them (the raw loop).
func TestMain(m *testing.M) {
	if code, ok := runChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestRunRate runs a short rate scenario through a minimal proxy. With
// --handshake replay, tunnels send a recorded ClientHello and get the
// reply in the clear, through the proxy and directly. With the raw
// target, the bare loop, started as a child process, is measured beside
// the proxy and the report compares the proxy with it.
func TestRunRate(t *testing.T) {
	tests := []struct {
		name    string
		targets string
		pid     bool     // give the proxy's PID
		flags   []string // the case's own
		want    string   // what the report must say
	}{
		{"replay", "direct", false, []string{"--handshake", "replay"}, "replay"},
		{"raw", "raw", true, []string{"--reference", ""}, "mini/raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			external := fmt.Sprintf("mini=%s", miniProxy(t))
			if tt.pid {
				external += fmt.Sprintf(",pid=%d", os.Getpid())
			}
			args := append([]string{
				"--targets", tt.targets, "--external", external,
				"--subject", "mini", "--baseline", "direct",
				"--rounds", "1", "--scenarios", "rate-4", "--clients", "4",
				"--rate-time", "200ms", "--settle", "10ms",
			}, tt.flags...)
			out := runTool(t, args)
			if strings.Contains(out, "errors:") || !strings.Contains(out, tt.want) {
				t.Errorf("report has errors or lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestRawTarget pins what the bare loop parses: a CONNECT to host:port,
// nothing else.
func TestRawTarget(t *testing.T) {
	l := rawLoop{name: benchHost}
	tests := []struct {
		head string
		want string
		ok   bool
	}{
		{"CONNECT " + benchHost + ":443 HTTP/1.1\r\nHost: x", "127.0.0.1:443", true},
		{"CONNECT 127.0.0.2:8443 HTTP/1.1", "127.0.0.2:8443", true},
		{"GET / HTTP/1.1", "", false},
		{"CONNECT " + benchHost + " HTTP/1.1", "", false},
		{"CONNECT", "", false},
	}
	for _, tt := range tests {
		got, ok := l.target([]byte(tt.head))
		if got != tt.want || ok != tt.ok {
			t.Errorf("target(%q) = %q, %v; want %q, %v", tt.head, got, ok, tt.want, tt.ok)
		}
	}
}
