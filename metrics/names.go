package metrics

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/egressgate/egressgate/rules"
)

// maxNamesPerEntry bounds the names kept behind one wildcard or glob entry
// (globally, and again per estate): the hosts are the clients', so the
// table must not grow with what they send.
const maxNamesPerEntry = 32

// nameTable keeps the distinct names admitted through one wildcard or glob
// entry with their hit counts: what an operator needs to move to exact
// mode. They are shown on /rules and in the report, never as label values.
//
// A hit on a name already kept scans the slots and adds atomically: no
// lock, no allocation. A new name takes the lock and fills a free slot or
// evicts the least-used name (counted in evicted).
type nameTable struct {
	slots   [maxNamesPerEntry]nameSlot
	mu      sync.Mutex // serialises inserts and evictions
	evicted *atomic.Uint64
}

type nameSlot struct {
	name atomic.Pointer[string] // canonical; nil while free
	hits atomic.Uint64
}

// NameHits is one name seen behind a wildcard or glob entry.
type NameHits struct {
	Name string `json:"name"`
	Hits uint64 `json:"hits"`
}

func newNameTable(evicted *atomic.Uint64) *nameTable { return &nameTable{evicted: evicted} }

// add counts a hit on host, as the client sent it (any case, maybe a
// trailing dot).
func (t *nameTable) add(host string) {
	h := strings.TrimSuffix(host, ".")
	for i := range t.slots {
		s := &t.slots[i]
		p := s.name.Load()
		if p == nil {
			break // slots fill in order and are never freed
		}
		if strings.EqualFold(*p, h) {
			s.hits.Add(1)
			return
		}
	}
	t.insert(host)
}

// insert counts a hit on a name not found by add's scan: under the lock,
// in its slot if another insert put it there meanwhile, else in a free
// slot, else in the least-used one's.
func (t *nameTable) insert(host string) {
	name, err := rules.CanonicalHost(host)
	if err != nil {
		return // the matcher admitted it, so it is a name; be safe anyway
	}
	name = strings.Clone(name) // do not keep the client's request buffer alive
	t.mu.Lock()
	defer t.mu.Unlock()
	least := -1
	for i := range t.slots {
		s := &t.slots[i]
		p := s.name.Load()
		if p == nil {
			s.hits.Store(1)
			s.name.Store(&name)
			return
		}
		if *p == name {
			s.hits.Add(1)
			return
		}
		if least < 0 || s.hits.Load() < t.slots[least].hits.Load() {
			least = i
		}
	}
	s := &t.slots[least]
	s.hits.Store(1)
	s.name.Store(&name)
	if t.evicted != nil {
		t.evicted.Add(1)
	}
}

// snapshot returns the names kept, most hits first (by name on a tie);
// nil when t is nil or empty.
func (t *nameTable) snapshot() []NameHits {
	if t == nil {
		return nil
	}
	var out []NameHits
	for i := range t.slots {
		p := t.slots[i].name.Load()
		if p == nil {
			break
		}
		out = append(out, NameHits{*p, t.slots[i].hits.Load()})
	}
	slices.SortFunc(out, func(a, b NameHits) int {
		return cmp.Or(cmp.Compare(b.Hits, a.Hits), strings.Compare(a.Name, b.Name))
	})
	return out
}
