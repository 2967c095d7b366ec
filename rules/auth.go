package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// AuthConfig turns on proxy authentication (Basic, RFC 7617 over
// Proxy-Authorization): a user who authenticates is served as the estate
// the password file names, whatever the client address.
type AuthConfig struct {
	// PasswordFile holds one user a line, "user:bcrypt-hash:estate",
	// relative to the config's directory; '#' starts a comment. Make the
	// lines with "egressgate passwd USER" (then append ":estate").
	PasswordFile string `yaml:"password_file"`
	// Required refuses clients that send no credentials (407). When
	// false, a client without credentials is judged by its address; wrong
	// credentials are always refused.
	Required bool `yaml:"required"`
	// Realm is the realm of the Proxy-Authenticate challenge; empty means
	// "egressgate".
	Realm string `yaml:"realm"`
	// RequireTLS refuses Basic credentials sent to a listener without
	// TLS (the plain proxy port), before any password is checked, so that
	// a password never crosses the network in clear: clients use the
	// HTTPS proxy listener (serve --listen-tls).
	RequireTLS bool `yaml:"require_tls"`
}

// Users are the proxy-authentication users of a ruleset.
type Users struct {
	Required bool
	Realm    string
	// RequireTLS refuses Basic credentials that arrive on a listener
	// without TLS, before any password is checked (AuthConfig.RequireTLS).
	RequireTLS bool
	users      map[string]user
	// dummy is compared against when the user is unknown, at the cost
	// most of the file's hashes have, so that an unknown user takes as
	// long as a known one with a wrong password.
	dummy []byte
}

type user struct {
	hash   []byte
	estate *Estate
}

// maxUsers bounds the password file.
const maxUsers = 100000

// AuthResult is the outcome of a password check.
type AuthResult uint8

const (
	AuthOK            AuthResult = iota
	AuthUnknownUser              // no such user
	AuthWrongPassword            // the user exists, the password is wrong
)

// Authenticate checks a user's password and returns the user's estate
// (nil unless AuthOK) and the outcome. An unknown user costs a comparison
// with a hash of the file's usual cost, so the time taken does not tell
// which names exist. It costs a bcrypt comparison (tens of milliseconds
// by design); callers cache successes, never the password.
func (u *Users) Authenticate(name, password string) (*Estate, AuthResult) {
	us, ok := u.users[name]
	if !ok {
		bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return nil, AuthUnknownUser
	}
	if bcrypt.CompareHashAndPassword(us.hash, []byte(password)) != nil {
		return nil, AuthWrongPassword
	}
	return us.estate, AuthOK
}

// dummyPassword is hashed for Users.dummy: nothing anyone types.
const dummyPassword = "\x00egressgate-no-such-user\x00"

// dummyHashes are the dummy hashes made so far, one per cost: a reload
// of the same file must not pay for a new one.
var dummyHashes sync.Map // int → []byte

// dummyHashAt returns a bcrypt hash of dummyPassword at cost.
func dummyHashAt(cost int) []byte {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(dummyPassword), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword([]byte(dummyPassword), bcrypt.DefaultCost)
	}
	dummyHashes.Store(cost, h)
	return h
}

// usualCost is the cost most of the hashes have (the higher on a tie),
// bcrypt.DefaultCost for no hashes.
func usualCost(costs map[int]int) int {
	best, n := bcrypt.DefaultCost, 0
	for c, k := range costs {
		if k > n || k == n && c > best {
			best, n = c, k
		}
	}
	return best
}

// HashPassword returns the bcrypt hash of password at cost, for a line
// of the password file.
func HashPassword(password []byte, cost int) ([]byte, error) {
	if len(password) == 0 {
		return nil, fmt.Errorf("empty password")
	}
	h, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil, fmt.Errorf("hashing password: %w", err)
	}
	return h, nil
}

// EstateOf returns the estate of a user, or nil when there is no such
// user. It checks no password: it is for explain, not for admission.
func (u *Users) EstateOf(name string) *Estate {
	if us, ok := u.users[name]; ok {
		return us.estate
	}
	return nil
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users) }

// loadUsers reads the password file of cfg.Auth. Errors name the file and
// line but never quote a hash.
func loadUsers(cfg *Config, rs *Ruleset, read func(string) ([]byte, error)) (*Users, error) {
	a := cfg.Auth
	pos := Pos{cfg.Path, cfg.lines["auth"]}
	if a.PasswordFile == "" {
		return nil, pos.Errorf("auth.password_file: empty; name the file of users (user:bcrypt-hash:estate lines)")
	}
	p := a.PasswordFile
	if !filepath.IsAbs(p) && cfg.Path != "" {
		p = filepath.Join(filepath.Dir(cfg.Path), p)
	}
	data, err := read(p)
	if err != nil {
		return nil, Pos{cfg.Path, cfg.lines["auth.password_file"]}.Errorf("auth.password_file: %v", err)
	}
	u := &Users{Required: a.Required, Realm: a.Realm, RequireTLS: a.RequireTLS, users: map[string]user{}}
	costs := map[int]int{}
	if u.Realm == "" {
		u.Realm = "egressgate"
	}
	if strings.ContainsAny(u.Realm, "\"\\\r\n") {
		return nil, Pos{cfg.Path, cfg.lines["auth.realm"]}.Errorf("auth.realm: %q: no quotes, backslashes or line breaks", u.Realm)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		at := Pos{p, line}
		name, rest, ok := strings.Cut(text, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok || name == "" || i < 0 {
			return nil, at.Errorf("want user:bcrypt-hash:estate")
		}
		hash, estate := rest[:i], rest[i+1:]
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, at.Errorf("user %q: the password is not a bcrypt hash (make one with egressgate passwd %s)", name, name)
		}
		es := rs.Estate(estate)
		if es == nil {
			return nil, at.Errorf("user %q: estate %q is not in the config", name, estate)
		}
		if _, dup := u.users[name]; dup {
			return nil, at.Errorf("user %q is listed twice", name)
		}
		if len(u.users) == maxUsers {
			return nil, at.Errorf("more than %d users", maxUsers)
		}
		u.users[name] = user{[]byte(hash), es}
		costs[cost]++
	}
	if err := sc.Err(); err != nil {
		return nil, Pos{File: p}.Errorf("reading: %v", err)
	}
	u.dummy = dummyHashAt(usualCost(costs))
	return u, nil
}

// String describes the users without any secret.
func (u *Users) String() string { return fmt.Sprintf("%d users", len(u.users)) }
