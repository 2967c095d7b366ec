package deploy

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// TestSystemdSamples checks that the files the unit's install steps name
// exist beside it, and that the sample config loads with its catalog.
func TestSystemdSamples(t *testing.T) {
	data := readFile(t, systemdUnit)
	named := regexp.MustCompile(`deploy/systemd/[\w.-]+`).FindAllString(string(data), -1)
	if len(named) < 3 {
		t.Errorf("%s: install steps name %q, want the unit, config.yaml and site.txt", systemdUnit, named)
	}
	for _, f := range named {
		if _, err := os.Stat(filepath.Join("..", f)); err != nil {
			t.Errorf("%s: install step names %s: %v", systemdUnit, f, err)
		}
	}
	rs, err := rules.Load("systemd/config.yaml")
	if err != nil {
		t.Fatalf("sample config: %v", err)
	}
	var fromSite bool
	for _, f := range rs.Files {
		fromSite = fromSite || filepath.Base(f) == "site.txt"
	}
	if !fromSite || len(rs.Matcher.Entries()) == 0 {
		t.Errorf("sample config: files %q, %d entries; want site.txt read and the embedded entries in force", rs.Files, len(rs.Matcher.Entries()))
	}
}

// TestSystemdNotify runs egressgate with the unit's ExecStart (the
// sample config, ports moved to free loopback ports) as systemd runs a
// Type=notify service: $NOTIFY_SOCKET names a datagram socket the test
// reads. READY=1 must come once it listens, the unit's ExecReload (run
// with $MAINPID) must bring RELOADING=1 then READY=1, and SIGTERM
// STOPPING=1 and an exit 0.
func TestSystemdNotify(t *testing.T) {
	d := unitDirectives(t, systemdUnit)
	if typ := d["Type"]; len(typ) != 1 || typ[0] != "notify" {
		t.Fatalf("%s: Type = %q, want notify (egressgate sends READY=1)", systemdUnit, typ)
	}
	bin, _ := buildEgressgate(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expect := func(want string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), want) {
			t.Fatalf("sd_notify: got %q (%v), want %q", buf[:n], err, want)
		}
	}

	start := strings.Fields(strings.Join(d["ExecStart"], " "))
	args := rewriteFlags(start[1:], map[string]string{
		"config": "systemd/config.yaml",
		"listen": proxytest.FreeAddr(t),
		"admin":  proxytest.FreeAddr(t),
	})
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("egressgate log:\n%s", log.String())
		}
	})
	expect("READY=1")

	reload := strings.Fields(strings.ReplaceAll(strings.Join(d["ExecReload"], " "), "$MAINPID", strconv.Itoa(cmd.Process.Pid)))
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload, err, out)
	}
	expect("RELOADING=1")
	expect("READY=1")

	cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("egressgate exit: %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("egressgate still running 15 s after SIGTERM")
	}
}
