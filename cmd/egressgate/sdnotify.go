package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

// The states serve reports to systemd (sd_notify(3)). The unit in
// deploy/systemd is Type=notify: systemd counts the service as started at
// READY=1, once every listener is bound, so units ordered after it find
// the proxy accepting.
const (
	sdReady    = "READY=1"
	sdStopping = "STOPPING=1"
)

// sdReloading is the state sent before a SIGHUP reload; READY=1 follows
// when it is done, so `systemctl reload` returns after the new rules are in
// force (or were refused). MONOTONIC_USEC is what Type=notify-reload
// (systemd 253 and later) requires with it; older systemd ignores it.
func sdReloading() string {
	return sdReloadingAt(monotonicNow())
}

// sdReloadingAt is sdReloading at a CLOCK_MONOTONIC reading; without one
// (ok false) it sends RELOADING=1 alone.
func sdReloadingAt(now time.Duration, ok bool) string {
	if !ok {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", now/time.Microsecond)
}

// sdNotify sends state to the service manager over the datagram socket
// named by $NOTIFY_SOCKET. Without that variable (not run by systemd, or
// not Type=notify) it does nothing. A failure is logged, never fatal: the
// proxy serves either way, and systemd's start timeout says the rest.
// Go's net package maps a leading '@' to the abstract namespace, as
// systemd means it.
func sdNotify(log *slog.Logger, state string) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err == nil {
		_, err = conn.Write([]byte(state))
		conn.Close()
	}
	if err != nil {
		log.Warn("sd_notify failed", "socket", name, "state", state, "err", err)
	}
}
