package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gobwas/glob"
)

// maxLabels is the most labels a valid name can have (253 bytes).
const maxLabels = (maxNameLen + 1) / 2

var matcherVersions atomic.Uint64

// Matcher is a compiled catalog. It is immutable once built and safe for
// concurrent use; swap a new one in to change the rules.
type Matcher struct {
	version uint64
	entries []*Entry
	exact   map[string][]*Entry // exact names, to answer the common hit with one hash
	// exactLen[n] says whether some exact name is n bytes long: names of
	// other lengths skip the hash (a long glob or wildcard hit would
	// otherwise hash and compare it for nothing).
	exactLen [maxNameLen + 1]bool
	root     *node
	cidrs    []*Entry // KindCIDR entries, longest prefix first
}

// node is a name in the reversed-label trie.
type node struct {
	// Children by label: a short slice scanned in order while the node
	// has few (most have one to four, and comparing a few short strings
	// beats hashing), a map beyond that.
	kids     []kid
	children map[string]*node
	exact    []*Entry    // patterns equal to this name
	wild     []*Entry    // "*." + this name
	globs    []innerGlob // patterns whose fixed suffix is this name
}

// innerGlob is a pattern with '*' inside labels, split at its fixed suffix:
// "tf-*-bucket.s3.example.com" is stored at the node for "s3.example.com"
// with the glob "tf-*-bucket", so a lookup only tries globs whose suffix
// already matched.
type innerGlob struct {
	g     glob.Glob
	entry *Entry
	// The literal text before the first '*' and after the last: a cheap
	// test that rejects most names before the glob runs.
	prefix, suffix string
}

func (ig *innerGlob) match(front string) bool {
	return len(front) >= len(ig.prefix)+len(ig.suffix) && strings.HasPrefix(front, ig.prefix) &&
		strings.HasSuffix(front, ig.suffix) && ig.g.Match(front)
}

// Compile builds a Matcher from entries, in precedence order for ties. The
// entries' ID fields are set to their index. Entries must not be shared
// with another Matcher being compiled at the same time.
func Compile(entries []*Entry) (*Matcher, error) {
	m := &Matcher{version: matcherVersions.Add(1), entries: entries, root: &node{}, exact: map[string][]*Entry{}}
	for i, e := range entries {
		e.ID = i
		switch e.Kind {
		case KindCIDR:
			m.cidrs = append(m.cidrs, e)
		case KindExact:
			n := m.root.insert(e.Pattern)
			n.exact = append(n.exact, e)
			m.exact[e.Pattern] = n.exact
			m.exactLen[len(e.Pattern)] = true
		case KindWildcard:
			n := m.root.insert(e.Pattern[2:])
			n.wild = append(n.wild, e)
		case KindGlob:
			lastStar := strings.LastIndexByte(e.Pattern, '*')
			dot := strings.IndexByte(e.Pattern[lastStar:], '.') + lastStar
			g, err := glob.Compile(e.Pattern[:dot], '.')
			if err != nil {
				return nil, e.Pos.Errorf("pattern: %q: %v", e.Pattern, err)
			}
			n := m.root.insert(e.Pattern[dot+1:])
			front := e.Pattern[:dot]
			n.globs = append(n.globs, innerGlob{g: g, entry: e,
				prefix: front[:strings.IndexByte(front, '*')], suffix: front[strings.LastIndexByte(front, '*')+1:]})
		default:
			return nil, e.Pos.Errorf("pattern: %q has unknown kind %d", e.Pattern, e.Kind)
		}
	}
	slices.SortStableFunc(m.cidrs, func(a, b *Entry) int { return b.Prefix.Bits() - a.Prefix.Bits() })
	return m, nil
}

// maxKids is the most children a node keeps in its slice before it
// switches to a map.
const maxKids = 16

type kid struct {
	label string
	n     *node
}

// child returns the child for label, or nil.
func (n *node) child(label string) *node {
	if n.children != nil {
		return n.children[label]
	}
	for i := range n.kids {
		if n.kids[i].label == label {
			return n.kids[i].n
		}
	}
	return nil
}

// insert returns the node for name, creating the path to it.
func (n *node) insert(name string) *node {
	for end := len(name); end > 0; {
		start := strings.LastIndexByte(name[:end], '.') + 1
		label := name[start:end]
		child := n.child(label)
		if child == nil {
			child = &node{}
			n.addChild(label, child)
		}
		n = child
		end = start - 1
	}
	return n
}

func (n *node) addChild(label string, c *node) {
	if n.children == nil && len(n.kids) < maxKids {
		n.kids = append(n.kids, kid{label, c})
		return
	}
	if n.children == nil {
		n.children = make(map[string]*node, 2*maxKids)
		for _, k := range n.kids {
			n.children[k.label] = k.n
		}
		n.kids = nil
	}
	n.children[label] = c
}

// Version identifies the Matcher; every Compile gives a new one.
func (m *Matcher) Version() uint64 { return m.version }

// Entries returns the compiled entries, indexed by Entry.ID. The caller
// must not modify them.
func (m *Matcher) Entries() []*Entry { return m.entries }

// Lookup returns the verdict for host and port. host may be in any case,
// carry a trailing dot, be Unicode, or be an IP literal; it is canonicalised
// first (see CanonicalHost). Lookup does not allocate for an ASCII host,
// except to fold the case of a mixed-case name that reaches an inner-label
// glob.
func (m *Matcher) Lookup(host string, port uint16) Verdict {
	name, addr, kind := classifyHost(host)
	switch kind {
	case hostName:
		return m.lookupName(name, false, port)
	case hostFold:
		return m.lookupName(name, true, port)
	case hostAddr:
		return m.lookupAddr(addr, port)
	case hostUnicode:
		c, err := CanonicalHost(host)
		if err != nil {
			return Verdict{Reason: ReasonInvalidHost}
		}
		return m.lookupName(c, false, port)
	}
	return Verdict{Reason: ReasonInvalidHost}
}

// lookupAddr returns the verdict for an IP-literal host.
func (m *Matcher) lookupAddr(a netip.Addr, port uint16) Verdict {
	var named *Entry
	for _, e := range m.cidrs {
		if e.Prefix.Contains(a) {
			if e.AllowsPort(port) {
				return admit(e)
			}
			if named == nil {
				named = e
			}
		}
	}
	if named != nil {
		return Verdict{Reason: ReasonPortNotAllowed, Entry: named}
	}
	return Verdict{Reason: ReasonNotInCatalog}
}

// lookupName walks the trie along name's labels from the right, then tries
// the candidates in precedence order: exact, inner-label globs (deepest
// suffix first), leading wildcards (deepest suffix first).
//
// With fold set, name has upper-case letters: each label is lowered into a
// stack buffer for the trie, so only a glob test needs a lowered copy.
func (m *Matcher) lookupName(name string, fold bool, port uint16) Verdict {
	if !fold && m.exactLen[len(name)] {
		for _, e := range m.exact[name] { // the common hit: one hash
			if e.AllowsPort(port) {
				return admit(e)
			}
		}
	}
	// Walk down, keeping only the nodes that can match: those with globs
	// or wildcards and a label in front of them. Few nodes qualify, so a
	// small array holds them; a catalog deep enough to overflow it costs
	// an allocation, not a wrong answer.
	var (
		lower    [maxLabelLen]byte
		buf      [8]step
		cands    = buf[:0]
		n        = m.root
		complete bool // the whole name is a trie node
	)
	for end := len(name); end > 0 && (n.children != nil || n.kids != nil); {
		start := strings.LastIndexByte(name[:end], '.') + 1
		var child *node
		if fold {
			k := copy(lower[:], name[start:end])
			for i, c := range lower[:k] {
				if 'A' <= c && c <= 'Z' {
					lower[i] = c + 'a' - 'A'
				}
			}
			child = n.child(string(lower[:k]))
		} else {
			child = n.child(name[start:end])
		}
		if child == nil {
			break
		}
		n = child
		if start == 0 {
			complete = true
			break
		}
		if len(n.globs) > 0 || len(n.wild) > 0 {
			cands = append(cands, step{n, start})
		}
		end = start - 1
	}
	var named *Entry // best entry that names the host, whatever its port
	// owner is an entry that names the host on other ports and must not be
	// overruled by a broader one that admits this port: one the policy
	// refuses, or a Live Response host (its device exclusions are checked
	// on its entry). Entries as specific as it still count.
	var owner *Entry
	try := func(e *Entry) bool {
		if e.AllowsPort(port) {
			return true
		}
		if named == nil {
			named = e
		}
		if owner == nil && (e.Deny != ReasonNone || e.LiveResponse) {
			owner = e
		}
		return false
	}
	if complete {
		for _, e := range n.exact {
			if try(e) {
				return admit(e)
			}
		}
	}
	for i := len(cands) - 1; i >= 0 && owner == nil; i-- { // deepest suffix first
		c := cands[i]
		if len(c.n.globs) == 0 {
			continue
		}
		front := name[:c.start-1]
		if fold {
			front = strings.ToLower(front)
		}
		for _, ig := range c.n.globs {
			if ig.match(front) && try(ig.entry) {
				return admit(ig.entry)
			}
		}
	}
	for i := len(cands) - 1; i >= 0 && owner == nil; i-- {
		for _, e := range cands[i].n.wild {
			if try(e) {
				return admit(e)
			}
		}
	}
	if owner != nil {
		if owner.Deny != ReasonNone {
			return Verdict{Reason: owner.Deny, Entry: owner}
		}
		return Verdict{Reason: ReasonPortNotAllowed, Entry: owner}
	}
	if named != nil {
		return Verdict{Reason: ReasonPortNotAllowed, Entry: named}
	}
	return Verdict{Reason: ReasonNotInCatalog}
}

// admit is the verdict of an entry that names the host and the port: an
// allow, unless the policy the matcher was compiled for refuses the entry
// (Entry.Deny). A refused entry still ends the search, so that it beats
// the wildcards that would otherwise admit the host.
func admit(e *Entry) Verdict {
	return Verdict{Allow: e.Deny == ReasonNone, Reason: e.Deny, Entry: e}
}

// step is a trie node on a lookup's path, with the offset in the name
// where its suffix begins.
type step struct {
	n     *node
	start int
}

// String summarises the matcher for logs.
func (m *Matcher) String() string {
	return fmt.Sprintf("matcher v%d: %s", m.version, m.Summary())
}

// Summary counts the entries the policy admits, by kind, and those it
// refuses (which stay in the matcher so that no wildcard admits them).
func (m *Matcher) Summary() string {
	var kinds [KindCIDR + 1]int
	admitted := 0
	for _, e := range m.entries {
		if e.Deny == ReasonNone {
			kinds[e.Kind]++
			admitted++
		}
	}
	s := fmt.Sprintf("%d entries (%d exact, %d wildcard, %d glob, %d cidr)",
		admitted, kinds[KindExact], kinds[KindWildcard], kinds[KindGlob], kinds[KindCIDR])
	if refused := len(m.entries) - admitted; refused > 0 {
		s += fmt.Sprintf(", %d refused by the policy", refused)
	}
	return s
}
