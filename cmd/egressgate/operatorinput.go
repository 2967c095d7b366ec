package main

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/rules/export"
)

// What operators type where a HOST:PORT is asked for: a URL copied from
// a browser or a vendor's page, a proxy written the way HTTPS_PROXY wants
// it. Each is taken as meant when only one reading makes sense, and
// otherwise answered with the form to write.

// parseExplainTarget reads explain's HOST[:PORT] argument. A URL
// (https://central.sophos.com/) is its host and port, the scheme's port
// when it names none; a path after a bare HOST[:PORT] is dropped, since a
// proxy judges host and port only.
func parseExplainTarget(arg string) (string, uint16, error) {
	if scheme, _, ok := strings.Cut(arg, "://"); ok {
		u, err := url.Parse(arg)
		if err != nil {
			return "", 0, fmt.Errorf("target %q: %v", arg, err)
		}
		var port uint16
		switch strings.ToLower(scheme) {
		case "https":
			port = 443
		case "http":
			port = 80
		default:
			return "", 0, fmt.Errorf("target %q: explain takes an http:// or https:// URL or HOST[:PORT]; for %s, write HOST:PORT", arg, scheme)
		}
		if u.Hostname() == "" {
			return "", 0, fmt.Errorf("target %q: the URL names no host", arg)
		}
		if p := u.Port(); p != "" {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				return "", 0, fmt.Errorf("target %q: port %q is not 1-65535", arg, p)
			}
			port = uint16(n)
		}
		return u.Hostname(), port, nil
	}
	if i := strings.IndexByte(arg, '/'); i > 0 {
		arg = arg[:i] // central.sophos.com/manage: the host's, as a proxy sees it
	}
	return splitTarget(arg)
}

// parsePACProxy reads a --pac-proxy value: HOST:PORT, or the same as an
// http:// URL (the way HTTPS_PROXY is written), or an https:// URL for the
// HTTPS proxy listener (the file then says HTTPS host:port). A PAC
// directive names a proxy by host and port, so anything that
// would need more, or says less, is answered with the form to write.
func parsePACProxy(v string) (string, error) {
	hostport, prefix := v, ""
	if scheme, rest, ok := strings.Cut(v, "://"); ok {
		https := strings.EqualFold(scheme, "https")
		if !strings.EqualFold(scheme, "http") && !https {
			return "", fmt.Errorf("%q: a PAC file sends browsers to a plain-HTTP proxy (PROXY host:port) or the HTTPS proxy listener (https://host:port); write the proxy listener's HOST:PORT, like gate.example.org:3128", v)
		}
		u, err := url.Parse(v)
		if err != nil || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return "", fmt.Errorf("%q: write only the proxy's HOST:PORT, like %s", v, hostOr(u, rest))
		}
		hostport = u.Host
		if https {
			prefix = export.PACHTTPSPrefix // the HTTPS listener: an HTTPS directive
		}
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		return "", fmt.Errorf("%q names no port; write %s (the proxy listener's port)", v, net.JoinHostPort(host, "3128"))
	}
	return prefix + hostport, nil
}

// hostOr returns u's host and port, or rest up to its first '/'.
func hostOr(u *url.URL, rest string) string {
	if u != nil && u.Host != "" {
		return u.Host
	}
	h, _, _ := strings.Cut(rest, "/")
	return h
}
