package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
)

// client opens tunnels to the upstream, through a proxy or directly.
type client struct {
	upstream *upstream
	proxy    string        // proxy address; "" dials the upstream directly
	direct   string        // upstream address, for direct dials
	target   string        // host:port sent in CONNECT
	host     string        // TLS server name
	timeout  time.Duration // bounds each tunnel's setup
	dialer   net.Dialer
	tlsConfs map[string]*tls.Config // per mode
	// replay, when set, is a ClientHello recorded once that short tunnels
	// send instead of doing a handshake (--handshake replay).
	replay []byte
	// holdHello is the recorded ClientHello of held tunnels.
	holdHello []byte
}

func newClient(proxy string, u *upstream, host string) *client {
	c := &client{
		upstream: u,
		proxy:    proxy,
		direct:   u.addr(),
		target:   net.JoinHostPort(host, fmt.Sprint(u.port())),
		host:     host,
		timeout:  10 * time.Second,
		tlsConfs: make(map[string]*tls.Config),
	}
	for _, m := range []string{modeShort, modeDown, modeUp, modeIdle} {
		c.tlsConfs[m] = &tls.Config{
			ServerName: host,
			RootCAs:    u.pool,
			MinVersion: tls.VersionTLS13,
			NextProtos: []string{m},
			// X25519 alone: the ClientHello stays real, and the
			// handshake costs the shared cores about a fifth less than
			// with the post-quantum hybrid, leaving more to the proxies.
			CurvePreferences: []tls.CurveID{tls.X25519},
		}
	}
	return c
}

// connect opens a TCP connection and, through a proxy, sends CONNECT and
// reads the reply. It returns the connection ready for the ClientHello and
// the time from the start of the TCP connect to the end of the proxy's
// reply (for a direct dial: to the end of the TCP connect).
func (c *client) connect(ctx context.Context) (net.Conn, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.proxy == "" {
		conn, err := c.dialer.DialContext(ctx, "tcp", c.direct)
		if err != nil {
			return nil, 0, fmt.Errorf("dial upstream: %w", err)
		}
		return conn, time.Since(start), nil
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", c.proxy)
	if err != nil {
		return nil, 0, fmt.Errorf("dial proxy: %w", err)
	}
	rest, err := connectclient.Open(ctx, conn, c.target, nil)
	if err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("CONNECT: %w", err)
	}
	lat := time.Since(start)
	if len(rest) > 0 {
		conn = &connectclient.ReplayConn{Conn: conn, Pending: rest}
	}
	return conn, lat, nil
}

// recordHello is the first TLS record crypto/tls sends as a client for
// host offering ALPN modeReplay: a real ClientHello (SNI, X25519 key
// share), recorded once and sent by every replayed tunnel.
func recordHello(host string) ([]byte, error) {
	return recordHelloALPN(host, modeReplay)
}

// recordHelloALPN is recordHello offering ALPN mode.
func recordHelloALPN(host, mode string) ([]byte, error) {
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, &tls.Config{
			ServerName: host, MinVersion: tls.VersionTLS13,
			NextProtos: []string{mode}, CurvePreferences: []tls.CurveID{tls.X25519},
		}).Handshake()
		a.Close()
	}()
	b.SetDeadline(time.Now().Add(10 * time.Second))
	return readRecord(b)
}

// handshake runs the TLS handshake in mode over conn.
func (c *client) handshake(ctx context.Context, conn net.Conn, mode string) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tc := tls.Client(conn, c.tlsConfs[mode])
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != mode {
		return nil, fmt.Errorf("TLS handshake: upstream chose ALPN %q, want %q", got, mode)
	}
	return tc, nil
}

// shortTunnel is one full tunnel: connect, CONNECT, TLS handshake, read the
// short reply, close. It returns the CONNECT latency. With a recorded
// hello it sends that instead of handshaking and reads the reply in the
// clear.
func (c *client) shortTunnel(ctx context.Context) (time.Duration, error) {
	conn, lat, err := c.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if c.replay != nil {
		conn.SetDeadline(time.Now().Add(c.timeout))
		if _, err := conn.Write(c.replay); err != nil {
			return 0, fmt.Errorf("write hello: %w", err)
		}
		got, err := io.ReadAll(io.LimitReader(conn, int64(len(shortReply))+1))
		if err != nil || !bytes.Equal(got, shortReply) {
			return 0, fmt.Errorf("read reply: got %q, want %q (%v)", got, shortReply, err)
		}
		return lat, nil
	}
	tc, err := c.handshake(ctx, conn, modeShort)
	if err != nil {
		return 0, err
	}
	conn.SetDeadline(time.Now().Add(c.timeout))
	got, err := io.ReadAll(io.LimitReader(tc, int64(len(shortReply))+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, fmt.Errorf("read reply: %w", err)
	}
	if !bytes.Equal(got, shortReply) {
		return 0, fmt.Errorf("read reply: got %q, want %q", got, shortReply)
	}
	return lat, nil
}

// rawTunnel opens a tunnel in one of the raw modes and returns the
// underlying connection once the upstream's goByte has arrived.
func (c *client) rawTunnel(ctx context.Context, mode string) (net.Conn, error) {
	conn, _, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	tc, err := c.handshake(ctx, conn, mode)
	if err != nil {
		conn.Close()
		return nil, err
	}
	raw := tc.NetConn()
	raw.SetReadDeadline(time.Now().Add(c.timeout))
	var g [1]byte
	if _, err := io.ReadFull(raw, g[:]); err != nil || g[0] != goByte {
		conn.Close()
		return nil, fmt.Errorf("waiting for upstream go byte: %q, %v", g[:], err)
	}
	raw.SetReadDeadline(time.Time{})
	return raw, nil
}

// download reads zeros from conn until deadline or until the budget shared
// by all tunnels of the measurement is spent. It returns the bytes read.
func download(conn net.Conn, deadline time.Time, budget *budget) (int64, error) {
	conn.SetReadDeadline(deadline)
	buf := make([]byte, bulkBuf)
	var n int64
	for budget.left.Load() > 0 {
		m, err := conn.Read(buf)
		n += int64(m)
		budget.left.Add(-int64(m))
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// upload writes zeros to conn until deadline or the budget is spent, then
// endByte, and waits for the upstream's count of what it received, which it
// returns.
func upload(conn net.Conn, deadline time.Time, budget *budget) (int64, error) {
	buf := make([]byte, bulkBuf)
	for time.Now().Before(deadline) && budget.left.Load() > 0 {
		m, err := conn.Write(buf)
		budget.left.Add(-int64(m))
		if err != nil {
			return 0, fmt.Errorf("upload: %w", err)
		}
	}
	if _, err := conn.Write([]byte{endByte}); err != nil {
		return 0, fmt.Errorf("upload end: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ack [8]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return 0, fmt.Errorf("upload ack: %w", err)
	}
	return int64(binary.BigEndian.Uint64(ack[:])), nil
}

// budget is a byte count shared by the tunnels of one bulk measurement.
type budget struct{ left atomic.Int64 }

func newBudget(n int64) *budget {
	b := &budget{}
	b.left.Store(n)
	return b
}
