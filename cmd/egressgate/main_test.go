package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden runs each testdata/golden/*.txt case: its first line is
// "args: ..." (split on spaces, run from testdata/), its second "exit: N",
// then "-- stdout --" and "-- stderr --" sections with the expected output.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			args, wantExit, wantOut, wantErr := parseGolden(t, string(data))
			var stdout, stderr bytes.Buffer
			t.Chdir("testdata")
			exit := run(args, &stdout, &stderr)
			t.Chdir("..")
			got := formatGolden(args, exit, stdout.String(), stderr.String())
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if exit != wantExit || stdout.String() != wantOut || stderr.String() != wantErr {
				t.Errorf("egressgate %s: got\n%s\nwant\n%s", strings.Join(args, " "), got, string(data))
			}
		})
	}
}

func parseGolden(t *testing.T, s string) (args []string, exit int, stdout, stderr string) {
	t.Helper()
	head, rest, _ := strings.Cut(s, "-- stdout --\n")
	stdout, stderr, _ = strings.Cut(rest, "-- stderr --\n")
	for _, line := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(line, "args: "); ok {
			args = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(line, "exit: "); ok {
			exit, _ = strconv.Atoi(v)
		}
	}
	if args == nil {
		t.Fatal("golden file has no args: line")
	}
	return args, exit, stdout, stderr
}

func formatGolden(args []string, exit int, stdout, stderr string) string {
	return "args: " + strings.Join(args, " ") + "\nexit: " + strconv.Itoa(exit) + "\n-- stdout --\n" + stdout + "-- stderr --\n" + stderr
}

func TestSplitTarget(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port uint16
		bad  bool
	}{
		{"example.org", "example.org", 443, false},
		{"example.org:80", "example.org", 80, false},
		{"[2001:db8::1]:22", "2001:db8::1", 22, false},
		{"2001:db8::1", "2001:db8::1", 443, false},
		{"example.org:0", "", 0, true},
		{"example.org:99999", "", 0, true},
		{"example.org:http", "", 0, true},
		{"", "", 0, true},
	}
	for _, tt := range tests {
		host, port, err := splitTarget(tt.in)
		if (err != nil) != tt.bad || host != tt.host || port != tt.port {
			t.Errorf("splitTarget(%q) = %q, %d, %v; want %q, %d, bad=%v", tt.in, host, port, err, tt.host, tt.port, tt.bad)
		}
	}
}
