package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// Hosts maps canonical names (rules.CanonicalHost) to the addresses a
// hosts file gives them, in file order. A name it lists is never sent to
// the resolver.
type Hosts map[string][]netip.Addr

// LoadHosts reads a hosts file (see ParseHosts).
func LoadHosts(path string) (Hosts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading hosts file: %w", err)
	}
	return ParseHosts(path, data)
}

// ParseHosts parses hosts-file lines, "IP name [name...]", with '#'
// starting a comment, as in /etc/hosts. A name listed on several lines
// gets every address, in order. Errors start with "path:line: ".
func ParseHosts(path string, data []byte) (Hosts, error) {
	h := Hosts{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		pos := rules.Pos{File: path, Line: line}
		a, err := netip.ParseAddr(fields[0])
		if err != nil || a.Zone() != "" {
			return nil, pos.Errorf("address %q is not an IP address without zone", fields[0])
		}
		if len(fields) == 1 {
			return nil, pos.Errorf("address %s has no name; write \"%s name\"", fields[0], fields[0])
		}
		for _, name := range fields[1:] {
			c, err := rules.CanonicalHost(name)
			if err != nil {
				return nil, pos.Errorf("name: %w", err)
			}
			h[c] = append(h[c], a.Unmap())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, rules.Pos{File: path}.Errorf("reading: %w", err)
	}
	return h, nil
}
