package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// runCatalogSub runs "catalog import" and "catalog diff"; ok is false when
// args name neither, and "catalog" goes on with its own flags.
func runCatalogSub(args []string, stdout, stderr io.Writer) (exit int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "import":
		return runCatalogImport(newCommandLine("catalog import"), args[1:], stdout, stderr), true
	case "diff":
		return runCatalogDiff(newCommandLine("catalog diff"), args[1:], stdout, stderr), true
	}
	return 0, false
}

// pageFlags are the flags of the commands that read the vendor page.
type pageFlags struct {
	layout string        // --layout FILE: the importer's layout table
	strict bool          // --strict: an unknown lead-in is an error
	via    string        // --via PROXY: fetch an https:// page through it
	wait   time.Duration // bound on fetching a page
}

// parse adds the page flags to cl and parses args, which must hold n
// arguments (want says what they are); ok is false with the exit status
// after the help or a usage error, as for commandLine.parse.
func (pf *pageFlags) parse(cl *commandLine, args []string, n int, want string, stdout, stderr io.Writer) (pos []string, exit int, ok bool) {
	cl.StringVar(&pf.layout, "layout", "", "read the page with this layout `FILE` instead of the built-in one (see docs/catalog-upkeep.md)")
	cl.BoolVar(&pf.strict, "strict", false, "fail on a host under a lead-in the layout does not know, instead of importing it unclassified")
	cl.StringVar(&pf.via, "via", "", "fetch an https:// page through this HTTP `PROXY` (host:port or http://host:port)")
	pf.wait = time.Minute
	if pos, exit, ok = cl.parse(args, stdout, stderr); ok && len(pos) != n {
		return nil, cl.fail(stderr, "want %s, got %d arguments", want, len(pos)), false
	}
	return pos, exit, ok
}

// options returns the import options the flags give.
func (pf *pageFlags) options() (upkeep.Options, error) {
	opts := upkeep.Options{Strict: pf.strict}
	if pf.layout == "" {
		return opts, nil
	}
	data, err := os.ReadFile(pf.layout)
	if err != nil {
		return opts, fmt.Errorf("--layout: %w", err)
	}
	opts.Layout, err = upkeep.ParseLayout(pf.layout, data)
	return opts, err
}

// readPage returns the page at arg, a file or an https:// URL, as text.
func (pf *pageFlags) readPage(arg string) ([]byte, error) {
	if !isPageURL(arg) {
		return os.ReadFile(arg)
	}
	client, err := upkeep.PageClient(pf.via)
	if err != nil {
		return nil, fmt.Errorf("--via: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pf.wait)
	defer cancel()
	return upkeep.FetchPage(ctx, client, arg)
}

// importPage imports the page at arg and warns on stderr of every host it
// could not classify.
func (pf *pageFlags) importPage(arg string, stderr io.Writer) (*rules.Catalog, error) {
	opts, err := pf.options()
	if err != nil {
		return nil, err
	}
	data, err := pf.readPage(arg)
	if err != nil {
		return nil, err
	}
	c, unc, err := upkeep.ImportPage(arg, data, opts)
	if err != nil {
		return nil, err
	}
	for _, u := range unc {
		fmt.Fprintf(stderr, "%s:%d: warning: %q is listed under %q, a lead-in the importer does not know: imported into group %s (section %s, off unless enabled); teach the importer with --layout FILE\n",
			arg, u.Line, u.Host, u.LeadIn, u.Group, upkeep.UnclassifiedSection)
	}
	return c, nil
}

func isPageURL(arg string) bool {
	return strings.HasPrefix(arg, "https://") || strings.HasPrefix(arg, "http://")
}

// runCatalogImport reads the vendor page (a saved copy or its https://
// URL) and prints the catalog YAML it gives.
func runCatalogImport(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	var pf pageFlags
	pos, exit, ok := pf.parse(cl, args, 1, "one PAGE.txt or https:// URL", stdout, stderr)
	if !ok {
		return exit
	}
	c, err := pf.importPage(pos[0], stderr)
	if err != nil {
		fmt.Fprintf(stderr, "egressgate catalog import: %v\n", err)
		return 1
	}
	out, err := rules.FormatYAML(c, "Sophos Central: domains and ports to allow, imported by \"egressgate catalog import\"\nfrom a copy of the vendor page; see docs/catalog-upkeep.md.")
	if err != nil {
		fmt.Fprintf(stderr, "egressgate catalog import: %v\n", err)
		return 1
	}
	stdout.Write(out)
	return 0
}

// runCatalogDiff prints the entries added, removed and changed from OLD
// to NEW. It exits 0 when they are the same and 3 when they differ, like
// diff(1) with 1.
func runCatalogDiff(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	notes := cl.Bool("notes", false, "compare the entries' notes too")
	var pf pageFlags
	pos, exit, ok := pf.parse(cl, args, 2, "OLD and NEW (each a catalog file, a saved copy of the vendor page, its https:// URL, or \"embedded\")", stdout, stderr)
	if !ok {
		return exit
	}
	var cats [2]*rules.Catalog
	for i := range cats {
		c, err := readAnyCatalog(pos[i], &pf, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "egressgate catalog diff: %v\n", err)
			return 1
		}
		cats[i] = c
	}
	changes := upkeep.Diff(cats[0], cats[1], *notes)
	n := rules.CountChanges(changes)
	fmt.Fprintf(stdout, "# %s -> %s: %d added, %d removed, %d changed\n", cats[0].Path, cats[1].Path,
		n[rules.ChangeAdded], n[rules.ChangeRemoved], n[rules.ChangeChanged])
	for _, c := range changes {
		fmt.Fprintln(stdout, upkeep.Describe(c))
	}
	if len(changes) > 0 {
		return 3
	}
	return 0
}

// readAnyCatalog reads a catalog file, or imports the vendor page (an
// https:// URL, or text with "•" bullets that is not YAML), or returns
// the embedded catalog for "embedded" or "embedded:NAME".
func readAnyCatalog(arg string, pf *pageFlags, stderr io.Writer) (*rules.Catalog, error) {
	if name, ok := strings.CutPrefix(arg, "embedded"); ok && (name == "" || strings.HasPrefix(name, ":")) {
		name = strings.TrimPrefix(name, ":")
		if name == "" {
			name = rules.DefaultCatalog
		}
		return rules.Embedded(name)
	}
	if isPageURL(arg) {
		return pf.importPage(arg, stderr)
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, err
	}
	if looksLikePage(data) {
		return pf.importPage(arg, stderr)
	}
	return rules.Parse(arg, data)
}

// looksLikePage reports whether data is a saved text copy of the vendor
// page rather than a catalog: it has the page's bullets and no YAML key
// at the start of a line.
func looksLikePage(data []byte) bool {
	if !bytes.Contains(data, []byte("•")) {
		return false
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("entries:")) || bytes.HasPrefix(line, []byte("catalog:")) {
			return false
		}
	}
	return true
}
