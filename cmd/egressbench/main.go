// Command egressbench measures CONNECT proxies on loopback: egressgate
// against Squid, against an unfiltered goproxy (the reference: what a Go
// proxy built on an HTTP library does on the same machine, see
// ./baseline), against the bare CONNECT-and-splice loop (raw, the limit:
// see raw.go), and all against no proxy at all (direct).
//
// Every tunnel is what a real client does: TCP connect, CONNECT, a real
// TLS ClientHello (recorded once and replayed by default, so that the
// tool's crypto does not cap the rate; --handshake full for real
// handshakes) to the tool's own upstream, a short reply, close. It reports
// tunnels per second at 1, 16 and 128 concurrent clients with p50/p99
// CONNECT latency, bulk MB/s through one and eight tunnels in each
// direction, the proxy's CPU seconds per 1,000 tunnels and per GiB
// (/proc/PID/stat), and its RSS per idle tunnel with thousands open
// (/proc/PID/status). The hold scenario keeps thousands of tunnels open at
// once, opened by a child process of the tool, and measures the proxy
// holding them: descriptors, memory, kernel memory, CPU at rest, and the
// rate and p99 meanwhile. Targets are measured interleaved, round by
// round, and the report gives medians, the ratios of the subject to each
// other target, and PASS/MISS against the project's targets beside what
// the reference scores on the same checks.
//
// Usage:
//
//	egressbench [--quick] [--rounds 3] [--targets direct,raw,egressgate,squid,goproxy] [--json FILE]
//
// "make bench" runs it with Squid installed. Traffic stays on loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchHost is the name tunnels ask for; the hosts file of each proxy maps
// it to 127.0.0.1.
const benchHost = "bench.example.org"

func main() {
	if code, ok := runChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	rounds     int
	quick      bool
	targets    []string
	external   []external
	subject    string
	baseline   string
	reference  string
	clients    []int
	bulkConns  []int
	lim        limits
	egBin      string
	egArgs     string
	squidBin   string
	goproxyBin string
	accessLog  bool
	jsonPath   string
	workDir    string
	keep       bool
	cpuProfile string
	upPort     int
	only       []string
	replay     bool // --handshake replay
}

// external is a proxy the tool does not start: name=host:port[,pid=N].
type external struct {
	name, addr string
	pid        int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("egressbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each measures every scenario on every target")
	fs.BoolVar(&o.quick, "quick", false, "short phases, 2 rounds, fewer idle and held tunnels: a run of about a minute")
	targets := fs.String("targets", "direct,raw,egressgate,squid,goproxy", "targets to measure, in order: direct, raw (the bare CONNECT-and-splice loop, the limit), egressgate, squid, goproxy (unfiltered reference), and names given with --external")
	fs.Func("external", "a running proxy to measure too: `name=host:port[,pid=N]` (repeatable; without pid no CPU or RSS)", func(s string) error {
		e, err := parseExternal(s)
		if err == nil {
			o.external = append(o.external, e)
		}
		return err
	})
	fs.StringVar(&o.subject, "subject", "egressgate", "target the checks are about")
	fs.StringVar(&o.baseline, "baseline", "squid", "target the subject is compared with")
	fs.StringVar(&o.reference, "reference", "goproxy", "second target the subject is compared with, and scored on the same checks (\"\": none)")
	clients := fs.String("clients", "1,16,128", "concurrent clients of the tunnel-rate scenarios")
	bulk := fs.String("bulk-tunnels", "1,8", "tunnels of the bulk scenarios")
	fs.DurationVar(&o.lim.RateTime, "rate-time", 3*time.Second, "length of each tunnel-rate measurement")
	fs.IntVar(&o.lim.RateMax, "rate-max", 30000, "most tunnels in one tunnel-rate measurement")
	fs.DurationVar(&o.lim.BulkTime, "bulk-time", 3*time.Second, "length of each bulk measurement")
	bulkMiB := fs.Int64("bulk-max-mib", 4096, "most MiB moved in one bulk measurement")
	fs.IntVar(&o.lim.IdleTunnel, "idle", 2000, "idle tunnels opened to measure RSS per tunnel (0: skip)")
	fs.IntVar(&o.lim.HoldTunnels, "hold", 9000, "tunnels held open at once in the hold scenario, each from its own 127.1.y.z source (0: skip)")
	fs.DurationVar(&o.lim.HoldIdle, "hold-idle", 10*time.Second, "window over which the CPU of a proxy holding --hold idle tunnels is measured")
	fs.IntVar(&o.lim.HoldClients, "hold-clients", 16, "clients of the tunnel rate measured before and while holding")
	fs.DurationVar(&o.lim.Settle, "settle", 300*time.Millisecond, "pause between measurements")
	fs.StringVar(&o.egBin, "egressgate", "", "egressgate binary (default: go build ./cmd/egressgate)")
	fs.StringVar(&o.egArgs, "egressgate-args", defaultEgressgateArgs, "egressgate's arguments; {listen} {config} {hosts} {dir} {port} are filled in")
	fs.StringVar(&o.squidBin, "squid", "", "squid binary (default: squid from PATH, or /usr/sbin/squid)")
	fs.StringVar(&o.goproxyBin, "goproxy", "", "goproxy reference binary (default: go build ./cmd/egressbench/baseline)")
	fs.BoolVar(&o.accessLog, "access-log", false, "have both proxies log every tunnel (Squid's access_log, egressgate's --access-log); off by default, as egressgate's is")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to `FILE`")
	fs.StringVar(&o.workDir, "workdir", "", "directory for configs and proxy logs (default: a new temporary one)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	only := fs.String("scenarios", "", "measure only these scenarios (comma-separated names such as rate-16,bulk-down-1,idle; default all)")
	fs.IntVar(&o.upPort, "upstream-port", 0, "loopback port of the tool's upstream (0: any free one); fix it when an --external proxy's allowlist must name it")
	handshake := fs.String("handshake", "replay", "short tunnels (rate scenarios) do a `full` TLS 1.3 handshake, or `replay` a ClientHello recorded once and get the reply in the clear: the proxy's work is the same, the tool's crypto is gone")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile (client and upstream) to `FILE`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		o.quickDefaults(set)
	}
	if err := o.finish(*handshake, *targets, *only, *clients, *bulk, *bulkMiB); err != nil {
		return nil, err
	}
	return o, nil
}

// quickDefaults shortens what --quick shortens, unless set on the command
// line (set).
func (o *options) quickDefaults(set map[string]bool) {
	if !set["rate-time"] {
		o.lim.RateTime = 500 * time.Millisecond
	}
	if !set["bulk-time"] {
		o.lim.BulkTime = 500 * time.Millisecond
	}
	if !set["idle"] {
		o.lim.IdleTunnel = 500
	}
	if !set["hold"] {
		o.lim.HoldTunnels = 1000
	}
	if !set["hold-idle"] {
		o.lim.HoldIdle = 2 * time.Second
	}
	if !set["rounds"] {
		o.rounds = 2
	}
	if !set["settle"] {
		o.lim.Settle = 150 * time.Millisecond
	}
}

// finish turns the flags that are lists and choices into options.
func (o *options) finish(handshake, targets, only, clients, bulk string, bulkMiB int64) error {
	switch handshake {
	case "full":
	case "replay":
		o.replay = true
	default:
		return fmt.Errorf("--handshake %q: want full or replay", handshake)
	}
	o.lim.BulkMax = bulkMiB << 20
	o.targets = strings.Split(targets, ",")
	if only != "" {
		o.only = strings.Split(only, ",")
	}
	for _, e := range o.external {
		if !slices.Contains(o.targets, e.name) {
			o.targets = append(o.targets, e.name)
		}
	}
	var err error
	if o.clients, err = parseInts(clients); err != nil {
		return fmt.Errorf("--clients: %w", err)
	}
	if o.bulkConns, err = parseInts(bulk); err != nil {
		return fmt.Errorf("--bulk-tunnels: %w", err)
	}
	if o.rounds < 1 {
		return fmt.Errorf("--rounds %d: want at least 1", o.rounds)
	}
	return nil
}

func parseExternal(s string) (external, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return external{}, fmt.Errorf("%q: want name=host:port[,pid=N]", s)
	}
	addr, pidPart, _ := strings.Cut(rest, ",")
	e := external{name: name, addr: addr}
	if pidPart != "" {
		p, ok := strings.CutPrefix(pidPart, "pid=")
		n, err := strconv.Atoi(p)
		if !ok || err != nil {
			return external{}, fmt.Errorf("%q: %q is not pid=N", s, pidPart)
		}
		e.pid = n
	}
	return e, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// target is one thing to measure: direct, or a proxy.
type target struct {
	name string
	// launch starts a fresh instance; nil for direct and external
	// proxies, which have one instance for the whole run.
	launch func() (*instance, error)
	inst   *instance // the instance used for every scenario but idle
	client *client
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "egressbench:", err)
		return 2
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "egressbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "egressbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	r, err := bench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "egressbench:", err)
		return 1
	}
	r.print(stdout)
	if o.jsonPath != "" {
		if err := r.writeJSON(o.jsonPath); err != nil {
			fmt.Fprintln(stderr, "egressbench:", err)
			return 1
		}
	}
	return 0
}

// bench sets up the upstream and the targets and runs every round.
func bench(ctx context.Context, o *options, progress io.Writer) (*report, error) {
	if err := checkFileLimit(o); err != nil {
		return nil, err
	}
	dir := o.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "egressbench-"); err != nil {
			return nil, err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	up, err := startUpstream(benchHost, o.upPort)
	if err != nil {
		return nil, err
	}
	defer up.close()
	r, err := newReport(o)
	if err != nil {
		return nil, err
	}
	targets, err := setUpTargets(o, dir, up, r.Env, progress)
	defer func() {
		for _, t := range targets {
			if t.inst != nil && t.inst.stop != nil {
				t.inst.stop()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		fmt.Fprintf(progress, "warming up %s\n", t.name)
		warm(ctx, t.client, t.inst)
	}
	if err := r.runRounds(ctx, targets, o, progress); err != nil {
		return nil, err
	}
	r.summarize()
	return r, nil
}

// checkFileLimit raises the tool's open-file limit and reports an error
// if it is still too low for the idle and hold scenarios.
func checkFileLimit(o *options) error {
	nofile, err := raiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(4*o.lim.IdleTunnel + 1000); nofile < need {
		return fmt.Errorf("open-file limit %d is below the %d that %d idle tunnels need; lower --idle", nofile, need, o.lim.IdleTunnel)
	}
	// Held tunnels cost the tool one descriptor each (the upstream's
	// end) and the holder, a child with the same limit, one (the
	// client's); the proxy, a process of its own, has its own limit.
	if need := uint64(o.lim.HoldTunnels + 1000); nofile < need {
		return fmt.Errorf("open-file limit %d is below the %d that %d held tunnels need in the tool; lower --hold", nofile, need, o.lim.HoldTunnels)
	}
	if o.lim.HoldTunnels > 250*256 {
		return fmt.Errorf("--hold %d: at most %d (one source address each in 127.1.0.0/16)", o.lim.HoldTunnels, 250*256)
	}
	return nil
}

// newReport is the run's report before any sample: where it runs, what
// it compares, and the scenarios it measures.
func newReport(o *options) (*report, error) {
	r := &report{
		Env:      environment(o),
		Limits:   o.lim,
		Rounds:   o.rounds,
		Targets:  o.targets,
		Subject:  o.subject,
		Baseline: o.baseline,
	}
	if slices.Contains(o.targets, o.reference) && o.reference != o.subject && o.reference != o.baseline {
		r.Reference = o.reference
	}
	if slices.Contains(o.targets, "raw") && o.subject != "raw" {
		r.Limit = "raw"
	}
	for _, n := range o.clients {
		r.Scenarios = append(r.Scenarios, scenario{fmt.Sprintf("rate-%d", n), kindRate, n})
	}
	for _, n := range o.bulkConns {
		r.Scenarios = append(r.Scenarios,
			scenario{fmt.Sprintf("bulk-down-%d", n), kindBulkDown, n},
			scenario{fmt.Sprintf("bulk-up-%d", n), kindBulkUp, n})
	}
	if o.lim.IdleTunnel > 0 {
		r.Scenarios = append(r.Scenarios, scenario{"idle", kindIdle, o.lim.IdleTunnel})
	}
	if o.lim.HoldTunnels > 0 {
		r.Scenarios = append(r.Scenarios, scenario{"hold", kindHold, o.lim.HoldTunnels})
	}
	if o.only != nil {
		r.Scenarios = slices.DeleteFunc(r.Scenarios, func(sc scenario) bool { return !slices.Contains(o.only, sc.Name) })
		if len(r.Scenarios) == 0 {
			return nil, fmt.Errorf("--scenarios %q names none of the scenarios", strings.Join(o.only, ","))
		}
	}
	return r, nil
}

// runRounds measures every scenario on every target, round by round, and
// adds the samples to r.
func (r *report) runRounds(ctx context.Context, targets []*target, o *options, progress io.Writer) error {
	for round := 1; round <= o.rounds; round++ {
		for _, sc := range r.Scenarios {
			if sc.Kind == kindHold && round > 1 {
				continue // one fresh instance per target per run: it takes a minute each
			}
			// Rotate the order of targets each round so none always goes
			// first after a pause or last after the others heated the
			// machine.
			for i := range targets {
				t := targets[(i+round-1)%len(targets)]
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s, err := measure(ctx, t, sc, o.lim)
				if err != nil {
					return fmt.Errorf("round %d %s %s: %w", round, sc.Name, t.name, err)
				}
				s.Round, s.Scenario, s.Target = round, sc.Name, t.name
				fmt.Fprintln(progress, s)
				if t.inst.alive != nil {
					if err := t.inst.alive(); err != nil {
						return err
					}
				}
				r.Samples = append(r.Samples, s)
				// Let sockets in TIME_WAIT and the proxies' deferred work
				// settle between measurements.
				time.Sleep(o.lim.Settle)
			}
		}
	}
	return nil
}

// setUpTargets starts every proxy target once for the run.
func setUpTargets(o *options, dir string, up *upstream, env map[string]string, progress io.Writer) ([]*target, error) {
	var out []*target
	for _, name := range o.targets {
		t, err := newTarget(o, name, dir, up.port(), env, progress)
		if err != nil {
			return out, err
		}
		if t.launch != nil {
			fmt.Fprintf(progress, "starting %s\n", name)
			inst, err := t.launch()
			if err != nil {
				return out, err
			}
			t.inst = inst
		}
		t.client = newClient(t.inst.addr, up, benchHost)
		if o.replay {
			hello, err := recordHello(benchHost)
			if err != nil {
				return out, fmt.Errorf("recording a ClientHello: %w", err)
			}
			t.client.replay = hello
		}
		hold, err := holdHelloFor(benchHost)
		if err != nil {
			return out, fmt.Errorf("recording a ClientHello: %w", err)
		}
		t.client.holdHello = hold
		out = append(out, t)
	}
	return out, nil
}

// newTarget prepares target name: how to launch it, or the instance it
// already is (direct, external proxies), building what must be built.
// upPort is the upstream's port, which the proxies' allowlists name.
func newTarget(o *options, name, dir string, upPort int, env map[string]string, progress io.Writer) (*target, error) {
	t := &target{name: name}
	switch name {
	case "direct":
		t.inst = &instance{}
	case "raw":
		t.launch = (&rawTarget{dir: filepath.Join(dir, "raw")}).launch
	case "egressgate":
		bin, err := program(o.egBin, filepath.Join(dir, "egressgate.bin"), egressgatePkg, "egressgate", "--egressgate", progress)
		if err != nil {
			return nil, err
		}
		eg, err := newEgressgate(bin, filepath.Join(dir, "egressgate"), o.egArgs, benchHost, upPort, o.accessLog)
		if err != nil {
			return nil, err
		}
		t.launch = eg.launch
	case "squid":
		bin, err := findSquid(o.squidBin)
		if err != nil {
			return nil, err
		}
		if v, err := squidVersion(bin); err == nil {
			env["squid"] = v
		}
		sq, err := newSquid(bin, filepath.Join(dir, "squid"), benchHost, upPort, o.accessLog)
		if err != nil {
			return nil, err
		}
		t.launch = sq.launch
	case "goproxy":
		bin, err := program(o.goproxyBin, filepath.Join(dir, "goproxy-baseline"), goproxyPkg, "goproxy baseline", "--goproxy", progress)
		if err != nil {
			return nil, err
		}
		if v, err := goproxyVersion(bin); err == nil {
			env["goproxy"] = v
		}
		gp, err := newGoproxy(bin, filepath.Join(dir, "goproxy"), benchHost)
		if err != nil {
			return nil, err
		}
		t.launch = gp.launch
	default:
		i := slices.IndexFunc(o.external, func(e external) bool { return e.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown target %q: want direct, raw, egressgate, squid, goproxy or a name given with --external", name)
		}
		t.inst = &instance{addr: o.external[i].addr, pid: o.external[i].pid}
	}
	return t, nil
}

// program returns given, a prebuilt binary named by flag, or when given is
// "" builds pkg into path; what names it in messages.
func program(given, path, pkg, what, flag string, progress io.Writer) (string, error) {
	if given != "" {
		return given, nil
	}
	fmt.Fprintln(progress, "building "+what)
	out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s (run from the repository, or pass %s PATH): %w\n%s", what, flag, err, out)
	}
	return path, nil
}

// measure runs one scenario on one target.
func measure(ctx context.Context, t *target, sc scenario, lim limits) (sample, error) {
	switch sc.Kind {
	case kindRate:
		return measureRate(ctx, t.client, t.inst, sc.Clients, lim), nil
	case kindBulkDown:
		return measureBulk(ctx, t.client, t.inst, modeDown, sc.Clients, lim), nil
	case kindBulkUp:
		return measureBulk(ctx, t.client, t.inst, modeUp, sc.Clients, lim), nil
	case kindIdle:
		if t.launch == nil {
			return measureIdle(ctx, t.client, t.inst, sc.Clients), nil
		}
		inst, err := t.launch()
		if err != nil {
			return sample{}, err
		}
		defer inst.stop()
		ic := newClient(inst.addr, t.client.upstream, benchHost)
		ic.replay = t.client.replay
		return measureIdle(ctx, ic, inst, sc.Clients), nil
	case kindHold:
		if t.launch == nil {
			if t.inst.pid <= 0 {
				return sample{}, nil // direct, or external without pid: nothing to hold in
			}
			return measureHold(ctx, t.client, t.inst, sc.Clients, lim), nil
		}
		inst, err := t.launch()
		if err != nil {
			return sample{}, err
		}
		defer inst.stop()
		hc := newClient(inst.addr, t.client.upstream, benchHost)
		hc.replay, hc.holdHello = t.client.replay, t.client.holdHello
		return measureHold(ctx, hc, inst, sc.Clients, lim), nil
	}
	return sample{}, fmt.Errorf("unknown scenario kind %q", sc.Kind)
}

// warm sends a few hundred tunnels and a little bulk through a fresh
// target so the first measurement does not pay for start-up.
func warm(ctx context.Context, cl *client, inst *instance) {
	measureRate(ctx, cl, inst, 8, lim1(300))
	measureBulk(ctx, cl, inst, modeDown, 1, limits{BulkTime: 200 * time.Millisecond, BulkMax: 64 << 20})
}
