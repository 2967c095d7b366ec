package main

import (
	"net"
	"net/http"

	"github.com/egressgate/egressgate/proxy"
)

// pacHandler serves the PAC file on the admin listener. The file names
// the proxy listener's port; the proxy port serves the same file itself.
func pacHandler(srv *proxy.Server, proxyLn net.Listener) http.Handler {
	var port uint16
	if a, ok := proxyLn.Addr().(*net.TCPAddr); ok {
		port = uint16(a.Port)
	}
	return srv.PACHandler(port)
}
