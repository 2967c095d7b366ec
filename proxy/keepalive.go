package proxy

import (
	"crypto/tls"
	"math/rand/v2"
	"net"
	"time"
)

// TCP keepalive of a tunnel's sockets, the accepted client socket and the
// dialled upstream socket alike: after Config.KeepAlive without a packet
// the kernel probes the peer.
//
// Each socket's idle time is Config.KeepAlive plus a random extra below a
// quarter of it. Tunnels opened together (every endpoint reconnecting
// after a restart) would otherwise probe together, every KeepAlive, in
// one burst of probes and answers that new connections wait behind;
// spread, their first probes fall up to a quarter of the period apart,
// and they drift further apart with each period after.

// Keepalive probing once KeepAlive has passed: a peer that answers none
// of keepAliveProbes probes, keepAliveInterval apart, is dead.
const (
	keepAliveInterval = 15 * time.Second
	keepAliveProbes   = 4
)

// keepAliveConfig is the TCP keepalive of one socket, its idle time
// spread (keepAliveSpread).
func (cfg *Config) keepAliveConfig() net.KeepAliveConfig {
	idle := cfg.KeepAlive
	switch {
	case idle < 0:
		return net.KeepAliveConfig{Enable: false}
	case idle == 0:
		idle = DefaultKeepAlive
	}
	return net.KeepAliveConfig{Enable: true, Idle: idle + keepAliveSpread(idle), Interval: keepAliveInterval, Count: keepAliveProbes}
}

// keepAliveSpread is the random extra idle time of one socket, below a
// quarter of idle. It is whole seconds, the unit the kernel counts idle
// time in: net rounds a fraction up, which could reach the quarter.
func keepAliveSpread(idle time.Duration) time.Duration {
	if idle < 4*time.Second {
		return 0
	}
	return rand.N(idle / 4).Truncate(time.Second)
}

// ListenConfig is how to create the listeners given to Serve, ServeTLS
// and ServeSNI. It turns off net's own keepalive setting on accepted
// connections (Go's default would set 15 s): Serve and ServeSNI set
// Config.KeepAlive, spread, on each connection they accept, from any
// listener, and with ListenConfig's that is the only setting made, in as
// many system calls as net's would take. With KeepAlive negative they set
// nothing: connections of ListenConfig's listeners have keepalive off,
// those of other listeners keep their listener's setting.
func (cfg Config) ListenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1}
}

// keepAlive sets Config.KeepAlive, spread, on a connection Serve or
// ServeSNI accepted: on its socket, under TLS or a PROXY header.
func (s *Server) keepAlive(c net.Conn) {
	if s.cfg.KeepAlive < 0 {
		return // see ListenConfig
	}
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			v.SetKeepAliveConfig(s.cfg.keepAliveConfig())
			return
		case *tls.Conn:
			c = v.NetConn()
		case *proxyConn:
			c = v.Conn
		default:
			return
		}
	}
}

// dialer is the net.Dialer of one upstream connection, with
// Config.KeepAlive spread: a new one per dial, so each socket draws its
// own idle time.
func (cfg *Config) dialer() net.Dialer {
	ka := cfg.keepAliveConfig()
	d := net.Dialer{KeepAliveConfig: ka}
	if !ka.Enable {
		d.KeepAlive = -1
	}
	return d
}
