package upkeep

import (
	"strings"
	"testing"
)

func TestParseLayoutErrors(t *testing.T) {
	checkErrors(t, "ParseLayout", ParseLayout, "l.yaml", []errorCase{
		{"unknown key", "lead_in: []\n", "field lead_in not found"},
		{"unknown group", "lead_ins: [{text: X, group: nope}]\n", `group "nope" is not in groups`},
		{"bad os", "lead_ins: [{text: X, os: beos}]\n", `os "beos" is not`},
		{"empty", "", "layout is empty"},
	})
}

// FuzzParseLayout: any layout file parses or fails with an error naming
// the file, never panics.
func FuzzParseLayout(f *testing.F) {
	f.Add(string(DefaultLayoutYAML()))
	f.Add("lead_ins: [{text: X, group: g}]\ngroups: [{id: g}]\n")
	f.Add("lead_ins: [{text: X, os: beos}]\n")
	f.Fuzz(func(t *testing.T, data string) {
		l, err := ParseLayout("l.yaml", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "l.yaml") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		ImportPage("page.txt", []byte("Sophos Central Admin domains\n  • central.sophos.com\n"), Options{Layout: l})
	})
}
