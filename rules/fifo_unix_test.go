//go:build unix

package rules

import "syscall"

// mkfifo makes a FIFO at path, for the tests of files that are not
// regular.
func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
