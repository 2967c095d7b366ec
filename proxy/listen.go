package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/egressgate/egressgate/rules"
	"github.com/elazarl/goproxy"
)

// Server is egressgate's proxy: the forward-proxy listener (CONNECT and
// plain HTTP) and the transparent SNI listener, sharing one set of rules,
// limits and tunnels. Create it with New.
type Server struct {
	cfg    Config
	rec    Recorder
	acl    clientACL
	dest   destPolicy
	parent *parentProxy // nil: direct
	gp     *goproxy.ProxyHttpServer
	tr     *http.Transport
	pac    pacCache // generated PAC files (pac.go)
	// estates is cfg.Rules when it serves estates (a *rules.Reloader
	// does); nil judges every client with cfg.Rules' one matcher.
	estates EstateRules
	sole    atomic.Pointer[rules.Estate] // soleEstate's, when estates is nil
	auth    authCache
	gate    *authGate // password checks (authlimit.go)
	strikes strikes   // failed authentications (authlimit.go)

	active atomic.Int64 // tunnels + requests in flight, against MaxConns
	// open counts proxy-port connections holding no slot: reading a
	// request head, or idle between requests (accept.go).
	open   atomic.Int64
	states connStates

	refusedMax   atomic.Int64 // 503 max-conns
	refusedNoFDs atomic.Int64 // 503 out-of-descriptors
	noFDs        atomic.Int64 // EMFILE/ENFILE met

	mu        sync.Mutex
	closing   bool // Shutdown began: no new work
	cut       bool // Shutdown's drain time is over: close new tunnels at once
	servers   map[*http.Server]struct{}
	listeners map[net.Listener]struct{} // SNI listeners
	tunnels   map[*tunnel]struct{}
	fronts    map[net.Conn]struct{} // connections whose first request head is being read
	work      sync.WaitGroup        // requests, tunnels and SNI connections
}

// parentProxy is Config.UpstreamProxy, split.
type parentProxy struct {
	host string
	port uint16
}

// New checks cfg and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		rec:       cfg.Recorder,
		acl:       clientACL(cfg.Clients),
		dest:      destPolicy{allow: cfg.AllowDest},
		servers:   map[*http.Server]struct{}{},
		listeners: map[net.Listener]struct{}{},
		tunnels:   map[*tunnel]struct{}{},
		fronts:    map[net.Conn]struct{}{},
	}
	s.estates, _ = cfg.Rules.(EstateRules)
	s.gate = newAuthGate(authWorkers())
	if u := cfg.UpstreamProxy; u != nil {
		port, err := parsePort(u.Port())
		if err != nil {
			return nil, errors.New("proxy: upstream proxy " + strconv.Quote(u.Redacted()) + ": " + err.Error())
		}
		s.parent = &parentProxy{u.Hostname(), port}
	}
	s.gp, s.tr = s.newGoproxy()
	return s, nil
}

// Serve accepts forward-proxy connections on ln until Shutdown. It
// returns nil after Shutdown, or the listener's error. The connections ln
// returns should be *net.TCPConn, or tunnels lose splice. A client that
// arrives when the process is out of descriptors is answered 503
// out-of-descriptors (see spareListener; elsewhere than on Linux it waits
// in the queue until a descriptor comes free). A connection that opens with
// CONNECT is read by the front end (front.go); the rest by net/http.
func (s *Server) Serve(ln net.Listener) error {
	h := newHandoff(s.acceptProxied(guardAccept(ln, s), "proxy", proxyRefusal))
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       s.cfg.ClientIdleTimeout,
		ConnState:         s.connStateHook,
		ConnContext:       connContext,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.servers[hs] = struct{}{}
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(h) }()
	err := s.acceptFront(h.ln, h)
	herr := <-served
	if errors.Is(err, http.ErrServerClosed) {
		if herr != nil && !errors.Is(herr, http.ErrServerClosed) {
			return herr
		}
		return nil
	}
	return err
}

// ServeHTTP is the forward proxy's front door: client ACL, connection
// cap, then CONNECT to our own tunnel code (connect.go) and everything
// else to goproxy (http.go). goproxy never sees a CONNECT: its tunnel
// writes the 200 and copies on its own, leaving no place for the SNI
// check, and wraps connections in a way that loses splice.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client := remoteAddrPort(r.RemoteAddr)
	if r.Method == http.MethodConnect && hasBody(r) {
		// Answered without a tunnel, it closes (front.go's hasBody).
		w.Header().Set("Connection", "close")
	}
	if !s.acl.allows(client.Addr()) {
		s.rec.Decided(earlyDeny(r, client, rules.ReasonClientNotAllowed))
		s.cfg.Log.Warn("client not allowed", "client", client.Addr(), "method", r.Method)
		w.Header().Set("Connection", "close")
		clientAnswer(client.Addr().String()).write(w)
		return
	}
	// The connection holds a slot from here, its password check
	// included, so that connections waiting for a check are counted.
	if !s.begin() {
		w.Header().Set("Connection", "close")
		answer{http.StatusServiceUnavailable, rules.ReasonMaxConns, "egressgate: shutting down"}.write(w)
		return
	}
	if !s.acquire() {
		s.work.Done()
		s.refusedMax.Add(1)
		overloaded(s.cfg.MaxConns).write(w)
		return
	}
	if r = s.authenticate(w, r, client); r == nil {
		s.finish()
		return // answered
	}
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r, client) // gives the slot back itself, maybe later
		return
	}
	defer s.finish()
	s.serveForward(w, r, client)
}

// finish gives back the slot and the work unit of one request or tunnel.
func (s *Server) finish() {
	s.release()
	s.work.Done()
}

// begin counts one unit of work that Shutdown must wait for. It reports
// false once Shutdown has begun.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.work.Add(1)
	return true
}

// acquire takes a slot under MaxConns; it reports false when none is free.
func (s *Server) acquire() bool {
	if s.cfg.MaxConns < 0 {
		return true
	}
	if s.active.Add(1) > int64(s.cfg.MaxConns) {
		s.active.Add(-1)
		return false
	}
	return true
}

// release gives back a slot taken by acquire.
func (s *Server) release() {
	if s.cfg.MaxConns >= 0 {
		s.active.Add(-1)
	}
}

// track registers a tunnel for Shutdown; untrack forgets it. A
// connection that came through a load balancer is tracked, and relayed,
// as the socket it is.
func (s *Server) track(client net.Conn) *tunnel {
	t := &tunnel{client: unwrapProxyConn(client), idle: s.cfg.IdleTimeout}
	s.mu.Lock()
	s.tunnels[t] = struct{}{}
	if s.cut {
		t.close()
	}
	s.mu.Unlock()
	return t
}

func (s *Server) untrack(t *tunnel) {
	t.close()
	s.mu.Lock()
	delete(s.tunnels, t)
	s.mu.Unlock()
}

// Shutdown stops accepting, waits for requests and tunnels to finish
// until ctx is done, then closes what is left and waits for it to go. It
// returns ctx's error when it had to cut tunnels. Call it once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.fronts { // no request yet: nothing to drain
		c.Close()
	}
	servers := make([]*http.Server, 0, len(s.servers))
	for hs := range s.servers {
		servers = append(servers, hs)
	}
	s.mu.Unlock()

	var err error
	for _, hs := range servers {
		if e := hs.Shutdown(ctx); e != nil {
			err = e
			hs.Close()
		}
	}
	drained := make(chan struct{})
	go s.waitWork(drained)
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		s.cut = true
		for t := range s.tunnels {
			t.close()
		}
		s.mu.Unlock()
		<-drained
	}
	s.tr.CloseIdleConnections()
	return err
}

// waitWork closes drained when all work has ended.
func (s *Server) waitWork(drained chan<- struct{}) {
	s.work.Wait()
	close(drained)
}

// remoteAddrPort parses net/http's RemoteAddr.
func remoteAddrPort(s string) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s)
	return ap
}

// connAddrPort returns a connection's remote address.
func connAddrPort(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return remoteAddrPort(c.RemoteAddr().String())
}
