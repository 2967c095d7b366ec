package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
)

// Modes of a tunnel, sent by the client as the TLS ALPN protocol so the
// upstream knows what to do after the handshake. ALPN rides inside the
// ClientHello, which every proxy forwards untouched.
const (
	modeShort = "egressbench-short" // write a short reply over TLS, close
	modeDown  = "egressbench-down"  // raw: 'G', then zeros until the client closes
	modeUp    = "egressbench-up"    // raw: 'G', then sink until a 0x01 byte, answer the count
	modeIdle  = "egressbench-idle"  // raw: 'G', then wait for the client to close
	// modeReplay is not negotiated: a client with --handshake replay sends
	// a ClientHello recorded once (offering this ALPN) and no handshake
	// follows; the upstream answers shortReply in the clear and closes.
	modeReplay = "egressbench-replay"
	// modeHold is not negotiated either: a held tunnel (the hold
	// scenario) sends a recorded ClientHello offering it; the upstream
	// answers goByte in the clear and waits for the client to close.
	modeHold = "egressbench-hold"
)

// shortReply is what the upstream writes in modeShort.
var shortReply = []byte("egressbench upstream: hello\n")

// goByte is written raw by the upstream once the handshake is done in the
// bulk and idle modes. The client sends nothing raw before reading it, so
// neither side's TLS record reader can have read past the handshake.
const goByte = 'G'

// endByte ends an upload: the payload is all zeros, so the first non-zero
// byte is the end, and it is always the last byte of some read.
const endByte = 1

// bulkBuf is the read and write size of the bulk modes, client and upstream.
const bulkBuf = 256 << 10

// upstream is the TLS server tunnels end at. It listens on loopback and
// serves a certificate for host, from a key generated per run.
type upstream struct {
	ln   net.Listener
	conf *tls.Config
	pool *x509.CertPool // trusts the certificate, for clients
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startUpstream listens on 127.0.0.1:port (0: any free port) and serves
// host.
func startUpstream(host string, port int) (*upstream, error) {
	cert, pool, err := selfSigned(host)
	if err != nil {
		return nil, fmt.Errorf("generating certificate: %w", err)
	}
	// No TCP keepalive on accepted connections: with Go's default (15 s)
	// the thousands of idle tunnels the hold scenario keeps would each
	// send probes, in bursts, while the proxy is being measured.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("upstream listen: %w", err)
	}
	u := &upstream{
		ln:   ln,
		pool: pool,
		conf: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS13,
			NextProtos:   []string{modeShort, modeDown, modeUp, modeIdle},
			// No tickets: in TLS 1.3 they would follow the handshake and
			// land in the raw byte stream of the bulk modes.
			SessionTicketsDisabled: true,
		},
		conns: make(map[net.Conn]struct{}),
	}
	u.wg.Add(1)
	go u.acceptLoop()
	return u, nil
}

// port is the upstream's listening port.
func (u *upstream) port() int { return u.ln.Addr().(*net.TCPAddr).Port }

// addr is the upstream's listening address, for direct dials.
func (u *upstream) addr() string { return u.ln.Addr().String() }

// close stops accepting, closes every open connection and waits for the
// handlers.
func (u *upstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *upstream) acceptLoop() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serveConn(c)
	}
}

// serveConn completes the handshake and acts out the mode the client
// asked for. Errors end the connection; the client counts them.
func (u *upstream) serveConn(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	hello, err := readRecord(c)
	if err != nil {
		return
	}
	if bytes.Contains(hello, []byte(modeReplay)) {
		c.Write(shortReply)
		return
	}
	if bytes.Contains(hello, []byte(modeHold)) {
		c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte{goByte}); err == nil {
			var b [64]byte
			for { // until the client closes; no buffer held while waiting
				if _, err := c.Read(b[:]); err != nil {
					return
				}
			}
		}
		return
	}
	tc := tls.Server(&connectclient.ReplayConn{Conn: c, Pending: hello}, u.conf)
	if err := tc.Handshake(); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case modeShort:
		tc.Write(shortReply)
		tc.Close()
	case modeDown:
		sourceZeros(c)
	case modeUp:
		sinkUntilEnd(c)
	case modeIdle:
		if _, err := c.Write([]byte{goByte}); err == nil {
			io.Copy(io.Discard, c)
		}
	}
}

// readRecord reads one TLS record (the ClientHello), header included.
func readRecord(c net.Conn) ([]byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(h[3:])))
	copy(rec, h[:])
	_, err := io.ReadFull(c, rec[5:])
	return rec, err
}

// sourceZeros writes goByte and then zeros until the peer goes away.
func sourceZeros(c net.Conn) {
	if _, err := c.Write([]byte{goByte}); err != nil {
		return
	}
	buf := make([]byte, bulkBuf)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// sinkUntilEnd writes goByte, reads until endByte and answers the number of
// payload bytes read, big-endian, so the client can time the upload at the
// receiving end without relying on half-close, which not every proxy
// forwards.
func sinkUntilEnd(c net.Conn) {
	if _, err := c.Write([]byte{goByte}); err != nil {
		return
	}
	buf := make([]byte, bulkBuf)
	var n int64
	for {
		m, err := c.Read(buf)
		if m > 0 {
			n += int64(m)
			if buf[m-1] == endByte {
				var ack [8]byte
				binary.BigEndian.PutUint64(ack[:], uint64(n-1))
				c.Write(ack[:])
				return
			}
			// A non-zero byte anywhere else is a broken stream.
			if bytes.IndexByte(buf[:m], endByte) >= 0 {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// selfSigned makes an ECDSA P-256 certificate for host that is its own CA,
// and a pool trusting it.
func selfSigned(host string) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
