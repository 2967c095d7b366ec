//go:build linux

package main

import (
	"fmt"
	"syscall"
)

// dieWithParent makes a child die with the tool, even when the tool is
// killed.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// raiseFileLimit raises this process's open-file soft limit to its hard
// limit; the proxies started as children inherit it. Thousands of idle
// tunnels need four descriptors each across client, proxy and upstream.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit RLIMIT_NOFILE %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}
