package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/egressgate/egressgate/metrics"
)

// runReport prints used and never-used catalog entries and the top denied
// hosts, from one egressgate's admin listener (--from) or from Prometheus
// (--prometheus, hits summed over every replica; no top misses). Exit 0
// when printed, 1 when fetching failed, 2 for bad usage.
func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("egressgate report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "admin `URL` of an egressgate, e.g. http://"+defaultAdminListen)
	prom := fs.String("prometheus", "", "`URL` of a Prometheus server that scrapes egressgate")
	top := fs.Int("top", 20, "top misses to print; 0 for all that are tracked")
	estate := fs.String("estate", "", "one `estate`'s entries and hits (the misses stay the whole proxy's)")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for all requests")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: egressgate report --from URL | --prometheus URL [--estate NAME] [--top N] [--timeout D]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "egressgate report: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if (*from == "") == (*prom == "") || *top < 0 {
		fmt.Fprintln(stderr, "egressgate report: give exactly one of --from and --prometheus")
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var (
		rep *metrics.Report
		err error
	)
	if *from != "" {
		rep, err = metrics.FetchAdminEstate(ctx, http.DefaultClient, *from, *estate)
	} else {
		rep, err = metrics.FetchPrometheusEstate(ctx, http.DefaultClient, *prom, *estate)
	}
	if err != nil {
		fmt.Fprintf(stderr, "egressgate report: %v\n", err)
		return 1
	}
	if err := rep.WriteText(stdout, *top); err != nil {
		fmt.Fprintf(stderr, "egressgate report: writing: %v\n", err)
		return 1
	}
	return 0
}
