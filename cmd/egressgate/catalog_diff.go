package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

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
		return runCatalogImport(args[1:], stdout, stderr), true
	case "diff":
		return runCatalogDiff(args[1:], stdout, stderr), true
	}
	return 0, false
}

// runCatalogImport reads a saved text copy of the vendor page and prints
// the catalog YAML it gives.
func runCatalogImport(args []string, stdout, stderr io.Writer) int {
	fs := newCommandLine("catalog import", "egressgate catalog import PAGE.txt", `
Reads a saved text copy of the vendor page and prints the catalog YAML it
gives (see docs/catalog-upkeep.md).

exit status: 0 printed, 1 the page cannot be read or imported, 2 bad usage`)
	pos, exit, ok := fs.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	if len(pos) != 1 {
		return fs.fail(stderr, "want one PAGE.txt, got %d arguments", len(pos))
	}
	path := pos[0]
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressgate catalog import: %v\n", err)
		return 1
	}
	c, err := upkeep.ImportPage(path, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out, err := rules.FormatYAML(c, "Sophos Central: domains and ports to allow, imported by \"egressgate catalog import\"\nfrom a saved copy of the vendor page; see docs/catalog-upkeep.md.")
	if err != nil {
		fmt.Fprintf(stderr, "egressgate catalog import: %v\n", err)
		return 1
	}
	stdout.Write(out)
	return 0
}

// runCatalogDiff prints the entries added, removed and changed from OLD
// to NEW. Each is a catalog file (YAML or plain list), a saved copy of the
// vendor page, or "embedded" for the built-in catalog. It exits 0 when
// they are the same and 3 when they differ, like diff(1) with 1.
func runCatalogDiff(args []string, stdout, stderr io.Writer) int {
	fs := newCommandLine("catalog diff", "egressgate catalog diff OLD NEW", `
Prints the entries added, removed and changed from OLD to NEW. OLD and NEW
are each a catalog file (YAML or plain list), a saved copy of the vendor
page, or "embedded" for the built-in catalog.

exit status: 0 the same, 3 they differ, 1 one cannot be read, 2 bad usage`)
	pos, exit, ok := fs.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	if len(pos) != 2 {
		return fs.fail(stderr, "want OLD and NEW (each a catalog file, a saved copy of the vendor page, or \"embedded\"), got %d arguments", len(pos))
	}
	var cats [2]*rules.Catalog
	for i := range cats {
		c, err := readAnyCatalog(pos[i])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		cats[i] = c
	}
	changes := rules.DiffCatalogs(cats[0], cats[1])
	n := rules.CountChanges(changes)
	fmt.Fprintf(stdout, "# %s -> %s: %d added, %d removed, %d changed\n", cats[0].Path, cats[1].Path,
		n[rules.ChangeAdded], n[rules.ChangeRemoved], n[rules.ChangeChanged])
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if len(changes) > 0 {
		return 3
	}
	return 0
}

// readAnyCatalog reads a catalog file, or imports a saved vendor page
// (text with "•" bullets that is not YAML), or returns the embedded
// catalog for "embedded" or "embedded:NAME".
func readAnyCatalog(arg string) (*rules.Catalog, error) {
	if name, ok := strings.CutPrefix(arg, "embedded"); ok && (name == "" || strings.HasPrefix(name, ":")) {
		name = strings.TrimPrefix(name, ":")
		if name == "" {
			name = rules.DefaultCatalog
		}
		return rules.Embedded(name)
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("egressgate catalog diff: %w", err)
	}
	if looksLikePage(data) {
		return upkeep.ImportPage(arg, data)
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
