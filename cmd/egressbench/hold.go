package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
)

// The hold scenario: many long-lived idle tunnels, as an estate's
// endpoints keep to their vendor, held open in one proxy process while it
// is measured at rest and then under a stream of new tunnels.
//
// Each held tunnel comes from a loopback source address of its own
// (127.1.y.z) so that the client side never runs short of ephemeral
// ports, sends a recorded ClientHello (the proxy's SNI check runs on it,
// no TLS crypto in the tool) and waits for the upstream's go byte.
const kindHold = "hold"

// holdFailLimit stops opening held tunnels after this many failures: a
// proxy that ran out of descriptors may make each further try wait for
// its timeout.
const holdFailLimit = 100

// holdTimeout bounds the setup of one held tunnel.
const holdTimeout = 3 * time.Second

// holdSource is the loopback source address of held tunnel i.
func holdSource(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

// holdTunnel opens one held tunnel from src and returns it once the
// upstream's go byte has arrived.
func (c *client) holdTunnel(ctx context.Context, src netip.Addr) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", c.proxy)
	if err != nil {
		return nil, fmt.Errorf("dial proxy from %s: %w", src, err)
	}
	rest, err := connectclient.Open(ctx, conn, c.target, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNECT: %w", err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := conn.Write(c.holdHello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write hello: %w", err)
	}
	if len(rest) == 0 {
		var g [1]byte
		if _, err := io.ReadFull(conn, g[:]); err != nil {
			conn.Close()
			return nil, fmt.Errorf("waiting for upstream go byte: %w", err)
		}
		rest = g[:]
	}
	if rest[0] != goByte {
		conn.Close()
		return nil, fmt.Errorf("upstream sent %q, want go byte", rest)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// kernelMem is the kernel's memory as the hold scenario reads it, system
// wide: TCP socket buffers (/proc/net/sockstat "mem", pages) and the slab
// caches (/proc/slabinfo, which needs root).
type kernelMem struct {
	tcpPages int64
	slab     int64 // bytes; -1 when unreadable
}

func readKernelMem() kernelMem {
	k := kernelMem{slab: -1}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for line := range strings.Lines(string(b)) {
			rest, ok := strings.CutPrefix(line, "TCP:")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					k.tcpPages, _ = strconv.ParseInt(f[i+1], 10, 64)
				}
			}
		}
	}
	f, err := os.Open("/proc/slabinfo")
	if err != nil {
		return k
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	k.slab = 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "slabinfo") || strings.HasPrefix(line, "#") {
			continue
		}
		// name active_objs num_objs objsize ...
		fs := strings.Fields(line)
		if len(fs) < 4 {
			continue
		}
		num, err1 := strconv.ParseInt(fs[2], 10, 64)
		size, err2 := strconv.ParseInt(fs[3], 10, 64)
		if err1 == nil && err2 == nil {
			k.slab += num * size
		}
	}
	return k
}

// openFDs counts process pid's descriptors.
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// measureHold opens n held tunnels in a fresh instance and measures it:
// descriptors, RSS and kernel memory per tunnel, CPU at rest over
// lim.HoldIdle, then tunnel rate and p99 with lim.HoldClients clients
// while holding, against the same measured just before the hold. The held
// tunnels' client ends are opened and kept by a child process of the
// tool (holdChild), so that the process measuring the p99 holds only its
// upstream's ends.
func measureHold(ctx context.Context, cl *client, inst *instance, n int, lim limits) sample {
	var s sample
	if inst.pid <= 0 {
		return s
	}
	rateLim := limits{RateTime: lim.RateTime, RateMax: lim.RateMax}
	measureRate(ctx, cl, inst, 8, lim1(300)) // warm up
	before := measureRate(ctx, cl, inst, lim.HoldClients, rateLim)
	time.Sleep(500 * time.Millisecond)

	fd0, err := openFDs(inst.pid)
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
		return s
	}
	rss0, _ := rssBytes(inst.pid)
	k0 := readKernelMem()

	start := time.Now()
	h, err := startHoldChild(ctx, cl, n)
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
		return s
	}
	defer h.close()
	s.Seconds = time.Since(start).Seconds()
	s.Tunnels, s.Errors, s.FirstError = h.res.Held, h.res.Errors, h.res.First
	s.Held = ptr(float64(h.res.Held))
	if h.res.Held == 0 {
		return s
	}
	time.Sleep(time.Second) // let the proxy finish what follows the first bytes
	holdCost(&s, inst.pid, fd0, rss0, k0)

	cpu := startCPU(inst.pid)
	idleStart := time.Now()
	select {
	case <-ctx.Done():
		return s
	case <-time.After(lim.HoldIdle):
	}
	if c := cpu.used(); c != nil {
		s.IdleCPUPct = ptr(*c / time.Since(idleStart).Seconds() * 100)
	}

	measureRate(ctx, cl, inst, 8, lim1(300)) // warm up, as before the hold
	during := measureRate(ctx, cl, inst, lim.HoldClients, rateLim)
	s.TunnelsPerSec = during.TunnelsPerSec
	s.P99ms = during.P99ms
	s.P99NoHoldms = before.P99ms
	if during.P99ms != nil && before.P99ms != nil && *before.P99ms > 0 {
		s.P99HeldRatio = ptr(*during.P99ms / *before.P99ms)
	}
	if during.Errors > 0 && s.Errors == 0 {
		s.Errors, s.FirstError = during.Errors, "rate while holding: "+during.FirstError
	}
	return s
}

// holdCost fills in what each of s.Held tunnels costs process pid and the
// kernel, from the counts taken before they were opened.
func holdCost(s *sample, pid, fd0 int, rss0 int64, k0 kernelMem) {
	held := *s.Held
	if fd1, err := openFDs(pid); err == nil {
		s.FDsPerHeld = ptr(float64(fd1-fd0) / held)
	}
	if rss1, err := rssBytes(pid); err == nil && rss0 > 0 {
		s.RSSPerHeldKiB = ptr(float64(rss1-rss0) / held / 1024)
	}
	k1 := readKernelMem()
	s.KernelTCPKiBPerHeld = ptr(float64((k1.tcpPages-k0.tcpPages)*int64(os.Getpagesize())) / held / 1024)
	if k0.slab >= 0 && k1.slab >= 0 {
		s.SlabKiBPerHeld = ptr(float64(k1.slab-k0.slab) / held / 1024)
	}
}

// holdHelloFor is a recorded ClientHello for host that asks the upstream
// to hold (ALPN modeHold).
func holdHelloFor(host string) ([]byte, error) {
	h, err := recordHelloALPN(host, modeHold)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(h, []byte(modeHold)) {
		return nil, fmt.Errorf("recorded hello lacks ALPN %q", modeHold)
	}
	return h, nil
}
