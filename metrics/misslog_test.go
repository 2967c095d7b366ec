package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

func TestEscapeHost(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name, in, want string
	}{
		{"plain", "example.org", "example.org"},
		{"empty", "", ""},
		{"newline", "evil.example\n{\"msg\":\"x\"}", `evil.example\n{"msg":"x"}`},
		{"nul and escape", "a\x00b\x1b[31m", `a\x00b\x1b[31m`},
		{"backslash", `a\b`, `a\\b`},
		{"invalid utf-8", "a\xffb", `a\xffb`},
		{"unicode kept", "bücher.example", "bücher.example"},
		{"bidi override escaped", "a\u202eb", `a\u202eb`},
		{"space kept", "a b", "a b"},
		{"long capped", long, long[:maxLoggedHost] + "…"},
		{"long escaped capped", strings.Repeat("\x01", 100), strings.Repeat(`\x01`, maxLoggedHost/4) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeHost(tt.in); got != tt.want {
				t.Errorf("escapeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("plain does not allocate", func(t *testing.T) {
		if n := testing.AllocsPerRun(100, func() { escapeHost("central.sophos.com") }); n != 0 {
			t.Errorf("escapeHost(plain) allocs = %v, want 0", n)
		}
	})
}

// logLines decodes the JSON lines of a log buffer.
func logLines(t *testing.T, logs *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestMissLine(t *testing.T) {
	r, _, logs := newTest(t, nil, Options{})
	d := &proxy.Decision{
		Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Listener: proxy.ListenerSNI,
		Client: netip.MustParseAddrPort("[2001:db8::1]:4242"), Host: "evil.example\r\n", Port: 443,
		SNI: "other.example\x00", Action: proxy.ActionDeny, Reason: rules.ReasonSNIMismatch,
	}
	r.Decided(d)
	lines := logLines(t, logs)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1:\n%s", len(lines), logs)
	}
	want := map[string]any{
		"time": "2025-06-01T12:00:00Z", "level": "INFO", "msg": MsgMiss,
		FieldClient: "[2001:db8::1]:4242", FieldListener: "sni", FieldHost: `evil.example\r\n`,
		FieldPort: 443.0, FieldReason: "sni-mismatch", FieldSNI: `other.example\x00`, FieldAction: "deny",
	}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("field %q = %#v, want %#v", k, lines[0][k], v)
		}
	}
	if len(lines[0]) != len(want) {
		t.Errorf("line has fields %v, want exactly %d", lines[0], len(want))
	}
}

func TestMissFolding(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		misses   map[string]int // host → misses in the interval
		logged   int            // "miss" lines
		folded   map[string]int // host → count of its "miss-folded" line
		overflow int            // count of the "miss-overflow" line
	}{
		{"under burst", Options{MissLogBurst: 3}, map[string]int{"a.example": 3}, 3, nil, 0},
		{"over burst", Options{MissLogBurst: 3}, map[string]int{"a.example": 10, "b.example": 1}, 4, map[string]int{"a.example": 7}, 0},
		{"table full", Options{MissLogBurst: 2, MissLogHosts: 2}, map[string]int{"a.example": 3, "b.example": 2, "c.example": 4, "d.example": 1}, 4, map[string]int{"a.example": 1}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.MissLogInterval = time.Hour // flushed by hand below
			r, reg, logs := newTest(t, nil, tt.opts)
			// a.example first so that it is in the table when it fills.
			total := 0
			for _, host := range []string{"a.example", "b.example", "c.example", "d.example"} {
				for range tt.misses[host] {
					r.Decided(&proxy.Decision{Listener: proxy.ListenerConnect, Host: strings.ToUpper(host), Port: 443,
						Action: proxy.ActionDeny, Reason: rules.ReasonNotInCatalog})
					total++
				}
			}
			r.Flush()
			var logged, overflow int
			folded := map[string]int{}
			for _, l := range logLines(t, logs) {
				switch l["msg"] {
				case MsgMiss:
					logged++
				case MsgMissFolded:
					folded[l[FieldHost].(string)] = int(l[FieldCount].(float64))
					if l[FieldReason] != "not-in-catalog" {
						t.Errorf("miss-folded reason = %v, want not-in-catalog", l[FieldReason])
					}
				case MsgMissOverflow:
					overflow = int(l[FieldCount].(float64))
				}
			}
			if logged != tt.logged {
				t.Errorf("miss lines = %d, want %d", logged, tt.logged)
			}
			if fmt.Sprint(folded) != fmt.Sprint(tt.folded) && !(len(folded) == 0 && len(tt.folded) == 0) {
				t.Errorf("miss-folded lines = %v, want %v", folded, tt.folded)
			}
			if overflow != tt.overflow {
				t.Errorf("miss-overflow count = %d, want %d", overflow, tt.overflow)
			}
			// Nothing uncounted: the outcomes add up to the misses.
			var sum float64
			for _, o := range []string{"logged", "folded", "overflow"} {
				v, _ := counterValue(t, reg, "egressgate_misslog_misses_total", map[string]string{"outcome": o})
				sum += v
			}
			if sum != float64(total) {
				t.Errorf("sum of misslog_misses_total = %v, want %d", sum, total)
			}
			t.Run("next interval starts afresh", func(t *testing.T) {
				logs.Reset()
				r.Decided(&proxy.Decision{Listener: proxy.ListenerConnect, Host: "a.example", Port: 443,
					Action: proxy.ActionDeny, Reason: rules.ReasonNotInCatalog})
				if n := strings.Count(logs.String(), `"msg":"miss"`); n != 1 {
					t.Errorf("miss lines after flush = %d, want 1", n)
				}
			})
		})
	}
}

func TestAccessLog(t *testing.T) {
	rs := loadList(t, "test", testList)
	tests := []struct {
		name string
		on   bool
		want int
	}{
		{"off by default", false, 0},
		{"on", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reg, logs := newTest(t, rs, Options{AccessLog: tt.on})
			d := decide(rs, proxy.ListenerConnect, "example.org", 443)
			r.Decided(d)
			r.TunnelOpened(d)
			if v, _ := counterValue(t, reg, "egressgate_tunnels_active", map[string]string{"listener": "connect"}); v != 1 {
				t.Errorf("tunnels_active = %v, want 1", v)
			}
			r.TunnelClosed(d, proxy.TunnelStats{Upstream: 100, Downstream: 2000, Duration: 1500 * time.Millisecond})
			if v, _ := counterValue(t, reg, "egressgate_tunnels_active", map[string]string{"listener": "connect"}); v != 0 {
				t.Errorf("tunnels_active after close = %v, want 0", v)
			}
			if v, _ := counterValue(t, reg, "egressgate_tunnel_bytes_total", map[string]string{"listener": "connect", "direction": "downstream"}); v != 2000 {
				t.Errorf("tunnel_bytes_total{downstream} = %v, want 2000", v)
			}
			lines := logLines(t, logs)
			if len(lines) != tt.want {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), tt.want, logs)
			}
			if tt.want == 1 {
				l := lines[0]
				if l["msg"] != MsgAccess || l[FieldRule] != "example.org" || l[FieldDownstream] != 2000.0 || l[FieldDuration] != 1.5 {
					t.Errorf("access line = %v", l)
				}
			}
		})
	}
}

func TestDialed(t *testing.T) {
	tests := []struct {
		name   string
		err    proxy.DialError
		reason string // upstream_errors_total reason that counts; "" for none
	}{
		{"ok", proxy.DialOK, ""},
		{"dns", proxy.DialDNS, "dns"},
		{"reset", proxy.DialReset, "reset"},
		{"unknown value", proxy.DialError("weird"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reg, _ := newTest(t, nil, Options{})
			r.Dialed(&proxy.Decision{}, 2*time.Millisecond, 5*time.Millisecond, tt.err)
			for _, e := range dialErrors {
				want := 0.0
				if string(e) == tt.reason {
					want = 1
				}
				if v, _ := counterValue(t, reg, "egressgate_upstream_errors_total", map[string]string{"reason": string(e)}); v != want {
					t.Errorf("upstream_errors_total{%s} = %v, want %v", e, v, want)
				}
			}
		})
	}
}

func TestTopMisses(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		stream   string // one host per character
		want     string // "host:count" of the kept hosts, most first
	}{
		{"exact under capacity", 3, "aabacb", "a:3 b:2 c:1"},
		{"once ring drops the oldest one-hit", 2, "aabcd", "a:2 c:1 d:1"},
		{"repeated drops the least", 2, "aaabbccd", "a:3 c:2 d:1"},
		{"no inherited counts", 2, "aaaabacad", "a:6 c:1 d:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := newTopMisses(tt.capacity)
			for _, c := range tt.stream {
				top.record(&proxy.Decision{Host: string(c), Reason: rules.ReasonNotInCatalog})
			}
			got, total := top.snapshot()
			var parts []string
			for _, m := range got {
				parts = append(parts, fmt.Sprintf("%s:%d", m.Host, m.Count))
				if m.Error != 0 {
					t.Errorf("%s: error %d, want exact counts", m.Host, m.Error)
				}
			}
			if s := strings.Join(parts, " "); s != tt.want {
				t.Errorf("top = %s, want %s", s, tt.want)
			}
			if total != uint64(len(tt.stream)) {
				t.Errorf("total = %d, want %d", total, len(tt.stream))
			}
		})
	}
}

// TestTopMissesFlood: 3,000 made-up names pushed real low-count misses
// out of /misses (an account host that needed adding among them), and
// flood names showed counts they never had (count 4, error 3). One-hit
// names now churn a table of their own, account hosts are kept apart,
// and every count is what was seen.
func TestTopMissesFlood(t *testing.T) {
	top := newTopMisses(DefaultTopMisses)
	deny := func(host string, n int) {
		for range n {
			top.record(&proxy.Decision{Host: host, Port: 443, Reason: rules.ReasonNotInCatalog})
		}
	}
	deny("dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com", 1) // an account host, seen once
	deny("updates.example.net", 2)
	deny("once.example.net", 1)
	for i := range 3000 {
		deny(fmt.Sprintf("flood%d.example.org", i), 1)
	}
	got, total := top.snapshot()
	counts := map[string]uint64{}
	for _, m := range got {
		counts[m.Host] = m.Count
		if strings.HasPrefix(m.Host, "flood") && m.Count != 1 {
			t.Errorf("%s shows %d misses, it had 1", m.Host, m.Count)
		}
	}
	if counts["dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com"] != 1 || counts["updates.example.net"] != 2 {
		t.Errorf("after the flood: account host %d, repeated host %d; want 1 and 2 kept",
			counts["dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com"], counts["updates.example.net"])
	}
	if _, kept := counts["once.example.net"]; kept {
		t.Error("a one-hit host outlived 3,000 newer one-hit hosts in a 1,000-place table")
	}
	if total != 3004 {
		t.Errorf("total = %d, want 3004", total)
	}
}
