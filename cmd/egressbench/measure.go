package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of scenario.
const (
	kindRate     = "rate"      // full short tunnels back to back, per client
	kindBulkDown = "bulk-down" // upstream → client through open tunnels
	kindBulkUp   = "bulk-up"   // client → upstream through open tunnels
	kindIdle     = "idle"      // many open tunnels doing nothing
)

// scenario is one measurement, repeated for every target in every round.
type scenario struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Clients int    `json:"clients"` // concurrent clients (rate) or tunnels (bulk, idle)
}

// limits bound each measurement in time and count.
type limits struct {
	RateTime   time.Duration `json:"rate_time_ns"`
	RateMax    int           `json:"rate_max_tunnels"`
	BulkTime   time.Duration `json:"bulk_time_ns"`
	BulkMax    int64         `json:"bulk_max_bytes"`
	IdleTunnel int           `json:"idle_tunnels"`
	// Hold scenario: tunnels held, the window their CPU at rest is
	// measured over, and the clients of the rate measured while holding.
	HoldTunnels int           `json:"hold_tunnels"`
	HoldIdle    time.Duration `json:"hold_idle_ns"`
	HoldClients int           `json:"hold_clients"`
	Settle      time.Duration `json:"settle_ns"` // pause between measurements
}

// sample is one scenario measured on one target in one round. Metrics
// that do not apply, or could not be read (no PID), are nil.
type sample struct {
	Round      int     `json:"round"`
	Scenario   string  `json:"scenario"`
	Target     string  `json:"target"`
	Seconds    float64 `json:"seconds"`
	Tunnels    int     `json:"tunnels"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`

	TunnelsPerSec   *float64 `json:"tunnels_per_sec,omitempty"`
	P50ms           *float64 `json:"p50_connect_ms,omitempty"`
	P99ms           *float64 `json:"p99_connect_ms,omitempty"`
	MBps            *float64 `json:"mb_per_sec,omitempty"`
	CPUPer1000      *float64 `json:"cpu_sec_per_1000_tunnels,omitempty"`
	CPUPerGiB       *float64 `json:"cpu_sec_per_gib,omitempty"`
	RSSPerTunnelKiB *float64 `json:"rss_kib_per_idle_tunnel,omitempty"`

	// Hold scenario (TunnelsPerSec and P99ms are then those of the rate
	// measured while holding).
	Held                *float64 `json:"held_tunnels,omitempty"`
	FDsPerHeld          *float64 `json:"fds_per_held_tunnel,omitempty"`
	RSSPerHeldKiB       *float64 `json:"rss_kib_per_held_tunnel,omitempty"`
	KernelTCPKiBPerHeld *float64 `json:"kernel_tcp_kib_per_held_tunnel,omitempty"`
	SlabKiBPerHeld      *float64 `json:"slab_kib_per_held_tunnel,omitempty"`
	IdleCPUPct          *float64 `json:"idle_cpu_percent_of_core,omitempty"`
	P99NoHoldms         *float64 `json:"p99_connect_ms_no_hold,omitempty"`
	P99HeldRatio        *float64 `json:"p99_held_over_no_hold,omitempty"`

	// The tool's own CPU (client and upstream) for the same work: what
	// the two ends of the tunnel cost, to weigh the proxy's figure against.
	SelfCPUPer1000 *float64 `json:"tool_cpu_sec_per_1000_tunnels,omitempty"`
	SelfCPUPerGiB  *float64 `json:"tool_cpu_sec_per_gib,omitempty"`
}

// errorTally counts failed tunnels and keeps the first error.
type errorTally struct {
	mu    sync.Mutex
	n     int
	first string
}

func (t *errorTally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.first = err.Error()
	}
	t.n++
}

// cpuMeter reads a process's CPU time before and after a measurement.
type cpuMeter struct {
	pid   int
	start float64
	err   error
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	if pid > 0 {
		m.start, m.err = cpuSeconds(pid)
	}
	return m
}

// used is the CPU seconds since start, or nil if unknown.
func (m *cpuMeter) used() *float64 {
	if m.pid <= 0 || m.err != nil {
		return nil
	}
	end, err := cpuSeconds(m.pid)
	if err != nil {
		return nil
	}
	return ptr(end - m.start)
}

// measureRate runs clients concurrent clients, each opening short tunnels
// back to back, until lim.RateTime passes or lim.RateMax tunnels have been
// started.
func measureRate(ctx context.Context, cl *client, inst *instance, clients int, lim limits) sample {
	var (
		started atomic.Int64
		errs    errorTally
		mu      sync.Mutex
		lats    []time.Duration
		wg      sync.WaitGroup
	)
	cpu, self := startCPU(inst.pid), startCPU(os.Getpid())
	start := time.Now()
	deadline := start.Add(lim.RateTime)
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(lim.RateMax) {
				lat, err := cl.shortTunnel(ctx)
				if err != nil {
					errs.add(err)
					time.Sleep(5 * time.Millisecond) // a failing proxy must not turn this into a spin
					continue
				}
				mine = append(mine, lat)
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	s := sample{Seconds: secs, Tunnels: len(lats), Errors: errs.n, FirstError: errs.first}
	s.TunnelsPerSec = ptr(float64(len(lats)) / secs)
	if len(lats) > 0 {
		slices.Sort(lats)
		s.P50ms = ptr(ms(percentile(lats, 0.50)))
		s.P99ms = ptr(ms(percentile(lats, 0.99)))
		if c := cpu.used(); c != nil {
			s.CPUPer1000 = ptr(*c / float64(len(lats)) * 1000)
		}
		if c := self.used(); c != nil {
			s.SelfCPUPer1000 = ptr(*c / float64(len(lats)) * 1000)
		}
	}
	return s
}

// measureBulk opens tunnels tunnels in mode (modeDown or modeUp), then
// moves zeros through all of them at once until lim.BulkTime passes or
// lim.BulkMax bytes have moved. Only the transfer is timed.
func measureBulk(ctx context.Context, cl *client, inst *instance, mode string, tunnels int, lim limits) sample {
	var s sample
	raws := make([]net.Conn, 0, tunnels)
	defer func() {
		for _, c := range raws {
			c.Close()
		}
	}()
	for range tunnels {
		c, err := cl.rawTunnel(ctx, mode)
		if err != nil {
			s.Errors++
			s.FirstError = err.Error()
			return s
		}
		raws = append(raws, c)
	}
	var (
		total atomic.Int64
		errs  errorTally
		wg    sync.WaitGroup
	)
	b := newBudget(lim.BulkMax)
	cpu, self := startCPU(inst.pid), startCPU(os.Getpid())
	start := time.Now()
	deadline := start.Add(lim.BulkTime)
	for _, c := range raws {
		wg.Go(func() {
			var n int64
			var err error
			if mode == modeDown {
				n, err = download(c, deadline, b)
			} else {
				n, err = upload(c, deadline, b)
			}
			total.Add(n)
			if err != nil {
				errs.add(err)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	s.Seconds, s.Tunnels, s.Bytes = secs, tunnels, total.Load()
	s.Errors, s.FirstError = errs.n, errs.first
	s.MBps = ptr(float64(s.Bytes) / secs / 1e6)
	if gib := float64(s.Bytes) / (1 << 30); gib > 0 {
		if c := cpu.used(); c != nil {
			s.CPUPerGiB = ptr(*c / gib)
		}
		if c := self.used(); c != nil {
			s.SelfCPUPerGiB = ptr(*c / gib)
		}
	}
	return s
}

// measureIdle opens n tunnels that stay idle after the handshake and
// reports how much the proxy's RSS grew per tunnel. The instance should be
// fresh: a runtime that has grown for earlier scenarios reuses memory and
// hides the cost.
func measureIdle(ctx context.Context, cl *client, inst *instance, n int) sample {
	var s sample
	if inst.pid <= 0 {
		return s
	}
	// Warm up: the first tunnels pay for code pages, pools and runtime
	// start-up that idle tunnels should not be charged with.
	warm := lim1(100)
	measureRate(ctx, cl, inst, 8, warm)
	time.Sleep(500 * time.Millisecond)
	rss0, err := rssBytes(inst.pid)
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
		return s
	}
	start := time.Now()
	var (
		mu    sync.Mutex
		open  []net.Conn
		errs  errorTally
		next  atomic.Int64
		wg    sync.WaitGroup
		procs = 32
	)
	for range procs {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				c, err := cl.rawTunnel(ctx, modeIdle)
				if err != nil {
					errs.add(err)
					continue
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	// Let the proxy finish whatever it does after the first bytes.
	time.Sleep(time.Second)
	rss1, err := rssBytes(inst.pid)
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
		return s
	}
	s.Seconds = time.Since(start).Seconds()
	s.Tunnels, s.Errors, s.FirstError = len(open), errs.n, errs.first
	if len(open) > 0 {
		s.RSSPerTunnelKiB = ptr(float64(rss1-rss0) / float64(len(open)) / 1024)
	}
	return s
}

// lim1 is limits for a warm-up of n tunnels.
func lim1(n int) limits { return limits{RateTime: 30 * time.Second, RateMax: n} }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(f float64) *float64 { return &f }

// String is a one-line summary, for progress output.
func (s sample) String() string {
	out := fmt.Sprintf("round %d %-12s %-10s", s.Round, s.Scenario, s.Target)
	add := func(name string, v *float64, format string) {
		if v != nil {
			out += fmt.Sprintf("  %s "+format, name, *v)
		}
	}
	add("tunnels/s", s.TunnelsPerSec, "%.0f")
	add("p50ms", s.P50ms, "%.2f")
	add("p99ms", s.P99ms, "%.2f")
	add("MB/s", s.MBps, "%.0f")
	add("cpu/1000", s.CPUPer1000, "%.3f")
	add("cpu/GiB", s.CPUPerGiB, "%.3f")
	add("KiB/idle", s.RSSPerTunnelKiB, "%.1f")
	add("held", s.Held, "%.0f")
	add("fds/held", s.FDsPerHeld, "%.2f")
	add("KiB/held", s.RSSPerHeldKiB, "%.1f")
	add("kTCP KiB/held", s.KernelTCPKiBPerHeld, "%.2f")
	add("slab KiB/held", s.SlabKiBPerHeld, "%.2f")
	add("idle CPU%", s.IdleCPUPct, "%.2f")
	add("p99 held/none", s.P99HeldRatio, "%.2f")
	if s.Errors > 0 {
		out += fmt.Sprintf("  errors %d (first: %s)", s.Errors, s.FirstError)
	}
	return out
}
