package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/egressgate/egressgate/metrics"
	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// catalogWatch reads the vendor page on a schedule (serve --catalog-watch)
// and compares it with the catalog in force. It reports, and never
// changes what is admitted: an operator decides.
type catalogWatch struct {
	url      string
	interval time.Duration
	client   *http.Client
	current  func() *rules.Ruleset
	log      *slog.Logger
	metrics  *metrics.CatalogWatch
}

// maxWatchBackoff caps the wait after failed reads, below the interval.
const maxWatchBackoff = 6 * time.Hour

// check reads the page once, compares it, logs one line per change and
// records the result.
func (w *catalogWatch) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	data, err := upkeep.FetchPage(ctx, w.client, w.url)
	if err != nil {
		return err
	}
	page, unc, err := upkeep.ImportPage(w.url, data, upkeep.Options{})
	if err != nil {
		return err
	}
	var inForce *rules.Catalog
	for _, c := range w.current().Catalogs {
		if c.Name == page.Name {
			inForce = c
		}
	}
	if inForce == nil {
		return fmt.Errorf("no catalog named %s is in force to compare the page with", page.Name)
	}
	changes := upkeep.Diff(inForce, page, false)
	n := rules.CountChanges(changes)
	w.log.Info("catalog watch: vendor page compared with the catalog in force", "url", w.url, "catalog", inForce.Path,
		"added", n[rules.ChangeAdded], "removed", n[rules.ChangeRemoved], "changed", n[rules.ChangeChanged], "unclassified", len(unc))
	for _, c := range changes {
		w.log.Warn("catalog watch: the vendor page differs", "change", c.Kind.String(), "rule", c.Pattern, "detail", upkeep.Describe(c))
	}
	w.metrics.Compared(changes, time.Now())
	return nil
}

// run checks at the start, then every interval, jittered by ±10% so
// replicas started together drift apart; after a failure it retries
// sooner, backing off from a minute, never later than the interval.
func (w *catalogWatch) run(ctx context.Context) {
	failures := 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.check(ctx); err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return
			}
			failures++
			d := watchDelay(w.interval, failures, rand.Float64())
			w.log.Error("catalog watch: reading the vendor page failed", "url", w.url, "err", err, "failures", failures, "retry_in_seconds", d.Seconds())
			t.Reset(d)
			continue
		}
		failures = 0
		t.Reset(watchDelay(w.interval, 0, rand.Float64()))
	}
}

// watchDelay is the wait before the next read: the interval ±10% after a
// success; after failures, a minute doubled per failure, capped by the
// interval and maxWatchBackoff, jittered between half and all of it. r is
// uniform in [0, 1).
func watchDelay(interval time.Duration, failures int, r float64) time.Duration {
	if failures == 0 {
		return time.Duration(float64(interval) * (0.9 + 0.2*r))
	}
	d := min(time.Minute<<min(failures-1, 12), interval, maxWatchBackoff)
	return time.Duration(float64(d) * (0.5 + 0.5*r))
}

// newCatalogWatch checks the flags and makes the watch.
func newCatalogWatch(o watchOptions, current func() *rules.Ruleset, log *slog.Logger, m *metrics.CatalogWatch) (*catalogWatch, error) {
	if !strings.HasPrefix(o.url, "https://") {
		return nil, fmt.Errorf("--catalog-watch %q: want the page's https:// URL", o.url)
	}
	if o.interval < time.Minute {
		return nil, fmt.Errorf("--catalog-watch-interval %s: want at least a minute", o.interval)
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = upkeep.PageClient(o.via); err != nil {
			return nil, fmt.Errorf("--catalog-watch-via: %w", err)
		}
	}
	return &catalogWatch{url: o.url, interval: o.interval, client: client, current: current, log: log, metrics: m}, nil
}
