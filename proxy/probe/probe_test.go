package probe

import (
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
)

// stepSummary renders a result's steps as "dns ok", "tcp/443 FAIL" ...
func stepSummary(r Result) string {
	var parts []string
	for _, s := range r.Steps {
		name := s.Step
		if s.Port != 0 {
			name += "/" + itoa(s.Port)
		}
		if s.OK {
			parts = append(parts, name+" ok")
		} else {
			parts = append(parts, name+" FAIL")
		}
	}
	return strings.Join(parts, ", ")
}

func TestProbe(t *testing.T) {
	ca := proxytest.NewCert(t, 1, "ok.example.org")
	tport, handshakes := tlsServer(t, ca.TLS)
	closed := netip.MustParseAddrPort(proxytest.FreeAddr(t)).Port()
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	hosts := proxy.Hosts{"ok.example.org": lo, "mismatch.example.org": lo, "closed.example.org": lo}

	targets := []Target{
		{Name: "closed.example.org", Ports: []uint16{closed}},
		{Name: "mismatch.example.org", Ports: []uint16{tport}},
		{Name: "nxdomain.example.org", Ports: []uint16{tport}},
		{Name: "ok.example.org", Ports: []uint16{tport}},
	}
	for i := range targets {
		targets[i].Rule = targets[i].Name
	}

	// Through egressgate itself: it admits all four names, resolves
	// through the same hosts and may dial loopback.
	proxyAddr := startProxy(t, proxy.Config{Hosts: hosts, AllowDest: loopback},
		"ok.example.org:"+itoa(tport), "mismatch.example.org:"+itoa(tport), "nxdomain.example.org:"+itoa(tport), "closed.example.org:"+itoa(closed))
	// A name the proxy refuses: its 403 is the tcp step's failure.
	refused := Target{Name: "ok.example.org", Rule: "ok.example.org", Ports: []uint16{tport}}

	tests := []struct {
		name   string
		prober Prober
		want   []string // stepSummary per target
		ok     []bool   // OK() per target
	}{
		{"direct", Prober{Proxy: proxy.Config{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopback}, RootCAs: ca.Pool, TLSPorts: []uint16{tport}}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL", // certificate is for ok.example.org
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " ok",
		}, []bool{false, false, false, true}},
		{"system roots", Prober{Proxy: proxy.Config{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopback}, TLSPorts: []uint16{tport}}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL",
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL", // the test CA is not a system root
		}, []bool{false, false, false, false}},
		{"not a TLS port", Prober{Proxy: proxy.Config{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopback}, Concurrency: 1}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok",
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok",
		}, []bool{false, true, false, true}},
		// The hosts file maps every name to loopback, which the proxy
		// refuses without AllowDest: so does the probe, at the dns step.
		{"private destination", Prober{Proxy: proxy.Config{Hosts: hosts, Resolver: noDNS{}}, RootCAs: ca.Pool, TLSPorts: []uint16{tport}}, []string{
			"dns FAIL", "dns FAIL", "dns FAIL", "dns FAIL",
		}, []bool{false, false, false, false}},
		{"via egressgate", Prober{Via: &url.URL{Scheme: "http", Host: proxyAddr}, RootCAs: ca.Pool, TLSPorts: []uint16{tport}}, []string{
			"tcp/" + itoa(closed) + " FAIL", // 502 upstream-refused
			"tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL",
			"dns FAIL", // 502 upstream-dns
			"tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " ok",
		}, []bool{false, false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress []int
			tt.prober.Timeout = 5 * time.Second
			tt.prober.Progress = func(done, total int) {
				if total != len(targets) {
					t.Errorf("Progress total = %d, want %d", total, len(targets))
				}
				progress = append(progress, done)
			}
			results := tt.prober.Run(context.Background(), targets)
			if len(results) != len(targets) {
				t.Fatalf("%d results, want %d", len(results), len(targets))
			}
			for i, r := range results {
				if r.Name != targets[i].Name {
					t.Fatalf("result %d is %q, want %q: order lost", i, r.Name, targets[i].Name)
				}
				if got := stepSummary(r); got != tt.want[i] {
					t.Errorf("%s: %s, want %s (%+v)", r.Name, got, tt.want[i], r.Steps)
				}
				if r.OK() != tt.ok[i] {
					t.Errorf("%s: OK() = %v", r.Name, r.OK())
				}
			}
			if !slices.Equal(progress, []int{1, 2, 3, 4}) {
				t.Errorf("progress = %v, want 1..4", progress)
			}
		})
	}
	if handshakes.Load() == 0 {
		t.Error("the TLS server completed no handshake")
	}

	// A refusal names the proxy's reason.
	addr2 := startProxy(t, proxy.Config{Hosts: hosts, AllowDest: loopback}, "other.example.org")
	res := (&Prober{Via: &url.URL{Scheme: "http", Host: addr2}, Timeout: 5 * time.Second}).Run(context.Background(), []Target{refused})
	if s, ok := res[0].Step(StepTCP, tport); !ok || s.OK || !strings.Contains(s.Error, "403") || !strings.Contains(s.Error, "not-in-catalog") {
		t.Errorf("refused tunnel: %+v, want a tcp failure naming 403 not-in-catalog", res[0].Steps)
	}

	// A name the hosts file maps to loopback is refused as the proxy
	// would refuse it, and its addresses are still shown.
	onLoopback := proxy.Config{Hosts: hosts, Resolver: noDNS{}}
	res = (&Prober{Proxy: onLoopback, Timeout: 5 * time.Second}).Run(context.Background(), []Target{refused})
	if s, ok := res[0].Step(StepDNS, 0); !ok || s.OK || !strings.Contains(s.Error, "private-destination") || len(res[0].Addrs) == 0 || len(res[0].Steps) != 1 {
		t.Errorf("name on loopback: %+v %v, want only a dns failure naming private-destination", res[0].Steps, res[0].Addrs)
	}
	// The proxy with the same configuration refuses it for that reason.
	addr3 := startProxy(t, onLoopback, refused.Name+":"+itoa(tport))
	res = (&Prober{Via: &url.URL{Scheme: "http", Host: addr3}, Timeout: 5 * time.Second}).Run(context.Background(), []Target{refused})
	if s, ok := res[0].Step(StepTCP, tport); !ok || s.OK || !strings.Contains(s.Error, "403") || !strings.Contains(s.Error, "private-destination") {
		t.Errorf("through the proxy, name on loopback: %+v, want a tcp failure naming 403 private-destination", res[0].Steps)
	}
}

// TestProbeStops pins that Run returns when its context ends, without
// waiting for steps nobody started.
func TestProbeStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	targets := make([]Target, 100)
	for i := range targets {
		targets[i] = Target{Name: "x.example.org", Ports: []uint16{443}}
	}
	var lookups atomic.Int64
	res := (&Prober{Proxy: proxy.Config{Resolver: countingDNS{&lookups}}, Concurrency: 2}).Run(ctx, targets)
	if len(res) != len(targets) {
		t.Fatalf("%d results, want %d", len(res), len(targets))
	}
	// Each send races the ended context, so a few targets may still be
	// probed; all 100 only if Run ignores the context.
	if n := lookups.Load(); n >= int64(len(targets)) {
		t.Errorf("%d of %d targets probed after the context ended", n, len(targets))
	}
}

// countingDNS is noDNS that counts its lookups.
type countingDNS struct{ n *atomic.Int64 }

func (r countingDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.n.Add(1)
	return noDNS{}.LookupNetIP(ctx, network, host)
}
