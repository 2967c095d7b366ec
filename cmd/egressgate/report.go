package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/egressgate/egressgate/metrics"
)

// runReport prints the catalog entries by state (used, admitted but never
// reached, never used, refused) and the top denied hosts, from one
// egressgate's admin listener (--from) or from Prometheus (--prometheus,
// hits over --window summed over every replica; no top misses); or, with
// --suggest-exact, the exact-mode list of the names seen behind wildcard
// and glob entries. Exit 0 when printed, 1 when fetching failed, 2 for
// bad usage.
func runReport(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	from := cl.String("from", "", "admin `URL` of an egressgate, e.g. http://"+defaultAdminListen)
	prom := cl.String("prometheus", "", "`URL` of a Prometheus server that scrapes egressgate")
	window := promWindow(metrics.DefaultReportWindow)
	cl.Var(&window, "window", "with --prometheus, the `duration` hits count over: increase(...[D]), e.g. 30d, 12h")
	top := cl.Int("top", 20, "top misses to print; 0 for all that are tracked")
	estate := cl.String("estate", "", "one `estate`'s view of the entries and its hits (the misses stay the whole proxy's)")
	suggest := cl.Bool("suggest-exact", false, "print the names seen behind wildcard and glob entries as exact-mode catalog lines (with --from)")
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
	if *suggest && *prom != "" {
		return cl.fail(stderr, "--suggest-exact needs --from: the names behind wildcards are never Prometheus label values")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var (
		rep *metrics.Report
		err error
	)
	if *from != "" {
		rep, err = metrics.FetchAdmin(ctx, http.DefaultClient, *from, *estate)
	} else {
		rep, err = metrics.FetchPrometheus(ctx, http.DefaultClient, *prom, metrics.PromOptions{Estate: *estate, Window: time.Duration(window)})
	}
	if err != nil {
		fmt.Fprintf(stderr, "egressgate report: %v\n", err)
		return 1
	}
	if *suggest {
		_, err = rep.WriteSuggestExact(stdout)
	} else {
		err = rep.WriteText(stdout, *top)
	}
	if err != nil {
		fmt.Fprintf(stderr, "egressgate report: writing: %v\n", err)
		return 1
	}
	return 0
}

// promWindow is a duration flag in Prometheus's notation (30d, 12h, 90m).
type promWindow time.Duration

func (w *promWindow) String() string { return model.Duration(*w).String() }

func (w *promWindow) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration like 30d, 12h or 90m", s)
	}
	*w = promWindow(d)
	return nil
}
