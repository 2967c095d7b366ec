package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// This file is the probe: the source document's manual DNS and
// connectivity checks ("host", "curl", Resolve-DnsName), run over every
// concrete name of the catalog. It lives in proxy because it is the
// proxy's own resolve and dial steps (Hosts, Resolver, CONNECT to a
// parent) run ahead of time; what it finds is exported by metrics and
// printed by cmd.

// Probe steps: a fixed set, used as a metric label.
const (
	StepDNS = "dns" // the name resolves (Hosts, then the resolver)
	StepTCP = "tcp" // a TCP connection opens to the port (through Via: CONNECT answered 200)
	StepTLS = "tls" // a TLS handshake with SNI verifies the certificate for the name
)

// Defaults of a Prober's zero fields.
const (
	DefaultProbeTimeout     = 10 * time.Second
	DefaultProbeConcurrency = 8
)

// ProbeTarget is one concrete name to probe and the ports its entries
// list.
type ProbeTarget struct {
	Name  string   `json:"name"`
	Rule  string   `json:"rule"` // the catalog entry's pattern
	Ports []uint16 `json:"ports"`
}

// ProbeSkip is a catalog entry the probe cannot try, and why.
type ProbeSkip struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// refusedPrefix starts the reason an entry no estate admits is skipped
// for; the estates' deny reasons follow.
const refusedPrefix = "refused by every policy: "

// ProbeTargets returns the concrete names that any of the matchers (one
// per distinct estate policy) admits, sorted by name, with the ports of
// every entry that names each; and the entries that are skipped, once
// each: wildcards and globs (no name to try), address prefixes, examples
// of per-account hosts, and entries that no matcher admits.
func ProbeTargets(ms ...*rules.Matcher) ([]ProbeTarget, []ProbeSkip) {
	var targets []ProbeTarget
	var skipped []ProbeSkip
	index := map[string]int{}
	skippedWhy := map[string]string{}
	var skippedOrder []string // catalog order, first matcher first
	for _, m := range ms {
		for _, e := range m.Entries() {
			var why string
			switch {
			case e.Kind == rules.KindWildcard:
				why = "wildcard: no single name to try"
			case e.Kind == rules.KindGlob:
				why = "glob: no single name to try"
			case e.Kind == rules.KindCIDR:
				why = "address prefix: no name to resolve"
			case e.Example:
				why = "example of a per-account host"
			case e.Deny != rules.ReasonNone:
				why = refusedPrefix + e.Deny.String()
			}
			if why != "" {
				if prev, ok := skippedWhy[e.Pattern]; ok && strings.HasPrefix(prev, refusedPrefix) && !strings.Contains(prev, e.Deny.String()) {
					skippedWhy[e.Pattern] = prev + ", " + e.Deny.String() // each estate's reason
				}
				if _, ok := skippedWhy[e.Pattern]; !ok {
					skippedWhy[e.Pattern] = why
					skippedOrder = append(skippedOrder, e.Pattern)
				}
				continue
			}
			if i, ok := index[e.Pattern]; ok {
				for _, p := range e.Ports {
					if !slices.Contains(targets[i].Ports, p) {
						targets[i].Ports = append(targets[i].Ports, p)
					}
				}
				continue
			}
			index[e.Pattern] = len(targets)
			targets = append(targets, ProbeTarget{Name: e.Pattern, Rule: e.Pattern, Ports: slices.Clone(e.Ports)})
		}
	}
	for i := range targets {
		slices.Sort(targets[i].Ports)
	}
	slices.SortFunc(targets, func(a, b ProbeTarget) int { return strings.Compare(a.Name, b.Name) })
	for _, rule := range skippedOrder {
		if _, probed := index[rule]; !probed { // another estate admits it
			skipped = append(skipped, ProbeSkip{rule, skippedWhy[rule]})
		}
	}
	return targets, skipped
}

// ProbeResult is what the probe found for one name.
type ProbeResult struct {
	ProbeTarget
	// Addrs are the addresses the name resolved to; empty through Via.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Steps in order: dns (not run through Via unless the proxy reports
	// the name does not resolve), then tcp and, on TLS ports, tls for
	// each port. A step that could not run after a failed one is absent.
	Steps []ProbeStep `json:"steps"`
}

// OK reports whether every step succeeded.
func (r *ProbeResult) OK() bool {
	for _, s := range r.Steps {
		if !s.OK {
			return false
		}
	}
	return len(r.Steps) > 0
}

// Step returns the result of step on port (0 for dns), and false if it
// did not run.
func (r *ProbeResult) Step(step string, port uint16) (ProbeStep, bool) {
	for _, s := range r.Steps {
		if s.Step == step && s.Port == port {
			return s, true
		}
	}
	return ProbeStep{}, false
}

// ProbeStep is one check of one name.
type ProbeStep struct {
	Step     string        `json:"step"`           // StepDNS, StepTCP or StepTLS
	Port     uint16        `json:"port,omitempty"` // 0 for dns
	OK       bool          `json:"ok"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	Error    string        `json:"error,omitempty"`
}

// Prober runs the checks. The zero value probes directly with the
// system resolver and roots; every field's zero value is its default.
type Prober struct {
	// Hosts overrides resolution for the names it lists, as the proxy's.
	Hosts Hosts
	// HostsFile, when set, replaces Hosts, as Config.HostsFile does.
	HostsFile *HostsFile
	// AllowDest are the private or reserved destinations the proxy is
	// told to dial anyway (Config.AllowDest). A name that resolves only
	// to refused addresses fails its dns step as private-destination,
	// as the proxy would refuse it.
	AllowDest []netip.Prefix
	// Resolver resolves the other names. Nil means net.DefaultResolver.
	Resolver Resolver
	// Via is a forward proxy (http://[user:pass@]host:port, the port
	// required) to CONNECT through: egressgate itself, or another. Nil
	// probes directly.
	Via *url.URL
	// RootCAs verify the TLS certificates. Nil means the system roots.
	RootCAs *x509.CertPool
	// TLSPorts are the ports whose connections get a TLS handshake. Nil
	// means {443}.
	TLSPorts []uint16
	// Timeout bounds each step. Zero means DefaultProbeTimeout.
	Timeout time.Duration
	// Concurrency is how many names are probed at once. Zero means
	// DefaultProbeConcurrency.
	Concurrency int
	// Progress, when set, is called after each name with the count done
	// and the total. Calls may come from several goroutines, one at a
	// time.
	Progress func(done, total int)
}

// Run probes every target and returns the results in the targets' order.
// It stops early, leaving later results without steps, when ctx ends.
func (p *Prober) Run(ctx context.Context, targets []ProbeTarget) []ProbeResult {
	results := make([]ProbeResult, len(targets))
	workers := p.Concurrency
	if workers <= 0 {
		workers = DefaultProbeConcurrency
	}
	workers = min(workers, len(targets))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i] = p.probe(ctx, targets[i])
				if p.Progress != nil {
					mu.Lock()
					done++
					p.Progress(done, len(targets))
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range targets {
		results[i].ProbeTarget = targets[i]
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results
}

// probe checks one name.
func (p *Prober) probe(ctx context.Context, t ProbeTarget) ProbeResult {
	r := ProbeResult{ProbeTarget: t}
	if p.Via != nil {
		for _, port := range t.Ports {
			if !p.probePortVia(ctx, &r, port) {
				break // the proxy says the name does not resolve
			}
		}
		return r
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, p.timeout())
	hosts := p.Hosts
	if p.HostsFile != nil {
		hosts = p.HostsFile.Hosts()
	}
	addrs, _, err := lookupHost(lctx, hosts, p.Resolver, t.Name)
	cancel()
	r.Addrs = addrs
	if err == nil {
		_, err = destPolicy{allow: p.AllowDest}.route(addrs, t.Name, 0)
		if errors.Is(err, errPrivateDestination) {
			err = fmt.Errorf("%s: every address is private, loopback or reserved: the proxy refuses it unless --allow-dest lists it", rules.ReasonPrivateDestination)
		}
	}
	r.Steps = append(r.Steps, stepResult(StepDNS, 0, start, err))
	if err != nil {
		return r
	}
	for _, port := range t.Ports {
		p.probePort(ctx, &r, port)
	}
	return r
}

// probePort connects to the name's addresses on port, in turn, and on a
// TLS port shakes hands over the connection.
func (p *Prober) probePort(ctx context.Context, r *ProbeResult, port uint16) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.timeout())
	addrs, _ := destPolicy{allow: p.AllowDest}.route(r.Addrs, r.Name, port)
	c, err := dialAddrs(dctx, addrs)
	cancel()
	r.Steps = append(r.Steps, stepResult(StepTCP, port, start, err))
	if err != nil {
		return
	}
	defer c.Close()
	p.handshake(ctx, r, c, port)
}

// probePortVia opens a CONNECT tunnel to name:port through Via and, on a
// TLS port, shakes hands through it. It returns false when the proxy
// answered that the name does not resolve (recorded as the dns step).
func (p *Prober) probePortVia(ctx context.Context, r *ProbeResult, port uint16) bool {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.timeout())
	c, reason, err := p.connectVia(dctx, net.JoinHostPort(r.Name, strconv.Itoa(int(port))))
	cancel()
	if reason == rules.ReasonUpstreamDNS.String() {
		r.Steps = append(r.Steps, stepResult(StepDNS, 0, start, err))
		return false
	}
	r.Steps = append(r.Steps, stepResult(StepTCP, port, start, err))
	if err != nil {
		return true
	}
	defer c.Close()
	p.handshake(ctx, r, c, port)
	return true
}

// connectVia opens a tunnel to target through Via. On a refusal it
// returns the proxy's reason (reasonHeader; empty from another proxy).
func (p *Prober) connectVia(ctx context.Context, target string) (net.Conn, string, error) {
	var header http.Header
	if u := p.Via.User; u != nil {
		pw, _ := u.Password()
		header = http.Header{"Proxy-Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw))}}
	}
	c, pending, err := connectclient.Dial(ctx, &net.Dialer{}, p.Via.Host, target, header)
	var ref *connectclient.Refusal
	if errors.As(err, &ref) {
		reason := ref.Header.Get(reasonHeader)
		msg := "proxy answered " + ref.Line
		if reason != "" {
			msg += " (" + reason + ")"
		}
		return nil, reason, errors.New(msg)
	}
	if err != nil {
		return nil, "", err
	}
	if len(pending) > 0 {
		c.Close()
		return nil, "", fmt.Errorf("proxy %s: sent bytes after its 200 before the client spoke", p.Via.Host)
	}
	return c, "", nil
}

// handshake runs the TLS step on c when port is a TLS port.
func (p *Prober) handshake(ctx context.Context, r *ProbeResult, c net.Conn, port uint16) {
	tlsPorts := p.TLSPorts
	if tlsPorts == nil {
		tlsPorts = []uint16{443}
	}
	if !slices.Contains(tlsPorts, port) {
		return
	}
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	tc := tls.Client(c, &tls.Config{ServerName: r.Name, RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12})
	err := tc.HandshakeContext(hctx)
	r.Steps = append(r.Steps, stepResult(StepTLS, port, start, err))
}

func (p *Prober) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultProbeTimeout
	}
	return p.Timeout
}

// stepResult records a step that began at start and ended with err.
func stepResult(step string, port uint16, start time.Time, err error) ProbeStep {
	d := time.Since(start)
	s := ProbeStep{Step: step, Port: port, OK: err == nil, Duration: d, Seconds: d.Seconds()}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}
