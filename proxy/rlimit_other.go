//go:build !unix

package proxy

// descriptorLimit reports that the platform (Windows) has no descriptor
// limit: DefaultMaxConns is then a fixed cap.
func descriptorLimit() (limit uint64, ok bool) { return 0, false }
