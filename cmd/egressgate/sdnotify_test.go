package main

import (
	"bytes"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// TestServeNotifiesAndHealthchecks runs serve as systemd would run the
// Type=notify unit, with $NOTIFY_SOCKET pointing at a datagram socket the
// test reads: READY=1 once listening, RELOADING=1 then READY=1 around a
// SIGHUP reload, STOPPING=1 on shutdown. While it runs, `egressgate
// healthcheck` asks its admin listener and exits 0; asked of a port
// nothing listens on, it exits 1.
func TestServeNotifiesAndHealthchecks(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-states:
			if !strings.HasPrefix(got, want) {
				t.Fatalf("sd_notify state = %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no sd_notify %q within 10s", want)
		}
	}

	dir := writeFiles(t, map[string]string{
		"site.list":       "crl.example.org:80\n",
		"egressgate.yaml": "embedded: []\ncatalogs:\n  - path: site.list\n",
	})
	s := startServe(t, 2, "--config", filepath.Join(dir, "egressgate.yaml"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-timeout", "2s")
	adminAddr := s.addrs["admin"]
	expect(sdReady)

	for _, tc := range []struct {
		name string
		args []string
		exit int
	}{
		{"running", []string{"--admin", adminAddr}, 0},
		{"ready", []string{"--admin", adminAddr, "--path", "/readyz"}, 0},
		{"all-addresses-form", []string{"--admin", ":" + adminAddr[strings.LastIndexByte(adminAddr, ':')+1:]}, 0},
		{"nothing-listens", []string{"--admin", proxytest.FreeAddr(t), "--timeout", "2s"}, 1},
		{"not-found", []string{"--admin", adminAddr, "--path", "/nope"}, 1},
		{"bad-address", []string{"--admin", "9128"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(append([]string{"healthcheck"}, tc.args...), &stdout, &stderr); got != tc.exit {
				t.Errorf("egressgate healthcheck %q = %d, want %d; stderr %s", tc.args, got, tc.exit, stderr.String())
			}
			if tc.exit != 0 && !strings.Contains(stderr.String(), "egressgate healthcheck: ") {
				t.Errorf("egressgate healthcheck %q: stderr %q does not say why", tc.args, stderr.String())
			}
		})
	}

	s.hup <- syscall.SIGHUP
	expect("RELOADING=1\nMONOTONIC_USEC=")
	expect(sdReady)
	s.cancel()
	expect(sdStopping)
	if err := s.stop(t); err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestSDReloadingAt: RELOADING=1 carries MONOTONIC_USEC where there is a
// CLOCK_MONOTONIC reading (Linux) and goes alone where there is none.
func TestSDReloadingAt(t *testing.T) {
	for _, tc := range []struct {
		now  time.Duration
		ok   bool
		want string
	}{
		{5*time.Second + 1500*time.Nanosecond, true, "RELOADING=1\nMONOTONIC_USEC=5000001"},
		{0, false, "RELOADING=1"},
	} {
		if got := sdReloadingAt(tc.now, tc.ok); got != tc.want {
			t.Errorf("sdReloadingAt(%v, %v) = %q, want %q", tc.now, tc.ok, got, tc.want)
		}
	}
	if _, ok := monotonicNow(); runtime.GOOS == "linux" && !ok {
		t.Error("monotonicNow() has no reading on Linux")
	}
}
