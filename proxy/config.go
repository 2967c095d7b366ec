package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// Defaults for the Config fields whose zero value means "the default".
const (
	DefaultSNITimeout     = 5 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultKeepAlive      = time.Minute
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultClientIdleTimeout is short: an idle keep-alive connection
	// holds a descriptor and counts against MaxConns, and a plain-HTTP
	// client reconnects cheaply.
	DefaultClientIdleTimeout = 15 * time.Second
)

// Rules gives the matcher to judge a new connection with. A connection
// calls Matcher once, at its verdict step, and keeps that matcher for its
// whole life, so a reload never changes a verdict already made.
// *rules.Reloader satisfies it.
type Rules interface {
	Matcher() *rules.Matcher
}

// EstateRules is a Rules that serves estates: each client is judged with
// its estate's matcher, and Users (when set) authenticate. *rules.Reloader
// satisfies it. A Rules that is not one judges every client alike.
type EstateRules interface {
	Rules
	// Current returns the ruleset to judge a new connection with; like
	// Matcher, it is called once per connection.
	Current() *rules.Ruleset
}

// StaticRules is a Rules that always gives the same matcher.
type StaticRules struct{ M *rules.Matcher }

// Matcher returns r.M.
func (r StaticRules) Matcher() *rules.Matcher { return r.M }

var _ Rules = StaticRules{}

// Resolver looks up the addresses of a name. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is everything a Server needs. Only Rules is required; every other
// field's zero value is a safe default, said in its comment.
type Config struct {
	// Rules gives the current matcher. Required.
	Rules Rules
	// Log receives operational errors (not decisions: those go to
	// Recorder). Nil discards them.
	Log *slog.Logger
	// Recorder receives every decision, dial and tunnel. Nil records
	// nothing.
	Recorder Recorder

	// Clients are the source prefixes served; others get 403
	// client-not-allowed. Nil or empty means DefaultClients (loopback and
	// the private ranges, like Squid's localnet). There is no way to serve
	// every address short of listing 0.0.0.0/0 and ::/0 explicitly.
	Clients []netip.Prefix
	// ProxyProtocolFrom are the load balancers whose connections open with
	// a PROXY protocol header (v1 or v2) naming the client, on the proxy
	// and SNI listeners alike (proxyproto.go). A connection from one of
	// them without a valid header is refused; from every other address a
	// connection is a direct client. Nil: every connection is direct.
	ProxyProtocolFrom []netip.Prefix
	// AllowDest are destination prefixes admitted although they are
	// private, loopback or reserved (see the refused list in dest.go).
	// Nil allows none of them.
	AllowDest []netip.Prefix
	// Hosts overrides name resolution for the names it lists. Nil
	// overrides nothing.
	Hosts Hosts
	// HostsFile, when set, replaces Hosts: each lookup takes its current
	// hosts, so a reload applies to the next connection. Nil uses Hosts.
	HostsFile *HostsFile
	// Resolver resolves names that Hosts does not list. Nil means
	// net.DefaultResolver.
	Resolver Resolver
	// UpstreamProxy, when set (http://host:port), is a parent proxy that
	// every admitted request is sent through: CONNECT is chained, plain
	// HTTP forwarded in absolute form. egressgate then resolves and checks
	// only the parent's own address; the parent resolves the targets. Nil
	// means direct connections.
	UpstreamProxy *url.URL

	// PAC says what /proxy.pac contains (pac.go). The zero value sends
	// catalog names to the address the client reached and the rest
	// DIRECT.
	PAC PACOptions

	// Monitor admits what the catalog denies (not-in-catalog,
	// port-not-allowed) and records it as ActionWouldDeny. The client
	// ACL, invalid hosts, destination checks and SNI checks still deny.
	// False enforces the catalog.
	Monitor bool
	// SNIPorts are the CONNECT ports whose tunnels must open with a
	// ClientHello naming the CONNECT host. Nil means {443}; an empty
	// non-nil slice checks no port.
	SNIPorts []uint16
	// SNIDestPort is the upstream port of the SNI listener's tunnels, and
	// the port their verdict is asked for. Zero means 443.
	SNIDestPort uint16
	// AllowNoSNI admits a CONNECT tunnel to an SNI port whose first bytes
	// are not a TLS ClientHello with a server name. False denies it with
	// reason no-sni. The SNI listener always needs a name.
	AllowNoSNI bool

	// SNITimeout bounds the wait for the ClientHello. Zero means
	// DefaultSNITimeout.
	SNITimeout time.Duration
	// DialTimeout bounds resolving and connecting to an upstream, all
	// addresses together. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// HeaderTimeout bounds reading a request's header (slowloris). Zero
	// means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// ClientIdleTimeout closes a client's keep-alive connection to the
	// proxy port after this long between requests. Zero means
	// DefaultClientIdleTimeout.
	ClientIdleTimeout time.Duration
	// IdleTimeout closes a tunnel after this long without a byte in
	// either direction. Zero means never: an endpoint's long-lived
	// channel to its vendor may be quiet for hours, and a dead peer is
	// found by KeepAlive instead.
	IdleTimeout time.Duration
	// KeepAlive is the TCP keepalive idle time on both sockets of a
	// tunnel: after this long without a packet the kernel probes the
	// peer every keepAliveInterval and drops the connection after
	// keepAliveProbes unanswered probes, which ends the tunnel. Each
	// socket's idle time is spread up to a quarter longer, so that
	// tunnels opened together do not probe together (keepalive.go).
	// Zero means DefaultKeepAlive; negative turns keepalive off.
	KeepAlive time.Duration
	// MaxConns caps tunnels plus requests in flight; beyond it the proxy
	// answers 503 and the SNI listener closes. Zero means
	// DefaultMaxConns(), derived from the descriptor limit; negative
	// means no cap.
	MaxConns int
	// MaxHeaderBytes caps a request header. Zero means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// forwardResponseTimeout bounds the wait for a plain-HTTP upstream's
// response header. Plain HTTP here is OCSP and CRL fetches, never a
// long poll.
const forwardResponseTimeout = 2 * time.Minute

// DefaultClients returns the sources served when Config.Clients is empty:
// loopback plus the private and link-local ranges. The slice is the
// caller's own.
func DefaultClients() []netip.Prefix { return slices.Clone(defaultClients) }

var defaultClients = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// withDefaults returns cfg with every zero field set to its default, or
// an error naming the field that is wrong.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Rules == nil {
		return cfg, errors.New("proxy: Config.Rules is nil")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if len(cfg.Clients) == 0 {
		cfg.Clients = DefaultClients()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if u := cfg.UpstreamProxy; u != nil {
		if u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" || u.Path != "" && u.Path != "/" {
			return cfg, fmt.Errorf("proxy: upstream proxy %q: want http://host:port", u.Redacted())
		}
	}
	if cfg.SNIPorts == nil {
		cfg.SNIPorts = []uint16{443}
	}
	if cfg.SNIDestPort == 0 {
		cfg.SNIDestPort = 443
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SNITimeout, DefaultSNITimeout)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.HeaderTimeout, DefaultHeaderTimeout)
	def(&cfg.ClientIdleTimeout, DefaultClientIdleTimeout)
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.IdleTimeout < 0 {
		cfg.IdleTimeout = 0
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns()
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return cfg, nil
}
