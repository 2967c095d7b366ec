package proxytest

import "strings"

// MatchLines reports whether got shows want's lines in order, where a
// want line "..." matches any run of lines (possibly empty) and trailing
// spaces do not count: how the documentation's examples are compared
// with what egressgate printed.
func MatchLines(got, want []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if strings.TrimSpace(want[0]) == "..." {
		for i := 0; i <= len(got); i++ {
			if MatchLines(got[i:], want[1:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && strings.TrimRight(got[0], " ") == strings.TrimRight(want[0], " ") && MatchLines(got[1:], want[1:])
}
