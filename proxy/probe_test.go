package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// testCA is a certificate authority of the test's own, and a leaf it
// signed for names.
type testCA struct {
	Pool *x509.CertPool
	PEM  []byte // the CA certificate
	Leaf tls.Certificate
}

func newTestCA(t testing.TB, names ...string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "egressgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(der)
	ca := &testCA{Pool: x509.NewCertPool(), PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.Pool.AddCert(caCert)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca.Leaf = tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
	return ca
}

// tlsServer accepts TLS connections with cert on 127.0.0.1 and counts
// completed handshakes.
func tlsServer(t testing.TB, cert tls.Certificate) (string, *atomic.Int64) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					n.Add(1)
				}
			}()
		}
	}()
	return ln.Addr().String(), &n
}

func TestProbeTargets(t *testing.T) {
	c1, err := rules.ParseList("t.list", "t", []byte("b.example.org:443\n*.example.org\ntf-*-x.example.net\n192.0.2.0/24\na.example.org:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A second catalog lists b.example.org again, on another port.
	c2, err := rules.ParseList("u.list", "u", []byte("b.example.org:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c1, c2})
	if err != nil {
		t.Fatal(err)
	}
	targets, skipped := ProbeTargets(rs.Matcher)
	var got []string
	for _, tg := range targets {
		ports := make([]string, len(tg.Ports))
		for i, p := range tg.Ports {
			ports[i] = itoa(p)
		}
		got = append(got, tg.Name+" "+strings.Join(ports, ","))
	}
	if want := []string{"a.example.org 80", "b.example.org 80,443"}; !slices.Equal(got, want) {
		t.Errorf("targets = %q, want %q", got, want)
	}
	var skip []string
	for _, s := range skipped {
		skip = append(skip, s.Rule)
	}
	if want := []string{"*.example.org", "tf-*-x.example.net", "192.0.2.0/24"}; !slices.Equal(skip, want) {
		t.Errorf("skipped = %q, want %q", skip, want)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// stepSummary renders a result's steps as "dns ok", "tcp/443 FAIL" ...
func stepSummary(r ProbeResult) string {
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
	ca := newTestCA(t, "ok.example.org")
	tlsAddr, handshakes := tlsServer(t, ca.Leaf)
	tport := portOf(t, tlsAddr)
	closed := portOf(t, freePort(t))
	hosts := hostsFor("ok.example.org", "mismatch.example.org", "closed.example.org")

	targets := []ProbeTarget{
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
	proxyAddr, _ := startProxy(t, Config{
		Rules:     StaticRules{testMatcher(t, "ok.example.org:"+itoa(tport), "mismatch.example.org:"+itoa(tport), "nxdomain.example.org:"+itoa(tport), "closed.example.org:"+itoa(closed))},
		Hosts:     hosts,
		AllowDest: loopbackDest,
	})
	// A name the proxy refuses: its 403 is the tcp step's failure.
	refused := ProbeTarget{Name: "ok.example.org", Rule: "ok.example.org", Ports: []uint16{tport}}

	tests := []struct {
		name   string
		prober Prober
		want   []string // stepSummary per target
		ok     []bool   // OK() per target
	}{
		{"direct", Prober{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopbackDest, RootCAs: ca.Pool, TLSPorts: []uint16{tport}}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL", // certificate is for ok.example.org
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " ok",
		}, []bool{false, false, false, true}},
		{"system roots", Prober{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopbackDest, TLSPorts: []uint16{tport}}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL",
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok, tls/" + itoa(tport) + " FAIL", // the test CA is not a system root
		}, []bool{false, false, false, false}},
		{"not a TLS port", Prober{Hosts: hosts, Resolver: noDNS{}, AllowDest: loopbackDest, Concurrency: 1}, []string{
			"dns ok, tcp/" + itoa(closed) + " FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok",
			"dns FAIL",
			"dns ok, tcp/" + itoa(tport) + " ok",
		}, []bool{false, true, false, true}},
		// The hosts file maps every name to loopback, which the proxy
		// refuses without AllowDest: so does the probe, at the dns step.
		{"private destination", Prober{Hosts: hosts, Resolver: noDNS{}, RootCAs: ca.Pool, TLSPorts: []uint16{tport}}, []string{
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
	addr2, _ := startProxy(t, Config{Rules: StaticRules{testMatcher(t, "other.example.org")}, Hosts: hosts, AllowDest: loopbackDest})
	res := (&Prober{Via: &url.URL{Scheme: "http", Host: addr2}, Timeout: 5 * time.Second}).Run(context.Background(), []ProbeTarget{refused})
	if s, ok := res[0].Step(StepTCP, tport); !ok || s.OK || !strings.Contains(s.Error, "403") || !strings.Contains(s.Error, "not-in-catalog") {
		t.Errorf("refused tunnel: %+v, want a tcp failure naming 403 not-in-catalog", res[0].Steps)
	}

	// A name the hosts file maps to loopback is refused as the proxy
	// would refuse it, and its addresses are still shown.
	res = (&Prober{Hosts: hosts, Resolver: noDNS{}, Timeout: 5 * time.Second}).Run(context.Background(), []ProbeTarget{refused})
	if s, ok := res[0].Step(StepDNS, 0); !ok || s.OK || !strings.Contains(s.Error, "private-destination") || len(res[0].Addrs) == 0 || len(res[0].Steps) != 1 {
		t.Errorf("name on loopback: %+v %v, want only a dns failure naming private-destination", res[0].Steps, res[0].Addrs)
	}
}

// TestProbeStops pins that Run returns when its context ends, without
// waiting for steps nobody started.
func TestProbeStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	targets := make([]ProbeTarget, 100)
	for i := range targets {
		targets[i] = ProbeTarget{Name: "x.example.org", Ports: []uint16{443}}
	}
	res := (&Prober{Resolver: noDNS{}, Concurrency: 2}).Run(ctx, targets)
	if len(res) != len(targets) {
		t.Fatalf("%d results, want %d", len(res), len(targets))
	}
}

// TestProbeTargetsEstates probes the union of what the worked example's
// estates admit: a Live Response host that only newyork admits is probed
// once; one in a region no estate uses is skipped with its reason.
func TestProbeTargetsEstates(t *testing.T) {
	rs, err := rules.Load("../deploy/examples/enterprise/egressgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	targets, skipped := ProbeTargets(rs.Matchers()...)
	probed := map[string]bool{}
	for _, tg := range targets {
		if probed[tg.Name] {
			t.Errorf("%s probed twice", tg.Name)
		}
		probed[tg.Name] = true
	}
	why := map[string]string{}
	for _, s := range skipped {
		if _, dup := why[s.Rule]; dup {
			t.Errorf("%s skipped twice", s.Rule)
		}
		why[s.Rule] = s.Reason
	}
	for _, tc := range []struct{ name, skip string }{
		{"central.sophos.com", ""},
		{"live-terminal-us-east-2.prod.hydra.sophos.com", ""}, // newyork only
		{"live-terminal-eu-west-1.prod.hydra.sophos.com", "refused by every policy: live-response-off, region-excluded, not-licensed"},
		{"*.sophos.com", "wildcard: no single name to try"},
	} {
		if tc.skip == "" && !probed[tc.name] {
			t.Errorf("%s not probed (skipped: %q)", tc.name, why[tc.name])
		}
		if tc.skip != "" && (probed[tc.name] || why[tc.name] != tc.skip) {
			t.Errorf("%s: probed %v, skipped %q; want skipped %q", tc.name, probed[tc.name], why[tc.name], tc.skip)
		}
	}
}
