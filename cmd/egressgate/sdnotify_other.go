//go:build !linux

package main

import "time"

// monotonicNow reports no reading: systemd runs only on Linux, so no
// service manager elsewhere asks for MONOTONIC_USEC.
func monotonicNow() (time.Duration, bool) { return 0, false }
