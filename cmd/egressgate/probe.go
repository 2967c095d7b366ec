package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/probe"
	"github.com/egressgate/egressgate/rules"
)

// probeReport is the JSON form of a probe run.
type probeReport struct {
	Via     string         `json:"via,omitempty"` // the proxy probed through; empty: direct
	OK      bool           `json:"ok"`            // every step of every name succeeded
	Results []probe.Result `json:"results"`
	Skipped []probe.Skip   `json:"skipped"`
}

// runProbe is "egressgate probe": the document's DNS and connectivity
// checks over every concrete name of the effective catalog. Exit 0 when
// all pass, 1 when one fails, 2 for bad input.
func runProbe(fs *commandLine, args []string, stdout, stderr io.Writer) int {
	config := fs.addConfig()
	via := fs.String("via", "", "forward proxy `URL` (http://host:port) to CONNECT through; default: connect directly")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	hostsPath := fs.String("hosts", "", "hosts `file` (IP name...) overriding DNS for the names it lists")
	caPath := fs.String("ca", "", "PEM `file` of CA certificates to verify TLS with instead of the system roots")
	var allowDest []netip.Prefix
	fs.Var(prefixList{&allowDest}, "allow-dest", "private or reserved destination `CIDR` serve is told to allow anyway (repeatable), as for serve")
	tlsPorts := []uint16{443}
	fs.Var(portList{&tlsPorts}, "tls-ports", "`ports` whose connections get a TLS handshake (comma-separated)")
	concurrency := fs.Int("concurrency", probe.DefaultConcurrency, "names probed at once")
	timeout := fs.Duration("timeout", probe.DefaultTimeout, "time limit of each step")
	if exit, ok := fs.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	p := &probe.Prober{Proxy: proxy.Config{AllowDest: allowDest}, TLSPorts: tlsPorts, Concurrency: *concurrency, Timeout: *timeout}
	if err := setupProber(p, *via, *hostsPath, *caPath); err != nil {
		fmt.Fprintf(stderr, "egressgate probe: %v\n", err)
		return 2
	}
	if *concurrency < 1 || *timeout <= 0 {
		fmt.Fprintln(stderr, "egressgate probe: --concurrency and --timeout must be positive")
		return 2
	}
	rs, ok := loadConfig(*config, stderr)
	if !ok {
		return 2
	}
	targets, skipped := probe.Targets(rs.Matchers()...)
	if isTerminal(stderr) {
		p.Progress = func(done, total int) { fmt.Fprintf(stderr, "\rprobing %d/%d names", done, total) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results := p.Run(ctx, targets)
	if p.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	rep := probeReport{Via: *via, OK: true, Results: results, Skipped: skipped}
	for i := range results {
		rep.OK = rep.OK && results[i].OK()
	}
	if rep.Skipped == nil {
		rep.Skipped = []probe.Skip{}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		writeProbeTable(stdout, &rep)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "egressgate probe: interrupted")
		return 1
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// setupProber reads the --via URL, the hosts file and the CA file into p.
func setupProber(p *probe.Prober, via, hostsPath, caPath string) error {
	var err error
	if via != "" {
		if p.Via, err = parseVia(via); err != nil {
			return err
		}
	}
	if hostsPath != "" {
		if p.Proxy.Hosts, err = proxy.LoadHosts(hostsPath); err != nil {
			return err
		}
	}
	if caPath != "" {
		if p.RootCAs, err = loadCA(caPath); err != nil {
			return err
		}
	}
	return nil
}

// writeProbeTable prints one row per name and port, the failures with
// their errors, the skipped entries and a summary.
func writeProbeTable(w io.Writer, rep *probeReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPORT\tDNS\tTCP\tTLS")
	var failures []string
	passed := 0
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.OK() {
			passed++
		}
		dns := "-"
		if s, ok := r.Step(probe.StepDNS, 0); ok {
			dns = stepCell(s)
			if !s.OK {
				failures = append(failures, fmt.Sprintf("%s dns: %s", r.Name, s.Error))
			}
		} else if rep.Via != "" {
			dns = "by proxy"
		}
		for _, port := range r.Ports {
			tcp, tls := "-", "-"
			if s, ok := r.Step(probe.StepTCP, port); ok {
				tcp = stepCell(s)
				if !s.OK {
					failures = append(failures, fmt.Sprintf("%s:%d tcp: %s", r.Name, port, s.Error))
				}
			}
			if s, ok := r.Step(probe.StepTLS, port); ok {
				tls = stepCell(s)
				if !s.OK {
					failures = append(failures, fmt.Sprintf("%s:%d tls: %s", r.Name, port, s.Error))
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Name, port, dns, tcp, tls)
		}
	}
	tw.Flush()
	if len(failures) > 0 {
		fmt.Fprintln(w, "\nfailures:")
		for _, f := range failures {
			fmt.Fprintln(w, "  "+f)
		}
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintln(w, "\nskipped (no concrete name to probe):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range rep.Skipped {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Rule, s.Reason)
		}
		tw.Flush()
	}
	how := "directly"
	if rep.Via != "" {
		how = "through " + rep.Via
	}
	fmt.Fprintf(w, "\nprobed %s: %d passed, %d failed (names); skipped: %d (entries)\n",
		how, passed, len(rep.Results)-passed, len(rep.Skipped))
}

// stepCell is a step's table cell: "ok 12ms" or "FAIL".
func stepCell(s probe.Step) string {
	if !s.OK {
		return "FAIL"
	}
	return "ok " + s.Duration.Round(time.Millisecond).String()
}

// isTerminal reports whether w is a character device (a terminal), where
// a progress line that rewrites itself belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// probeLoop runs p on the current matcher every interval until ctx ends,
// and exports each run through m. The first run starts at once.
func probeLoop(ctx context.Context, interval time.Duration, p *probe.Prober, current func() []*rules.Matcher, m *metrics.ProbeMetrics, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		targets, _ := probe.Targets(current()...)
		start := time.Now()
		results := p.Run(ctx, targets)
		if ctx.Err() != nil {
			return
		}
		m.Observe(results)
		var failed []string
		for i := range results {
			if !results[i].OK() {
				failed = append(failed, results[i].Name)
			}
		}
		level := slog.LevelInfo
		if len(failed) > 0 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "probe run", "names", len(results), "failed", len(failed), "failed_names", failed,
			"duration_seconds", time.Since(start).Seconds())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// parseVia checks a --via URL.
func parseVia(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--via: %w", err)
	}
	if u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("--via %q: want http://host:port", s)
	}
	if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
		return nil, fmt.Errorf("--via %q: bad port", s)
	}
	return u, nil
}

// loadCA reads PEM certificates into a pool.
func loadCA(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("--ca " + path + ": no PEM certificate in it")
	}
	return pool, nil
}

// newServerProber probes as the proxy dials: its hosts file, resolver,
// destination check and parent proxy, its dial timeout per step, TLS on its SNI ports.
func newServerProber(cfg proxy.Config) *probe.Prober {
	return &probe.Prober{Proxy: cfg, Via: cfg.UpstreamProxy, TLSPorts: cfg.SNIPorts, Timeout: cfg.DialTimeout, Concurrency: 4}
}
