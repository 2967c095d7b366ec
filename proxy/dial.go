package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/egressgate/egressgate/proxy/connectclient"
	"github.com/egressgate/egressgate/rules"
)

// Errors of the resolve step.
var (
	// errPrivateDestination: every address of the target is refused by
	// the destination policy; the request is denied (403
	// private-destination), not failed.
	errPrivateDestination = errors.New("every address is private, loopback or reserved")
	errNoAddresses        = errors.New("name has no addresses")
)

// route is where an admitted request goes: checked addresses, to be
// dialed in turn, and nothing else.
type route struct {
	addrs  []netip.AddrPort
	parent bool          // addrs are the parent proxy's, which resolves the target
	lookup time.Duration // time spent resolving; 0 for literals and Hosts
}

// resolve finds the addresses for host:port (or the parent proxy's, when
// one is configured), and keeps those the destination policy permits. It
// is the only place a name is resolved: the dial step dials rt.addrs and
// never looks a name up again, so what was checked is what is dialed.
func (s *Server) resolve(ctx context.Context, host string, port uint16) (route, error) {
	var rt route
	if s.parent != nil {
		host, port, rt.parent = s.parent.host, s.parent.port, true
	}
	addrs, lookup, err := s.cfg.lookup(ctx, host)
	rt.lookup = lookup
	if err != nil {
		return rt, err
	}
	rt.addrs, err = s.dest.route(addrs, host, port)
	return rt, err
}

// Resolve is the resolve-and-check step of a Server with cfg, for a
// target it dials itself (without UpstreamProxy: a parent resolves its
// targets). It returns the addresses host has (the literal, the hosts
// file's entry or the resolver's answer) and, of those, the ones the
// destination check (AllowDest) lets the proxy dial on port, in the
// resolver's order. When it lets none, the proxy refuses host with 403
// private-destination. err is a failed lookup. The probe calls it so
// that it reports what the proxy would do.
func (cfg *Config) Resolve(ctx context.Context, host string, port uint16) (addrs []netip.Addr, dial []netip.AddrPort, err error) {
	addrs, _, err = cfg.lookup(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	dial, _ = destPolicy{allow: cfg.AllowDest}.route(addrs, host, port)
	return addrs, dial, nil
}

// lookup is lookupHost with cfg's hosts (the hosts file's current ones when
// HostsFile is set) and resolver.
func (cfg *Config) lookup(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	hosts := cfg.Hosts
	if cfg.HostsFile != nil {
		hosts = cfg.HostsFile.Hosts()
	}
	return lookupHost(ctx, hosts, cfg.Resolver, host)
}

// route returns the addresses of host the policy permits, with port, in
// the resolver's order; errPrivateDestination when it permits none.
func (p destPolicy) route(addrs []netip.Addr, host string, port uint16) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, a := range addrs {
		if p.permits(a) {
			out = append(out, netip.AddrPortFrom(a.Unmap(), port))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", host, errPrivateDestination)
	}
	return out, nil
}

// lookupHost returns host's addresses as the proxy finds them: the
// literal itself, the hosts file's entry, or the resolver's answer; and
// the time the resolver took.
func lookupHost(ctx context.Context, hosts Hosts, res Resolver, host string) ([]netip.Addr, time.Duration, error) {
	name, err := rules.CanonicalHost(host)
	if err != nil {
		return nil, 0, err
	}
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, 0, nil
	}
	if addrs, ok := hosts[name]; ok {
		return addrs, 0, nil
	}
	if res == nil {
		res = net.DefaultResolver
	}
	start := time.Now()
	addrs, err := res.LookupNetIP(ctx, "ip", name)
	took := time.Since(start)
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: errNoAddresses.Error(), Name: name, IsNotFound: true}
	}
	if err != nil {
		return nil, took, fmt.Errorf("resolving %s: %w", name, err)
	}
	return addrs, took, nil
}

// dial connects to the route's addresses in turn until one answers. When
// the route is a parent proxy, it also asks the parent to CONNECT to
// host:port; pending are bytes the parent sent after its 200, which
// belong to the client. ctx bounds everything.
func (s *Server) dial(ctx context.Context, rt route, host string, port uint16) (*net.TCPConn, []byte, time.Duration, error) {
	start := time.Now()
	c, err := s.dialUpstream(ctx, rt.addrs)
	if err != nil || !rt.parent {
		return c, nil, time.Since(start), err
	}
	pending, err := connectclient.Open(ctx, c, net.JoinHostPort(onwardHost(host), strconv.Itoa(int(port))), nil)
	if err != nil {
		c.Close()
		return nil, nil, time.Since(start), fmt.Errorf("parent proxy: %w", err)
	}
	return c, pending, time.Since(start), nil
}

// onwardHost is the name an admitted host goes on as, to a parent proxy
// or in a forwarded request: its canonical form, the one the matcher
// judged. A parent must never see another spelling (a soft hyphen,
// fullwidth dots, a trailing dot, capitals) that it might read
// differently.
func onwardHost(host string) string {
	if name, err := rules.CanonicalHost(host); err == nil {
		return name
	}
	return host
}

// dialUpstream connects with the upstream dialer (Config.KeepAlive) to
// each address in turn (IPv6 and IPv4 as the resolver ordered them; no
// Happy Eyeballs) and returns the first connection, or the first error.
func (s *Server) dialUpstream(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, error) {
	d := s.cfg.dialer()
	var firstErr error
	for _, a := range addrs {
		c, err := dialTCPContext(ctx, &d, a)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = errNoAddresses
	}
	return nil, firstErr
}

// dialTCPContext dials one address with ctx. Not Dialer.DialTCP, which
// would save formatting the address and parsing it back: it binds the
// socket to the unspecified address before connecting, one more system
// call per dial, and the port that bind picks is reserved for every
// destination, where connect picks one per destination.
func dialTCPContext(ctx context.Context, d *net.Dialer, a netip.AddrPort) (*net.TCPConn, error) {
	c, err := d.DialContext(ctx, "tcp", a.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
