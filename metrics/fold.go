package metrics

import (
	"slices"
	"sync"
	"time"
)

// foldTable holds one fold interval of a flood-folding log (the miss log,
// the auth-failure log): a count per key, up to a bound, and the count of
// events the full table could not take. The first event of an interval
// starts a timer that ends it.
type foldTable[K comparable, V any] struct {
	interval time.Duration
	limit    int    // keys an interval keeps apart
	onTimer  func() // ends the interval when the timer fires

	mu       sync.Mutex
	table    map[K]V
	overflow int
	timer    *time.Timer // nil when no event is pending
}

func newFoldTable[K comparable, V any](interval time.Duration, limit int, onTimer func()) *foldTable[K, V] {
	return &foldTable[K, V]{interval: interval, limit: limit, onTimer: onTimer, table: map[K]V{}}
}

// note counts one event of key: step gets the key's entry (the zero V for
// a new key, seen false) and returns it updated. note reports false when
// the table was full, the event counted as overflow and step not called.
func (f *foldTable[K, V]) note(key K, step func(v V, seen bool) V) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, seen := f.table[key]
	ok := seen || len(f.table) < f.limit
	if ok {
		f.table[key] = step(v, seen)
	} else {
		f.overflow++
	}
	if f.timer == nil {
		f.timer = time.AfterFunc(f.interval, f.onTimer)
	}
	return ok
}

// foldEntry is one key's count at the end of an interval.
type foldEntry[K comparable, V any] struct {
	key K
	v   V
}

// drain ends the interval: it empties the table and stops the timer, and
// returns the entries keep accepts, sorted by key with order, and the
// overflow count.
func (f *foldTable[K, V]) drain(keep func(V) bool, order func(a, b K) int) ([]foldEntry[K, V], int) {
	f.mu.Lock()
	var kept []foldEntry[K, V]
	for k, v := range f.table {
		if keep(v) {
			kept = append(kept, foldEntry[K, V]{k, v})
		}
	}
	overflow := f.overflow
	clear(f.table)
	f.overflow = 0
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	f.mu.Unlock()
	slices.SortFunc(kept, func(a, b foldEntry[K, V]) int { return order(a.key, b.key) })
	return kept, overflow
}
