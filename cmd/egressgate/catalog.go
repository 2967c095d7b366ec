package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/export"
)

// runCatalog prints the effective allowlist: every entry the policy turns
// on, as a list to paste into another firewall or as YAML in the catalog
// schema.
func runCatalog(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	if exit, ok := runCatalogSub(args, stdout, stderr); ok {
		return exit
	}
	config := cl.addConfig()
	format := cl.String("format", "list", "output `format`: list, yaml, squid, pac, hosts or json")
	estate := cl.String("estate", rules.DefaultEstate, "print this `estate`'s allowlist")
	var exp exportOptions
	cl.StringVar(&exp.pacProxy, "pac-proxy", "", "with --format pac: the proxy `HOST:PORT` endpoints are told to use")
	cl.StringVar(&exp.pacFallback, "pac-fallback", "direct", "with --format pac: where other names go, `direct` or proxy")
	if exit, ok := cl.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	rs, ok := loadConfig(*config, stderr)
	if !ok {
		return 1
	}
	es := rs.Estate(*estate)
	if es == nil {
		fmt.Fprintf(stderr, "egressgate catalog: --estate %q is not in the config (estates: %s)\n", *estate, strings.Join(estateNames(rs), ", "))
		return 2
	}
	return runCatalogExport(*format, export.NewView(rs, es), exp, stdout, stderr)
}

// estateNames lists the estates of rs.
func estateNames(rs *rules.Ruleset) []string {
	out := make([]string, len(rs.Estates))
	for i, e := range rs.Estates {
		out[i] = e.Name
	}
	return out
}
