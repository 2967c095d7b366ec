package rules

import (
	"regexp"
	"strings"
	"testing"
)

func TestSquidRegex(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"*.example.com", `^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.example\.com$`},
		{"tf-*-bucket.s3.example.net", `^tf-[a-z0-9_-]*-bucket\.s3\.example\.net$`},
		{"a*.b*.example.org", `^a[a-z0-9_-]*\.b[a-z0-9_-]*\.example\.org$`},
	}
	for _, tt := range tests {
		p, kind, _, err := classifyPattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := SquidRegex(&Entry{Pattern: p, Kind: kind}); got != tt.want {
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
		p, kind, _, err := classifyPattern(pattern)
		if err != nil || (kind != KindWildcard && kind != KindGlob) {
			return
		}
		name, err := CanonicalHost(host)
		if err != nil || strings.Contains(host, "\x00") {
			return
		}
		e := &Entry{Pattern: p, Kind: kind, Ports: []uint16{443}}
		m, err := Compile([]*Entry{e})
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
