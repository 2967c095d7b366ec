package main

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is the import path of the repository's root.
const module = "github.com/egressgate/egressgate"

// layer is where a package sits in the one-way order of imports: cmd →
// metrics → proxy → rules. A package imports only packages of its own
// layer or below; rules' leaf packages (upkeep, export) import only
// rules. proxy/proxytest sits below rules: the tests of every layer,
// rules' included, import it, so it may import nothing of the module.
func layer(pkg string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case rel == "proxy/proxytest":
		return -1
	case rel == "rules":
		return 0
	case top == "rules":
		return 1
	case top == "proxy":
		return 2
	case top == "metrics":
		return 3
	}
	return 4 // cmd, deploy
}

// TestImportDirection checks every package's imports (test files aside)
// against the layers, so that the direction cannot regress: rules
// imports no other package of the module, proxy no metrics, metrics no
// cmd, and rules/upkeep and rules/export nothing of the module but rules.
func TestImportDirection(t *testing.T) {
	imports := map[string][]string{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") && path != "../.." {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel("../..", path)
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				imports[pkg] = append(imports[pkg], imp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/rules", "/proxy", "/metrics", "/cmd/egressgate"} {
		if _, ok := imports[module+want]; !ok && want != "/rules" {
			t.Fatalf("found no imports of %s: the walk missed the tree", want)
		}
	}
	checked := 0
	for pkg, imps := range imports {
		for _, imp := range imps {
			checked++
			if layer(imp) > layer(pkg) {
				t.Errorf("%s imports %s: imports run cmd → metrics → proxy → rules, never back up", pkg, imp)
			}
			if layer(pkg) == 1 && imp != module+"/rules" {
				t.Errorf("%s imports %s: rules' leaf packages import only rules", pkg, imp)
			}
		}
	}
	if checked == 0 || !slices.Contains(imports[module+"/cmd/egressgate"], module+"/proxy") {
		t.Fatalf("checked %d imports; cmd/egressgate's do not include proxy: the walk is wrong", checked)
	}
}
