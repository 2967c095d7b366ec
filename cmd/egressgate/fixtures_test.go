package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// The fixtures the tests of this package share: tools, loopback
// addresses and upstreams.

// findTool returns the path of a program a test starts, from PATH or
// /usr/sbin, or skips the test: under -short, which leaves out every test
// that starts a real component, and when the program is not installed,
// naming the Debian package (`make deps` installs it).
func findTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: not starting %s", name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Skipf("%s not installed (apt-get install %s); skipping", name, pkg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeFiles writes name → content under a temporary directory and
// returns the directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// upstream serves h on a loopback port for the test's life and returns
// its address.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// httpsUpstream serves h over TLS, with httptest's certificate, on ln
// or, when ln is nil, on a loopback port, for the test's life.
func httpsUpstream(t *testing.T, ln net.Listener, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// portString returns the port of a host:port address.
func portString(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// waitListening waits until addr accepts connections; log says why not.
func waitListening(t *testing.T, addr string, limit time.Duration, log func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s:\n%s", addr, limit, log())
}

// runArgsEnv, when set in the environment, makes the test binary run
// egressgate with these arguments (one per line) instead of the tests:
// a process of its own, for an environment the other tests must not see
// (SSL_CERT_FILE, to trust a test server as an operator's system roots
// trust the vendor's).
const runArgsEnv = "EGRESSGATE_TEST_RUN_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(runArgsEnv); args != "" {
		os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runChild runs "egressgate args..." in a child process, with env added
// to the environment, and returns what it printed and its exit status.
func runChild(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), runArgsEnv+"="+strings.Join(args, "\n")), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// serveChildEnv, set, makes TestServeChild run "egressgate serve" with
// the arguments it holds (separated by US, 0x1f) under a 1,024-descriptor limit.
const serveChildEnv = "EGRESSGATE_TEST_SERVE_ARGS"

// TestServeChild is the egressgate process of tests that need one of its
// own: it runs until SIGTERM.
func TestServeChild(t *testing.T) {
	args := os.Getenv(serveChildEnv)
	if args == "" {
		t.Skip("run by other tests")
	}
	lowerFileLimit(t, 1024)
	os.Exit(run(append([]string{"serve"}, strings.Split(args, "\x1f")...), os.Stdout, os.Stderr))
}

// startServeChild runs egressgate serve in a child process under a
// 1,024-descriptor limit and returns the addresses its listeners logged.
func startServeChild(t *testing.T, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+strings.Join(args, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	addrs := map[string]string{}
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var l struct{ Msg, Listener, Addr string }
		json.Unmarshal(sc.Bytes(), &l)
		if l.Msg == "listening" {
			addrs[l.Listener] = l.Addr
		}
		if addrs["proxy"] != "" && addrs["admin"] != "" && (addrs["tls"] != "" || !slices.Contains(args, "--listen-tls")) {
			go io.Copy(io.Discard, stderr)
			return addrs
		}
	}
	t.Fatalf("egressgate serve did not log its listeners (%v)", sc.Err())
	return nil
}

// loadRuleset loads the config at path ("" for the built-in default) or
// fails the test.
func loadRuleset(t *testing.T, path string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// inProcessServe is serve running in the test's process.
type inProcessServe struct {
	addrs  map[string]string    // the listeners' addresses, by name
	log    *proxytest.LogBuffer // what serve logs
	hup    chan os.Signal       // a send reloads, as SIGHUP does
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error // what serve returned, once stopped
}

// startServe runs serve with args in the test's process until stop or
// the test's end, and waits until n listeners listen.
func startServe(t *testing.T, n int, args ...string) *inProcessServe {
	t.Helper()
	o, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &inProcessServe{addrs: map[string]string{}, log: &proxytest.LogBuffer{},
		hup: make(chan os.Signal, 1), cancel: cancel, done: make(chan error, 1)}
	listening := make(chan [2]string, 4)
	go func() {
		s.done <- serve(ctx, o, s.hup, s.log, func(name, addr string) { listening <- [2]string{name, addr} })
	}()
	t.Cleanup(func() { s.stop(t) })
	for len(s.addrs) < n {
		select {
		case l := <-listening:
			s.addrs[l[0]] = l[1]
		case err := <-s.done:
			t.Fatalf("serve: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("serve listens on %v only", s.addrs)
		}
	}
	return s
}

// stop cancels serve and returns what it returned.
func (s *inProcessServe) stop(t *testing.T) error {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not return after cancel")
		}
	})
	return s.err
}

// logged returns what serve has logged so far.
func (s *inProcessServe) logged() string {
	return s.log.String()
}

// waitLogged reports whether serve logs want within limit.
func (s *inProcessServe) waitLogged(want string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(s.logged(), want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
