package rules

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// estatePrefix is one subnet of an estate, with where it was written.
type estatePrefix struct {
	p      netip.Prefix
	estate int32
	pos    Pos
}

// u128 is an address as a 128-bit number; IPv4 is IPv4-mapped, so one
// table holds both families.
type u128 struct{ hi, lo uint64 }

func key128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// The IPv4-mapped block ::ffff:0:0/96, where IPv4 ranges live.
var (
	v4lo = u128{0, 0xffff << 32}
	v4hi = u128{0, 0xffff<<32 | 0xffffffff}
)

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() u128 {
	a.lo++
	if a.lo == 0 {
		a.hi++
	}
	return a
}

func (a u128) prev() u128 {
	if a.lo == 0 {
		a.hi--
	}
	a.lo--
	return a
}

// prefixRange returns the first and last address of p, IPv4 mapped.
func prefixRange(p netip.Prefix) (u128, u128) {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	lo := key128(p.Masked().Addr())
	hi := lo
	host := 128 - bits
	switch {
	case host >= 64:
		hi.lo = ^uint64(0)
		if host > 64 {
			hi.hi |= ^uint64(0) >> (128 - host)
		}
	case host > 0:
		hi.lo |= ^uint64(0) >> (64 - host)
	}
	return lo, hi
}

// estateTable maps a client address to the estate of the longest subnet
// that holds it. Nested subnets are flattened at build time into
// disjoint, sorted address ranges, so a lookup is one binary search over
// plain numbers: no lock (the table is immutable, published with its
// Ruleset), no allocation, and about log2(ranges) comparisons. IPv4 has a
// table of 32-bit ranges of its own, the common case kept small.
type estateTable struct {
	lo, hi []u128 // IPv6 ranges
	estate []int32
	v4     []range4
}

type range4 struct {
	lo, hi uint32
	estate int32
}

// newEstateTable builds the table. The same subnet in two estates (or
// twice in one) is an error: which one should win is not said. An IPv6
// subnet never holds an IPv4 client, as netip.Prefix.Contains has it:
// ::/0 is "every IPv6 client", not every client.
func newEstateTable(ps []estatePrefix) (*estateTable, error) {
	var v4, v6 []estatePrefix
	for _, p := range ps {
		if p.p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	t := &estateTable{}
	lo, hi, est, err := flatten(v4)
	if err != nil {
		return nil, err
	}
	for i := range lo {
		t.v4 = append(t.v4, range4{uint32(lo[i].lo), uint32(hi[i].lo), est[i]})
	}
	if lo, hi, est, err = flatten(v6); err != nil {
		return nil, err
	}
	keep := func(l, h u128, e int32) {
		t.lo, t.hi, t.estate = append(t.lo, l), append(t.hi, h), append(t.estate, e)
	}
	for i := range lo {
		l, h, e := lo[i], hi[i], est[i]
		if h.cmp(v4lo) < 0 || l.cmp(v4hi) > 0 {
			keep(l, h, e)
			continue
		}
		// Cut the IPv4-mapped block out: lookups read those clients as
		// IPv4.
		if l.cmp(v4lo) < 0 {
			keep(l, v4lo.prev(), e)
		}
		if h.cmp(v4hi) > 0 {
			keep(v4hi.next(), h, e)
		}
	}
	return t, nil
}

// flatten turns nested prefixes into sorted, disjoint ranges, each given
// to the estate of the longest prefix that holds it.
func flatten(ps []estatePrefix) (los, his []u128, ests []int32, err error) {
	type rng struct {
		lo, hi u128
		ep     estatePrefix
	}
	rs := make([]rng, len(ps))
	for i, p := range ps {
		lo, hi := prefixRange(p.p)
		rs[i] = rng{lo, hi, p}
	}
	// Outer ranges before the ranges they hold: by start, then widest
	// first.
	slices.SortStableFunc(rs, func(a, b rng) int {
		if c := a.lo.cmp(b.lo); c != 0 {
			return c
		}
		return b.hi.cmp(a.hi)
	})
	for i := 1; i < len(rs); i++ {
		if rs[i].lo == rs[i-1].lo && rs[i].hi == rs[i-1].hi {
			return nil, nil, nil, rs[i].ep.pos.Errorf("subnets: %s is already a subnet of another estate (%s); one subnet belongs to one estate", rs[i].ep.p, rs[i-1].ep.pos)
		}
	}
	emit := func(lo, hi u128, e int32) {
		if n := len(los); n > 0 && ests[n-1] == e && his[n-1].next() == lo {
			his[n-1] = hi // adjacent, same estate: one range
			return
		}
		los, his, ests = append(los, lo), append(his, hi), append(ests, e)
	}
	// Sweep: the stack holds the open ranges, innermost on top; cur is
	// the first address not yet given to a range.
	var stack []rng
	var cur u128
	covered := false // cur is past the end of the address space
	closeTop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !covered && cur.cmp(top.hi) <= 0 {
			emit(cur, top.hi, top.ep.estate)
		}
		if top.hi == (u128{^uint64(0), ^uint64(0)}) {
			covered = true
		} else {
			cur = top.hi.next()
		}
	}
	for _, r := range rs {
		for len(stack) > 0 && stack[len(stack)-1].hi.cmp(r.lo) < 0 {
			closeTop()
		}
		if len(stack) > 0 && cur.cmp(r.lo) < 0 {
			emit(cur, r.lo.prev(), stack[len(stack)-1].ep.estate)
		}
		cur, covered = r.lo, false
		stack = append(stack, r)
	}
	for len(stack) > 0 {
		closeTop()
	}
	return los, his, ests, nil
}

// lookup returns the estate index of a, or -1 when no subnet holds it.
func (t *estateTable) lookup(a netip.Addr) int32 {
	if t == nil || !a.IsValid() {
		return -1
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		b := a.As4()
		k := binary.BigEndian.Uint32(b[:])
		lo, hi := 0, len(t.v4)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if t.v4[m].lo <= k {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo == 0 || t.v4[lo-1].hi < k {
			return -1
		}
		return t.v4[lo-1].estate
	}
	k := key128(a)
	// The last range that starts at or before k.
	lo, hi := 0, len(t.lo)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.lo[m].cmp(k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || t.hi[lo-1].cmp(k) < 0 {
		return -1
	}
	return t.estate[lo-1]
}

// size is the number of ranges, for the memory figure.
func (t *estateTable) size() int { return len(t.lo) + len(t.v4) }
