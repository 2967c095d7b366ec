package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/egressgate/egressgate/proxy"
)

// The hosts file (--hosts) is reloaded like the rules: on SIGHUP, when
// its directory says it changed (an editor's rename, a ConfigMap's
// "..data" swap), and by a slow poll, keeping the last good hosts when an
// edit does not parse.

// Timers of watchHosts, as the rules watcher's defaults.
const (
	hostsDebounce = 200 * time.Millisecond
	hostsPoll     = 30 * time.Second
)

// reloadHosts reloads f and logs the outcome; an unchanged file says
// nothing.
func reloadHosts(f *proxy.HostsFile, log *slog.Logger) {
	changed, err := f.Reload()
	switch {
	case err != nil:
		log.Error("hosts file not reloaded; the last good one keeps serving", "path", f.Path(), "err", err)
	case changed:
		log.Info("hosts file reloaded", "path", f.Path(), "names", len(f.Hosts()))
	}
}

// watchHosts starts watching f's directory and returns the loop that
// reloads f on changes there and every hostsPoll until ctx is done
// (without a watcher it only polls). The watch is in place when
// watchHosts returns, before serve reports ready, so that an edit made
// once serve is ready is not missed until the next poll.
func watchHosts(f *proxy.HostsFile, log *slog.Logger) (loop func(ctx context.Context)) {
	var events <-chan fsnotify.Event
	stopWatch := func() {}
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("cannot watch the hosts file; polling it", "path", f.Path(), "err", err, "poll", hostsPoll)
	} else if err := w.Add(filepath.Dir(f.Path())); err != nil {
		w.Close()
		log.Warn("cannot watch the hosts file's directory; polling it", "path", f.Path(), "err", err, "poll", hostsPoll)
	} else {
		events, stopWatch = w.Events, func() { w.Close() }
	}
	return func(ctx context.Context) {
		defer stopWatch()
		reloadHostsOn(ctx, f, events, log)
	}
}

// reloadHostsOn reloads f after a burst of events that name it (or a
// ConfigMap's "..data" swap) and every hostsPoll, until ctx is done.
func reloadHostsOn(ctx context.Context, f *proxy.HostsFile, events <-chan fsnotify.Event, log *slog.Logger) {
	base := filepath.Base(f.Path())
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(hostsPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if name := filepath.Base(ev.Name); name == base || strings.HasPrefix(name, "..") {
				debounce.Reset(hostsDebounce)
			}
		case <-debounce.C:
			reloadHosts(f, log)
		case <-poll.C:
			reloadHosts(f, log)
		}
	}
}
