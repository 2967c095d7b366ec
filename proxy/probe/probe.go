// Package probe runs the vendor document's manual DNS and connectivity
// checks ("host", "curl", Resolve-DnsName) over every concrete name of
// the catalog, ahead of traffic. It resolves and checks each name with
// the proxy's own step (proxy.Config.Resolve), so a name the proxy would
// refuse as private-destination is reported refused, and it opens its
// tunnels through a forward proxy with proxy/connectclient. What it finds
// is exported by metrics and printed by cmd.
package probe

import (
	"cmp"
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
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// Steps: a fixed set, used as a metric label.
const (
	StepDNS = "dns" // the name resolves (Hosts, then the resolver) to an address the proxy may dial
	StepTCP = "tcp" // a TCP connection opens to the port (through Via: CONNECT answered 200)
	StepTLS = "tls" // a TLS handshake with SNI verifies the certificate for the name
)

// Defaults of a Prober's zero fields.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 8
)

// reasonHeader is where egressgate's refusals carry their reason.
const reasonHeader = "X-Egressgate-Reason"

// Result is what the probe found for one name.
type Result struct {
	Target
	// Addrs are the addresses the name resolved to; empty through Via.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Steps in order: dns (not run through Via unless the proxy reports
	// the name does not resolve), then tcp and, on TLS ports, tls for
	// each port. A step that could not run after a failed one is absent.
	Steps []Step `json:"steps"`
}

// OK reports whether every step succeeded.
func (r *Result) OK() bool {
	for _, s := range r.Steps {
		if !s.OK {
			return false
		}
	}
	return len(r.Steps) > 0
}

// Step returns the result of step on port (0 for dns), and false if it
// did not run.
func (r *Result) Step(step string, port uint16) (Step, bool) {
	for _, s := range r.Steps {
		if s.Step == step && s.Port == port {
			return s, true
		}
	}
	return Step{}, false
}

// Step is one check of one name.
type Step struct {
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
	// Proxy is the proxy whose resolve-and-check the probe runs
	// (proxy.Config.Resolve): its Hosts, HostsFile, Resolver and
	// AllowDest. A name that resolves only to addresses it refuses fails
	// its dns step as private-destination. Its other fields are unused;
	// Via, not UpstreamProxy, is where the probe tunnels through.
	Proxy proxy.Config
	// Via is a forward proxy (http://[user:pass@]host:port, the port
	// required) to CONNECT through: egressgate itself, or another. Nil
	// probes directly.
	Via *url.URL
	// RootCAs verify the TLS certificates. Nil means the system roots.
	RootCAs *x509.CertPool
	// TLSPorts are the ports whose connections get a TLS handshake. Nil
	// means {443}.
	TLSPorts []uint16
	// Timeout bounds each step. Zero means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is how many names are probed at once. Zero means
	// DefaultConcurrency.
	Concurrency int
	// Progress, when set, is called after each name with the count done
	// and the total. Calls may come from several goroutines, one at a
	// time.
	Progress func(done, total int)
}

// Run probes every target and returns the results in the targets' order.
// It stops early, leaving later results without steps, when ctx ends.
func (p *Prober) Run(ctx context.Context, targets []Target) []Result {
	results := make([]Result, len(targets))
	workers := p.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
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
		results[i].Target = targets[i]
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
func (p *Prober) probe(ctx context.Context, t Target) Result {
	r := Result{Target: t}
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
	addrs, dial, err := p.Proxy.Resolve(lctx, t.Name, 0)
	cancel()
	r.Addrs = addrs
	if err == nil && len(dial) == 0 {
		err = fmt.Errorf("%s: every address is private, loopback or reserved: the proxy refuses it unless --allow-dest lists it", rules.ReasonPrivateDestination)
	}
	r.Steps = append(r.Steps, stepResult(StepDNS, 0, start, err))
	if err != nil {
		return r
	}
	for _, port := range t.Ports {
		p.probePort(ctx, &r, dial, port)
	}
	return r
}

// probePort connects on port to the addresses the proxy would dial, in
// turn, and on a TLS port shakes hands over the connection.
func (p *Prober) probePort(ctx context.Context, r *Result, dial []netip.AddrPort, port uint16) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.timeout())
	c, err := dialFirst(dctx, dial, port)
	cancel()
	r.Steps = append(r.Steps, stepResult(StepTCP, port, start, err))
	if err != nil {
		return
	}
	defer c.Close()
	p.handshake(ctx, r, c, port)
}

// dialFirst connects on port to each address in turn, as the proxy's
// dial step does, and returns the first connection or the first error.
func dialFirst(ctx context.Context, addrs []netip.AddrPort, port uint16) (net.Conn, error) {
	var d net.Dialer
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Addr(), port).String())
		if err == nil {
			return c, nil
		}
		firstErr = cmp.Or(firstErr, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// probePortVia opens a CONNECT tunnel to name:port through Via and, on a
// TLS port, shakes hands through it. It returns false when the proxy
// answered that the name does not resolve (recorded as the dns step).
func (p *Prober) probePortVia(ctx context.Context, r *Result, port uint16) bool {
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
func (p *Prober) handshake(ctx context.Context, r *Result, c net.Conn, port uint16) {
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
		return DefaultTimeout
	}
	return p.Timeout
}

// stepResult records a step that began at start and ended with err.
func stepResult(step string, port uint16, start time.Time, err error) Step {
	d := time.Since(start)
	s := Step{Step: step, Port: port, OK: err == nil, Duration: d, Seconds: d.Seconds()}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}
