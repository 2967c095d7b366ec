package main

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
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

// TestHelp checks that every way of asking for help exits 0 and prints
// the command's usage on stdout.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {c.name, "help"}, {"help", c.name}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if exit := run(args, &stdout, &stderr); exit != 0 || stderr.Len() > 0 {
					t.Fatalf("egressgate %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), exit, stderr.String())
				}
				if !strings.HasPrefix(stdout.String(), "usage: egressgate "+c.name) || !strings.Contains(stdout.String(), "exit status: 0") {
					t.Errorf("egressgate %s printed\n%s\nwant the usage of %s with its exit statuses", strings.Join(args, " "), stdout.String(), c.name)
				}
			})
		}
	}
	for _, args := range [][]string{{"catalog", "import", "--help"}, {"catalog", "diff", "-h"}} {
		var stdout, stderr bytes.Buffer
		if exit := run(args, &stdout, &stderr); exit != 0 || !strings.HasPrefix(stdout.String(), "usage: egressgate "+args[0]+" "+args[1]) {
			t.Errorf("egressgate %s: exit %d, stdout %q; want 0 and its usage", strings.Join(args, " "), exit, stdout.String())
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		var stdout, stderr bytes.Buffer
		if exit := run(args, &stdout, &stderr); exit != 0 || !strings.Contains(stdout.String(), "explain") {
			t.Errorf("egressgate %s: exit %d, stdout %q; want 0 and the command list", args[0], exit, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"explain", "--help"}, &stdout, &stderr)
	for _, want := range []string{"HOST[:PORT]", "0 ALLOW, 1 DENY, 2 bad input", "-json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("explain --help lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestFlagsAnywhere checks that flags may follow the positional
// arguments in every subcommand, that "--" ends them, and that a usage
// error says exactly what is wrong.
func TestFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		exit   int
		stdout string // substring
		stderr string // substring
	}{
		{[]string{"explain", "central.sophos.com", "--json"}, 0, `"verdict": "ALLOW"`, ""},
		{[]string{"explain", "--json", "central.sophos.com"}, 0, `"verdict": "ALLOW"`, ""},
		{[]string{"explain", "x.apu.sophos.com:22", "--config", "testdata/configs/exact.yaml", "--json"}, 1, `"reason": "not-in-catalog"`, ""},
		{[]string{"explain", "--", "--json"}, 2, "DENY --json:443: invalid-host", ""},
		{[]string{"explain", "central.sophos.com", "--jsn"}, 2, "", "egressgate explain: flag provided but not defined: -jsn\nusage: egressgate explain [--config FILE] [--client ADDR] [--user NAME] [--json] HOST[:PORT]"},
		{[]string{"explain"}, 2, "", "egressgate explain: missing HOST[:PORT]"},
		{[]string{"explain", "a.example", "b.example"}, 2, "", `one HOST[:PORT] at a time; got ["a.example" "b.example"]`},
		{[]string{"check", "extra", "--config", "testdata/configs/exact.yaml"}, 2, "", `egressgate check: unexpected argument "extra"`},
		{[]string{"catalog", "--format", "yml"}, 2, "", `--format "yml" is not list, yaml`},
		{[]string{"report", "--top", "3"}, 2, "", "give exactly one of --from and --prometheus"},
		{[]string{"serve", "extra", "--listen", "127.0.0.1:0"}, 2, "", `egressgate serve: unexpected argument "extra"`},
		{[]string{"version", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			exit := run(tc.args, &stdout, &stderr)
			if exit != tc.exit || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("egressgate %s: exit %d\nstdout %s\nstderr %s\nwant exit %d, stdout with %q, stderr with %q",
					strings.Join(tc.args, " "), exit, stdout.String(), stderr.String(), tc.exit, tc.stdout, tc.stderr)
			}
		})
	}
}

var helpFlagRE = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// TestFlagsInDocs checks that every flag of every subcommand's --help is
// in a row of a flag table in docs/ ("| ... `--NAME ...").
func TestFlagsInDocs(t *testing.T) {
	var docs strings.Builder
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(data)
	}
	for _, c := range commands() {
		var stdout, stderr bytes.Buffer
		run([]string{c.name, "--help"}, &stdout, &stderr)
		for _, m := range helpFlagRE.FindAllStringSubmatch(stdout.String(), -1) {
			dash := "--"
			if len(m[1]) == 1 {
				dash = "-" // -o
			}
			if !regexp.MustCompile("(?m)^\\|[^\n]*`" + dash + m[1] + "[ `=]").MatchString(docs.String()) {
				t.Errorf("egressgate %s --%s is in no flag table of the docs", c.name, m[1])
			}
		}
	}
}

func TestVersionOf(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"go install of a tag", debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"go build in a checkout", debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202023456-592f931abcde+dirty"},
			Settings: settings("vcs.revision", "592f931abcdef0123456789", "vcs.modified", "true")}, "v0.0.0-20261202023456-592f931abcde+dirty"},
		{"devel with revision", debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "592f931abcdef0123456789", "vcs.modified", "true")}, "devel (592f931abcde, modified)"},
		{"devel clean", debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "592f931abcdef0123456789", "vcs.modified", "false")}, "devel (592f931abcde)"},
		{"no vcs", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
	} {
		if got := versionOf(&tc.bi); got != tc.want {
			t.Errorf("%s: versionOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLastAddr(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"203.0.113.0/24", "203.0.113.255"},
		{"10.1.2.3/32", "10.1.2.3"},
		{"10.0.0.0/9", "10.127.255.255"},
		{"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::10/128", "2001:db8::10"},
	} {
		if got := lastAddr(netip.MustParsePrefix(tc.prefix)); got.String() != tc.want {
			t.Errorf("lastAddr(%s) = %s, want %s", tc.prefix, got, tc.want)
		}
	}
}
