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
func runCatalog(args []string, stdout, stderr io.Writer) int {
	if exit, ok := runCatalogSub(args, stdout, stderr); ok {
		return exit
	}
	cl := newCommandLine("catalog", "egressgate catalog [--config FILE] [--estate NAME] [--format list|yaml|squid|pac|hosts|json] [--pac-proxy HOST:PORT]\n       egressgate catalog import PAGE.txt|https://URL\n       egressgate catalog diff OLD NEW", `
Prints the entries in force under the config's policy: as a plain list, itself
a catalog to paste into another firewall, with the optional sections that are
off as comments; with --format yaml, as catalogs in the loader's schema that
load back (the policy as comments); or as a Squid ACL file (squid), a proxy
auto-config file (pac, the same file /proxy.pac serves; it needs --pac-proxy),
bare host names (hosts) or JSON for other enforcement points. --estate NAME
prints that estate's allowlist (the default estate's otherwise); the entries
its policy refuses are comments, deny rules (squid), listed as refused (pac),
under a "refused" comment (yaml) or marked "refused" (json). "catalog import"
and "catalog diff" are described by their own --help.

exit status: 0 printed, 1 the config does not load, 2 bad usage`)
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
