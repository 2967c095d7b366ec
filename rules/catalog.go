package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// OS names a catalog entry may be limited to.
const (
	OSWindows = "windows"
	OSMacOS   = "macos"
	OSLinux   = "linux"
)

// AllOS returns every OS name in catalog order, a new slice each call
// that the caller may keep and change.
func AllOS() []string { return []string{OSWindows, OSMacOS, OSLinux} }

// Pos is where something was written: a file and a 1-based line.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Errorf returns an error that starts with "file:line: ". Every parse and
// validation error is built with it, so none can forget to say where.
func (p Pos) Errorf(format string, args ...any) error {
	if p == (Pos{}) {
		return fmt.Errorf(format, args...)
	}
	return &PosError{Pos: p, Err: fmt.Errorf(format, args...)}
}

// PosError is an error at a position in a config or catalog file.
type PosError struct {
	Pos Pos
	Err error
}

func (e *PosError) Error() string { return e.Pos.String() + ": " + e.Err.Error() }
func (e *PosError) Unwrap() error { return e.Err }

// Catalog is one parsed catalog file: its sections, groups and entries.
type Catalog struct {
	Name     string // label for metrics and listings, e.g. "sophos-central"
	Title    string
	Source   string // the document the catalog transcribes, if any
	Path     string // file it was read from ("embedded:..." for built-ins)
	Licenses []License
	Sections []*Section
	Groups   []*Group
	Entries  []*Entry
}

// License is a product license that entries can apply to.
type License struct {
	ID   string
	Name string
}

// Section is a part of a catalog that is turned on or off as a whole, such
// as a product ("Intercept X, XDR, or MDR") or an optional feature.
type Section struct {
	ID       string
	Title    string
	Optional bool     // off unless the policy enables it
	Licenses []string // license IDs its groups apply to by default
	// NeedsWildcards is set when the section cannot work in exact mode;
	// the string is the reason, quoted from the source.
	NeedsWildcards string
	Notes          []string
	Pos            Pos
}

// Group is a list in the source document: a set of entries with one purpose.
type Group struct {
	ID       string
	Title    string
	Section  *Section
	Optional bool     // off unless the policy enables it, even in an enabled section
	Ports    []uint16 // default ports of its entries
	Licenses []string // overrides the section's when set
	Notes    []string
	Pos      Pos
}

// Kind says how an entry's pattern matches.
type Kind uint8

const (
	KindExact    Kind = iota // a name
	KindGlob                 // a name with '*' inside labels
	KindWildcard             // "*." and a name: one or more labels in front
	KindCIDR                 // an address prefix, for IP-literal hosts
)

func (k Kind) String() string {
	return [...]string{"exact", "glob", "wildcard", "cidr"}[k]
}

// Entry is one pattern of a catalog with everything the catalog says of it.
type Entry struct {
	Pattern  string // canonical form, as written up to case
	Kind     Kind
	Prefix   netip.Prefix // for KindCIDR
	Catalog  string       // name of the catalog it came from
	Groups   []*Group
	OS       []string // empty: every OS
	Ports    []uint16
	Licenses []string
	Region   string
	Example  bool // an example of a per-account host, not a host to rely on
	// LiveResponse marks a Live Response host: admitted only where the
	// policy turns Live Response on, never from an excluded device.
	LiveResponse bool
	// Deny, when not ReasonNone, is why the policy the entry was compiled
	// for refuses it although its group is on: not-licensed,
	// live-response-off or region-excluded. Such an entry still matches,
	// so that it beats a wildcard that would otherwise admit the host.
	Deny  Reason
	Notes []string
	Pos   Pos

	// ID is the entry's index in the Matcher it was compiled into; it is
	// set by Compile and is only meaningful with that Matcher.
	ID int
}

// Sections returns the IDs of the sections of the entry's groups, in order,
// without repeats.
func (e *Entry) Sections() []string {
	var out []string
	for _, g := range e.Groups {
		if g.Section != nil && !slices.Contains(out, g.Section.ID) {
			out = append(out, g.Section.ID)
		}
	}
	return out
}

// GroupIDs returns the IDs of the entry's groups.
func (e *Entry) GroupIDs() []string {
	out := make([]string, len(e.Groups))
	for i, g := range e.Groups {
		out[i] = g.ID
	}
	return out
}

// AllowsPort reports whether port is one of the entry's ports.
func (e *Entry) AllowsPort(port uint16) bool {
	for _, p := range e.Ports {
		if p == port {
			return true
		}
	}
	return false
}

// HasWildcard reports whether the entry's pattern needs a firewall that
// understands wildcards.
func (e *Entry) HasWildcard() bool { return e.Kind == KindGlob || e.Kind == KindWildcard }

// ForOS reports whether the entry applies to at least one of oses.
func (e *Entry) ForOS(oses []string) bool {
	if len(e.OS) == 0 {
		return true
	}
	for _, o := range oses {
		if slices.Contains(e.OS, o) {
			return true
		}
	}
	return false
}

// classifyPattern validates a catalog pattern and returns its canonical form
// and kind.
func classifyPattern(p string) (string, Kind, netip.Prefix, error) {
	if strings.Contains(p, "/") {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return "", 0, netip.Prefix{}, fmt.Errorf("bad CIDR %q: %v", p, err)
		}
		pfx = pfx.Masked()
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96).Masked()
		}
		return pfx.String(), KindCIDR, pfx, nil
	}
	if a, ok := parseIPLiteral(p); ok {
		pfx := netip.PrefixFrom(a, a.BitLen())
		return pfx.String(), KindCIDR, pfx, nil
	}
	p = strings.TrimSuffix(p, ".")
	if !strings.Contains(p, "*") {
		c, err := CanonicalHost(p)
		if err != nil {
			return "", 0, netip.Prefix{}, err
		}
		return c, KindExact, netip.Prefix{}, nil
	}
	lower := strings.ToLower(p)
	if checkName(lower, true) != nameOK || endsInNumber(lower) {
		return "", 0, netip.Prefix{}, nameError(lower, true)
	}
	if strings.Contains(lower, "**") {
		return "", 0, netip.Prefix{}, fmt.Errorf("pattern %q: \"**\" is not allowed; \"*\" already matches any run within a label", p)
	}
	if rest, ok := strings.CutPrefix(lower, "*."); ok {
		if strings.Contains(rest, "*") {
			return "", 0, netip.Prefix{}, fmt.Errorf("pattern %q: a leading \"*.\" cannot be combined with \"*\" inside labels", p)
		}
		return lower, KindWildcard, netip.Prefix{}, nil
	}
	if lower == "*" {
		return "", 0, netip.Prefix{}, fmt.Errorf("pattern %q would match every name", p)
	}
	if last := lower[strings.LastIndexByte(lower, '.')+1:]; strings.Contains(last, "*") {
		return "", 0, netip.Prefix{}, fmt.Errorf("pattern %q: \"*\" in the last label would match whole top-level domains", p)
	}
	return lower, KindGlob, netip.Prefix{}, nil
}
