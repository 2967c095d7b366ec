package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The hold scenario's tunnels are opened and kept by a child process of
// the tool (egressbench hold-child), not by the process that measures the
// rate and p99 while they are held: a process with thousands of open
// sockets and parked goroutines of its own would measure itself as well
// as the proxy.

// holdChildCmd is the first argument that makes egressbench the holder.
const holdChildCmd = "hold-child"

// holdResult is what the holder reports on its stdout, one JSON line,
// once every tunnel it could open is open.
type holdResult struct {
	Held   int    `json:"held"`
	Errors int    `json:"errors"`
	First  string `json:"first_error,omitempty"`
}

// holdChild is a running holder.
type holdChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	res   holdResult
}

// startHoldChild runs the holder for n tunnels through cl's proxy and
// waits until it has opened them.
func startHoldChild(ctx context.Context, cl *client, n int) (*holdChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the tool's own executable for the holder: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, holdChildCmd,
		"--proxy", cl.proxy, "--target", cl.target, "--n", strconv.Itoa(n),
		"--hello", hex.EncodeToString(cl.holdHello))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = dieWithParent()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the holder: %w", err)
	}
	h := &holdChild{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &h.res)
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("reading the holder's report: %w", err)
	}
	return h, nil
}

// close tells the holder to close its tunnels and exit, and waits for it.
func (h *holdChild) close() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() {
		h.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// runHoldChild is egressbench hold-child: it opens --n held tunnels
// through --proxy, reports them on stdout and holds them until stdin
// closes.
func runHoldChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(holdChildCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	proxy := fs.String("proxy", "", "proxy address")
	target := fs.String("target", "", "host:port to CONNECT to")
	n := fs.Int("n", 0, "tunnels to hold")
	helloHex := fs.String("hello", "", "the ClientHello each tunnel sends, in hex")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hello, err := hex.DecodeString(*helloHex)
	if err != nil || *proxy == "" || *target == "" {
		fmt.Fprintln(stderr, "egressbench hold-child: want --proxy, --target and a hex --hello")
		return 2
	}
	raiseFileLimit()
	cl := &client{proxy: *proxy, target: *target, holdHello: hello}
	open, res := holdTunnels(context.Background(), cl, *n)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	b, _ := json.Marshal(res)
	if _, err := stdout.Write(append(b, '\n')); err != nil {
		return 1
	}
	io.Copy(io.Discard, stdin) // until the tool closes it
	return 0
}

// holdTunnels opens n held tunnels through cl, 32 at a time, each from
// its own source address, and stops early after holdFailLimit failures.
func holdTunnels(ctx context.Context, cl *client, n int) ([]net.Conn, holdResult) {
	var (
		mu    sync.Mutex
		open  []net.Conn
		errs  errorTally
		fails atomic.Int64
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil && fails.Load() < holdFailLimit {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := cl.holdTunnel(ctx, holdSource(i))
				if err != nil {
					errs.add(err)
					fails.Add(1)
					continue
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if errs.n == 0 && len(open) < n {
		errs.add(errors.New("stopped before every tunnel was open"))
	}
	return open, holdResult{Held: len(open), Errors: errs.n, First: errs.first}
}
