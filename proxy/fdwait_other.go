//go:build !linux

package proxy

import "net"

// guardAccept wraps the proxy's listener so that running out of
// descriptors is waited out rather than returned to the accept loop. Only
// Linux keeps a spare descriptor to answer 503 with (fdspare_linux.go).
func guardAccept(ln net.Listener, s *Server) net.Listener {
	return &waitListener{Listener: ln, s: s}
}
