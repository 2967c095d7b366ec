package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// Errors parseTarget wraps; each becomes a 400.
var (
	errMissingPort = errors.New("missing port")
	errBadPort     = errors.New("bad port")
	errBadTarget   = errors.New("not host:port")
)

// parseTarget splits a CONNECT request target (RFC 9110 section 9.3.6:
// authority-form, "host:port") into host and port. An IPv6 literal must be
// bracketed; the brackets are removed. The port is mandatory: a CONNECT
// without one is a client error, not a guess at 443 or 80. Whether host is
// a valid name is the matcher's call (invalid-host), not the parser's; the
// parser only refuses what cannot be an authority at all.
func parseTarget(s string) (host string, port uint16, err error) {
	if s == "" {
		return "", 0, fmt.Errorf("empty CONNECT target: %w", errBadTarget)
	}
	var portStr string
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("CONNECT target %q: '[' without ']': %w", s, errBadTarget)
		}
		host, portStr = s[1:end], s[end+1:]
		if portStr == "" {
			return "", 0, fmt.Errorf("CONNECT target %q: %w", s, errMissingPort)
		}
		if portStr[0] != ':' {
			return "", 0, fmt.Errorf("CONNECT target %q: unexpected %q after ']': %w", s, portStr, errBadTarget)
		}
		portStr = portStr[1:]
		if strings.IndexByte(host, ':') < 0 {
			return "", 0, fmt.Errorf("CONNECT target %q: brackets around a non-IPv6 host: %w", s, errBadTarget)
		}
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return "", 0, fmt.Errorf("CONNECT target %q: %w", s, errMissingPort)
		}
		host, portStr = s[:i], s[i+1:]
		if strings.IndexByte(host, ':') >= 0 {
			return "", 0, fmt.Errorf("CONNECT target %q: IPv6 address must be in brackets: %w", s, errBadTarget)
		}
	}
	if host == "" {
		return "", 0, fmt.Errorf("CONNECT target %q: empty host: %w", s, errBadTarget)
	}
	for i := 0; i < len(host); i++ {
		// Characters that end an authority or never appear in one
		// (RFC 3986 section 3.2); anything else is left to the matcher.
		if c := host[i]; c <= ' ' || c == 0x7f || strings.IndexByte("/?#@[]\\", c) >= 0 {
			return "", 0, fmt.Errorf("CONNECT target %q: character %q not allowed in a host: %w", s, c, errBadTarget)
		}
	}
	port, err = parsePort(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("CONNECT target %q: %w", s, err)
	}
	return host, port, nil
}

// parsePort parses a decimal port 1-65535: digits only, at most five.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errMissingPort
	}
	if len(s) > 5 {
		return 0, errBadPort
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errBadPort
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || n > 65535 {
		return 0, errBadPort
	}
	return uint16(n), nil
}
