package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/export"
)

// PACPath is where the proxy auto-config file is served, on the proxy
// port (as a plain GET, not a proxy request) and on the admin listener.
const PACPath = "/proxy.pac"

// PACContentType is the media type browsers and OS proxy settings expect.
const PACContentType = "application/x-ns-proxy-autoconfig"

// PACOptions say what the PAC file served at PACPath contains.
type PACOptions struct {
	// Proxy is the HOST:PORT the file tells endpoints to use, or
	// https://HOST:PORT for the HTTPS proxy listener. Empty means
	// the address the endpoint reached: on the proxy port, the request's
	// Host (or the local address it arrived on); on another listener, the
	// Host's name with the proxy's port.
	Proxy string
	// Fallback is where the file sends names outside the catalog. The
	// zero value is export.PACDirect.
	Fallback export.PACFallback
	// For returns the matcher whose catalog the file of a client lists.
	// Nil means the client's estate's matcher when Config.Rules serves
	// estates (EstateRules), else Config.Rules' current matcher for every
	// client: each endpoint's file names what its own estate admits.
	For func(client netip.Addr) *rules.Matcher
}

// maxPACCache bounds the cached files: one per matcher and proxy address
// seen. The Host a client sends is part of the key, so the bound keeps a
// stream of made-up Hosts from growing memory; past it the cache starts
// over.
const maxPACCache = 64

// pacCache keeps generated files per matcher pointer, so a file is built
// once per reload, not once per fetch.
type pacCache struct {
	mu    sync.Mutex
	files map[pacKey][]byte
}

type pacKey struct {
	m     *rules.Matcher
	proxy string
}

// get returns the file for m and proxy, generating it on a miss.
func (c *pacCache) get(m *rules.Matcher, proxy string, fallback export.PACFallback) ([]byte, error) {
	k := pacKey{m, proxy}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.files[k]; ok {
		return b, nil
	}
	b, err := export.PAC(m, proxy, fallback)
	if err != nil {
		return nil, err
	}
	if c.files == nil || len(c.files) >= maxPACCache {
		c.files = make(map[pacKey][]byte)
	}
	c.files[k] = b
	return b, nil
}

// serveOrigin answers an origin-form request ("GET /path") that reached
// the proxy port: the PAC file, or 400 not-proxy-request.
func (s *Server) serveOrigin(w http.ResponseWriter, r *http.Request, client netip.AddrPort) {
	if r.URL.Path != PACPath || r.Method != http.MethodGet && r.Method != http.MethodHead {
		notProxyRequest(w, r)
		return
	}
	local := localAddrPort(r)
	s.servePAC(w, r, client.Addr(), local.Port(), local.Addr(), true)
}

// PACHandler serves the PAC file on a listener other than the proxy's
// (the admin listener). proxyPort is the proxy listener's port, used when
// PACOptions.Proxy is empty: the file then names the Host the client
// asked for with that port.
func (s *Server) PACHandler(proxyPort uint16) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.servePAC(w, r, remoteAddrPort(r.RemoteAddr).Addr(), proxyPort, localAddrPort(r).Addr(), false)
	})
}

// servePAC writes the file for client. When the proxy address is
// derived, it is the request's Host, with port in place of the Host's own
// unless keepHostPort (the Host then names the proxy port, maybe through
// a load balancer that maps ports), and local when the Host is unusable.
func (s *Server) servePAC(w http.ResponseWriter, r *http.Request, client netip.Addr, port uint16, local netip.Addr, keepHostPort bool) {
	var m *rules.Matcher
	if s.cfg.PAC.For != nil {
		m = s.cfg.PAC.For(client.Unmap())
	}
	if m == nil && s.estates != nil {
		// The client's estate by address (a PAC fetch carries no proxy
		// credentials).
		m = s.estates.Current().EstateFor(client.Unmap()).Matcher
	}
	if m == nil {
		m = s.cfg.Rules.Matcher()
	}
	if m == nil {
		answer{http.StatusServiceUnavailable, rules.ReasonPACUnavailable, "egressgate: no ruleset installed yet"}.write(w)
		return
	}
	proxy := s.cfg.PAC.Proxy
	if proxy == "" {
		proxy = pacProxyFor(r.Host, port, local, keepHostPort)
	}
	file, err := s.pac.get(m, proxy, s.cfg.PAC.Fallback)
	if err != nil && s.cfg.PAC.Proxy == "" {
		// The Host field was no usable host:port: name the address the
		// request arrived on instead.
		proxy = netip.AddrPortFrom(local, port).String()
		file, err = s.pac.get(m, proxy, s.cfg.PAC.Fallback)
	}
	if err != nil {
		s.cfg.Log.Error("generating the PAC file", "err", err)
		answer{http.StatusInternalServerError, rules.ReasonPACUnavailable, "egressgate: " + err.Error()}.write(w)
		return
	}
	w.Header().Set("Content-Type", PACContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	// A reload changes the file: clients may keep it, but must ask again.
	// With estates each client's file is its own: no shared cache may
	// keep one for another.
	cc := "no-cache"
	if s.estates != nil || s.cfg.PAC.For != nil {
		cc = "no-cache, private"
	}
	w.Header().Set("Cache-Control", cc)
	if s.cfg.PAC.Proxy == "" {
		// The proxy address in the file is the request's Host: a cache
		// must not give one Host's file for another's.
		w.Header().Set("Vary", "Host")
	}
	if r.Method != http.MethodHead {
		_, _ = w.Write(file) // a write error means the client went away
	}
}

// pacProxyFor derives the proxy address from a request's Host field: as
// given when it has a port and keepHostPort, else its name with port, and
// the local address with port when it names nothing.
func pacProxyFor(host string, port uint16, local netip.Addr, keepHostPort bool) string {
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		name = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	switch {
	case name == "":
		return netip.AddrPortFrom(local, port).String()
	case err == nil && keepHostPort:
		return host
	}
	return net.JoinHostPort(name, strconv.Itoa(int(port)))
}

// localAddrPort returns the address a request arrived on.
func localAddrPort(r *http.Request) netip.AddrPort {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
