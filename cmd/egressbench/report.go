package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is a whole run: where it ran, what was measured, every sample,
// and the medians, ratios and checks computed from them. It is written as
// JSON with --json.
type report struct {
	Env      map[string]string `json:"env"`
	Limits   limits            `json:"limits"`
	Rounds   int               `json:"rounds"`
	Targets  []string          `json:"targets"`
	Subject  string            `json:"subject"`  // the proxy under test
	Baseline string            `json:"baseline"` // the proxy it is compared with
	// Reference is a second proxy the subject is compared with (the
	// unfiltered goproxy); "" when not measured. It is scored on the same
	// checks, to show what this setup allows a proxy without policy.
	Reference string `json:"reference,omitempty"`
	// Limit is the bare CONNECT-and-splice loop ("raw") when measured:
	// what a Go proxy does here with no work of its own.
	Limit     string        `json:"limit,omitempty"`
	Scenarios []scenario    `json:"scenarios"`
	Samples   []sample      `json:"samples"`
	Rows      []row         `json:"rows"`
	Checks    []checkResult `json:"checks"`
	// Warnings say where the run cannot be trusted, such as a tunnel
	// rate limited by the tool rather than the proxies.
	Warnings []string `json:"warnings,omitempty"`
}

// metric is one number a sample may carry.
type metric struct {
	name string
	kind string // scenario kind it applies to
	get  func(sample) *float64
}

var metrics = []metric{
	{"tunnels/s", kindRate, func(s sample) *float64 { return s.TunnelsPerSec }},
	{"p50 CONNECT ms", kindRate, func(s sample) *float64 { return s.P50ms }},
	{"p99 CONNECT ms", kindRate, func(s sample) *float64 { return s.P99ms }},
	{"CPU s/1000 tunnels", kindRate, func(s sample) *float64 { return s.CPUPer1000 }},
	{"MB/s", kindBulkDown, func(s sample) *float64 { return s.MBps }},
	{"CPU s/GiB", kindBulkDown, func(s sample) *float64 { return s.CPUPerGiB }},
	{"MB/s", kindBulkUp, func(s sample) *float64 { return s.MBps }},
	{"CPU s/GiB", kindBulkUp, func(s sample) *float64 { return s.CPUPerGiB }},
	{"tool CPU s/1000 tunnels", kindRate, func(s sample) *float64 { return s.SelfCPUPer1000 }},
	{"tool CPU s/GiB", kindBulkDown, func(s sample) *float64 { return s.SelfCPUPerGiB }},
	{"tool CPU s/GiB", kindBulkUp, func(s sample) *float64 { return s.SelfCPUPerGiB }},
	{"RSS KiB/idle tunnel", kindIdle, func(s sample) *float64 { return s.RSSPerTunnelKiB }},
	{"held tunnels", kindHold, func(s sample) *float64 { return s.Held }},
	{"fds/held tunnel", kindHold, func(s sample) *float64 { return s.FDsPerHeld }},
	{"RSS KiB/held tunnel", kindHold, func(s sample) *float64 { return s.RSSPerHeldKiB }},
	{"kernel TCP KiB/held", kindHold, func(s sample) *float64 { return s.KernelTCPKiBPerHeld }},
	{"kernel slab KiB/held", kindHold, func(s sample) *float64 { return s.SlabKiBPerHeld }},
	{"idle CPU % of a core", kindHold, func(s sample) *float64 { return s.IdleCPUPct }},
	{"tunnels/s while holding", kindHold, func(s sample) *float64 { return s.TunnelsPerSec }},
	{"p99 ms, none held", kindHold, func(s sample) *float64 { return s.P99NoHoldms }},
	{"p99 ms while holding", kindHold, func(s sample) *float64 { return s.P99ms }},
	{"p99 held/none", kindHold, func(s sample) *float64 { return s.P99HeldRatio }},
}

// row is one metric of one scenario: the median over rounds per target and
// the medians of the per-round ratios subject/baseline, subject/direct,
// subject/reference, reference/baseline and reference/direct.
type row struct {
	Metric   string              `json:"metric"`
	Scenario string              `json:"scenario"`
	Median   map[string]*float64 `json:"median"`
	VsBase   *float64            `json:"ratio_vs_baseline"`
	VsDirect *float64            `json:"ratio_vs_direct"`
	VsRef    *float64            `json:"ratio_vs_reference,omitempty"`
	// RefVsBase and RefVsDirect are the reference's own ratios: what a
	// proxy without policy reaches here.
	RefVsBase   *float64 `json:"reference_vs_baseline,omitempty"`
	RefVsDirect *float64 `json:"reference_vs_direct,omitempty"`
	// VsLimit and RefVsLimit are the subject's and the reference's ratios
	// to the bare loop.
	VsLimit    *float64 `json:"ratio_vs_limit,omitempty"`
	RefVsLimit *float64 `json:"reference_vs_limit,omitempty"`
	// Ceiling is direct/baseline: on shared cores the client and upstream
	// cost the same for every target, so no proxy, however cheap, beats
	// the baseline on tunnel rate by more than direct does.
	Ceiling *float64 `json:"ceiling_vs_baseline"`
}

// check is a target the subject must meet.
type check struct {
	Set      string  `json:"set"` // "baseline", "reference" or "limit": see checks
	Metric   string  `json:"metric"`
	Scenario string  `json:"scenario"`
	Against  string  `json:"against"` // "baseline", "direct", "reference", "limit" or "" (absolute)
	Op       string  `json:"op"`      // ">=" or "<="
	Bound    float64 `json:"bound"`
}

// checkResult is a check and how the run fared: PASS, MISS or "n/a" when
// the run did not measure it.
type checkResult struct {
	check
	Value *float64 `json:"value"`
	// Ceiling is the best value the setup allows for checks against the
	// baseline: direct/baseline (see row.Ceiling).
	Ceiling *float64 `json:"ceiling,omitempty"`
	Result  string   `json:"result"`
	// Reference is the reference proxy's value on the same check, and
	// RefResult how it would fare; "" without a reference.
	Reference *float64 `json:"reference_value,omitempty"`
	RefResult string   `json:"reference_result,omitempty"`
}

// checks are the targets, in three sets: "baseline" (rate and latency
// against the baseline, bulk against direct, absolute CPU and idle memory),
// "reference" (against the unfiltered reference, and the held-tunnel
// bounds) and "limit" (against the bare CONNECT loop, and a tighter
// memory bound per held tunnel). The bound of "held tunnels" is --hold,
// filled in by summarize.
var checks = []check{
	{"baseline", "tunnels/s", "rate-1", "baseline", ">=", 1.0},
	{"baseline", "tunnels/s", "rate-16", "baseline", ">=", 1.5},
	{"baseline", "tunnels/s", "rate-128", "baseline", ">=", 2.0},
	{"baseline", "p99 CONNECT ms", "rate-1", "baseline", "<=", 1.0},
	{"baseline", "p99 CONNECT ms", "rate-16", "baseline", "<=", 1.0},
	{"baseline", "p99 CONNECT ms", "rate-128", "baseline", "<=", 1.0},
	{"baseline", "MB/s", "bulk-down-1", "direct", ">=", 0.60},
	{"baseline", "MB/s", "bulk-up-1", "direct", ">=", 0.60},
	{"baseline", "CPU s/GiB", "bulk-down-1", "", "<=", 0.3},
	{"baseline", "CPU s/GiB", "bulk-up-1", "", "<=", 0.3},
	{"baseline", "CPU s/GiB", "bulk-down-8", "", "<=", 0.3},
	{"baseline", "CPU s/GiB", "bulk-up-8", "", "<=", 0.3},
	{"baseline", "RSS KiB/idle tunnel", "idle", "", "<=", 16},
	{"reference", "tunnels/s", "rate-1", "reference", ">=", 1.0},
	{"reference", "tunnels/s", "rate-16", "reference", ">=", 1.1},
	{"reference", "tunnels/s", "rate-128", "reference", ">=", 1.1},
	{"reference", "p99 CONNECT ms", "rate-1", "reference", "<=", 1.0},
	{"reference", "p99 CONNECT ms", "rate-16", "reference", "<=", 1.0},
	{"reference", "p99 CONNECT ms", "rate-128", "reference", "<=", 1.0},
	{"reference", "MB/s", "bulk-down-1", "reference", ">=", 1.0},
	{"reference", "MB/s", "bulk-up-1", "reference", ">=", 1.0},
	{"reference", "CPU s/GiB", "bulk-down-1", "reference", "<=", 1.0},
	{"reference", "CPU s/GiB", "bulk-up-1", "reference", "<=", 1.0},
	{"reference", "held tunnels", "hold", "", ">=", 0},
	{"reference", "fds/held tunnel", "hold", "", "<=", 2.2},
	{"reference", "RSS KiB/held tunnel", "hold", "", "<=", 8},
	{"reference", "idle CPU % of a core", "hold", "", "<=", 1},
	{"reference", "p99 held/none", "hold", "", "<=", 1.5},
	{"limit", "tunnels/s", "rate-16", "limit", ">=", 0.95},
	{"limit", "tunnels/s", "rate-128", "limit", ">=", 0.95},
	{"limit", "CPU s/1000 tunnels", "rate-16", "limit", "<=", 1.1},
	{"limit", "CPU s/1000 tunnels", "rate-128", "limit", "<=", 1.1},
	{"limit", "p50 CONNECT ms", "rate-16", "limit", "<=", 1.1},
	{"limit", "p50 CONNECT ms", "rate-128", "limit", "<=", 1.1},
	{"limit", "p99 CONNECT ms", "rate-16", "limit", "<=", 1.1},
	{"limit", "p99 CONNECT ms", "rate-128", "limit", "<=", 1.1},
	{"limit", "RSS KiB/held tunnel", "hold", "", "<=", 7},
}

// toolBound is how much faster than the fastest proxy direct must be for
// a tunnel rate to be the proxies': below it the tool is the bottleneck.
const toolBound = 3.0

// summarize fills in Rows and Checks from Samples.
func (r *report) summarize() {
	r.Rows = nil
	for _, sc := range r.Scenarios {
		for _, m := range metrics {
			if m.kind != sc.Kind {
				continue
			}
			rw := row{Metric: m.name, Scenario: sc.Name, Median: map[string]*float64{}}
			any := false
			for _, t := range r.Targets {
				rw.Median[t] = median(r.values(sc.Name, t, m.get))
				any = any || rw.Median[t] != nil
			}
			if !any {
				continue
			}
			rw.VsBase = median(r.ratios(sc.Name, r.Subject, r.Baseline, m.get))
			rw.VsDirect = median(r.ratios(sc.Name, r.Subject, "direct", m.get))
			rw.Ceiling = median(r.ratios(sc.Name, "direct", r.Baseline, m.get))
			rw.VsRef = median(r.ratios(sc.Name, r.Subject, r.Reference, m.get))
			rw.RefVsBase = median(r.ratios(sc.Name, r.Reference, r.Baseline, m.get))
			rw.RefVsDirect = median(r.ratios(sc.Name, r.Reference, "direct", m.get))
			rw.VsLimit = median(r.ratios(sc.Name, r.Subject, r.Limit, m.get))
			rw.RefVsLimit = median(r.ratios(sc.Name, r.Reference, r.Limit, m.get))
			r.Rows = append(r.Rows, rw)
		}
	}
	r.Checks = nil
	for _, c := range checks {
		if c.Metric == "held tunnels" {
			c.Bound = float64(r.Limits.HoldTunnels)
		}
		res := checkResult{check: c, Result: "n/a"}
		for _, rw := range r.Rows {
			if rw.Metric != c.Metric || rw.Scenario != c.Scenario {
				continue
			}
			switch c.Against {
			case "baseline":
				res.Value, res.Ceiling, res.Reference = rw.VsBase, rw.Ceiling, rw.RefVsBase
			case "direct":
				res.Value, res.Reference = rw.VsDirect, rw.RefVsDirect
			case "reference":
				res.Value = rw.VsRef
			case "limit":
				res.Value, res.Reference = rw.VsLimit, rw.RefVsLimit
			default:
				res.Value = rw.Median[r.Subject]
				if r.Reference != "" {
					res.Reference = rw.Median[r.Reference]
				}
			}
		}
		res.Result = c.judge(res.Value)
		if r.Reference != "" && c.Against != "reference" {
			res.RefResult = c.judge(res.Reference)
		}
		r.Checks = append(r.Checks, res)
	}
	r.Warnings = nil
	for _, rw := range r.Rows {
		if rw.Metric != "tunnels/s" || rw.Median["direct"] == nil {
			continue
		}
		fastest, name := 0.0, ""
		for t, v := range rw.Median {
			if t != "direct" && v != nil && *v > fastest {
				fastest, name = *v, t
			}
		}
		if d := *rw.Median["direct"]; fastest > 0 && d < toolBound*fastest {
			r.Warnings = append(r.Warnings, fmt.Sprintf(
				"%s: direct %.0f/s is only %.1fx the fastest proxy (%s %.0f/s), under %.0fx: the run measured the tool, not the proxies",
				rw.Scenario, d, d/fastest, name, fastest, toolBound))
		}
	}
}

// judge is PASS or MISS for v, "n/a" when v is nil.
func (c check) judge(v *float64) string {
	if v == nil {
		return "n/a"
	}
	ok := *v >= c.Bound
	if c.Op == "<=" {
		ok = *v <= c.Bound
	}
	return map[bool]string{true: "PASS", false: "MISS"}[ok]
}

// values is a metric of a scenario on a target, one per round that has it.
func (r *report) values(scen, target string, get func(sample) *float64) []float64 {
	var out []float64
	for _, s := range r.Samples {
		if s.Scenario == scen && s.Target == target {
			if v := get(s); v != nil {
				out = append(out, *v)
			}
		}
	}
	return out
}

// ratios is a/b of a metric per round, for the rounds that have both.
func (r *report) ratios(scen, a, b string, get func(sample) *float64) []float64 {
	if a == "" || b == "" || a == b {
		return nil
	}
	byRound := map[int]*float64{}
	for _, s := range r.Samples {
		if s.Scenario == scen && s.Target == b {
			byRound[s.Round] = get(s)
		}
	}
	var out []float64
	for _, s := range r.Samples {
		if s.Scenario != scen || s.Target != a {
			continue
		}
		if av, bv := get(s), byRound[s.Round]; av != nil && bv != nil && *bv != 0 {
			out = append(out, *av / *bv)
		}
	}
	return out
}

// median of vs, nil when empty; the mean of the middle two for even counts.
func median(vs []float64) *float64 {
	if len(vs) == 0 {
		return nil
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return ptr(vs[n/2])
	}
	return ptr((vs[n/2-1] + vs[n/2]) / 2)
}

// print writes the tables for people.
func (r *report) print(w io.Writer) {
	r.printHeader(w)
	r.printRows(w)
	r.printChecks(w)
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, l := range r.Warnings {
			fmt.Fprintln(w, "  "+l)
		}
	}
	var errLines []string
	for _, s := range r.Samples {
		if s.Errors > 0 {
			errLines = append(errLines, fmt.Sprintf("  round %d %s %s: %d failed tunnels, first: %s",
				s.Round, s.Scenario, s.Target, s.Errors, s.FirstError))
		}
	}
	if len(errLines) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		fmt.Fprintln(w, strings.Join(errLines, "\n"))
	}
}

// printHeader writes where the run ran and how to read it.
func (r *report) printHeader(w io.Writer) {
	fmt.Fprintf(w, "\negressbench: %d round(s), medians over rounds; ratios are medians of per-round ratios\n", r.Rounds)
	for _, k := range []string{"date", "host", "cpu", "cores", "kernel", "go", "squid", "goproxy", "egressgate", "handshake"} {
		if v, ok := r.Env[k]; ok {
			fmt.Fprintf(w, "  %-10s %s\n", k+":", v)
		}
	}
	fmt.Fprintln(w, "  note:      client, upstream and proxy share the same cores; the client's and the")
	fmt.Fprintln(w, "             upstream's CPU (with --handshake full, TLS handshakes too) is the same for every target.")
	fmt.Fprintln(w, "             CPU and RSS are the proxy process's own (/proc/PID); direct has none;")
	fmt.Fprintln(w, "             \"tool CPU\" is the client's and upstream's, for scale. A proxy's tunnel")
	fmt.Fprintf(w, "             rate cannot beat %s's by more than direct does (shown as direct/%s).\n", r.Baseline, r.Baseline)
	if r.Limit != "" {
		fmt.Fprintf(w, "             %s is the bare CONNECT-and-splice loop: no policy, no SNI check, no metrics.\n", r.Limit)
	}
	fmt.Fprintln(w)
}

// ratioNames are the column heads of the ratios: subject/baseline,
// subject/direct, and where measured subject/reference,
// reference/baseline, subject/limit and reference/limit.
func (r *report) ratioNames() (vsBase, vsDirect, vsRef, refVsBase, vsLimit, refVsLimit string) {
	vsBase = r.Subject + "/" + r.Baseline
	vsDirect = r.Subject + "/direct"
	if r.Reference != "" {
		vsRef = r.Subject + "/" + r.Reference
		refVsBase = r.Reference + "/" + r.Baseline
	}
	if r.Limit != "" {
		vsLimit = r.Subject + "/" + r.Limit
		if r.Reference != "" {
			refVsLimit = r.Reference + "/" + r.Limit
		}
	}
	return
}

// printRows writes the medians and ratios, one row per metric and
// scenario.
func (r *report) printRows(w io.Writer) {
	vsBase, vsDirect, vsRef, refVsBase, vsLimit, refVsLimit := r.ratioNames()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := append([]string{"metric", "scenario"}, r.Targets...)
	header = append(header, vsBase, vsDirect)
	for _, h := range []string{vsRef, refVsBase, vsLimit, refVsLimit} {
		if h != "" {
			header = append(header, h)
		}
	}
	fmt.Fprintln(tw, strings.Join(append(header, ""), "\t"))
	for _, rw := range r.Rows {
		cells := []string{rw.Metric, rw.Scenario}
		for _, t := range r.Targets {
			cells = append(cells, fmtNum(rw.Median[t]))
		}
		cells = append(cells, fmtRatio(rw.VsBase), fmtRatio(rw.VsDirect))
		if vsRef != "" {
			cells = append(cells, fmtRatio(rw.VsRef), fmtRatio(rw.RefVsBase))
		}
		if vsLimit != "" {
			cells = append(cells, fmtRatio(rw.VsLimit))
		}
		if refVsLimit != "" {
			cells = append(cells, fmtRatio(rw.RefVsLimit))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, ""), "\t"))
	}
	tw.Flush()
}

// printChecks writes each target, the subject's value and PASS or MISS,
// and beside it the reference's.
func (r *report) printChecks(w io.Writer) {
	vsBase, vsDirect, vsRef, _, vsLimit, _ := r.ratioNames()
	fmt.Fprintf(w, "\ntargets for %s:\n", r.Subject)
	if r.Reference != "" {
		fmt.Fprintf(w, "  (last columns: %s, unfiltered, scored on the same check)\n", r.Reference)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		if c.Against == "limit" && vsLimit == "" {
			continue
		}
		what := fmt.Sprintf("%s %s", c.Metric, c.Scenario)
		cond := fmt.Sprintf("%s %s %g", r.Subject, c.Op, c.Bound)
		switch c.Against {
		case "baseline":
			cond = fmt.Sprintf("%s %s %.2f", vsBase, c.Op, c.Bound)
		case "direct":
			cond = fmt.Sprintf("%s %s %.2f", vsDirect, c.Op, c.Bound)
		case "reference":
			cond = fmt.Sprintf("%s %s %.2f", vsRef, c.Op, c.Bound)
		case "limit":
			cond = fmt.Sprintf("%s %s %.2f", vsLimit, c.Op, c.Bound)
		}
		ceiling := ""
		if c.Ceiling != nil && c.Metric == "tunnels/s" {
			ceiling = fmt.Sprintf("(direct/%s %.2f)", r.Baseline, *c.Ceiling)
		}
		ref := ""
		if r.Reference != "" && c.Against != "reference" {
			ref = fmt.Sprintf("\t%s: %s\t%s", r.Reference, fmtNum(c.Reference), c.RefResult)
		}
		fmt.Fprintf(tw, "  %s: %s\t%s\t%s\t%s\t%s%s\n", c.Set, what, cond, fmtNum(c.Value), c.Result, ceiling, ref)
	}
	tw.Flush()
}

func fmtNum(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v >= 100 || *v <= -100:
		return fmt.Sprintf("%.0f", *v)
	case *v >= 10 || *v <= -10:
		return fmt.Sprintf("%.1f", *v)
	case *v >= 1 || *v <= -1:
		return fmt.Sprintf("%.2f", *v)
	default:
		return fmt.Sprintf("%.3f", *v)
	}
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *v)
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// environment describes the machine and the builds, for the report.
func environment(o *options) map[string]string {
	env := map[string]string{
		"date":  time.Now().UTC().Format(time.RFC3339),
		"cores": fmt.Sprint(runtime.NumCPU()),
		"go":    runtime.Version(),
	}
	if h, err := os.Hostname(); err == nil {
		env["host"] = h
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				env["cpu"] = strings.TrimSpace(strings.TrimLeft(v, " \t:"))
				break
			}
		}
	}
	if slices.Contains(o.targets, "egressgate") {
		v := o.egBin
		if v == "" {
			v = "built from the work tree"
			if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
				v += " at " + strings.TrimSpace(string(out))
			}
		}
		env["egressgate"] = v
	}
	if o.replay {
		env["handshake"] = "replay: short tunnels send one recorded ClientHello, no TLS handshake, reply in the clear"
	}
	if slices.Contains(o.targets, "goproxy") {
		v := o.goproxyBin
		if v == "" {
			v = "./cmd/egressbench/baseline built from the work tree"
		}
		env["goproxy"] = v
	}
	return env
}
