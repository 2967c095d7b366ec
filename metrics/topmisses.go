package metrics

import (
	"cmp"
	"container/heap"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy"
)

// topMisses ranks denied hosts with the space-saving algorithm (Metwally,
// Agrawal, El Abbadi, "Efficient computation of frequent and top-k
// elements in data streams", 2005): at most capacity hosts are tracked;
// a new host takes the place of the least-counted one and inherits its
// count, which is kept as the new host's error bound. Any host seen more
// than total/capacity times is guaranteed to be in the table.
type topMisses struct {
	capacity int

	mu     sync.Mutex
	total  uint64
	byHost map[string]*missCount
	heap   missHeap // least count first
}

type missCount struct {
	Host     string
	Count    uint64
	Error    uint64 // Count overestimates the host's misses by at most Error
	Client   string
	Estate   string // from the config, "" before the verdict step
	Reason   string
	Listener string
	Port     uint16
	Seen     time.Time
	index    int // in the heap
}

func newTopMisses(capacity int) *topMisses {
	return &topMisses{capacity: capacity, byHost: map[string]*missCount{}}
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
	case m != nil:
		m.Count++
	case len(t.heap) < t.capacity:
		m = &missCount{Host: host, Count: 1}
		t.byHost[host] = m
		heap.Push(&t.heap, m)
	default:
		m = t.heap[0]
		delete(t.byHost, m.Host)
		*m = missCount{Host: host, Count: m.Count + 1, Error: m.Count, index: 0}
		t.byHost[host] = m
	}
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
	heap.Fix(&t.heap, m.index)
}

// snapshot returns the tracked hosts, most misses first, and the number of
// misses seen.
func (t *topMisses) snapshot() ([]missCount, uint64) {
	t.mu.Lock()
	out := make([]missCount, len(t.heap))
	for i, m := range t.heap {
		out[i] = *m
	}
	total := t.total
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b missCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Host, b.Host))
	})
	return out, total
}

// missHeap is a min-heap of counts for container/heap.
type missHeap []*missCount

func (h missHeap) Len() int           { return len(h) }
func (h missHeap) Less(i, j int) bool { return h[i].Count < h[j].Count }
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
