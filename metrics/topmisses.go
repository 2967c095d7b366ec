package metrics

import (
	"cmp"
	"container/heap"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// topMisses keeps the denied hosts behind /misses so that a flood of
// made-up names cannot push out the misses that matter, and every count
// it shows is true (misses seen while the host was kept; no count is
// inherited from another host). Three tables, each with its own bound:
//
//   - once: hosts denied once. A flood of made-up names (one miss each)
//     churns only this table, oldest out first.
//   - repeated: hosts denied again while kept in once, or later. When
//     full, the least-denied host (oldest on a tie) leaves.
//   - account: hosts that look like the account's own Sophos Central
//     hosts (denied not-in-catalog): the misses an operator must act
//     on. Kept apart, up to maxAccountMisses, whatever else is denied.
type topMisses struct {
	capacity int // of once and of repeated each

	mu       sync.Mutex
	total    uint64
	byHost   map[string]*missCount
	repeated missHeap // least count first
	once     []string // ring of hosts, oldest at onceNext once full
	onceNext int      // next ring slot to write
	accounts int      // hosts in tier account
}

// maxAccountMisses bounds the account-host table.
const maxAccountMisses = 256

// Tiers of a kept host.
const (
	tierOnce = iota
	tierRepeated
	tierAccount
)

type missCount struct {
	Host     string
	Count    uint64
	Error    uint64 // always 0: counts are exact
	Client   string
	Estate   string // from the config, "" before the verdict step
	Reason   string
	Listener string
	Port     uint16
	Seen     time.Time
	tier     int
	index    int // in the repeated heap
}

func newTopMisses(capacity int) *topMisses {
	return &topMisses{capacity: capacity, byHost: map[string]*missCount{}, once: make([]string, capacity)}
}

func (t *topMisses) record(d *proxy.Decision) {
	host := strings.ToLower(escapeHost(d.Host))
	seen := d.Time
	if seen.IsZero() {
		seen = time.Now()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	m := t.byHost[host]
	switch {
	case m == nil:
		m = &missCount{Host: host}
		if t.accounts < maxAccountMisses && d.Reason == rules.ReasonNotInCatalog && looksLikeAccountHost(host) {
			m.tier = tierAccount
			t.accounts++
		} else {
			t.addOnce(m)
		}
		t.byHost[host] = m
	case m.tier == tierOnce:
		t.promote(m)
	}
	m.Count++
	// Only the decision's enums and the client address are kept, never
	// another client string.
	m.Reason = d.Reason.String()
	m.Listener = string(d.Listener)
	m.Port = d.Port
	m.Seen = seen
	m.Client, m.Estate = "", ""
	if d.Estate != nil {
		m.Estate = d.Estate.Name
	}
	if d.Client.IsValid() {
		m.Client = d.Client.String()
	}
	if m.tier == tierRepeated {
		heap.Fix(&t.repeated, m.index)
	}
}

// looksLikeAccountHost reports whether a host as /misses keeps it has the
// shape of an account's own host.
func looksLikeAccountHost(host string) bool {
	_, ok := upkeep.LooksLikeAccountHost(host)
	return ok
}

// addOnce puts a new host in the once ring, dropping the oldest one-hit
// host when the ring is full.
func (t *topMisses) addOnce(m *missCount) {
	if old := t.once[t.onceNext]; old != "" {
		if o := t.byHost[old]; o != nil && o.tier == tierOnce {
			delete(t.byHost, old)
		}
	}
	t.once[t.onceNext] = m.Host
	t.onceNext = (t.onceNext + 1) % len(t.once)
	m.tier = tierOnce
}

// promote moves a host denied again from once to repeated, making room
// by dropping the least-denied repeated host. Its ring slot is left to be
// overwritten.
func (t *topMisses) promote(m *missCount) {
	if len(t.repeated) >= t.capacity {
		least := heap.Pop(&t.repeated).(*missCount)
		delete(t.byHost, least.Host)
	}
	m.tier = tierRepeated
	heap.Push(&t.repeated, m)
}

// snapshot returns the kept hosts, most misses first, and the number of
// misses seen.
func (t *topMisses) snapshot() ([]missCount, uint64) {
	t.mu.Lock()
	out := make([]missCount, 0, len(t.byHost))
	for _, m := range t.byHost {
		out = append(out, *m)
	}
	total := t.total
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b missCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Host, b.Host))
	})
	return out, total
}

// missHeap is a min-heap of counts for container/heap, the older miss
// first on a tie.
type missHeap []*missCount

func (h missHeap) Len() int { return len(h) }
func (h missHeap) Less(i, j int) bool {
	return h[i].Count < h[j].Count || h[i].Count == h[j].Count && h[i].Seen.Before(h[j].Seen)
}
func (h missHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *missHeap) Push(x any) {
	m := x.(*missCount)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *missHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	*h = old[:len(old)-1]
	return m
}
