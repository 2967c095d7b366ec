package proxytest

import (
	"strings"
	"testing"
)

func TestMatchLines(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		match     bool
	}{
		{"a\nb", "a\nb", true},
		{"a  \nb", "a\nb  ", true}, // trailing spaces do not count
		{"a\nb", "a", false},
		{"a", "a\nb", false},
		{"a\nx\ny\nb", "a\n...\nb", true},
		{"a\nb", "a\n...\nb", true}, // "..." may stand for no line
		{"a\nx", "a\n...\nb", false},
		{"x\na", "...", true},
	} {
		if got := MatchLines(strings.Split(tc.got, "\n"), strings.Split(tc.want, "\n")); got != tc.match {
			t.Errorf("MatchLines(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.match)
		}
	}
}
