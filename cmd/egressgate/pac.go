package main

import (
	"net"
	"net/http"

	"github.com/egressgate/egressgate/proxy"
)

// withPAC adds /proxy.pac to the admin handler. The file names the proxy
// listener's port; the proxy port serves the same file itself.
func withPAC(admin http.Handler, srv *proxy.Server, proxyLn net.Listener) http.Handler {
	var port uint16
	if a, ok := proxyLn.Addr().(*net.TCPAddr); ok {
		port = uint16(a.Port)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+proxy.PACPath, srv.PACHandler(port))
	mux.Handle("/", admin)
	return mux
}
