package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"

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
				got := strings.Split(strings.TrimRight(unmeasured(stdout.String()+stderr.String()), "\n"), "\n")
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

// measuredRE is a cell of a probe table that says how long a step took:
// the one thing in an example's output that no two runs need repeat (a
// loaded machine takes milliseconds where an idle one rounds to 0s).
var (
	measuredRE = regexp.MustCompile(`^ok [0-9][0-9.]*(ns|µs|ms|s|m)$`)
	cellGapRE  = regexp.MustCompile(`  +`)
)

// unmeasured is out with every measured time read as 0s, each table
// holding one realigned as tabwriter aligns it (cells apart by two or more
// spaces; a blank line ends a table), so that the docs can show the table
// of an idle run and still be compared space for space.
func unmeasured(out string) string {
	blocks := strings.Split(out, "\n\n")
	for i, block := range blocks {
		lines := strings.Split(block, "\n")
		rows := make([][]string, len(lines))
		measured := false
		for j, line := range lines {
			rows[j] = cellGapRE.Split(line, -1)
			for k, cell := range rows[j] {
				if measuredRE.MatchString(cell) {
					rows[j][k], measured = "ok 0s", true
				}
			}
		}
		if !measured {
			continue
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
		blocks[i] = strings.TrimSuffix(b.String(), "\n")
	}
	return strings.Join(blocks, "\n\n")
}

// TestUnmeasured: a table's measured cells read ok 0s, realigned as the
// probe prints an idle run's table; other blocks and cells stay as they are.
func TestUnmeasured(t *testing.T) {
	in := "NAME              PORT  DNS          TCP       TLS\n" +
		"gone.example.org  1     ok 12.345ms  FAIL      -\n" +
		"ok.example.org    443   ok 3µs       ok 1.5s   ok 2m\n" +
		"\nfailures:\n  gone.example.org:1 tcp: took ok 3s  then\n"
	want := "NAME              PORT  DNS    TCP    TLS\n" +
		"gone.example.org  1     ok 0s  FAIL   -\n" +
		"ok.example.org    443   ok 0s  ok 0s  ok 0s\n" +
		"\nfailures:\n  gone.example.org:1 tcp: took ok 3s  then\n"
	if got := unmeasured(in); got != want {
		t.Errorf("unmeasured:\n%s\nwant\n%s", got, want)
	}
	if idle := "NAME  DNS\nx     ok 0s\n"; unmeasured(idle) != idle {
		t.Errorf("unmeasured(%q) = %q, want it unchanged", idle, unmeasured(idle))
	}
}
