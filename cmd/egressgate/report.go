package main

import (
	"context"
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
	cl := newCommandLine("report", "egressgate report --from URL | --prometheus URL [--estate NAME] [--top N] [--timeout D]", `
Prints which catalog entries were used, which were admitted but never reached
their upstream, which were never used, and the most denied hosts: from one
egressgate's admin listener (--from), or from a Prometheus server that scrapes
every replica (--prometheus; it has no denied hosts). --estate NAME shows one
estate's entries and hits (the denied hosts stay the whole proxy's).

exit status: 0 printed, 1 a fetch failed, 2 bad usage`)
	from := cl.String("from", "", "admin `URL` of an egressgate, e.g. http://"+defaultAdminListen)
	prom := cl.String("prometheus", "", "`URL` of a Prometheus server that scrapes egressgate")
	top := cl.Int("top", 20, "top misses to print; 0 for all that are tracked")
	estate := cl.String("estate", "", "one `estate`'s entries and hits (the misses stay the whole proxy's)")
	timeout := cl.Duration("timeout", 30*time.Second, "time allowed for all requests")
	if exit, ok := cl.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	if (*from == "") == (*prom == "") {
		return cl.fail(stderr, "give exactly one of --from and --prometheus")
	}
	if *top < 0 {
		return cl.fail(stderr, "--top %d: want 0 (all) or more", *top)
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
