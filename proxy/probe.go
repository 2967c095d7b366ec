package proxy

import (
	"bufio"
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
	addrs, err := p.lookup(ctx, t.Name)
	r.Addrs = addrs
	r.Steps = append(r.Steps, stepResult(StepDNS, 0, start, err))
	if err != nil {
		return r
	}
	for _, port := range t.Ports {
		p.probePort(ctx, &r, port)
	}
	return r
}

// lookup resolves name as the proxy does: Hosts first, then the resolver.
func (p *Prober) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	if addrs, ok := p.Hosts[name]; ok {
		return addrs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip", name)
	if err == nil && len(addrs) == 0 {
		err = errNoAddresses
	}
	return addrs, err
}

// probePort connects to the name's addresses on port, in turn, and on a
// TLS port shakes hands over the connection.
func (p *Prober) probePort(ctx context.Context, r *ProbeResult, port uint16) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.timeout())
	addrs := make([]netip.AddrPort, len(r.Addrs))
	for i, a := range r.Addrs {
		addrs[i] = netip.AddrPortFrom(a.Unmap(), port)
	}
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

// connectVia dials Via and asks it for a tunnel to target. On a refusal
// it returns the proxy's reason (ReasonHeader; empty from another proxy).
func (p *Prober) connectVia(ctx context.Context, target string) (net.Conn, string, error) {
	var d net.Dialer
	via := p.Via.Host
	c, err := d.DialContext(ctx, "tcp", via)
	if err != nil {
		return nil, "", fmt.Errorf("proxy %s: %w", via, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if u := p.Via.User; u != nil {
		pw, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)) + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		c.Close()
		return nil, "", fmt.Errorf("proxy %s: sending CONNECT: %w", via, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("proxy %s: reading its answer: %w", via, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.Close()
		reason := resp.Header.Get(ReasonHeader)
		msg := "proxy answered " + resp.Status
		if reason != "" {
			msg += " (" + reason + ")"
		}
		return nil, reason, errors.New(msg)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		c.Close()
		return nil, "", fmt.Errorf("proxy %s: sent bytes after its 200 before the client spoke", via)
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
