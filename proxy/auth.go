package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/egressgate/egressgate/rules"
)

// Proxy authentication (Basic, RFC 7617 sent as Proxy-Authorization, RFC
// 9110 section 11.7). A user who authenticates is judged as the estate
// the password file names; the header is removed before anything is
// forwarded, and neither the user nor the password is ever logged,
// recorded or counted.

// estateKey carries an authenticated estate from ServeHTTP to the
// decision, in the request's context.
type estateKey struct{}

// authEstate returns the estate the request authenticated as, or nil.
func authEstate(r *http.Request) *rules.Estate {
	es, _ := r.Context().Value(estateKey{}).(*rules.Estate)
	return es
}

// Cache of successful authentications, so that bcrypt (tens of
// milliseconds by design) runs once per user and password, not per
// request. It holds digests only, never a password.
const (
	authCacheTTL  = 5 * time.Minute
	authCacheSize = 10000
)

type authCache struct {
	mu sync.Mutex
	m  map[authKey]authHit
	// slots bounds the bcrypt comparisons running at once.
	slots chan struct{}
}

type authKey [sha256.Size]byte

type authHit struct {
	users   *rules.Users // the ruleset's users it was checked against
	estate  *rules.Estate
	expires time.Time
}

func (c *authCache) get(k authKey, users *rules.Users, now time.Time) *rules.Estate {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[k]
	if !ok || h.users != users || now.After(h.expires) {
		return nil
	}
	return h.estate
}

func (c *authCache) put(k authKey, h authHit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= authCacheSize {
		c.m = make(map[authKey]authHit) // bounded: start over rather than grow
	}
	c.m[k] = h
}

// authenticate checks the request's proxy credentials when the rules ask
// for authentication. It returns the request to go on with (carrying the
// authenticated estate), or nil when it answered 407 or the client went
// away while waiting for a bcrypt slot.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, client netip.AddrPort) *http.Request {
	if s.estates == nil {
		return r
	}
	users := s.estates.Current().Users
	if users == nil {
		return r
	}
	if r.Method != http.MethodConnect && !r.URL.IsAbs() {
		// Not a proxy request: the PAC file (fetched without proxy
		// credentials), or a 400 to come.
		return r
	}
	hdr := r.Header.Get("Proxy-Authorization")
	r.Header.Del("Proxy-Authorization") // never forwarded
	if hdr == "" && !users.Required {
		return r
	}
	name, password, ok := parseBasic(hdr)
	var es *rules.Estate
	if ok {
		// ':' cannot be in a name (Basic splits at the first), so this
		// joins each name and password to different bytes; a password
		// may hold anything, NUL included.
		k := authKey(sha256.Sum256([]byte(name + ":" + password)))
		now := time.Now()
		if es = s.auth.get(k, users, now); es == nil {
			// bcrypt is slow on purpose; wrong passwords are never cached,
			// so a client could keep every core busy with them. At most
			// one comparison per core runs at a time; the rest wait, as
			// long as their request lives.
			select {
			case s.auth.slots <- struct{}{}:
				es = users.Authenticate(name, password)
				<-s.auth.slots
			case <-r.Context().Done():
				return nil
			}
			if es != nil {
				s.auth.put(k, authHit{users, es, now.Add(authCacheTTL)})
			}
		}
	}
	if es == nil {
		s.rec.Decided(earlyDeny(r, client, rules.ReasonProxyAuth))
		w.Header().Set("Proxy-Authenticate", `Basic realm="`+users.Realm+`", charset="UTF-8"`)
		answer{http.StatusProxyAuthRequired, rules.ReasonProxyAuth, "egressgate: proxy authentication required"}.write(w)
		return nil
	}
	return r.WithContext(context.WithValue(r.Context(), estateKey{}, es))
}

// parseBasic splits a Basic credential.
func parseBasic(hdr string) (name, password string, ok bool) {
	scheme, cred, found := strings.Cut(hdr, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	name, password, ok = strings.Cut(string(raw), ":")
	return name, password, ok && name != ""
}
