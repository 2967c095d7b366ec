//go:build !linux

package main

import "testing"

// lowerFileLimit skips: the child tests that use it are written for Linux's limits.
func lowerFileLimit(t *testing.T, n uint64) {
	t.Skipf("the %d-descriptor child tests run on Linux only", n)
}
