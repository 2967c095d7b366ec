//go:build linux

package main

import (
	"syscall"
	"testing"
)

// lowerFileLimit sets this process's soft descriptor limit to n, so that a
// serve child meets the limit its test is about.
func lowerFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
}
