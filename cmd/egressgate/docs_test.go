package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docFiles are the Markdown files whose examples the tests run: the front
// page and the reference under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	return append([]string{"../../README.md"}, files...)
}

var shellExampleRE = regexp.MustCompile("(?s)```text\n(\\$ egressgate [^\n]*)\n(.*?)```")

// TestDocsCommandExamples runs every "$ egressgate ..." example of the
// README and docs/ (from testdata/configs, so --config names a file
// there) and checks that the output shows what the example shows, line
// for line; a line "..." stands for any number of lines. Examples that
// need a running egressgate (report --from) are left to report_test.go.
func TestDocsCommandExamples(t *testing.T) {
	n := 0
	for _, file := range docFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range shellExampleRE.FindAllStringSubmatch(string(data), -1) {
			args := strings.Fields(strings.TrimPrefix(m[1], "$ egressgate "))
			if args[0] == "report" || args[0] == "serve" {
				continue
			}
			n++
			t.Run(filepath.Base(file)+"/"+strings.Join(args, "_"), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				t.Chdir("testdata/configs")
				run(args, &stdout, &stderr)
				got := strings.Split(strings.TrimRight(stdout.String()+stderr.String(), "\n"), "\n")
				want := strings.Split(strings.TrimRight(m[2], "\n"), "\n")
				if !matchLines(got, want) {
					t.Errorf("%s: %s shows\n%s\nbut egressgate prints\n%s", file, m[1], m[2], strings.Join(got, "\n"))
				}
			})
		}
	}
	if n < 3 {
		t.Errorf("found %d egressgate examples in the docs; the tour alone has three", n)
	}
}

// matchLines reports whether got shows want's lines in order, where a
// want line "..." matches any run of lines (possibly empty).
func matchLines(got, want []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if strings.TrimSpace(want[0]) == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(got[i:], want[1:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && strings.TrimRight(got[0], " ") == strings.TrimRight(want[0], " ") && matchLines(got[1:], want[1:])
}
