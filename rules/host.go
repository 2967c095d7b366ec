package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits on DNS names (RFC 1035 section 2.3.4).
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// ErrInvalidHost is wrapped by every error CanonicalHost returns.
var ErrInvalidHost = errors.New("invalid host")

// idnaProfile converts Unicode names the way a resolver would look them up.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// CanonicalHost returns host in the form the matcher compares: lower case,
// one trailing dot dropped, Unicode converted to IDNA ASCII. It returns an
// error wrapping ErrInvalidHost, with the reason, when host is not a valid
// DNS name. IP literals (IPv6 with or without brackets) are returned in
// netip's canonical text form, IPv4-mapped IPv6 as IPv4.
//
// The common case, a name that is already canonical, is returned as is
// without allocating.
func CanonicalHost(host string) (string, error) {
	name, addr, kind := classifyHost(host)
	switch kind {
	case hostName:
		return name, nil
	case hostAddr:
		return addr.String(), nil
	case hostFold:
		return strings.ToLower(name), nil
	case hostUnicode:
		if !utf8.ValidString(name) {
			return "", fmt.Errorf("%w %q: not UTF-8", ErrInvalidHost, host)
		}
		a, err := idnaProfile.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrInvalidHost, host, err)
		}
		return checkedFold(host, strings.ToLower(a))
	case hostBadLiteral:
		return "", fmt.Errorf("%w %q: bad IPv6 literal", ErrInvalidHost, host)
	}
	return "", nameError(name, false)
}

// HostAddr returns the address an IP-literal host names (bracketed or
// not, IPv4-mapped IPv6 as IPv4), and false for a name or an invalid host.
// It does not allocate, so the proxy can ask it of every request.
func HostAddr(host string) (netip.Addr, bool) {
	_, addr, kind := classifyHost(host)
	return addr, kind == hostAddr
}

// hostKind is what classifyHost found.
type hostKind uint8

const (
	hostName       hostKind = iota // a canonical name
	hostFold                       // a valid name once lower-cased
	hostAddr                       // an IP literal
	hostUnicode                    // needs IDNA conversion
	hostBadLiteral                 // "[...]" that is not an IPv6 address
	hostBad                        // not a valid name
)

// classifyHost is the allocation-free part of CanonicalHost, shared with
// Matcher.Lookup so both always agree. name is host without brackets or
// its trailing dot.
func classifyHost(host string) (name string, addr netip.Addr, kind hostKind) {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		a, ok := parseIPLiteral(host[1 : len(host)-1])
		if !ok || strings.IndexByte(host, ':') < 0 {
			return host, netip.Addr{}, hostBadLiteral
		}
		return "", a, hostAddr
	}
	host = strings.TrimSuffix(host, ".")
	switch checkName(host, false) {
	case nameOK:
		// A valid name whose last label ends in a digit may be an IPv4
		// literal; no top-level domain is numeric.
		if c := host[len(host)-1]; '0' <= c && c <= '9' {
			if a, ok := parseIPLiteral(host); ok {
				return "", a, hostAddr
			}
			if endsInNumber(host) {
				return host, netip.Addr{}, hostBad
			}
		}
		return host, netip.Addr{}, hostName
	case nameNeedsFold:
		if endsInNumber(host) {
			return host, netip.Addr{}, hostBad
		}
		return host, netip.Addr{}, hostFold
	case nameNonASCII:
		return host, netip.Addr{}, hostUnicode
	}
	if a, ok := parseIPLiteral(host); ok { // IPv6: its colons fail checkName
		return "", a, hostAddr
	}
	return host, netip.Addr{}, hostBad
}

// checkedFold validates a name that CanonicalHost has transformed.
func checkedFold(orig, folded string) (string, error) {
	if checkName(folded, false) != nameOK {
		return "", nameError(orig, false)
	}
	if endsInNumber(folded) {
		return "", nameError(folded, false)
	}
	return folded, nil
}

// endsInNumber reports whether the last label of a name is a number:
// decimal digits, or 0x and hex digits. Browsers and inet_aton read such
// a host as an IPv4 address in some notation ("010.0.0.1" is 8.0.0.1,
// "0x7f.1" is 127.0.0.1), while a DNS name never has a numeric top-level
// domain: whatever is not a plain IP literal is refused, so that the
// proxy, the PAC file and the endpoint never disagree on what it is.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		last = last[2:]
		for i := 0; i < len(last); i++ {
			if c := last[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if c := last[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseIPLiteral reports whether host is an IPv4 or unbracketed IPv6
// literal. It avoids netip.ParseAddr on names, which would allocate an
// error for every ordinary host.
func parseIPLiteral(host string) (netip.Addr, bool) {
	if host == "" {
		return netip.Addr{}, false
	}
	maybe := strings.IndexByte(host, ':') >= 0
	if !maybe {
		// An IPv4 literal is digits and dots only.
		maybe = true
		for i := 0; i < len(host); i++ {
			if c := host[i]; c != '.' && (c < '0' || c > '9') {
				maybe = false
				break
			}
		}
	}
	if !maybe {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// IsIPLiteral reports whether host is an IPv4 or unbracketed IPv6
// literal, as the matcher reads one (no zone).
func IsIPLiteral(host string) bool {
	_, ok := parseIPLiteral(host)
	return ok
}

type nameCheck int

const (
	nameOK        nameCheck = iota
	nameNeedsFold           // valid once lower-cased
	nameNonASCII            // needs IDNA conversion
	nameBad
)

// Byte classes for checkName.
const (
	cBad   = iota
	cLower // a-z 0-9 _
	cHyphen
	cUpper
	cDot
	cStar
	cHigh // >= 0x80
)

var byteClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = cLower
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = cLower
	}
	t['_'] = cLower
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cUpper
	}
	t['-'], t['.'], t['*'] = cHyphen, cDot, cStar
	for c := 0x80; c < 0x100; c++ {
		t[c] = cHigh
	}
	return t
}()

// checkName classifies s as a DNS name. With star set, '*' is allowed in
// labels (catalog patterns). It runs on every lookup, hence the table.
func checkName(s string, star bool) nameCheck {
	if len(s) == 0 || len(s) > maxNameLen {
		return nameBad
	}
	res := nameOK
	labelStart := 0
	for i := range len(s) {
		cls := byteClass[s[i]]
		if cls == cLower || cls == cHyphen { // the common byte: one compare
			continue
		}
		switch cls {
		case cDot:
			if !labelOK(s, labelStart, i) && res != nameNonASCII {
				return nameBad
			}
			labelStart = i + 1
		case cUpper:
			if res == nameOK {
				res = nameNeedsFold
			}
		case cStar:
			if !star {
				return nameBad
			}
		case cHigh:
			res = nameNonASCII
		default:
			return nameBad
		}
	}
	if !labelOK(s, labelStart, len(s)) && res != nameNonASCII {
		return nameBad
	}
	return res
}

// labelOK reports whether s[start:end] is a well-formed label: 1 to 63
// bytes, no '-' at either end.
func labelOK(s string, start, end int) bool {
	n := end - start
	return n > 0 && n <= maxLabelLen && s[start] != '-' && s[end-1] != '-'
}

// nameError says why s is not a valid name.
func nameError(s string, star bool) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty name", ErrInvalidHost)
	case len(s) > maxNameLen:
		return fmt.Errorf("%w %.40q...: name is %d bytes, longer than %d", ErrInvalidHost, s, len(s), maxNameLen)
	}
	for _, label := range strings.Split(s, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%w %q: empty label", ErrInvalidHost, s)
		case len(label) > maxLabelLen:
			return fmt.Errorf("%w %q: label %.20q... is %d bytes, longer than %d", ErrInvalidHost, s, label, len(label), maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%w %q: label %q starts or ends with '-'", ErrInvalidHost, s, label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '*' && star
			if !ok {
				return fmt.Errorf("%w %q: character %q not allowed in a DNS name", ErrInvalidHost, s, c)
			}
		}
	}
	if endsInNumber(s) {
		return fmt.Errorf("%w %q: the last label is a number; write an address as a plain IPv4 or IPv6 literal", ErrInvalidHost, s)
	}
	return fmt.Errorf("%w %q", ErrInvalidHost, s)
}
