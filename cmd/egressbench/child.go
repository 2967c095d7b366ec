package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// instance is a running proxy the client can send tunnels through.
type instance struct {
	addr string // proxy address; "" for direct
	pid  int    // process to read CPU and RSS from; 0 when unknown
	stop func()
	// alive reports an error when the proxy has exited; nil when the tool
	// cannot tell.
	alive func() error
}

// child is a proxy running as a child process of the tool.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error
}

// startChild runs argv with its output in logPath and waits until addr
// accepts connections.
func startChild(name, addr, logPath string, argv []string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	if err := c.waitReady(addr, 20*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitReady polls addr until it accepts a connection, the process exits or
// timeout passes.
func (c *child) waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before listening on %s (%v); its log %s ends:\n%s",
				c.name, addr, c.waitErr, c.logPath, c.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v; its log %s ends:\n%s",
				c.name, addr, timeout, c.logPath, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and, if the process is still there after five
// seconds, SIGKILL.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// alive reports an error if the process has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited (%v); its log %s ends:\n%s", c.name, c.waitErr, c.logPath, c.logTail())
	default:
		return nil
	}
}

// logTail is the last lines of the child's log.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// instance is the child as a target instance.
func (c *child) instance(addr string) *instance {
	return &instance{addr: addr, pid: c.cmd.Process.Pid, stop: c.stop, alive: c.alive}
}

// freeAddr picks a free loopback port. Another process may take it before
// the proxy binds it; the proxy then fails to start and says so.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
