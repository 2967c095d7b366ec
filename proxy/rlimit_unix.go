//go:build unix

package proxy

import "syscall"

// descriptorLimit returns the soft RLIMIT_NOFILE.
func descriptorLimit() (limit uint64, ok bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}
