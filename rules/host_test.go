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
