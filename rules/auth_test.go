package rules

import (
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// loadAuth loads a config whose password file holds alice and bob with
// hashes of the given cost.
func loadAuth(t testing.TB, cost int) *Users {
	t.Helper()
	dir := t.TempDir()
	var file string
	for _, name := range []string{"alice", "bob"} {
		h, err := HashPassword([]byte(name+"-secret"), cost)
		if err != nil {
			t.Fatal(err)
		}
		file += fmt.Sprintf("%s:%s:default\n", name, h)
	}
	writeFile(t, filepath.Join(dir, "users"), file)
	p := filepath.Join(dir, "egressgate.yaml")
	writeFile(t, p, "auth:\n  password_file: users\n  require_tls: true\n")
	rs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Users
}

// TestAuthDummyCost: an unknown user was compared with a cost-10 hash
// whatever the file's cost, so with cost-5 hashes (htpasswd's default) an
// unknown user took 62 ms and a wrong password 2 ms, and with cost 12 the
// other way round. The dummy hash now has the file's cost.
func TestAuthDummyCost(t *testing.T) {
	for _, cost := range []int{5, 7} {
		u := loadAuth(t, cost)
		if got, _ := bcrypt.Cost(u.dummy); got != cost {
			t.Errorf("cost-%d file: dummy hash cost %d, want %d", cost, got, cost)
		}
		if !u.RequireTLS {
			t.Error("auth.require_tls: true not loaded")
		}
		for _, tc := range []struct {
			name, pass string
			want       AuthResult
		}{
			{"alice", "alice-secret", AuthOK},
			{"alice", "bob-secret", AuthWrongPassword},
			{"carol", "alice-secret", AuthUnknownUser},
		} {
			if es, got := u.Authenticate(tc.name, tc.pass); got != tc.want || (es != nil) != (got == AuthOK) {
				t.Errorf("Authenticate(%q, %q) = %v, %v; want %v", tc.name, tc.pass, es, got, tc.want)
			}
		}
	}
}

func TestUsualCost(t *testing.T) {
	for _, tc := range []struct {
		costs map[int]int
		want  int
	}{
		{nil, bcrypt.DefaultCost},
		{map[int]int{5: 3}, 5},
		{map[int]int{5: 3, 12: 1}, 5},
		{map[int]int{5: 2, 12: 2}, 12},
	} {
		if got := usualCost(tc.costs); got != tc.want {
			t.Errorf("usualCost(%v) = %d, want %d", tc.costs, got, tc.want)
		}
	}
}

// BenchmarkAuthenticate times an unknown user against a wrong password
// at two costs: the two should take the same time.
func BenchmarkAuthenticate(b *testing.B) {
	for _, cost := range []int{5, 12} {
		u := loadAuth(b, cost)
		for _, name := range []string{"alice", "carol"} {
			b.Run(fmt.Sprintf("cost=%d/%s", cost, name), func(b *testing.B) {
				for b.Loop() {
					u.Authenticate(name, "wrong")
				}
			})
		}
	}
}
