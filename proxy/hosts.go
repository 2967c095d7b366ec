package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

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

// HostsFile is a hosts file kept loaded (serve --hosts), reloaded as the
// rules are: Reload reads and parses the file again and swaps the result
// in only when it parses, so a bad edit keeps the last good hosts
// serving. A lookup loads the current Hosts once.
type HostsFile struct {
	path string
	cur  atomic.Pointer[Hosts]

	mu     sync.Mutex // serialises Reload
	digest [sha256.Size]byte
}

// OpenHostsFile loads path; unlike a reload, failing here is the caller's
// error to report (serve does not start).
func OpenHostsFile(path string) (*HostsFile, error) {
	f := &HostsFile{path: path}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *HostsFile) Path() string { return f.path }

// Hosts returns the hosts of the last good load.
func (f *HostsFile) Hosts() Hosts { return *f.cur.Load() }

// Reload reads the file again. It reports whether the contents changed;
// on an error (which names path:line) the last good hosts stay.
func (f *HostsFile) Reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := os.ReadFile(f.path)
	if err != nil {
		return false, fmt.Errorf("reading hosts file: %w", err)
	}
	sum := sha256.Sum256(data)
	if f.cur.Load() != nil && sum == f.digest {
		return false, nil
	}
	h, err := ParseHosts(f.path, data)
	if err != nil {
		return false, err
	}
	f.cur.Store(&h)
	f.digest = sum
	return true, nil
}
