package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/proxy/proxytest"
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

var (
	shellExampleRE = regexp.MustCompile("(?s)```text\n(\\$ egressgate [^\n]*)\n(.*?)```")
	// fileExampleRE is an example that is a whole file: "# NAME.yaml" or
	// "# NAME.txt" on its first line.
	fileExampleRE = regexp.MustCompile("(?s)```(?:yaml|text)\n# ([A-Za-z0-9._-]+\\.(?:yaml|txt))\n(.*?)```")
)

// TestDocsCommandExamples runs every "$ egressgate ..." example of the
// README and docs/ and checks that the output shows what the example
// shows, line for line; a line "..." stands for any number of lines. They
// run in a directory holding testdata/configs and the docs' own file
// examples (egressgate.yaml, local.txt), so --config can name either.
// Examples that need a running egressgate (report --from) are left to
// the metrics package's report tests.
func TestDocsCommandExamples(t *testing.T) {
	dir := t.TempDir()
	configs, _ := filepath.Glob("testdata/configs/*")
	for _, f := range configs {
		if st, err := os.Stat(f); err == nil && st.IsDir() {
			// A directory of examples (enterprise: the worked example of
			// estates.md, a link to deploy/examples/enterprise).
			if err := os.CopyFS(filepath.Join(dir, filepath.Base(f)), os.DirFS(f)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644)
	}
	var docs [][]byte
	for _, file := range docFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
		for _, m := range fileExampleRE.FindAllStringSubmatch(string(data), -1) {
			os.WriteFile(filepath.Join(dir, m[1]), []byte("# "+m[1]+"\n"+m[2]), 0o644)
		}
	}
	n := 0
	for i, file := range docFiles(t) {
		data := docs[i]
		for _, m := range shellExampleRE.FindAllStringSubmatch(string(data), -1) {
			args := strings.Fields(strings.TrimPrefix(m[1], "$ egressgate "))
			if args[0] == "report" || args[0] == "serve" {
				continue
			}
			n++
			t.Run(filepath.Base(file)+"/"+strings.Join(args, "_"), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				t.Chdir(dir)
				run(args, &stdout, &stderr)
				got := strings.Split(strings.TrimRight(stdout.String()+stderr.String(), "\n"), "\n")
				want := strings.Split(strings.TrimRight(m[2], "\n"), "\n")
				if !proxytest.MatchLines(got, want) {
					t.Errorf("%s: %s shows\n%s\nbut egressgate prints\n%s", file, m[1], m[2], strings.Join(got, "\n"))
				}
			})
		}
	}
	if n < 3 {
		t.Errorf("found %d egressgate examples in the docs; the tour alone has three", n)
	}
}
