package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// The forward proxy's front end. A CONNECT that opens a connection, which
// is nearly every client's first and only request, is read here and
// handed to ServeHTTP without net/http's per-connection machinery (its
// connection state, contexts, the background read it starts and then
// aborts on hijack), which a connection that becomes a tunnel at once has
// no use for (docs/performance.md has the measurements). Everything else
// — a first request that is not CONNECT, and whatever follows a CONNECT
// answered without a tunnel — is given to an http.Server.

// connectPrefix starts every CONNECT request line.
var connectPrefix = []byte("CONNECT ")

// frontHead is what serveFront needs while it reads and answers one
// request head: the reader, the limit under it and the writer of a
// CONNECT's answer. They are pooled, since a tunnel keeps none of them,
// and allocating them was four of the allocations of every tunnel.
type frontHead struct {
	br    *bufio.Reader
	limit io.LimitedReader
	w     frontWriter
}

var frontHeads = sync.Pool{New: func() any {
	return &frontHead{br: bufio.NewReaderSize(nil, 4096), w: frontWriter{header: http.Header{}}}
}}

// release empties f and gives it back to frontHeads. Nothing may use f,
// its reader or its writer afterwards.
func (f *frontHead) release() {
	f.br.Reset(nil)
	f.limit = io.LimitedReader{}
	clear(f.w.header)
	f.w = frontWriter{header: f.w.header, buf: f.w.buf[:0]}
	frontHeads.Put(f)
}

// handoff is the net.Listener an http.Server serves the front end's
// non-CONNECT connections from. Closing it closes the real listener too,
// which ends the front end's accept loop.
type handoff struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	// idle hands accepted connections to front-end goroutines that
	// finished their last one (frontWorker); nIdle counts those waiting.
	idle  chan net.Conn
	nIdle atomic.Int32
}

func newHandoff(ln net.Listener) *handoff {
	return &handoff{ln: ln, conns: make(chan net.Conn), done: make(chan struct{}), idle: make(chan net.Conn)}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// give passes c to the http.Server; it closes c if the server is gone.
func (h *handoff) give(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return h.ln.Close()
}

func (h *handoff) Addr() net.Addr { return h.ln.Addr() }

// acceptFront accepts on ln until it fails, and serves each connection on
// a goroutine of its own: one that finished its last connection, or a new
// one. It backs off on temporary errors as net/http does (descriptor
// exhaustion is answered by the spareListener below it).
func (s *Server) acceptFront(ln net.Listener, h *handoff) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-h.done:
				return http.ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			h.Close()
			return err
		}
		backoff = 0
		select {
		case h.idle <- c:
		default:
			go s.frontWorker(c, h)
		}
	}
}

// maxIdleFront bounds the front-end goroutines kept waiting for the next
// connection, and frontIdleFor how long each waits before it ends.
const (
	maxIdleFront = 64
	frontIdleFor = time.Second
)

// frontWorker serves c and then, while fewer than maxIdleFront others
// wait, waits up to frontIdleFor for the next connection instead of
// ending. A goroutine reused keeps the stack that reading a head, judging
// and dialling grew; a new one starts small and grows it again, copying
// it each time, for every connection.
func (s *Server) frontWorker(c net.Conn, h *handoff) {
	var idle *time.Timer
	for {
		s.serveFront(c, h)
		if h.nIdle.Add(1) > maxIdleFront {
			h.nIdle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(frontIdleFor)
		} else {
			idle.Reset(frontIdleFor)
		}
		select {
		case c = <-h.idle:
			h.nIdle.Add(-1)
		case <-idle.C:
			h.nIdle.Add(-1)
			return
		case <-h.done:
			h.nIdle.Add(-1)
			return
		}
	}
}

// serveFront reads the first request head of c. A CONNECT is served
// here, through ServeHTTP; anything else, anything after a CONNECT that
// did not become a tunnel, and every request when proxy authentication is
// on, goes to the http.Server with the bytes already read.
func (s *Server) serveFront(c net.Conn, h *handoff) {
	if !s.admitConn(c) {
		return
	}
	s.keepAlive(c)
	if !s.trackFront(c) {
		s.closeOpen(c)
		return
	}
	f := frontHeads.Get().(*frontHead)
	f.limit = io.LimitedReader{R: c, N: int64(s.cfg.MaxHeaderBytes) + 4096} // net/http's allowance
	br, limit, release := f.br, &f.limit, f.release
	br.Reset(limit)
	c.SetReadDeadline(time.Now().Add(s.cfg.HeaderTimeout))
	if p, err := br.Peek(len(connectPrefix)); err != nil || !bytes.Equal(p, connectPrefix) || s.authRequired() {
		s.untrackFront(c)
		var ne net.Error
		if err != nil && (br.Buffered() == 0 || errors.As(err, &ne) && ne.Timeout()) {
			// Closed before a byte, or HeaderTimeout spent on a few:
			// closed as net/http does, not given a second HeaderTimeout.
			release()
			s.closeOpen(c)
			return
		}
		c.SetReadDeadline(time.Time{})
		h.give(withBuffered(c, br)) // still open: net/http's ConnState takes over
		release()
		return
	}
	r, err := http.ReadRequest(br)
	s.untrackFront(c)
	if err == nil {
		err = checkHead(r)
	}
	if err != nil {
		tooLarge := limit.N == 0
		release()
		s.open.Add(-1)
		badHead(c, err, tooLarge)
		return
	}
	c.SetReadDeadline(time.Time{})
	r.RemoteAddr = c.RemoteAddr().String()
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		r.TLS = &st
	}
	w := &f.w
	w.conn, w.br, w.closeAfter = c, br, r.Close || hasBody(r)
	s.open.Add(-1) // ServeHTTP takes a slot
	s.ServeHTTP(w, r)
	if w.hijacked {
		tunnel := w.tunnel
		release() // hijack copied what the tunnel needs
		if tunnel != nil {
			tunnel()
		}
		return
	}
	if err := w.finish(); err != nil || w.closeAfter {
		release()
		c.Close()
		return
	}
	s.open.Add(1)
	h.give(withBuffered(c, br))
	release()
}

// hasBody reports whether a request says a body follows its head. A
// CONNECT that is refused rather than tunnelled must then close: its body
// would otherwise be read as the connection's next request, one the
// refusal never judged.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// authRequired reports whether the rules ask for proxy credentials. The
// front end then leaves CONNECT to net/http too: authentication may wait
// for a bcrypt slot, and only net/http's request context ends that wait
// when the client goes away.
func (s *Server) authRequired() bool {
	return s.estates != nil && s.estates.Current().Users != nil
}

// trackFront registers c, whose request head is being read, so Shutdown
// can close it; it reports false once Shutdown has begun.
func (s *Server) trackFront(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.fronts[c] = struct{}{}
	return true
}

func (s *Server) untrackFront(c net.Conn) {
	s.mu.Lock()
	delete(s.fronts, c)
	s.mu.Unlock()
}

// withBuffered returns c with the bytes br holds put back in front.
func withBuffered(c net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	b, _ := br.Peek(n)
	return &connectclient.ReplayConn{Conn: c, Pending: bytes.Clone(b)}
}

// errHTTPVersion is a head whose version is not HTTP/1.x: net/http
// answers 505.
var errHTTPVersion = errors.New("unsupported protocol version")

// checkHead applies the checks net/http's server makes after parsing a
// request, so a head is refused the same way whichever reads it.
func checkHead(r *http.Request) error {
	if r.ProtoMajor != 1 {
		return errHTTPVersion
	}
	if hosts := r.Header["Host"]; len(hosts) > 1 {
		return errors.New("too many Host headers")
	} else if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return errors.New("malformed Host header")
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return errors.New("invalid header value")
			}
		}
	}
	return nil
}

// badHead answers a CONNECT head that does not parse as net/http does:
// silence for a timeout or a client gone, 431 for a head over
// MaxHeaderBytes, 505 for a version other than HTTP/1.x; then closes.
// Otherwise it answers 400 with a reason, which net/http would not give:
// bad-target for a target that is not host:port, bad-request for the
// rest, and what was wrong in the body.
func badHead(c net.Conn, err error, tooLarge bool) {
	defer c.Close()
	var ne net.Error
	if errors.Is(err, io.EOF) && !tooLarge || errors.Is(err, io.ErrUnexpectedEOF) && !tooLarge || errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if tooLarge {
		io.WriteString(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")
		return
	}
	if errors.Is(err, errHTTPVersion) {
		io.WriteString(c, "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported")
		return
	}
	a := badRequest(rules.ReasonBadRequest, err)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		a = badRequest(rules.ReasonBadTarget, fmt.Errorf("CONNECT target %q is not host:port", strings.TrimPrefix(ue.URL, "http://")))
	}
	if len(a.text) > maxBadHeadText { // the error quotes the client's line, which may be long
		a.text = strings.ToValidUTF8(a.text[:maxBadHeadText], "") + "..."
	}
	fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n%s: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		reasonHeader, a.reason, len(a.text)+1, a.text)
}

// maxBadHeadText bounds the body of badHead's 400.
const maxBadHeadText = 256

// frontWriter is the http.ResponseWriter of a CONNECT read by the front
// end: it buffers a short answer and writes it in one go, or hands the
// connection over (Hijack).
type frontWriter struct {
	conn       net.Conn
	br         *bufio.Reader
	rw         bufio.ReadWriter // what Hijack returns
	header     http.Header
	buf        []byte
	status     int
	hijacked   bool
	closeAfter bool // the request or answer said Connection: close (or HTTP/1.0), or the answer had no length
	// tunnel, set by a handler that hijacked, is what it leaves to run
	// on this goroutine once it has returned (serveConnect's tunnel).
	tunnel func()
}

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.status != 0 || w.hijacked {
		return
	}
	w.status = code
	w.buf = append(w.buf, "HTTP/1.1 "...)
	w.buf = strconv.AppendInt(w.buf, int64(code), 10)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, http.StatusText(code)...)
	w.buf = append(w.buf, "\r\n"...)
	if w.closeAfter || w.header.Get("Content-Length") == "" || w.header.Get("Connection") == "close" {
		w.closeAfter = true
		w.header.Set("Connection", "close")
	}
	var hb bytes.Buffer
	w.header.Write(&hb)
	w.buf = append(w.buf, hb.Bytes()...)
	w.buf = append(w.buf, "\r\n"...)
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// finish writes the buffered answer.
func (w *frontWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	_, err := w.conn.Write(w.buf)
	return err
}

// Hijack gives the connection to the caller, with the reader holding any
// bytes the client sent after its request head. The reader is pooled: it
// is valid only until the handler returns, so copy what it buffered (as
// hijack in connect.go does).
func (w *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	w.rw.Reader = w.br
	return w.conn, &w.rw, nil
}

var (
	_ http.ResponseWriter = (*frontWriter)(nil)
	_ http.Hijacker       = (*frontWriter)(nil)
	_ net.Listener        = (*handoff)(nil)
)
