package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/egressgate/egressgate/rules"
)

// This file holds all of egressgate's use of goproxy. goproxy forwards
// plain-HTTP requests (absolute-URI "GET http://host/path"): it sends the
// request upstream through an http.Transport whose only dialer is ours,
// and copies the answer back. Admission happens before goproxy is called
// (serveForward), so its hooks only clean headers and turn transport
// errors into our 502/504. CONNECT never reaches goproxy; see ServeHTTP.

// newGoproxy builds the goproxy server and its transport.
func (s *Server) newGoproxy() (*goproxy.ProxyHttpServer, *http.Transport) {
	tr := &http.Transport{
		DialContext: s.dialForward,
		// One request, one decision, one dial: no upstream connection
		// outlives the request it was checked for, so a reload or a DNS
		// change never reuses a connection made under the old answer.
		DisableKeepAlives:      true,
		DisableCompression:     true, // pass the client's Accept-Encoding through untouched
		MaxResponseHeaderBytes: 1 << 20,
		ResponseHeaderTimeout:  forwardResponseTimeout,
	}
	if u := s.cfg.UpstreamProxy; u != nil {
		tr.Proxy = http.ProxyURL(u)
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = tr
	gp.ConnectDial = nil // never used: CONNECT is ours
	gp.KeepAcceptEncoding = true
	gp.Logger = slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug)
	gp.NonproxyHandler = http.HandlerFunc(notProxyRequest)
	gp.OnRequest().DoFunc(func(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		removeHopByHop(r.Header)
		if _, ok := r.Header["User-Agent"]; !ok {
			// An empty value keeps http.Transport from sending its
			// own: the upstream sees the client's request, not Go's.
			r.Header["User-Agent"] = []string{""}
		}
		return r, nil
	})
	gp.OnResponse().DoFunc(func(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
		if resp == nil {
			host, port := forwardTarget(ctx.Req.Context())
			err := ctx.Error
			if err == nil {
				err = errors.New("no response")
			}
			return s.upstreamAnswer(host, port, err).response(ctx.Req)
		}
		// net/http drops the response's Connection field when it says
		// "close", with the names it lists; the raw head still has them.
		if f, ok := ctx.Req.Context().Value(forwardKey{}).(*forward); ok && f.head != nil {
			for _, name := range connectionTokens(f.head.header()) {
				resp.Header.Del(name)
			}
		}
		removeHopByHop(resp.Header)
		return resp
	})
	return gp, tr
}

// serveForward handles one plain-HTTP proxy request: the same verdict,
// destination check and recording as a CONNECT, then goproxy forwards it.
func (s *Server) serveForward(w http.ResponseWriter, r *http.Request, client netip.AddrPort) {
	if !r.URL.IsAbs() {
		s.serveOrigin(w, r, client) // GET /proxy.pac, else 400
		return
	}
	if r.URL.Scheme != "http" {
		badRequest(rules.ReasonUnsupportedScheme, fmt.Errorf("scheme %q: only http:// is forwarded; use CONNECT for TLS", r.URL.Scheme)).write(w)
		return
	}
	d := &Decision{Time: time.Now(), Listener: ListenerHTTP, Client: client, Host: r.URL.Hostname(), Port: 80, Estate: authEstate(r)}
	if p := r.URL.Port(); p != "" {
		port, err := parsePort(p)
		if err != nil {
			badRequest(rules.ReasonBadTarget, fmt.Errorf("URL %q: %w", r.URL.Host, err)).write(w)
			return
		}
		d.Port = port
	}
	if !s.judge(d) {
		s.rec.Decided(d)
		denyAnswer(d).write(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DialTimeout)
	rt, err := s.resolve(ctx, d.Host, d.Port)
	cancel()
	if errors.Is(err, errPrivateDestination) {
		d.deny(rules.ReasonPrivateDestination)
		s.rec.Decided(d)
		denyAnswer(d).write(w)
		return
	}
	s.rec.Decided(d)
	if err != nil {
		s.rec.Dialed(d, rt.lookup, 0, classifyDialError(err))
		s.upstreamAnswer(d.Host, d.Port, err).write(w)
		return
	}
	s.rec.TunnelOpened(d)
	r.URL.Host = onwardURLHost(d.Host, r.URL.Port())
	r.Host = r.URL.Host
	f := &forward{d: d, rt: rt}
	var up atomic.Int64
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &up}
	}
	cw := &countingWriter{ResponseWriter: w}
	s.gp.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), forwardKey{}, f)))
	s.rec.TunnelClosed(d, TunnelStats{Upstream: up.Load(), Downstream: cw.n, Duration: time.Since(d.Time)})
}

// onwardURLHost is a URL's host[:port] with the host in its onward
// (canonical) form; port is the URL's own, "" when it had none.
func onwardURLHost(host, port string) string {
	h := onwardHost(host)
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// forward is what serveForward decided, handed to dialForward through
// the request's context: http.Transport calls its dialer with the
// request's context and an address, and the context is the only way to
// say "dial these checked addresses, not a fresh lookup of that name".
type forward struct {
	d    *Decision
	rt   route
	head *headCapture // the upstream connection's first bytes; nil until dialed
}

type forwardKey struct{}

// dialForward is the transport's dialer: it dials the route serveForward
// checked, whatever addr says, and records the dial.
func (s *Server) dialForward(ctx context.Context, _, _ string) (net.Conn, error) {
	f, ok := ctx.Value(forwardKey{}).(*forward)
	if !ok {
		return nil, errors.New("proxy: dial without an admitted request") // cannot happen: only serveForward reaches the transport
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	start := time.Now()
	c, err := s.dialUpstream(ctx, f.rt.addrs)
	s.rec.Dialed(f.d, f.rt.lookup, time.Since(start), classifyDialError(err))
	if err != nil {
		return nil, err
	}
	f.head = &headCapture{Conn: c}
	return f.head, nil
}

// maxHeadCapture bounds what headCapture keeps (the transport's own limit
// on a response header is 1 MiB; fields past this are not inspected).
const maxHeadCapture = 64 << 10

// headCapture keeps the first bytes read from an upstream connection, up
// to the end of the response header, so that the Connection field can be
// read as the upstream sent it. Only plain-HTTP connections are wrapped;
// tunnels never are.
type headCapture struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte
	done bool
}

func (h *headCapture) Read(p []byte) (int, error) {
	n, err := h.Conn.Read(p)
	h.mu.Lock()
	if !h.done && n > 0 {
		h.buf = append(h.buf, p[:min(n, maxHeadCapture-len(h.buf))]...)
		h.done = len(h.buf) >= maxHeadCapture || bytes.Contains(h.buf, []byte("\r\n\r\n"))
	}
	h.mu.Unlock()
	return n, err
}

// header returns the captured header block.
func (h *headCapture) header() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _, _ := bytes.Cut(h.buf, []byte("\r\n\r\n"))
	return b
}

// connectionTokens returns the field names listed by the Connection
// fields of a raw header block.
func connectionTokens(head []byte) []string {
	var names []string
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Connection") {
			continue
		}
		for name := range strings.SplitSeq(string(v), ",") {
			if name = textproto.TrimString(name); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// forwardTarget returns the host and port of the request ctx belongs to.
func forwardTarget(ctx context.Context) (string, uint16) {
	if f, ok := ctx.Value(forwardKey{}).(*forward); ok {
		return f.d.Host, f.d.Port
	}
	return "", 0
}

// notProxyRequest answers a request addressed to the proxy itself.
func notProxyRequest(w http.ResponseWriter, r *http.Request) {
	badRequest(rules.ReasonNotProxyRequest, fmt.Errorf("%s %q is addressed to the proxy itself; this is a forward proxy: send absolute-URI requests (http://host/path) or CONNECT host:port",
		r.Method, r.URL.RequestURI())).write(w)
}

// hopByHop are the fields that belong to one connection, not to the
// message (RFC 9110 section 7.6.1, plus Keep-Alive and Proxy-Connection
// that clients still send, and the proxy's own credentials).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields from h, first those the
// Connection field names.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// countingBody counts the bytes of a request body read by the transport.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// countingWriter counts the response body bytes written to the client.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush lets goproxy stream event streams and chunked answers.
func (w *countingWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ http.Handler  = (*Server)(nil)
	_ http.Flusher  = (*countingWriter)(nil)
	_ io.ReadCloser = (*countingBody)(nil)
)
