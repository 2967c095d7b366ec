package export

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

func TestSquidRegex(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"*.example.com", `^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.example\.com$`},
		{"tf-*-bucket.s3.example.net", `^tf-[a-z0-9_-]*-bucket\.s3\.example\.net$`},
		{"a*.b*.example.org", `^a[a-z0-9_-]*\.b[a-z0-9_-]*\.example\.org$`},
	}
	for _, tt := range tests {
		e, err := parseEntry(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := SquidRegex(e); got != tt.want {
			t.Errorf("SquidRegex(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// FuzzSquidRegex: for any wildcard or glob pattern and any valid name, the
// regex the Squid export writes matches exactly when egressgate's matcher
// does. Go's POSIX regexps stand in for Squid's.
func FuzzSquidRegex(f *testing.F) {
	f.Add("*.example.com", "a.example.com")
	f.Add("*.example.com", "example.com")
	f.Add("tf-*-bucket.s3.example.net", "tf-x.y-bucket.s3.example.net")
	f.Add("tf-*-bucket.s3.example.net", "tf--bucket.s3.example.net")
	f.Add("a*b.example.org", "ab.example.org")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		pe, err := parseEntry(pattern)
		if err != nil || (pe.Kind != rules.KindWildcard && pe.Kind != rules.KindGlob) {
			return
		}
		p, kind := pe.Pattern, pe.Kind
		name, err := rules.CanonicalHost(host)
		if err != nil || strings.Contains(host, "\x00") {
			return
		}
		e := &rules.Entry{Pattern: p, Kind: kind, Ports: []uint16{443}}
		m, err := rules.Compile([]*rules.Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		re, err := regexp.CompilePOSIX(SquidRegex(e))
		if err != nil {
			t.Fatalf("SquidRegex(%q) = %q does not compile: %v", p, SquidRegex(e), err)
		}
		if want, got := m.Lookup(name, 443).Allow, re.MatchString(name); got != want {
			t.Fatalf("pattern %q host %q: squid regex %q matches %v, egressgate %v", p, name, SquidRegex(e), got, want)
		}
	})
}

// parseEntry reads one pattern as a catalog entry.
func parseEntry(pattern string) (*rules.Entry, error) {
	if strings.ContainsAny(pattern, " \t\n\r#:") {
		return nil, fmt.Errorf("pattern %q: not one list line", pattern)
	}
	c, err := rules.ParseList("test.txt", "test", []byte(pattern))
	if err != nil {
		return nil, err
	}
	if len(c.Entries) != 1 {
		return nil, fmt.Errorf("pattern %q: %d entries", pattern, len(c.Entries))
	}
	return c.Entries[0], nil
}

// testMatcher compiles a plain-list catalog with every group on.
func testMatcher(t testing.TB, file string) *rules.Matcher {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.ParseList(file, "test", data)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	return rs.Matcher
}
