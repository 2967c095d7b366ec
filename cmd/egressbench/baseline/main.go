// Command baseline is the unfiltered reference proxy that egressbench
// measures egressgate against: github.com/elazarl/goproxy with its defaults
// (NewProxyHttpServer, no handlers, so every CONNECT is OkConnect), Verbose
// off and its log discarded. Its tunnels are goproxy's own: io.Copy in each
// direction between the two raw *net.TCPConn, which Go turns into
// splice(2). It has no allowlist, no SNI check, no metrics: what egressgate
// costs beyond it is the price of its policy work.
//
// The only thing added is name resolution from a hosts file, so the tool's
// upstream name resolves without DNS: the CONNECT dial (proxy.ConnectDial)
// and the plain-HTTP dial (proxy.Tr.DialContext) map names found in the
// file to their address and dial everything else as net.Dial does.
//
// Usage:
//
//	baseline --listen 127.0.0.1:3129 [--hosts FILE]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/elazarl/goproxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3129", "address to listen on")
	hostsPath := flag.String("hosts", "", "hosts file (/etc/hosts format) mapping names to addresses; other names resolve as usual")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "baseline: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	hosts := map[string]string{}
	if *hostsPath != "" {
		var err error
		if hosts, err = readHosts(*hostsPath); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: newProxy(hosts), ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// newProxy is goproxy as it comes, silent, dialling through hosts.
func newProxy(hosts map[string]string) *goproxy.ProxyHttpServer {
	proxy := goproxy.NewProxyHttpServer()
	proxy.Verbose = false
	proxy.Logger = log.New(io.Discard, "", 0)
	dial := hostsDialer(hosts)
	proxy.ConnectDial = func(network, addr string) (net.Conn, error) {
		return dial(context.Background(), network, addr)
	}
	proxy.Tr.DialContext = dial
	return proxy
}

// hostsDialer dials addr, replacing a host name found in hosts by its
// address; anything else is dialled as net.Dial would.
func hostsDialer(hosts map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip, ok := hosts[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
				addr = net.JoinHostPort(ip, port)
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// readHosts reads an /etc/hosts-format file: name → first address given
// for it.
func readHosts(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hosts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || net.ParseIP(fields[0]) == nil {
			continue
		}
		for _, name := range fields[1:] {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if _, seen := hosts[name]; !seen {
				hosts[name] = fields[0]
			}
		}
	}
	return hosts, sc.Err()
}
