package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// PACFallback is where a PAC file sends what the catalog does not name.
type PACFallback uint8

const (
	// PACDirect sends names outside the catalog straight to the network.
	PACDirect PACFallback = iota
	// PACProxy sends them to the proxy too, which denies them and logs
	// the miss.
	PACProxy
)

func (f PACFallback) String() string {
	if f == PACProxy {
		return "proxy"
	}
	return "direct"
}

// ParsePACFallback reads "direct" or "proxy".
func ParsePACFallback(s string) (PACFallback, error) {
	switch strings.ToLower(s) {
	case "direct":
		return PACDirect, nil
	case "proxy":
		return PACProxy, nil
	}
	return 0, fmt.Errorf("PAC fallback %q: want direct or proxy", s)
}

// pacLimits is the part of the generated file that says what a PAC file
// can and cannot express. It is written once, here, and shipped in every
// file so that whoever reads the file reads it too.
const pacLimits = `// What this file can express, and what it cannot:
//   - Names as the proxy matches them: an exact name; "*.name", one or more
//     labels in front of name and never name itself; "*" inside a label,
//     which never crosses a dot. Hosts are compared in lower case without
//     a trailing dot.
//   - The port: the URL's own, else its scheme's default (http and ws 80,
//     https and wss 443, ftp 21). When neither is known, any of an entry's
//     ports counts. The proxy enforces ports itself either way.
//   - IPv4 literal hosts against CIDR entries (isInNet on the literal, no
//     DNS lookup). IPv6 CIDR entries cannot be expressed with the standard
//     PAC functions: IPv6 literal hosts take the fallback.
//   - Routing only: the client ACL, the SNI check and the refusal of
//     private destinations are the proxy's, whatever this file says.
`

// pacProgram is the fixed part of the file: the functions that walk RULES.
// Only standard PAC functions (dnsDomainIs, shExpMatch, isInNet) and plain
// JavaScript are used, so every PAC engine runs it.
const pacProgram = `
function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") {
    host = host.substring(0, host.length - 1);
  }
  var port = egressgatePort(url);
  var held = egressgateHeld(host, port);
  if (held != "") {
    return held;
  }
  if (egressgateIn(RULES, host, port)) {
    return PROXY;
  }
  return FALLBACK;
}

// egressgateHeld decides a name of HELD: the first row that names host
// and port, the proxy unless refused; the fallback on any other port. ""
// when no row names host.
function egressgateHeld(host, port) {
  var named = false;
  for (var i = 0; i < HELD.length; i++) {
    var r = HELD[i];
    if (r[1] != host) {
      continue;
    }
    named = true;
    if (egressgatePortIn(port, r[2])) {
      return r[3] ? FALLBACK : PROXY;
    }
  }
  return named ? FALLBACK : "";
}

// egressgatePort returns the URL's port, its scheme's default, or 0 when
// neither is known.
function egressgatePort(url) {
  var i = url.indexOf("://");
  if (i < 0) {
    return 0;
  }
  var scheme = url.substring(0, i).toLowerCase();
  var auth = url.substring(i + 3);
  var end = auth.search(/[\/?#]/);
  if (end >= 0) {
    auth = auth.substring(0, end);
  }
  auth = auth.substring(auth.lastIndexOf("@") + 1);
  var colon = auth.lastIndexOf(":");
  if (colon > auth.lastIndexOf("]")) {
    var p = auth.substring(colon + 1);
    if (/^[0-9]{1,5}$/.test(p)) {
      return parseInt(p, 10);
    }
  }
  if (scheme == "http" || scheme == "ws") {
    return 80;
  }
  if (scheme == "https" || scheme == "wss") {
    return 443;
  }
  if (scheme == "ftp") {
    return 21;
  }
  return 0;
}

// egressgateIn reports whether some row of rows names host and port.
function egressgateIn(rows, host, port) {
  if (host.indexOf(":") >= 0) {
    return false; // IPv6 literal
  }
  var ip4 = /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
  for (var i = 0; i < rows.length; i++) {
    var r = rows[i];
    if (!egressgatePortIn(port, r[2])) {
      continue;
    }
    var kind = r[0];
    if (ip4) {
      if (kind == "/" && isInNet(host, r[1], r[3])) {
        return true;
      }
    } else if (kind == "=") {
      if (host == r[1]) {
        return true;
      }
    } else if (kind == ".") {
      if (dnsDomainIs(host, r[1])) {
        return true;
      }
    } else if (kind == "~") {
      if (dnsDomainIs(host, "." + r[1]) &&
          egressgateLabels(host.substring(0, host.length - r[1].length - 1), r[3])) {
        return true;
      }
    }
  }
  return false;
}

// egressgatePortIn reports whether port is in ports; an unknown port (0)
// is in every list.
function egressgatePortIn(port, ports) {
  if (port == 0) {
    return true;
  }
  for (var i = 0; i < ports.length; i++) {
    if (ports[i] == port) {
      return true;
    }
  }
  return false;
}

// egressgateLabels reports whether the labels of front match the label
// patterns one to one: shExpMatch's "*" would cross dots, so each label is
// matched on its own.
function egressgateLabels(front, patterns) {
  var labels = front.split(".");
  if (labels.length != patterns.length) {
    return false;
  }
  for (var i = 0; i < labels.length; i++) {
    if (!shExpMatch(labels[i], patterns[i])) {
      return false;
    }
  }
  return true;
}
`

// PAC returns a proxy auto-config file that sends the names m admits, on
// their ports, to "PROXY proxyAddr" and everything else to the fallback.
// proxyAddr is host:port, the address endpoints reach the proxy at. The
// file routes; the proxy still decides (see pacLimits).
//
// Each entry becomes one row of a table that a fixed function walks, so
// the file reads like the catalog and its size grows with it linearly.
func PAC(m *rules.Matcher, proxyAddr string, fallback PACFallback) ([]byte, error) {
	if err := CheckPACProxy(proxyAddr); err != nil {
		return nil, err
	}
	directive := "PROXY "
	if hp, ok := strings.CutPrefix(proxyAddr, PACHTTPSPrefix); ok {
		// The proxy's HTTPS listener: the browser speaks TLS to it.
		directive, proxyAddr = "HTTPS ", hp
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Proxy auto-config generated by egressgate from matcher v%d: %s.\n", m.Version(), m.Summary())
	fmt.Fprintf(&b, "// Catalog names on their ports go to the proxy; everything else goes %s.\n//\n", strings.ToUpper(fallback.String()))
	b.WriteString(pacLimits)
	b.WriteString("\n")
	fmt.Fprintf(&b, "var PROXY = %s;\n", jsString(directive+proxyAddr))
	fb := "DIRECT"
	if fallback == PACProxy {
		fb = directive + proxyAddr
	}
	fmt.Fprintf(&b, "var FALLBACK = %s;\n\n", jsString(fb))
	b.WriteString(`// One row per catalog entry: [kind, pattern, ports, extra].
//   "=" an exact name;
//   "." a leading wildcard, as the suffix it needs (".example.com" for "*.example.com");
//   "~" stars inside labels: the fixed suffix, and the label patterns in front of it;
//   "/" an IPv4 CIDR: the network, and its mask.
var RULES = [
`)
	// held: exact names that an entry refused by the policy, or a Live
	// Response host, holds on every port, as the matcher has it (a
	// broader wildcard never admits them on another port).
	held := map[string]bool{}
	for _, e := range m.Entries() {
		if e.Kind == rules.KindExact && (e.Deny != rules.ReasonNone || e.LiveResponse) {
			held[e.Pattern] = true
		}
	}
	for _, e := range m.Entries() {
		if e.Deny != rules.ReasonNone || e.Kind == rules.KindExact && held[e.Pattern] {
			continue // in HELD, or a refused pattern: simply not in RULES
		}
		row, ok := pacRow(e)
		if !ok {
			fmt.Fprintf(&b, "  // %s (%s): an IPv6 prefix; not expressible in a PAC file\n", pacComment(e.Pattern), pacComment(e.Pos.String()))
			continue
		}
		fmt.Fprintf(&b, "  %s, // %s %s\n", row, pacComment(e.Pattern), pacComment(e.Pos.String()))
	}
	b.WriteString("];\n\n")
	// A name the estate's policy refuses beats the wildcard that would
	// send it to the proxy, on every port, as in the matcher: it goes to
	// the fallback. So does a Live Response host on a port it lacks.
	b.WriteString("// Names the policy refuses (licence, Live Response, region), and Live Response hosts:\n" +
		"// decided by these rows alone, in order; the first naming the port decides, true meaning refused.\nvar HELD = [\n")
	for _, e := range m.Entries() {
		if e.Kind != rules.KindExact || !held[e.Pattern] {
			continue
		}
		row, _ := pacRow(e)
		why := "live response host"
		if e.Deny != rules.ReasonNone {
			why = "refused: " + e.Deny.String()
		}
		fmt.Fprintf(&b, "  [%s, %t], // %s %s: %s\n", row[1:len(row)-1], e.Deny != rules.ReasonNone, pacComment(e.Pattern), pacComment(e.Pos.String()), why)
	}
	b.WriteString("];\n")
	b.WriteString(pacProgram)
	return b.Bytes(), nil
}

// pacRow returns an entry's RULES row, and false when PAC cannot express it.
func pacRow(e *rules.Entry) (string, bool) {
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	portList := "[" + strings.Join(ports, ", ") + "]"
	switch e.Kind {
	case rules.KindExact:
		return fmt.Sprintf("[\"=\", %s, %s]", jsString(e.Pattern), portList), true
	case rules.KindWildcard:
		return fmt.Sprintf("[\".\", %s, %s]", jsString(e.Pattern[1:]), portList), true
	case rules.KindGlob:
		// Split as Compile does: the labels up to the last one holding a
		// star are patterns, the rest is a fixed suffix.
		lastStar := strings.LastIndexByte(e.Pattern, '*')
		dot := strings.IndexByte(e.Pattern[lastStar:], '.') + lastStar
		labels := strings.Split(e.Pattern[:dot], ".")
		quoted := make([]string, len(labels))
		for i, l := range labels {
			quoted[i] = jsString(l)
		}
		return fmt.Sprintf("[\"~\", %s, %s, [%s]]", jsString(e.Pattern[dot+1:]), portList, strings.Join(quoted, ", ")), true
	case rules.KindCIDR:
		if !e.Prefix.Addr().Is4() {
			return "", false
		}
		return fmt.Sprintf("[\"/\", %s, %s, %s]", jsString(e.Prefix.Masked().Addr().String()), portList, jsString(ipv4Mask(e.Prefix.Bits()))), true
	}
	return "", false
}

// ipv4Mask returns the dotted mask of a prefix length, as isInNet wants.
func ipv4Mask(bits int) string {
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// PACHTTPSPrefix before a PAC proxy address names the proxy's HTTPS
// listener: the file then says "HTTPS host:port" rather than "PROXY".
const PACHTTPSPrefix = "https://"

// CheckPACProxy returns an error unless addr is a host:port fit for a
// PROXY directive: a valid name or IP literal and a port. Anything else
// could break out of the directive (a ';' would add another).
func CheckPACProxy(addr string) error {
	addr = strings.TrimPrefix(addr, PACHTTPSPrefix)
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return fmt.Errorf("PAC proxy address %q: want host:port", addr)
	}
	host, port := addr[:i], addr[i+1:]
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("PAC proxy address %q: port %q is not 1-65535", addr, port)
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		if err != nil || !strings.HasSuffix(host, "]") || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("PAC proxy address %q: bad IPv6 literal", addr)
		}
		return nil
	}
	// The host must already be an ASCII name or IPv4 address: a Unicode
	// name would reach the PAC engine unconverted.
	// A name of digits and dots that is not an IPv4 address ("010.1.1.1")
	// is one that engines read in octal.
	c, err := rules.CanonicalHost(host)
	isAddr := rules.IsIPLiteral(host)
	numeric := strings.Trim(host, "0123456789.") == ""
	if err != nil || c != strings.ToLower(host) || strings.Contains(host, ":") || numeric && !isAddr {
		return fmt.Errorf("PAC proxy address %q: host is not an ASCII name or an IPv4 address", addr)
	}
	return nil
}

// jsString quotes s as a JavaScript string literal. JSON strings are
// valid JavaScript, and HTML escaping keeps "</script>" and the like out.
func jsString(s string) string {
	q, _ := json.Marshal(s) // a string always marshals
	return string(q)
}

// pacComment makes s safe inside a // comment: one line, printable ASCII.
func pacComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
