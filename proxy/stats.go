package proxy

// Tunnels returns how many tunnels (CONNECT and SNI) are open now. serve
// reads it at shutdown to say how many were drained and how many cut.
func (s *Server) Tunnels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tunnels)
}
