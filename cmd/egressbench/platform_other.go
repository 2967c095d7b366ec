//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// dieWithParent has no equivalent of Linux's parent-death signal here.
func dieWithParent() *syscall.SysProcAttr { return nil }

// raiseFileLimit refuses to start a run: the tool measures the proxies
// through /proc (CPU, RSS, descriptors), which only Linux has. It builds
// elsewhere so that the module does.
func raiseFileLimit() (uint64, error) {
	return 0, errors.New("egressbench measures through /proc and runs only on Linux")
}
