package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/egressgate/egressgate/rules/export"
)

// exportFormats are the --format values of "catalog", each written by
// rules/export from the same view of the estate's entries.
var exportFormats = []string{"list", "yaml", "squid", "pac", "hosts", "json"}

// exportOptions are the flags only some export formats use.
type exportOptions struct {
	pacProxy    string // --pac-proxy: the address the PAC sends catalog names to
	pacFallback string // --pac-fallback: direct or proxy
}

// runCatalogExport writes the view in format (one of exportFormats) and
// returns the exit code; 2 for an unknown format or a missing flag.
func runCatalogExport(format string, v *export.View, opts exportOptions, stdout, stderr io.Writer) int {
	var err error
	switch format {
	case "list":
		err = export.WriteList(stdout, v)
	case "yaml":
		err = export.WriteYAML(stdout, v)
	case "squid":
		err = export.WriteSquid(stdout, v)
	case "hosts":
		err = export.WriteHosts(stdout, v)
	case "json":
		err = export.WriteJSON(stdout, v)
	case "pac":
		if opts.pacProxy == "" {
			fmt.Fprintln(stderr, "egressgate catalog: --format pac needs --pac-proxy HOST:PORT, the address endpoints reach the proxy on")
			return 2
		}
		proxyAddr, perr := parsePACProxy(opts.pacProxy)
		if perr != nil {
			fmt.Fprintf(stderr, "egressgate catalog: --pac-proxy %v\n", perr)
			return 2
		}
		fallback, ferr := export.ParsePACFallback(opts.pacFallback)
		if ferr != nil {
			fmt.Fprintf(stderr, "egressgate catalog: --pac-fallback: %v\n", ferr)
			return 2
		}
		var pac []byte
		if pac, err = export.PAC(v.Estate.Matcher, proxyAddr, fallback); err == nil {
			_, err = stdout.Write(pac)
		}
	default:
		fmt.Fprintf(stderr, "egressgate catalog: --format %q is not %s\n", format, strings.Join(exportFormats, ", "))
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "egressgate catalog: %v\n", err)
		return 1
	}
	return 0
}
