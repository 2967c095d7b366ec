package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
)

// The HTTPS proxy listener: the same forward proxy behind TLS, so that
// Basic proxy credentials never cross the network in clear. Clients
// speak TLS to the proxy first (curl --proxy https://..., a PAC file's
// "HTTPS host:port"), then CONNECT or plain HTTP inside it as usual.

// ServeTLS serves the forward proxy on ln behind TLS with cfg (see
// NewTLSConfig). Tunnels of its clients are relayed through the TLS
// connection, without splice.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	return s.Serve(tls.NewListener(ln, cfg))
}

// overTLSKey marks, in a request's context, a connection that came over
// TLS: net/http sets Request.TLS only for a *tls.Conn it was handed
// unwrapped.
type overTLSKey struct{}

// connContext is the proxy's http.Server.ConnContext.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if isTLSConn(c) {
		return context.WithValue(ctx, overTLSKey{}, true)
	}
	return ctx
}

// isTLSConn reports whether c is a TLS connection, maybe behind the bytes
// the front end read first.
func isTLSConn(c net.Conn) bool {
	if rc, ok := c.(*connectclient.ReplayConn); ok {
		c = rc.Conn
	}
	_, ok := c.(*tls.Conn)
	return ok
}

// NewTLSConfig returns the TLS config of an HTTPS proxy listener serving
// the key pair in certFile and keyFile. The files are read again when
// either changes (checked at most once a second, as clients connect), so
// a renewed certificate is served without a restart; a pair that does
// not load is logged and the last good one kept.
func NewTLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kp := &keyPair{certFile: certFile, keyFile: keyFile, log: log}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		GetCertificate: kp.get,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"}, // the proxy speaks HTTP/1.1 only
	}, nil
}

// keyPair is a certificate and key read from files, reloaded when they
// change.
type keyPair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	mods    [2]time.Time // of certFile and keyFile when cert was read
	checked time.Time
}

// keyPairCheck is how often the files are looked at.
const keyPairCheck = time.Second

func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if now := time.Now(); now.Sub(kp.checked) >= keyPairCheck {
		kp.checked = now
		if mods, err := kp.modTimes(); err == nil && mods != kp.mods {
			if err := kp.loadLocked(); err != nil {
				kp.log.Error("reloading the TLS key pair; the last good one is served", "err", err)
			} else {
				kp.log.Info("TLS key pair reloaded", "cert", kp.certFile)
			}
		}
	}
	return kp.cert, nil
}

func (kp *keyPair) load() error {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	return kp.loadLocked()
}

func (kp *keyPair) loadLocked() error {
	mods, err := kp.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("proxy: TLS key pair %s, %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert, kp.mods = &cert, mods
	return nil
}

func (kp *keyPair) modTimes() ([2]time.Time, error) {
	var mods [2]time.Time
	for i, f := range []string{kp.certFile, kp.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return mods, fmt.Errorf("proxy: TLS key pair: %w", err)
		}
		mods[i] = st.ModTime()
	}
	return mods, nil
}
