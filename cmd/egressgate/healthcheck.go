package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck is "egressgate healthcheck": it asks a running
// egressgate's admin listener for /healthz and exits 0 when it answers 200,
// 1 otherwise. It is the container's HEALTHCHECK, which has no shell and no
// curl in a scratch image.
func runHealthcheck(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	admin := cl.String("admin", "127.0.0.1:9128", "admin `address` of the egressgate to ask (as given to serve --admin)")
	path := cl.String("path", "/healthz", "`path` to ask: /healthz (alive) or /readyz (serving)")
	timeout := cl.Duration("timeout", 3*time.Second, "give up after this long")
	if exit, ok := cl.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	if err := setFromEnv(cl.FlagSet, "admin"); err != nil {
		return cl.fail(stderr, "%v", err)
	}
	if err := healthcheck(*admin, *path, *timeout); err != nil {
		fmt.Fprintf(stderr, "egressgate healthcheck: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// healthcheck GETs path on the admin listener at addr. An address that
// binds all interfaces (":9128", "0.0.0.0:9128", "[::]:9128") is asked on
// loopback, so the flag can be copied from serve's command line as is.
func healthcheck(addr, path string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "http://" + net.JoinHostPort(host, port) + path
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--path %q: %w", path, err)
	}
	// No proxy from the environment: the admin listener is asked directly.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
