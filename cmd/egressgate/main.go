// Command egressgate is an egress forward proxy that admits only the hosts
// an allowlist catalog names, logs every miss and exports per-entry
// Prometheus metrics.
//
// Usage:
//
//	egressgate serve   [flags]                             run the proxy (the main job)
//	egressgate check   [--config FILE]                     validate config and catalogs
//	egressgate explain [--config FILE] [--json] HOST[:PORT]
//	egressgate catalog [--config FILE] [--format list|yaml|squid|hosts|json]
//	egressgate catalog import PAGE.txt | catalog diff OLD NEW
//	egressgate discover [--config FILE] [--write FILE] ARTEFACT...
//	egressgate report  --from URL | --prometheus URL
//	egressgate probe   [--config FILE] [--via PROXY_URL] [--json] [--hosts FILE]
//	egressgate alertmanager-config [flags]
//	egressgate version
//	egressgate help [COMMAND]
//
// Flags may come before or after the arguments; "--" ends them.
package main

import (
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

type command struct {
	name    string
	summary string
	// run runs the command on its arguments, with cl its command line
	// (no flags yet, the help of help/NAME.txt).
	run func(cl *commandLine, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the proxy on the configured catalogs", runServe},
		{"check", "validate the config and catalogs, print a summary", runCheck},
		{"explain", "say whether a host and port would be admitted, and why", runExplain},
		{"catalog", "print the effective allowlist", runCatalog},
		{"discover", "find this account's own hosts in installer artefacts", runDiscover},
		{"report", "print used and never-used entries and top misses", runReport},
		{"passwd", "read a password on stdin, print a proxy-authentication users-file line", runPasswd},
		{"healthcheck", "ask a running egressgate's /healthz; exit 0 if healthy", runHealthcheck},
		{"probe", "check DNS, TCP and TLS to every concrete catalog name", runProbe},
		{"alertmanager-config", "write an Alertmanager config that escalates each estate's alerts through its contacts", runAlertmanagerConfig},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		// "help CMD" is "CMD --help".
		args = []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(newCommandLine(c.name), args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "egressgate: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: egressgate COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'egressgate COMMAND --help' (or 'egressgate help COMMAND') for its flags.")
}

// commandLine is one subcommand's flags with the help its --help prints.
type commandLine struct {
	*flag.FlagSet
	synopsis string // after "usage: "
	about    string // what the command does and its exit statuses
}

// help holds every command's --help text, one file a command:
// help/NAME.txt ("catalog-import.txt" for "catalog import") is the
// synopsis, a blank line, then what the command does and its exit
// statuses. Kept as text so the help reads and is edited as the prose it
// is, and so every command gets it the same way.
//
//go:embed help
var help embed.FS

// newCommandLine returns an empty command line for "egressgate name" with
// the help of help/NAME.txt. The flag set prints nothing itself: parse
// reports errors and help.
func newCommandLine(name string) *commandLine {
	text, err := help.ReadFile("help/" + strings.ReplaceAll(name, " ", "-") + ".txt")
	if err != nil {
		panic("egressgate " + name + " has no help file: " + err.Error()) // TestHelp runs every command's --help
	}
	synopsis, about, _ := strings.Cut(string(text), "\n\n")
	fs := flag.NewFlagSet("egressgate "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &commandLine{FlagSet: fs, synopsis: synopsis, about: about}
}

// addConfig adds the --config flag every rules command takes.
func (c *commandLine) addConfig() *string {
	return c.String("config", "", "config `file` (default: the embedded catalog under the default policy)")
}

// usage writes the help: synopsis, description, flags.
func (c *commandLine) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.synopsis, strings.TrimSpace(c.about))
	n := 0
	c.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		c.SetOutput(w)
		c.PrintDefaults()
		c.SetOutput(io.Discard)
	}
}

// parse parses args, flags anywhere among the positional arguments ("--"
// ends the flags), and returns the positional arguments. When ok is false
// the caller returns exit at once: 0 after the help was printed to stdout
// (--help, -h, or "help" as the only argument), 2 after a usage error was
// printed to stderr.
func (c *commandLine) parse(args []string, stdout, stderr io.Writer) (pos []string, exit int, ok bool) {
	pos, err := parseInterspersed(c.FlagSet, args)
	switch {
	case errors.Is(err, flag.ErrHelp), err == nil && len(pos) == 1 && pos[0] == "help":
		c.usage(stdout)
		return nil, 0, false
	case err != nil:
		return nil, c.fail(stderr, "%v", err), false
	}
	return pos, 0, true
}

// parseNoArgs is parse for a command that takes no positional argument:
// one is a usage error.
func (c *commandLine) parseNoArgs(args []string, stdout, stderr io.Writer) (exit int, ok bool) {
	pos, exit, ok := c.parse(args, stdout, stderr)
	if ok && len(pos) > 0 {
		return c.fail(stderr, "unexpected argument %q", pos[0]), false
	}
	return exit, ok
}

// loadConfig loads the config at path ("" for the built-in default) with
// the code serve loads it with. When it does not load, loadConfig prints
// the error (FILE:LINE: message) to stderr and ok is false: the caller
// returns its exit status for that case.
func loadConfig(path string, stderr io.Writer) (rs *rules.Ruleset, ok bool) {
	rs, err := rules.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return rs, true
}

// fail prints a usage error with the synopsis and returns exit status 2.
func (c *commandLine) fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\nusage: %s\nRun '%s --help' for more.\n", c.Name(), fmt.Sprintf(format, args...), c.synopsis, c.Name())
	return 2
}

// parseInterspersed is fs.Parse for flags before, between and after the
// positional arguments, which it returns in order. Everything after "--"
// is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// version is set at build time with -ldflags "-X main.version=...". When
// it is not (go run, go install, go build), init takes the module version
// and VCS revision from the build info instead of printing "dev".
var version = ""

func init() {
	if version == "" || version == "dev" {
		version = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok {
			version = versionOf(bi)
		}
	}
}

// versionOf describes a build: the main module's version (absent or
// "(devel)" without a tag or a VCS stamp), then the VCS revision and
// whether the tree had uncommitted changes, when the build recorded them.
func versionOf(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if strings.Contains(v, rev) {
		// Go 1.24+ pseudo-versions already carry the revision (and
		// "+dirty" for a modified tree).
		return v
	}
	if modified == "true" {
		rev += ", modified"
	}
	return v + " (" + rev + ")"
}

// runVersion prints the version and the Go release that built it.
func runVersion(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	if exit, ok := cl.parseNoArgs(args, stdout, stderr); !ok {
		return exit
	}
	fmt.Fprintf(stdout, "egressgate %s %s\n", version, runtime.Version())
	return 0
}
