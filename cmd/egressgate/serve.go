package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/export"
)

// listenOff turns an optional listener off.
const listenOff = "off"

// Flag defaults for the listeners; a config file's listeners: section
// replaces them, and a flag given on the command line replaces both.
const (
	defaultProxyListen = ":3128"
	defaultAdminListen = "127.0.0.1:9128"
)

// serveOptions are serve's flags, parsed.
type serveOptions struct {
	configPath   string
	listen       string
	sniListen    string
	admin        string
	hostsPath    string
	drainTimeout time.Duration
	logLevel     slog.Level
	explicit     map[string]bool // flags given on the command line or in the environment
	cfg          proxy.Config    // everything but Rules, Recorder and Log
	metrics      metrics.Options
	pprof        bool
	probeEvery   time.Duration // --probe-interval; 0: off
	adminOpts    adminOptions
	tlsListen    string // --listen-tls; "" off
	tlsCert      string
	tlsKey       string
	watch        watchOptions
}

// watchOptions are the flags of the catalog watch.
type watchOptions struct {
	url      string        // --catalog-watch: the vendor page; "" off
	interval time.Duration // --catalog-watch-interval
	via      string        // --catalog-watch-via: an HTTP proxy to fetch through
	// client, when set, fetches the page instead of one made from via
	// (tests give one that trusts their server).
	client *http.Client
}

// prefixList is a repeatable CIDR flag.
type prefixList struct{ p *[]netip.Prefix }

func (l prefixList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l prefixList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(f)); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return fmt.Errorf("%q is not a CIDR prefix (like 10.0.0.0/8) or an address", f)
			}
		}
		*l.p = append(*l.p, p.Masked())
	}
	return nil
}

// portList is a comma-separated list of ports.
type portList struct{ p *[]uint16 }

func (l portList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func (l portList) Set(v string) error {
	*l.p = []uint16{}
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port (1-65535)", f)
		}
		*l.p = append(*l.p, uint16(n))
	}
	return nil
}

// parseServeFlags parses serve's command line.
func parseServeFlags(args []string, stdout io.Writer) (*serveOptions, error) {
	o := &serveOptions{explicit: map[string]bool{}}
	fs := newCommandLine("serve")
	o.addListenerFlags(fs)
	r := o.addProxyFlags(fs)
	o.addTelemetryFlags(fs)
	pos, err := parseInterspersed(fs.FlagSet, args)
	if errors.Is(err, flag.ErrHelp) || err == nil && len(pos) == 1 && pos[0] == "help" {
		fs.usage(stdout)
		return nil, flag.ErrHelp
	}
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err := setFromEnv(fs.FlagSet); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { o.explicit[f.Name] = true })
	if err := o.check(r); err != nil {
		return nil, err
	}
	return o, nil
}

// addListenerFlags adds the flags that say where serve listens and what
// it reads.
func (o *serveOptions) addListenerFlags(fs *commandLine) {
	fs.StringVar(&o.configPath, "config", "", "config `file`; empty runs the embedded default catalog")
	fs.StringVar(&o.listen, "listen", defaultProxyListen, "forward proxy `address` (CONNECT and plain HTTP)")
	fs.StringVar(&o.tlsListen, "listen-tls", "", "HTTPS forward proxy `address` (TLS to the proxy, then CONNECT and plain HTTP inside it); needs --tls-cert and --tls-key")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "certificate `file` (PEM, chain first to last) of --listen-tls; re-read when it changes")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key `file` (PEM) of --listen-tls; re-read when it changes")
	fs.StringVar(&o.sniListen, "sni-listen", listenOff, "transparent TLS (SNI) listener `address`, or off")
	fs.StringVar(&o.admin, "admin", defaultAdminListen, "admin `address` (/metrics, /rules, /misses, /healthz, /readyz), or off")
	fs.StringVar(&o.hostsPath, "hosts", "", "hosts `file` (IP name...) overriding DNS for the names it lists")
}

// proxyFlags are the values of proxy flags that check turns into
// proxy.Config fields.
type proxyFlags struct {
	upstream    string
	sniRequired bool
	sniPorts    []uint16
	sniDest     uint
}

// addProxyFlags adds the flags of the proxy's behaviour: clients,
// destinations, the SNI check, timeouts, limits and the PAC file.
func (o *serveOptions) addProxyFlags(fs *commandLine) *proxyFlags {
	c := &o.cfg
	r := &proxyFlags{sniPorts: []uint16{443}, sniDest: 443}
	fs.StringVar(&r.upstream, "upstream-proxy", "", "parent proxy `URL` (http://host:port) to send everything through")
	fs.Var(prefixList{&c.Clients}, "clients", "client `CIDR` allowed to use the proxy (repeatable; default loopback and private ranges)")
	fs.Var(prefixList{&c.ProxyProtocolFrom}, "proxy-protocol-from", "load balancer `CIDR` whose connections must open with a PROXY protocol header (v1 or v2) naming the client (repeatable)")
	fs.Var(prefixList{&c.AllowDest}, "allow-dest", "private or reserved destination `CIDR` to allow anyway (repeatable)")
	fs.BoolVar(&c.Monitor, "monitor", false, "admit what the catalog denies and record it as would-deny")
	fs.BoolVar(&r.sniRequired, "sni-required", true, "deny tunnels to SNI ports that do not open with a ClientHello naming a server")
	fs.Var(portList{&r.sniPorts}, "sni-ports", "CONNECT `ports` whose ClientHello must name the CONNECT host (comma-separated)")
	fs.UintVar(&r.sniDest, "sni-dest-port", 443, "upstream `port` of the SNI listener's tunnels")
	fs.DurationVar(&c.SNITimeout, "sni-timeout", proxy.DefaultSNITimeout, "wait at most this long for a ClientHello")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", proxy.DefaultDialTimeout, "resolve and connect to an upstream within this time")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", proxy.DefaultHeaderTimeout, "read a request header within this time")
	fs.DurationVar(&c.ClientIdleTimeout, "client-idle-timeout", proxy.DefaultClientIdleTimeout, "close a client's keep-alive connection to the proxy port idle this long between requests")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, "close a tunnel idle this long in both directions (0: never; dead peers are found by --tcp-keepalive)")
	fs.DurationVar(&c.KeepAlive, "tcp-keepalive", proxy.DefaultKeepAlive, "probe a tunnel's peers after this long without a packet, spread up to a quarter longer per connection so that tunnels opened together do not probe together; 4 unanswered probes 15 s apart end it (negative: off)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, let tunnels finish for this long, then close them")
	fs.IntVar(&c.MaxConns, "max-conns", proxy.DefaultMaxConns(), "most tunnels plus requests in flight; beyond, 503 (negative: no cap; default from the descriptor limit: (nofile - 256 - nofile/16) / 2)")
	fs.StringVar(&c.PAC.Proxy, "pac-proxy", "", "`HOST:PORT` that /proxy.pac tells endpoints to use (default: the address they fetched it from)")
	fs.Func("pac-fallback", "where /proxy.pac sends names outside the catalog: direct or proxy (default direct)", func(v string) (err error) {
		c.PAC.Fallback, err = export.ParsePACFallback(v)
		return err
	})
	return r
}

// addTelemetryFlags adds the flags of logs, metrics, the admin listener,
// the probe and the catalog watch.
func (o *serveOptions) addTelemetryFlags(fs *commandLine) {
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.DurationVar(&o.probeEvery, "probe-interval", 0, "probe every catalog name (DNS, TCP, TLS) this often and export egressgate_probe_*; 0: off")
	fs.IntVar(&o.adminOpts.maxConns, "admin-max-conns", defaultAdminMaxConns, "most connections the admin listener holds at once; more wait unaccepted")
	fs.StringVar(&o.adminOpts.tokenFile, "admin-token-file", "", "`file` holding a bearer token the admin pages require (/healthz, /readyz and /proxy.pac stay open)")
	fs.BoolVar(&o.adminOpts.users, "admin-users", false, "the admin pages also accept Basic credentials of the proxy's users file (auth.password_file)")
	fs.StringVar(&o.watch.url, "catalog-watch", "", "read the vendor page at this https:// `URL` on a schedule and report how it differs from the catalog in force (never changes what is admitted)")
	fs.DurationVar(&o.watch.interval, "catalog-watch-interval", 24*time.Hour, "how often the catalog watch reads the page (jittered ±10%; sooner, backing off, after a failure)")
	fs.StringVar(&o.watch.via, "catalog-watch-via", "", "fetch the watched page through this HTTP `PROXY` (host:port)")
	fs.BoolVar(&o.pprof, "pprof", false, "also serve the Go profiler on the admin listener, under /debug/pprof/")
	m := &o.metrics
	fs.BoolVar(&m.AccessLog, "access-log", false, "log every admitted tunnel or request when it closes, with bytes and duration")
	fs.IntVar(&m.MissLogBurst, "miss-log-burst", metrics.DefaultMissLogBurst, "log at most this many misses per host and reason per interval, then fold")
	fs.DurationVar(&m.MissLogInterval, "miss-log-interval", metrics.DefaultMissLogInterval, "miss-log folding `interval`")
	fs.IntVar(&m.TopMisses, "top-misses", metrics.DefaultTopMisses, "denied hosts kept for /misses: this many denied once, as many denied again")
	fs.IntVar(&m.MaxRuleSeries, "max-rule-series", metrics.DefaultMaxRuleSeries, "catalog entries with a series of their own; the rest share rule=\"_other\"")
	fs.IntVar(&m.MaxEstateSeries, "max-estate-series", metrics.DefaultMaxEstateSeries, "per-estate series (requests by decision and reason, hits per entry) with an estate label of their own; the rest share estate=\"_other\"")
}

// check checks the flags that need more than their type's parser and
// fills the proxy.Config fields they set.
func (o *serveOptions) check(r *proxyFlags) error {
	c := &o.cfg
	if c.PAC.Proxy != "" {
		var err error
		if c.PAC.Proxy, err = parsePACProxy(c.PAC.Proxy); err != nil {
			return fmt.Errorf("--pac-proxy %w", err)
		}
		if err := export.CheckPACProxy(c.PAC.Proxy); err != nil {
			return fmt.Errorf("--pac-proxy: %w", err)
		}
	}
	if r.upstream != "" {
		u, err := url.Parse(r.upstream)
		if err != nil {
			return fmt.Errorf("--upstream-proxy: %w", err)
		}
		c.UpstreamProxy = u
	}
	if r.sniDest == 0 || r.sniDest > 65535 {
		return fmt.Errorf("--sni-dest-port: %d is not a port (1-65535)", r.sniDest)
	}
	c.SNIDestPort = uint16(r.sniDest)
	c.SNIPorts = r.sniPorts
	c.AllowNoSNI = !r.sniRequired
	if c.MaxConns == 0 {
		return errors.New("--max-conns: 0 would refuse everything; use a negative value for no cap")
	}
	if (o.tlsListen != "") != (o.tlsCert != "" && o.tlsKey != "") {
		return errors.New("--listen-tls, --tls-cert and --tls-key go together")
	}
	return nil
}

// listenAddr picks a listener's address: the flag when given on the
// command line, else the config file's value, else the flag's default.
func (o *serveOptions) listenAddr(flagName, flagValue, fromConfig string) string {
	if o.explicit[flagName] || fromConfig == "" {
		return flagValue
	}
	return fromConfig
}

// runServe is "egressgate serve": it runs until SIGTERM or SIGINT.
func runServe(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	o, err := parseServeFlags(args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "egressgate serve: %v\nusage: %s\nRun 'egressgate serve --help' for the flags.\n", err, cl.synopsis)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, o, hup, stderr, nil); err != nil {
		fmt.Fprintf(stderr, "egressgate serve: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the proxy until ctx is done, reloading the rules on each
// value from hup, then drains. onListen, when not nil, is told each
// listener's address once it listens (tests use it to find port 0).
func serve(ctx context.Context, o *serveOptions, hup <-chan os.Signal, stderr io.Writer, onListen func(name, addr string)) error {
	started := time.Now()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	var listening atomic.Bool
	s, err := newServing(o, log, newTelemetry(log, listening.Load, o.metrics, o.pprof))
	if err != nil {
		return err
	}
	if err := s.listen(onListen); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		s.closeListeners()
		return err
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if err := s.watch(watchCtx); err != nil {
		s.closeListeners()
		return err
	}
	if s.cfg.PAC.Proxy == "" {
		log.Warn("--pac-proxy is not set: /proxy.pac names the proxy by the Host each client sent; set it to the address endpoints should use")
	}
	listening.Store(true)
	sdNotify(log, sdReady)
	serveErr := s.wait(ctx, hup)
	listening.Store(false)
	sdNotify(log, sdStopping)
	s.stop(started, stopWatch)
	return serveErr
}

// serving is one run of serve: the rules, the proxy, its listeners and
// the goroutines that serve and watch.
type serving struct {
	o        *serveOptions
	log      *slog.Logger
	tel      telemetry
	reloader *rules.Reloader
	cfg      proxy.Config
	srv      *proxy.Server

	lns                            []net.Listener // every listener, to close
	proxyLn, sniLn, adminLn, tlsLn net.Listener   // nil when off
	tlsCfg                         *tls.Config    // of tlsLn
	adminSrv                       *http.Server   // nil without the admin listener
	wg                             sync.WaitGroup
	errc                           chan error // a listener that failed
}

// newServing loads the rules and builds the proxy.
func newServing(o *serveOptions, log *slog.Logger, tel telemetry) (*serving, error) {
	reloader, err := rules.NewReloader(o.configPath, log, tel.hooks)
	if err != nil {
		return nil, fmt.Errorf("loading rules: %w", err)
	}
	cfg := o.cfg
	cfg.Rules = reloader
	cfg.Log = log
	cfg.Recorder = tel.recorder
	if o.hostsPath != "" {
		if cfg.HostsFile, err = proxy.OpenHostsFile(o.hostsPath); err != nil {
			return nil, err
		}
		cfg.Hosts = cfg.HostsFile.Hosts() // the prober's, as at start
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return nil, err
	}
	metrics.RegisterLimits(tel.reg, srv.Limits)
	return &serving{o: o, log: log, tel: tel, reloader: reloader, cfg: cfg, srv: srv, errc: make(chan error, 4)}, nil
}

// listen opens the proxy, SNI and admin listeners, at the addresses the
// flags give, else the config's, else the flags' defaults, and the HTTPS
// proxy listener (--listen-tls) with its certificate. On an error none
// stays open.
func (s *serving) listen(onListen func(name, addr string)) error {
	lcfg := s.reloader.Current().Config.Listeners
	proxyAddr := s.o.listenAddr("listen", s.o.listen, lcfg.Proxy)
	sniAddr := s.o.listenAddr("sni-listen", s.o.sniListen, lcfg.SNI)
	adminAddr := s.o.listenAddr("admin", s.o.admin, lcfg.Admin)
	if proxyAddr == listenOff || proxyAddr == "" {
		return errors.New("the proxy listener cannot be off")
	}
	// The proxy's listeners leave keepalive to the proxy, which sets
	// --tcp-keepalive, spread, on each connection it accepts; the admin
	// listener keeps Go's default.
	proxyLC, adminLC := s.cfg.ListenConfig(), net.ListenConfig{}
	open := func(name, addr string, lc net.ListenConfig) (net.Listener, error) {
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
		s.lns = append(s.lns, ln)
		s.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		if onListen != nil {
			onListen(name, ln.Addr().String())
		}
		return ln, nil
	}
	var err error
	if s.proxyLn, err = open("proxy", proxyAddr, proxyLC); err != nil {
		return err
	}
	if sniAddr != listenOff && sniAddr != "" {
		if s.sniLn, err = open("sni", sniAddr, proxyLC); err != nil {
			return err
		}
	}
	if adminAddr != listenOff && adminAddr != "" {
		if s.adminLn, err = open("admin", adminAddr, adminLC); err != nil {
			return err
		}
	}
	if s.o.tlsListen != "" {
		if s.tlsCfg, err = proxy.NewTLSConfig(s.o.tlsCert, s.o.tlsKey, s.log); err != nil {
			s.closeListeners()
			return err
		}
		if s.tlsLn, err = open("tls", s.o.tlsListen, proxyLC); err != nil {
			return err
		}
	}
	return nil
}

func (s *serving) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// start serves every listener, the HTTPS proxy listener included, each on
// a goroutine that reports its failure on errc.
func (s *serving) start() error {
	s.wg.Go(func() { s.errc <- s.srv.Serve(s.proxyLn) })
	if s.sniLn != nil {
		s.wg.Go(func() { s.errc <- s.srv.ServeSNI(s.sniLn) })
	}
	if s.tlsLn != nil {
		s.wg.Go(func() { s.errc <- s.srv.ServeTLS(s.tlsLn, s.tlsCfg) })
	}
	if s.adminLn == nil {
		return nil
	}
	var users func() *rules.Users
	if s.o.adminOpts.users {
		users = func() *rules.Users { return s.reloader.Current().Users }
	}
	adminSrv, adminLn, err := adminServer(s.adminLn, s.tel.admin(pacHandler(s.srv, s.proxyLn)), s.o.adminOpts, users)
	if err != nil {
		return err
	}
	s.adminSrv = adminSrv
	s.wg.Go(func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	})
	return nil
}

// watch starts what runs beside the listeners until ctx ends: the rules
// watcher, the hosts file watcher, the periodic probe and the catalog
// watch.
func (s *serving) watch(ctx context.Context) error {
	s.wg.Go(func() {
		if err := s.reloader.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("rules watcher stopped", "err", err)
		}
	})
	if s.cfg.HostsFile != nil {
		loop := watchHosts(s.cfg.HostsFile, s.log)
		s.wg.Go(func() { loop(ctx) })
	}
	if s.o.probeEvery > 0 {
		p := newServerProber(s.cfg)
		pm := metrics.NewProbeMetrics(s.tel.reg)
		s.wg.Go(func() {
			probeLoop(ctx, s.o.probeEvery, p, func() []*rules.Matcher { return s.reloader.Current().Matchers() }, pm, s.log)
		})
	}
	if s.o.watch.url != "" {
		w, err := newCatalogWatch(s.o.watch, s.reloader.Current, s.log, metrics.NewCatalogWatch(s.tel.reg))
		if err != nil {
			return err
		}
		s.wg.Go(func() { w.run(ctx) })
	}
	return nil
}

// wait serves until ctx is done or a listener fails, reloading the rules
// (and the hosts file) on each value from hup. It returns the listener's
// error.
func (s *serving) wait(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			sdNotify(s.log, sdReloading())
			s.reloader.ReloadRequested() // logs the outcome, unchanged included; the last good rules keep serving
			if s.cfg.HostsFile != nil {
				reloadHosts(s.cfg.HostsFile, s.log)
			}
			sdNotify(s.log, sdReady)
		case err := <-s.errc:
			if err != nil {
				s.log.Error("listener failed", "err", err)
				return err
			}
		}
	}
}

// stop drains the tunnels for at most --drain-timeout, then closes
// everything and waits for every goroutine, and logs one last line that
// says how the stop went.
func (s *serving) stop(started time.Time, stopWatch func()) {
	open := s.srv.Tunnels()
	s.log.Info("shutting down", "tunnels_open", open, "drain_timeout_seconds", s.o.drainTimeout.Seconds())
	cut := drain(s.srv, s.o.drainTimeout)
	if cut > 0 {
		s.log.Warn("drain timeout reached: tunnels closed", "tunnels_cut", cut)
	}
	s.tel.flush()
	if s.adminSrv != nil {
		s.adminSrv.Close()
	}
	stopWatch()
	s.closeListeners()
	s.wg.Wait()
	s.log.Info("stopped", "tunnels_drained", max(open-cut, 0), "tunnels_cut", cut, "uptime_seconds", time.Since(started).Seconds())
}

// drain shuts srv down, letting tunnels finish for at most timeout, and
// returns how many were still open when it ran out and were closed.
func drain(srv *proxy.Server, timeout time.Duration) (cut int) {
	deadline, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Shutdown closes what is left when its context ends; count the
	// tunnels just before, then let it.
	shutCtx, cutNow := context.WithCancel(context.Background())
	defer cutNow()
	done := make(chan struct{})
	counted := make(chan int, 1)
	go func() {
		select {
		case <-deadline.Done():
			counted <- srv.Tunnels()
			cutNow()
		case <-done:
			counted <- 0
		}
	}()
	err := srv.Shutdown(shutCtx)
	close(done)
	n := <-counted
	if err == nil {
		return 0
	}
	return n
}
