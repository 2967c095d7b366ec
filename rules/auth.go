package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// AuthConfig turns on proxy authentication (Basic, RFC 7617 over
// Proxy-Authorization): a user who authenticates is served as the estate
// the password file names, whatever the client address.
type AuthConfig struct {
	// PasswordFile holds one user a line, "user:bcrypt-hash:estate",
	// relative to the config's directory; '#' starts a comment. Make the
	// hashes with htpasswd -nbB user password (then append ":estate").
	PasswordFile string `yaml:"password_file"`
	// Required refuses clients that send no credentials (407). When
	// false, a client without credentials is judged by its address; wrong
	// credentials are always refused.
	Required bool `yaml:"required"`
	// Realm is the realm of the Proxy-Authenticate challenge; empty means
	// "egressgate".
	Realm string `yaml:"realm"`
}

// Users are the proxy-authentication users of a ruleset.
type Users struct {
	Required bool
	Realm    string
	users    map[string]user
}

type user struct {
	hash   []byte
	estate *Estate
}

// maxUsers bounds the password file.
const maxUsers = 100000

// Authenticate checks a user's password and returns the user's estate,
// or nil when the user is unknown or the password is wrong. It costs a
// bcrypt comparison (tens of milliseconds by design); callers cache
// successes, never the password.
func (u *Users) Authenticate(name, password string) *Estate {
	us, ok := u.users[name]
	if !ok {
		// Compare anyway, so that an unknown user takes as long as a
		// wrong password.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return nil
	}
	if bcrypt.CompareHashAndPassword(us.hash, []byte(password)) != nil {
		return nil
	}
	return us.estate
}

// dummyHash is a bcrypt hash of nothing anyone types, at the default cost.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("\x00egressgate-no-such-user\x00"), bcrypt.DefaultCost)

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
	u := &Users{Required: a.Required, Realm: a.Realm, users: map[string]user{}}
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
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, at.Errorf("user %q: the password is not a bcrypt hash (make one with htpasswd -nbB)", name)
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
	}
	if err := sc.Err(); err != nil {
		return nil, Pos{File: p}.Errorf("reading: %v", err)
	}
	return u, nil
}

// String describes the users without any secret.
func (u *Users) String() string { return fmt.Sprintf("%d users", len(u.users)) }
