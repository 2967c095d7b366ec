package proxy

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// The bounds on what password checks may cost (see auth.go).

// authWorkers is how many bcrypt comparisons run at once: half the cores,
// at least one, so that checks never take every core from the tunnels.
func authWorkers() int { return max(1, runtime.NumCPU()/2) }

// Queue bounds of the password checks. A check that finds no place is
// refused at once (queue-full) rather than held: a held connection would
// cost a descriptor and a slot for as long as the queue ahead of it.
const (
	authQueuePerWorker = 16 // places per worker, the running checks included
	authQueuePerClient = 2  // places one client address may hold
)

// authGate runs password checks on a share of the cores, in a bounded
// queue of which one address may hold only authQueuePerClient places.
type authGate struct {
	slots chan struct{} // a token per running check
	limit int           // places, running and waiting

	mu       sync.Mutex
	queued   int
	byClient map[netip.Addr]int
}

func newAuthGate(workers int) *authGate {
	return &authGate{slots: make(chan struct{}, workers), limit: workers * authQueuePerWorker,
		byClient: map[netip.Addr]int{}}
}

// enter takes a place in the queue and waits for a worker. It returns
// the function that gives both back, or false when the queue (or the
// client's share of it) is full or ctx ended while waiting.
func (g *authGate) enter(ctx context.Context, client netip.Addr) (leave func(), ok bool) {
	key := strikeAddr(client)
	g.mu.Lock()
	if g.queued >= g.limit || g.byClient[key] >= authQueuePerClient {
		g.mu.Unlock()
		return nil, false
	}
	g.queued++
	g.byClient[key]++
	g.mu.Unlock()
	out := func() {
		g.mu.Lock()
		g.queued--
		if g.byClient[key]--; g.byClient[key] == 0 {
			delete(g.byClient, key)
		}
		g.mu.Unlock()
	}
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots; out() }, true
	case <-ctx.Done():
		out()
		return nil, false
	}
}

// Backoff of failed authentications. Each key — a client address, and a
// user name at a client address — may fail a few times freely; after
// that each failure shuts the key for twice as long as the last one, up
// to strikeMax, and a request under a shut key is refused unchecked
// (backoff). A user is never shut out at addresses that did not fail for
// it, so guessing cannot lock a user out from elsewhere; a client whose
// credentials are cached as good is never checked, so never shut out.
const (
	strikeFreePerAddr = 10 // failures of all users from one address
	strikeFreePerUser = 3  // failures of one user name from one address
	strikeBase        = 500 * time.Millisecond
	strikeMax         = 5 * time.Minute
	strikeForget      = 15 * time.Minute // failures older than this are forgotten
	strikeTableSize   = 16384
	strikeUserLen     = 64 // bytes of a user name kept in a key
)

// strikes counts recent authentication failures.
type strikes struct {
	mu sync.Mutex
	m  map[strikeKey]*strike
}

// strikeKey is an address (user empty) or a user at an address.
type strikeKey struct {
	addr netip.Addr
	user string
}

type strike struct {
	fails int
	last  time.Time // of the last failure
	until time.Time // shut until then
}

// strikeAddr is the address a client's failures count against: an IPv6
// client may use any address of its /64, so that prefix is one client.
func strikeAddr(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func userKey(a netip.Addr, user string) strikeKey {
	if len(user) > strikeUserLen {
		user = user[:strikeUserLen]
	}
	return strikeKey{a, "u:" + user} // "u:" keeps an empty name apart from the address's own key
}

// waiting reports whether client, or user at client, is shut now.
func (s *strikes) waiting(client netip.Addr, user string, now time.Time) bool {
	a := strikeAddr(client)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range [2]strikeKey{{addr: a}, userKey(a, user)} {
		if st := s.m[k]; st != nil && now.Before(st.until) {
			return true
		}
	}
	return false
}

// failed counts a failure of user at client.
func (s *strikes) failed(client netip.Addr, user string, now time.Time) {
	a := strikeAddr(client)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[strikeKey]*strike{}
	}
	s.count(strikeKey{addr: a}, strikeFreePerAddr, now)
	s.count(userKey(a, user), strikeFreePerUser, now)
}

func (s *strikes) count(k strikeKey, free int, now time.Time) {
	st := s.m[k]
	if st != nil && now.Sub(st.last) > strikeForget {
		st = nil
	}
	if st == nil {
		if len(s.m) >= strikeTableSize && !s.prune(now) {
			return // full of live keys: the queue's per-client share still bounds them
		}
		st = &strike{}
		s.m[k] = st
	}
	st.fails++
	st.last = now
	if over := st.fails - free; over > 0 {
		d := strikeMax
		if over <= 20 {
			d = min(strikeBase<<(over-1), strikeMax)
		}
		st.until = now.Add(d)
	}
}

// prune forgets keys whose failures are old and reports whether it made
// room.
func (s *strikes) prune(now time.Time) bool {
	for k, st := range s.m {
		if now.Sub(st.last) > strikeForget || now.After(st.until) && st.fails <= strikeFreePerUser {
			delete(s.m, k)
		}
	}
	return len(s.m) < strikeTableSize
}

// succeeded forgets the failures of user at client: the right password
// was given there.
func (s *strikes) succeeded(client netip.Addr, user string) {
	a := strikeAddr(client)
	s.mu.Lock()
	delete(s.m, userKey(a, user))
	s.mu.Unlock()
}
