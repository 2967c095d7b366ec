package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/egressgate/egressgate/rules"
)

// The PROXY protocol: a load balancer that passes a client's TCP
// connection on opens it with a header naming the client's address, as
// text (v1) or binary (v2). Connections from Config.ProxyProtocolFrom
// must open with one, and the address it carries is the client's for
// everything after: the client ACL, the estate, Live Response exclusions,
// logs and metrics. Connections from anywhere else are direct clients and
// are not read here at all; a header one of them sends is a request line
// that does not parse (400 from the proxy listener) or a hello that is
// not TLS (closed by the SNI listener).
//
// The header is read on a goroutine of its own before Accept returns the
// connection, so a silent balancer holds one connection for at most
// HeaderTimeout and never the accept loop, and whatever reads the
// connection next sees the carried address from its first RemoteAddr.
//
// go-proxyproto parses the header (both versions, every address family,
// the TLVs cloud balancers add). Its own Conn and Listener are not used:
// they read through a bufio.Reader, so the connection they hand on is a
// wrapper holding bytes read past the header, and a tunnel through it
// could not splice. Here the header is framed first, reading not one byte
// past it (frameProxyHeader), so the socket itself goes on to the tunnel.

// Framing limits, from the protocol's specification.
const (
	proxyV1Min = len("PROXY UNKNOWN\r\n") // the shortest v1 line
	proxyV1Max = 107                      // the longest v1 line
	proxyV2Min = 16                       // v2's fixed part: signature, version, family, length
)

var (
	proxyV1Sig = []byte("PROXY ")
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// errNoProxyHeader is a connection from a listed source that opens with
// something other than a PROXY protocol header.
var errNoProxyHeader = errors.New("no PROXY protocol header")

// proxyConn is a connection that came through a load balancer: the
// balancer's socket, reporting the client the header named as its remote
// address. Server.track unwraps it, so that a tunnel splices between the
// sockets themselves.
type proxyConn struct {
	net.Conn
	client *net.TCPAddr
}

// RemoteAddr returns the client address the PROXY header carried.
func (c *proxyConn) RemoteAddr() net.Addr { return c.client }

// unwrapProxyConn returns the socket under a proxyConn, or c itself.
func unwrapProxyConn(c net.Conn) net.Conn {
	if pc, ok := c.(*proxyConn); ok {
		return pc.Conn
	}
	return c
}

// acceptProxied wraps ln so that connections from Config.ProxyProtocolFrom
// are returned only once their PROXY header is read (see above), carrying
// the client's address. refuse, when not nil, answers a connection whose
// header is missing or malformed before it is closed. With no sources
// configured it returns ln unchanged.
func (s *Server) acceptProxied(ln net.Listener, listener string, refuse func(error) []byte) net.Listener {
	if len(s.cfg.ProxyProtocolFrom) == 0 {
		return ln
	}
	l := &proxyListener{
		Listener: ln,
		from:     clientACL(s.cfg.ProxyProtocolFrom),
		timeout:  s.cfg.HeaderTimeout,
		refuse:   refuse,
		log:      s.cfg.Log.With("listener", listener),
		accepted: make(chan acceptResult),
		done:     make(chan struct{}),
		reading:  map[net.Conn]struct{}{},
	}
	go l.run()
	return l
}

// proxyListener is acceptProxied's listener.
type proxyListener struct {
	net.Listener
	from    clientACL
	timeout time.Duration
	refuse  func(error) []byte // nil: close without a word
	log     *slog.Logger

	accepted chan acceptResult
	done     chan struct{} // closed by Close, or when the listener fails for good
	once     sync.Once

	mu      sync.Mutex
	reading map[net.Conn]struct{} // headers being read, closed by Close
}

type acceptResult struct {
	c   net.Conn
	err error
}

// run accepts until the listener is closed. A direct client is handed on
// as it is; a balancer's connection is handed on from readHeader.
func (l *proxyListener) run() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// The consumer decides whether to wait and try again; it
			// closes the listener when it gives up, which ends this loop.
			if !l.deliver(acceptResult{nil, err}) || errors.Is(err, net.ErrClosed) {
				l.shut()
				return
			}
			continue
		}
		if !l.from.allows(connAddrPort(c).Addr()) {
			if !l.deliver(acceptResult{c, nil}) {
				c.Close()
			}
			continue
		}
		if !l.startReading(c) {
			c.Close()
			continue
		}
		go l.readHeader(c)
	}
}

// readHeader reads the header of a balancer's connection and hands the
// connection on with the client's address, or refuses it.
func (l *proxyListener) readHeader(c net.Conn) {
	client, err := readProxyHeader(c, l.timeout)
	if !l.stopReading(c) {
		return // Close closed it
	}
	if err != nil {
		l.refused(c, err)
		return
	}
	var conn net.Conn = c
	if client.IsValid() {
		conn = &proxyConn{Conn: c, client: net.TCPAddrFromAddrPort(client)}
	}
	if !l.deliver(acceptResult{conn, nil}) {
		c.Close()
	}
}

// refused closes a balancer's connection whose header was refused,
// answering it first when there is something to say. A connection closed
// before its first byte (a balancer's TCP health check) goes unlogged.
func (l *proxyListener) refused(c net.Conn, err error) {
	defer c.Close()
	if errors.Is(err, io.EOF) {
		return
	}
	l.log.Warn("PROXY protocol header refused", "source", connAddrPort(c).Addr(), "err", err)
	var ne net.Error
	if l.refuse == nil || errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(l.refuse(err))
}

func (l *proxyListener) deliver(a acceptResult) bool {
	select {
	case l.accepted <- a:
		return true
	case <-l.done:
		return false
	}
}

// startReading registers c with Close; it reports false once closed.
func (l *proxyListener) startReading(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reading == nil {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

// stopReading forgets c; it reports false when Close has closed it.
func (l *proxyListener) stopReading(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.reading[c]; !ok {
		return false
	}
	delete(l.reading, c)
	return true
}

// Accept returns the next direct client or balancer connection whose
// header was read.
func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and every connection whose header is still
// being read.
func (l *proxyListener) Close() error {
	l.shut()
	return l.Listener.Close()
}

func (l *proxyListener) shut() {
	l.once.Do(func() { close(l.done) })
	l.mu.Lock()
	for c := range l.reading {
		c.Close()
	}
	l.reading = nil
	l.mu.Unlock()
}

// readProxyHeader reads the PROXY header that opens c within timeout and
// returns the client address it carries. A v2 LOCAL header (the
// balancer's own health check) or a v1 UNKNOWN one carries none: the
// result is then the zero AddrPort, and the connection keeps its own
// address, as the protocol asks.
func readProxyHeader(c net.Conn, timeout time.Duration) (netip.AddrPort, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	raw, err := frameProxyHeader(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return parseProxyHeader(raw)
}

// parseProxyHeader parses one framed header (frameProxyHeader).
func parseProxyHeader(raw []byte) (netip.AddrPort, error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(raw), len(raw)))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("PROXY protocol header: %w", err)
	}
	if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
		return netip.AddrPort{}, nil
	}
	src, _, ok := h.TCPAddrs()
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("PROXY protocol header: family and protocol 0x%02x is not TCP over IPv4 or IPv6", byte(h.TransportProtocol))
	}
	ap := src.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// frameProxyHeader reads one PROXY header from r and returns its bytes,
// reading no byte past its end: what follows belongs to the client. A v2
// header says its length; a v1 line is read in steps no longer than the
// least the rest of the line can be (proxyV1Need).
func frameProxyHeader(r io.Reader) ([]byte, error) {
	buf := make([]byte, proxyV1Min, proxyV1Max)
	if n, err := io.ReadFull(r, buf); err != nil {
		if n > 0 && !bytes.HasPrefix(proxyV1Sig, buf[:min(n, len(proxyV1Sig))]) && !bytes.HasPrefix(proxyV2Sig, buf[:min(n, len(proxyV2Sig))]) {
			return nil, errNoProxyHeader
		}
		return nil, err
	}
	switch {
	case bytes.HasPrefix(buf, proxyV2Sig):
		return frameProxyV2(r, buf)
	case bytes.HasPrefix(buf, proxyV1Sig):
		return frameProxyV1(r, buf)
	}
	return nil, errNoProxyHeader
}

// frameProxyV2 reads the rest of a v2 header whose first proxyV1Min bytes
// are in buf.
func frameProxyV2(r io.Reader, buf []byte) ([]byte, error) {
	fixed := append(make([]byte, 0, proxyV2Min), buf...)
	fixed = fixed[:proxyV2Min]
	if _, err := io.ReadFull(r, fixed[len(buf):]); err != nil {
		return nil, unexpected(err)
	}
	n := int(fixed[14])<<8 | int(fixed[15])
	whole := make([]byte, proxyV2Min+n)
	copy(whole, fixed)
	if _, err := io.ReadFull(r, whole[proxyV2Min:]); err != nil {
		return nil, unexpected(err)
	}
	return whole, nil
}

// frameProxyV1 reads the rest of a v1 line whose first proxyV1Min bytes
// are in buf.
func frameProxyV1(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i != len(buf)-1 || i == 0 || buf[i-1] != '\r' {
				return nil, errors.New("PROXY protocol header: v1 line does not end with CRLF")
			}
			return buf, nil
		}
		if len(buf) == proxyV1Max {
			return nil, errors.New("PROXY protocol header: v1 line longer than " + strconv.Itoa(proxyV1Max) + " bytes")
		}
		need, ok := proxyV1Need(buf)
		if !ok {
			proto, _, _ := bytes.Cut(buf[len(proxyV1Sig):], []byte(" "))
			return nil, fmt.Errorf("PROXY protocol header: v1 protocol %q is not TCP4, TCP6 or UNKNOWN", proto)
		}
		n := len(buf)
		buf = buf[:min(n+need, proxyV1Max)]
		if _, err := io.ReadFull(r, buf[n:]); err != nil {
			return nil, unexpected(err)
		}
	}
}

// proxyV1Need returns the fewest bytes a valid v1 line that starts with
// line can still have: "PROXY TCP4 SRC DST SPORT DPORT\r\n" has five
// spaces, each followed by a field of a byte or more; UNKNOWN may be
// followed by anything up to the CRLF. It reports false for a protocol
// that is none of these.
func proxyV1Need(line []byte) (int, bool) {
	if line[len(line)-1] == '\r' {
		return 1, true
	}
	proto := line[len(proxyV1Sig):]
	switch {
	case bytes.HasPrefix(proto, []byte("UNKNOWN")):
		return 2, true
	case !bytes.HasPrefix(proto, []byte("TCP4 ")) && !bytes.HasPrefix(proto, []byte("TCP6 ")):
		return 0, false
	}
	need := 2 // CRLF
	if spaces := bytes.Count(line, []byte(" ")); spaces < 5 {
		need += 2 * (5 - spaces)
	}
	if line[len(line)-1] == ' ' {
		need++ // the field after it
	}
	return need, true
}

// unexpected turns an EOF inside a header into io.ErrUnexpectedEOF: only
// a connection closed before its first byte is a plain EOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// proxyRefusal is the proxy listener's answer to a refused header.
func proxyRefusal(err error) []byte {
	body := "egressgate: bad request: " + err.Error() + "; this source is listed in --proxy-protocol-from\n"
	return []byte("HTTP/1.1 400 Bad Request\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		reasonHeader + ": " + rules.ReasonBadRequest.String() + "\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}
