package proxy

import (
	"net"
	"testing"
	"time"
)

// TestKeepAliveSpread: each socket's keepalive idle time is KeepAlive up
// to a quarter longer, in whole seconds, drawn anew for each socket, so
// that tunnels opened together do not probe together; the probes'
// interval and count stay as they are, and off stays off.
func TestKeepAliveSpread(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		idle      time.Duration // before the spread
	}{
		{"default", 0, DefaultKeepAlive},
		{"1m", time.Minute, time.Minute},
		{"7s", 7 * time.Second, 7 * time.Second},
		{"90s", 90 * time.Second, 90 * time.Second},
		{"1h", time.Hour, time.Hour},
	} {
		cfg := Config{KeepAlive: tc.keepAlive}
		for _, src := range []struct {
			name   string
			config func() net.KeepAliveConfig
		}{
			{"keepAliveConfig", cfg.keepAliveConfig},
			{"dialer", func() net.KeepAliveConfig { d := cfg.dialer(); return d.KeepAliveConfig }},
		} {
			t.Run(tc.name+"/"+src.name, func(t *testing.T) {
				seen := map[time.Duration]bool{}
				for range 1000 {
					ka := src.config()
					if !ka.Enable || ka.Interval != keepAliveInterval || ka.Count != keepAliveProbes {
						t.Fatalf("%+v: want enabled, interval %v, count %d", ka, keepAliveInterval, keepAliveProbes)
					}
					if ka.Idle < tc.idle || ka.Idle >= tc.idle+tc.idle/4 || ka.Idle%time.Second != 0 {
						t.Fatalf("idle %v, want whole seconds in [%v, %v)", ka.Idle, tc.idle, tc.idle+tc.idle/4)
					}
					seen[ka.Idle] = true
				}
				if len(seen) < 2 {
					t.Errorf("every idle time of 1,000 sockets is %v: not spread", tc.idle)
				}
			})
		}
	}
}

// TestKeepAliveOff: a negative KeepAlive leaves keepalive off on dialled
// sockets, and ListenConfig's listeners never set it as they accept
// (Serve and ServeSNI do, spread), whatever KeepAlive is.
func TestKeepAliveOff(t *testing.T) {
	cfg := Config{KeepAlive: -1}
	if ka := cfg.keepAliveConfig(); ka.Enable {
		t.Errorf("keepAliveConfig() = %+v, want off", ka)
	}
	if d := cfg.dialer(); d.KeepAlive >= 0 || d.KeepAliveConfig.Enable {
		t.Errorf("dialer() keepalive %v %+v, want off", d.KeepAlive, d.KeepAliveConfig)
	}
	for _, ka := range []time.Duration{-1, 0, time.Minute} {
		if lc := (Config{KeepAlive: ka}).ListenConfig(); lc.KeepAlive >= 0 || lc.KeepAliveConfig.Enable {
			t.Errorf("KeepAlive %v: ListenConfig() keepalive %v %+v, want net's setting off", ka, lc.KeepAlive, lc.KeepAliveConfig)
		}
	}
}

// TestKeepAliveConfigAllocs: the spread is drawn on every accept and
// dial, without allocating.
func TestKeepAliveConfigAllocs(t *testing.T) {
	cfg := Config{KeepAlive: time.Minute}
	if n := testing.AllocsPerRun(100, func() { cfg.keepAliveConfig() }); n != 0 {
		t.Errorf("keepAliveConfig allocates %v times, want 0", n)
	}
}
