// Command egressgate is an egress forward proxy that admits only the hosts
// an allowlist catalog names, logs every miss and exports per-entry
// Prometheus metrics.
//
// Usage:
//
//	egressgate serve   [flags]             run the proxy (the main job)
//	egressgate check   [--config FILE]     validate config and catalogs
//	egressgate explain [--config FILE] [--json] HOST[:PORT]
//	egressgate catalog [--config FILE] [--format list|yaml]
//	egressgate report  --from URL | --prometheus URL
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the proxy on the configured catalogs", runServe},
		{"check", "validate the config and catalogs, print a summary", runCheck},
		{"explain", "say whether a host and port would be admitted, and why", runExplain},
		{"catalog", "print the effective allowlist", runCatalog},
		{"report", "print used and never-used entries and top misses", runReport},
		{"healthcheck", "ask a running egressgate's /healthz; exit 0 if healthy", runHealthcheck},
		{"alertmanager-config", "write an Alertmanager config that escalates each estate's alerts through its contacts", runAlertmanagerConfig},
		{"version", "print the version", func([]string, io.Writer, io.Writer) int { fmt.Println(version); return 0 }},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "egressgate: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: egressgate COMMAND [flags]")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}
