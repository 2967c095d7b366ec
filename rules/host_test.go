package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct {
		in, want string
		bad      string // substring of the error, when invalid
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "a_b.example.com", want: "a_b.example.com"},
		{in: "bücher.example", want: "xn--bcher-kva.example"},
		{in: "BÜCHER.example.", want: "xn--bcher-kva.example"},
		{in: "127.0.0.1", want: "127.0.0.1"},
		{in: "[::1]", want: "::1"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{in: "2001:DB8::1", want: "2001:db8::1"},
		{in: "", bad: "empty name"},
		{in: ".", bad: "empty name"},
		{in: "example..com", bad: "empty label"},
		{in: ".example.com", bad: "empty label"},
		{in: "example.com..", bad: "empty label"},
		{in: strings.Repeat("a", 64) + ".com", bad: "longer than 63"},
		{in: strings.Repeat("a.", 127) + "com", bad: "longer than 253"},
		{in: "-a.example.com", bad: "starts or ends with '-'"},
		{in: "a-.example.com", bad: "starts or ends with '-'"},
		{in: "ex ample.com", bad: "not allowed"},
		{in: "ex*ample.com", bad: "not allowed"},
		{in: "evil.com\x00.example.com", bad: "not allowed"},
		{in: "a/b", bad: "not allowed"},
		{in: "[example.com]", bad: "bad IPv6 literal"},
		{in: "[fe80::1%eth0]", bad: "bad IPv6 literal"},
		{in: "\xff\xfe", bad: "not UTF-8"},
		// A name ending in a number is an IPv4 address to a browser or
		// inet_aton ("010.0.0.1" is 8.0.0.1, "0x7f.1" 127.0.0.1), and
		// never a DNS name: no top-level domain is numeric.
		{in: "00.0.0.00", bad: "last label is a number"},
		{in: "010.0.0.1", bad: "last label is a number"},
		{in: "1.2.3.4.5", bad: "last label is a number"},
		{in: "123", bad: "last label is a number"},
		{in: "0x7f.1", bad: "last label is a number"},
		{in: "a.0x1F", bad: "last label is a number"},
		{in: "a.0X", bad: "last label is a number"},
		{in: "１.２.３.４", bad: "last label is a number"},
		{in: "a.1b", want: "a.1b"},
		{in: "a.0xg", want: "a.0xg"},
		{in: "1.2.3.example", want: "1.2.3.example"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := CanonicalHost(tt.in)
			if tt.bad != "" {
				if err == nil || !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("CanonicalHost(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.bad)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCanonicalHostNoAlloc(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CanonicalHost("central.sophos.com"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("CanonicalHost on a canonical name: %v allocs, want 0", allocs)
	}
}

// TestPatternsEndingInNumbers: a catalog pattern whose last label is a
// number could only match hosts that CanonicalHost refuses (and that a
// PAC engine reads as IPv4): the parser refuses it with a reason.
func TestPatternsEndingInNumbers(t *testing.T) {
	for _, p := range []string{"00.0.0.00", "010.1.1.1", "*.0.1", "*.example.123", "tf-*.s3.0x1f", "a*.b.1"} {
		if c, kind, _, err := classifyPattern(p); err == nil || !strings.Contains(err.Error(), "last label is a number") {
			t.Errorf("classifyPattern(%q) = %q, %v, %v; want the numeric last label refused", p, c, kind, err)
		}
	}
	for _, p := range []string{"10.0.0.1", "*.1.example.com", "a.1b"} {
		if _, _, _, err := classifyPattern(p); err != nil {
			t.Errorf("classifyPattern(%q): %v", p, err)
		}
	}
}
