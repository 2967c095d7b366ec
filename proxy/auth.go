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
// forwarded, and the password is never logged, recorded or counted.
//
// A password check costs a bcrypt comparison on purpose, so a client
// sending wrong credentials must not be able to spend the proxy's CPU or
// hold everyone else's logins: checks run on a share of the cores, wait
// in a bounded queue of which one address may hold only a few places, and
// failures back off per address and per user at that address
// (authlimit.go). What is refused without a check is answered 407 at
// once.

// AuthResult is the outcome of a refused authentication. The values are
// fixed: metrics use them as label values.
type AuthResult string

const (
	AuthNoCredentials AuthResult = "no-credentials" // required, none sent
	AuthMalformed     AuthResult = "malformed"      // not a Basic user:password
	AuthUnknownUser   AuthResult = "unknown-user"
	AuthWrongPassword AuthResult = "wrong-password"
	AuthQueueFull     AuthResult = "queue-full"   // refused unchecked: no place to wait for a check
	AuthBackoff       AuthResult = "backoff"      // refused unchecked: too many recent failures
	AuthTLSRequired   AuthResult = "tls-required" // credentials on a listener without TLS (auth.require_tls)
)

// AuthResults lists every AuthResult, for metrics that export all of them.
func AuthResults() []AuthResult {
	return []AuthResult{AuthNoCredentials, AuthMalformed, AuthUnknownUser, AuthWrongPassword,
		AuthQueueFull, AuthBackoff, AuthTLSRequired}
}

// AuthRecorder is an optional interface of a Recorder: it is told of
// every refused authentication, with the user name the client sent
// (client-supplied: escape and cap it before logging it; empty when none)
// and never the password.
type AuthRecorder interface {
	AuthFailed(client netip.Addr, user string, result AuthResult)
}

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
// authenticated estate), or nil when it answered (407, or 403
// tls-required) or the client went away while its check waited.
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
	overTLS := r.TLS != nil || r.Context().Value(overTLSKey{}) != nil
	es, name, result := s.checkCredentials(r.Context(), users, hdr, overTLS, client.Addr())
	if es != nil {
		return r.WithContext(context.WithValue(r.Context(), estateKey{}, es))
	}
	if result == "" {
		return nil // the client left
	}
	s.authFailed(client.Addr(), name, result)
	if result == AuthTLSRequired {
		s.rec.Decided(earlyDeny(r, client, rules.ReasonTLSRequired))
		w.Header().Set("Connection", "close")
		tlsRequired().write(w)
		return nil
	}
	s.rec.Decided(earlyDeny(r, client, rules.ReasonProxyAuth))
	w.Header().Set("Proxy-Authenticate", `Basic realm="`+users.Realm+`", charset="UTF-8"`)
	answer{http.StatusProxyAuthRequired, rules.ReasonProxyAuth, "egressgate: proxy authentication required"}.write(w)
	return nil
}

// checkCredentials judges a Proxy-Authorization header: the estate when
// it authenticates, else the user name it carried and why it was
// refused; an empty result with no estate means ctx ended first.
func (s *Server) checkCredentials(ctx context.Context, users *rules.Users, hdr string, overTLS bool, client netip.Addr) (*rules.Estate, string, AuthResult) {
	if hdr == "" {
		return nil, "", AuthNoCredentials
	}
	if users.RequireTLS && !overTLS {
		return nil, "", AuthTLSRequired // before the header is even decoded
	}
	name, password, ok := parseBasic(hdr)
	if !ok {
		return nil, "", AuthMalformed
	}
	// ':' cannot be in a name (Basic splits at the first), so this joins
	// each name and password to different bytes; a password may hold
	// anything, NUL included.
	k := authKey(sha256.Sum256([]byte(name + ":" + password)))
	now := time.Now()
	if es := s.auth.get(k, users, now); es != nil {
		return es, name, "" // known good: no check, no backoff
	}
	if s.strikes.waiting(client, name, now) {
		return nil, name, AuthBackoff
	}
	leave, ok := s.gate.enter(ctx, client)
	if !ok {
		if ctx.Err() != nil {
			return nil, name, ""
		}
		return nil, name, AuthQueueFull
	}
	es, res := users.Authenticate(name, password)
	leave()
	switch res {
	case rules.AuthOK:
		s.auth.put(k, authHit{users, es, now.Add(authCacheTTL)})
		s.strikes.succeeded(client, name)
		return es, name, ""
	case rules.AuthUnknownUser:
		s.strikes.failed(client, name, time.Now())
		return nil, name, AuthUnknownUser
	}
	s.strikes.failed(client, name, time.Now())
	return nil, name, AuthWrongPassword
}

// authFailed tells the Recorder of a refused authentication, when it
// listens.
func (s *Server) authFailed(client netip.Addr, user string, result AuthResult) {
	if ar, ok := s.rec.(AuthRecorder); ok {
		ar.AuthFailed(client, user, result)
	}
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
