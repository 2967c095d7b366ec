package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/egressgate/egressgate/proxy"
)

// serveTLS starts the HTTPS proxy listener (--listen-tls) on wg, its
// error to errc, and adds its listener to lns.
func serveTLS(srv *proxy.Server, o *serveOptions, lc net.ListenConfig, log *slog.Logger, onListen func(name, addr string),
	wg *sync.WaitGroup, errc chan<- error, lns *[]net.Listener) error {
	tcfg, err := proxy.NewTLSConfig(o.tlsCert, o.tlsKey, log)
	if err != nil {
		return err
	}
	ln, err := lc.Listen(context.Background(), "tcp", o.tlsListen)
	if err != nil {
		return fmt.Errorf("tls listener: %w", err)
	}
	*lns = append(*lns, ln)
	log.Info("listening", "listener", "tls", "addr", ln.Addr().String())
	if onListen != nil {
		onListen("tls", ln.Addr().String())
	}
	wg.Go(func() { errc <- srv.ServeTLS(ln, tcfg) })
	return nil
}
