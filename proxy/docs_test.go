package proxy

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

// TestReasonsInDocs checks that docs/proxy.md's table of answers lists
// exactly the reasons of the vocabulary, deny and answer reasons alike:
// one row per reason, none missing, none the code does not have.
func TestReasonsInDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile("(?s)\n## Answers\n.*?\n\\| Status \\| `X-Egressgate-Reason` \\| When \\|\n\\|[-|]+\\|\n((?:\\|[^\n]*\n)+)").FindSubmatch(data)
	if table == nil {
		t.Fatal("docs/proxy.md has no table of answers under ## Answers")
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\|[^|]*\\| `([^`]+)` \\|").FindAllSubmatch(table[1], -1) {
		documented = append(documented, string(m[1]))
	}
	var vocabulary []string
	for _, r := range append(rules.Reasons(), rules.AnswerReasons()...) {
		vocabulary = append(vocabulary, r.String())
	}
	for _, name := range vocabulary {
		if !slices.Contains(documented, name) {
			t.Errorf("reason %q is in no row of docs/proxy.md's table of answers", name)
		}
	}
	for i, name := range documented {
		if !slices.Contains(vocabulary, name) {
			t.Errorf("docs/proxy.md's table of answers lists %q, which is no rules.Reason", name)
		}
		if slices.Contains(documented[:i], name) {
			t.Errorf("docs/proxy.md's table of answers lists %q twice", name)
		}
	}
}
