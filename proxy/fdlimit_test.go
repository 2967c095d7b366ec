//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// The child half of TestOutOfDescriptors runs in a process of its own,
// whose descriptor limit it lowers: only the proxy lives there, so the
// descriptors that run out are the proxy's, and the test's clients and
// upstream keep theirs.
const (
	fdChildEnv    = "EGRESSGATE_TEST_FD_CHILD"  // the RLIMIT_NOFILE to set
	fdChildTarget = "EGRESSGATE_TEST_FD_TARGET" // host:port of the upstream
	fdChildCap    = "EGRESSGATE_TEST_FD_CAP"    // Config.MaxConns
	fdChildChurn  = "EGRESSGATE_TEST_FD_CHURN"  // "1": another user of descriptors
	// fdChildClients is Config.Clients, one prefix; empty: the default.
	fdChildClients = "EGRESSGATE_TEST_FD_CLIENTS"
)

// TestOutOfDescriptorsChild is the proxy process of TestOutOfDescriptors.
// It prints "addr ADDR", then answers each "stats" line on stdin with one
// line of counters, and exits when stdin closes.
func TestOutOfDescriptorsChild(t *testing.T) {
	limit, err := strconv.ParseUint(os.Getenv(fdChildEnv), 10, 64)
	if err != nil {
		t.Skip("run by TestOutOfDescriptors")
	}
	target := os.Getenv(fdChildTarget)
	maxConns, _ := strconv.Atoi(os.Getenv(fdChildCap))
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	rl.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if os.Getenv(fdChildChurn) == "1" {
		// Something else in the process keeps taking and giving back a
		// descriptor, as the runtime does reading a file: a slot the
		// proxy frees for a moment may go to it.
		go func() {
			for {
				if fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
					time.Sleep(50 * time.Microsecond)
					syscall.Close(fd)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	host, _, _ := net.SplitHostPort(target)
	var clients []netip.Prefix
	if p := os.Getenv(fdChildClients); p != "" {
		clients = []netip.Prefix{netip.MustParsePrefix(p)}
	}
	addr, srv := startProxy(t, Config{Rules: StaticRules{testMatcher(t, target)}, Hosts: hostsFor(host),
		AllowDest: loopbackDest, MaxConns: maxConns, Clients: clients})
	fmt.Printf("addr %s\n", addr)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		l := srv.Limits()
		ents, _ := os.ReadDir("/proc/self/fd")
		fmt.Printf("stats goroutines=%d refused-fd=%d refused-max=%d no-fd=%d max=%d fds=%d\n",
			runtime.NumGoroutine(), l.RefusedNoDescriptors, l.RefusedMaxConns, l.OutOfDescriptors, l.MaxConns, len(ents))
	}
}

// fdChild is a running TestOutOfDescriptorsChild.
type fdChild struct {
	addr  string
	stdin *os.File
	out   *bufio.Reader
}

// stats asks the child for its counters.
func (c *fdChild) stats(t *testing.T) map[string]int {
	t.Helper()
	fmt.Fprintln(c.stdin, "stats")
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading child stats: %v", err)
	}
	m := map[string]int{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "stats ")) {
		k, v, _ := strings.Cut(f, "=")
		m[k], _ = strconv.Atoi(v)
	}
	return m
}

func startFDChild(t *testing.T, limit int, target string, maxConns int, churn bool, env ...string) *fdChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutOfDescriptorsChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+strconv.Itoa(limit), fdChildTarget+"="+target,
		fdChildCap+"="+strconv.Itoa(maxConns))
	cmd.Env = append(cmd.Env, env...)
	if churn {
		cmd.Env = append(cmd.Env, fdChildChurn+"=1")
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	c := &fdChild{stdin: inW, out: bufio.NewReader(outR)}
	t.Cleanup(func() {
		inW.Close()
		done := make(chan error, 1)
		var rest []byte
		go func() {
			rest, _ = io.ReadAll(c.out)
			done <- cmd.Wait()
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy child: %v; it said:\n%s", err, rest)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Error("proxy child did not exit")
		}
		outR.Close()
	})
	line, err := c.out.ReadString('\n')
	if !strings.HasPrefix(line, "addr ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	c.addr = strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	return c
}

// connectStatus sends CONNECT and returns the status code and reason
// header of the answer, within 5 s: a hang fails the test.
func connectStatus(t *testing.T, proxyAddr, target string) (net.Conn, string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	head, err := readHead(c)
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT answer: %v (got %q): the proxy hung or dropped the client", err, head)
	}
	c.SetDeadline(time.Time{})
	code := ""
	if f := strings.Fields(head); len(f) > 1 {
		code = f[1]
	}
	reason := ""
	for _, l := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(l, reasonHeader+": "); ok {
			reason = v
		}
	}
	return c, code, reason
}

// TestOutOfDescriptors runs a proxy under a low descriptor limit and
// opens tunnels until it refuses. With the cap derived from the limit
// the refusal is a 503 max-conns before any descriptor runs out; with no
// cap the process does run out, and every further CONNECT still gets a
// prompt 503 out-of-descriptors, counted, never a hang or a 502. Closing
// the tunnels brings service back with no goroutine left behind. The
// churn case adds something else in the process that keeps taking a
// descriptor for a moment, so a slot the proxy frees may go elsewhere.
func TestOutOfDescriptors(t *testing.T) {
	const limit = 96
	up := echoServer(t, copyEcho)
	target := fmt.Sprintf("echo.example.org:%d", portOf(t, up))
	for _, tc := range []struct {
		name     string
		maxConns int
		churn    bool
		reason   string
	}{
		{"derived-cap", 0, false, rules.ReasonMaxConns.String()},
		{"no-cap", -1, false, rules.ReasonOutOfDescriptors.String()},
		{"no-cap-churn", -1, true, rules.ReasonOutOfDescriptors.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child := startFDChild(t, limit, target, tc.maxConns, tc.churn)
			base := child.stats(t)
			var open []net.Conn
			defer func() {
				for _, c := range open {
					c.Close()
				}
			}()
			refused := 0
			for i := 0; i < limit && refused < 20; i++ {
				c, code, reason := connectStatus(t, child.addr, target)
				if code == "200" {
					if err := roundTrip(c, "x"); err != nil {
						t.Fatalf("tunnel %d: %v", i, err)
					}
					open = append(open, c)
					if refused > 0 && !tc.churn { // churn frees a slot now and then
						t.Fatalf("tunnel %d admitted after %d refusals with nothing closed", i, refused)
					}
					continue
				}
				c.Close()
				if code != "503" || reason != tc.reason {
					t.Fatalf("CONNECT %d = %s %s, want 200 or 503 %s", i, code, reason, tc.reason)
				}
				refused++
			}
			if refused == 0 {
				t.Fatalf("%d tunnels, none refused", len(open))
			}
			st := child.stats(t)
			t.Logf("%d tunnels held under a %d-descriptor limit, then %d refused; child: %v", len(open), limit, refused, st)
			switch tc.reason {
			case rules.ReasonMaxConns.String():
				if st["no-fd"] != 0 || st["refused-max"] < refused {
					t.Errorf("child stats %v: want no descriptor exhaustion and %d max-conns refusals", st, refused)
				}
				if len(open) != st["max"] {
					t.Errorf("held %d tunnels, cap %d", len(open), st["max"])
				}
			case rules.ReasonOutOfDescriptors.String():
				if st["refused-fd"] < refused || st["no-fd"] < refused {
					t.Errorf("child stats %v: want at least %d out-of-descriptors refusals counted", st, refused)
				}
			}

			for _, c := range open {
				c.Close()
			}
			open = nil
			// Recovery: a new tunnel works once the old ones are gone.
			var recovered bool
			for range 100 {
				c, code, _ := connectStatus(t, child.addr, target)
				if code == "200" {
					recovered = roundTrip(c, "again") == nil
					c.Close()
					break
				}
				c.Close()
				time.Sleep(50 * time.Millisecond)
			}
			if !recovered {
				t.Fatal("no tunnel admitted after the others closed")
			}
			var last map[string]int
			for range 100 {
				if last = child.stats(t); last["goroutines"] <= base["goroutines"]+2 {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("child goroutines: %d before, %d after the tunnels closed", base["goroutines"], last["goroutines"])
		})
	}
}
