package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// probes returns, for an entry, hosts and ports to judge: names it
// matches on each of its ports, and near misses (the apex of a wildcard,
// a longer or shorter name, a port it lacks).
func probes(e *rules.Entry) [][2]string {
	var hosts []string
	switch e.Kind {
	case rules.KindExact:
		hosts = []string{e.Pattern, "x" + e.Pattern, "a." + e.Pattern, e.Pattern + ".example.net"}
	case rules.KindWildcard:
		apex := strings.TrimPrefix(e.Pattern, "*.")
		hosts = []string{"a." + apex, "a.b." + apex, apex, "x" + apex}
	case rules.KindGlob:
		hosts = []string{strings.ReplaceAll(e.Pattern, "*", "q"), strings.ReplaceAll(e.Pattern, "*", "q.r"), "a." + strings.ReplaceAll(e.Pattern, "*", "")}
	case rules.KindCIDR:
		hosts = []string{e.Prefix.Addr().String()}
	}
	var out [][2]string
	for _, h := range hosts {
		for _, p := range append([]uint16{22, 80, 443, 8443}, e.Ports...) {
			out = append(out, [2]string{h, fmt.Sprint(p)})
		}
	}
	return out
}

// sameVerdicts compares two rulesets' default estates over every entry
// of a and its near misses.
func sameVerdicts(t *testing.T, a, b *rules.Ruleset) {
	t.Helper()
	n := 0
	for _, e := range a.Matcher.Entries() {
		for _, p := range probes(e) {
			var port uint16
			fmt.Sscan(p[1], &port)
			va, vb := a.Matcher.Lookup(p[0], port), b.Matcher.Lookup(p[0], port)
			ea, eb := "", ""
			if va.Entry != nil {
				ea = va.Entry.Pattern
			}
			if vb.Entry != nil {
				eb = vb.Entry.Pattern
			}
			if va.Allow != vb.Allow || va.Reason != vb.Reason || ea != eb {
				t.Errorf("%s:%d: original %v %s (%s), loaded back %v %s (%s)", p[0], port, va.Allow, va.Reason, ea, vb.Allow, vb.Reason, eb)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no probes")
	}
	t.Logf("%d entries, %d verdicts compared", len(a.Matcher.Entries()), n)
}

// writeReplacing writes a config that keeps config's policy and names
// catalogs instead of the embedded catalog and config's own.
func writeReplacing(t *testing.T, dir, config string, catalogs []string) string {
	t.Helper()
	m := map[string]any{}
	if config != "" {
		data, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
	}
	m["embedded"] = []string{}
	var refs []map[string]string
	for _, c := range catalogs {
		refs = append(refs, map[string]string{"path": c})
	}
	m["catalogs"] = refs
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCatalogYAMLLoadsBack: what "catalog --format yaml" prints, loaded
// with embedded: [] and the same policy, gives the same verdicts as the
// original over every entry and its near misses; "catalog diff" reads it.
func TestCatalogYAMLLoadsBack(t *testing.T) {
	for _, config := range []string{"", "testdata/configs/layered.yaml", "testdata/configs/exact.yaml", "testdata/configs/disable-tls.yaml"} {
		t.Run(filepath.Base(config), func(t *testing.T) {
			args := []string{"catalog", "--format", "yaml"}
			if config != "" {
				args = append(args, "--config", config)
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("catalog --format yaml: exit %d: %s", code, stderr.String())
			}
			dir := t.TempDir()
			var files []string
			for i, doc := range strings.Split(stdout.String(), "\n---\n") {
				f := filepath.Join(dir, fmt.Sprintf("catalog%d.yaml", i))
				if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				stdout.Reset()
				if code := run([]string{"catalog", "diff", f, f}, &stdout, &stderr); code != 0 {
					t.Errorf("catalog diff of the export: exit %d: %s", code, stderr.String())
				}
			}
			orig := loadRuleset(t, config)
			back := loadRuleset(t, writeReplacing(t, dir, config, files))
			sameVerdicts(t, orig, back)
		})
	}
}

// TestCatalogImportLoadsBack: "catalog import" output is a catalog that,
// loaded with embedded: [], admits what the imported page says.
func TestCatalogImportLoadsBack(t *testing.T) {
	const page = "testdata/configs/page-excerpt.txt"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"catalog", "import", page}, &stdout, &stderr); code != 0 {
		t.Fatalf("catalog import: exit %d: %s", code, stderr.String())
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "sophos-central.yaml")
	if err := os.WriteFile(f, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back := loadRuleset(t, writeReplacing(t, dir, "", []string{f}))
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := upkeep.ImportPage(page, data, upkeep.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := upkeep.Diff(c, back.Catalogs[0], true); len(d) > 0 {
		t.Errorf("import output loads back with %d changes, first %s", len(d), d[0])
	}
	orig, err := rules.Select(&rules.Config{}, []*rules.Catalog{c})
	if err != nil {
		t.Fatal(err)
	}
	sameVerdicts(t, orig, back)
}

// TestUpkeepDocConfigs loads the configs of docs/catalog-upkeep.md's
// "put it in service" step beside the import of the page excerpt: the
// imported catalog replaces the embedded one, or runs beside it under its
// own name.
func TestUpkeepDocConfigs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/catalog-upkeep.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"catalog", "import", "testdata/configs/page-excerpt.txt"}, &stdout, &stderr); code != 0 {
		t.Fatalf("catalog import: exit %d: %s", code, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "sophos-central.yaml"), stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(# /etc/egressgate/egressgate.yaml[^\n]*\n.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d in-service configs in the doc, want 2", len(blocks))
	}
	for i, b := range blocks {
		path := filepath.Join(dir, fmt.Sprintf("egressgate%d.yaml", i))
		if err := os.WriteFile(path, []byte(b[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		rs, err := rules.Load(path)
		if err != nil {
			t.Errorf("config %d of the doc: %v", i, err)
			continue
		}
		want := []string{"sophos-central"}
		if i == 1 {
			want = []string{"sophos-central", "sophos-central-2026-12"}
		}
		var got []string
		for _, c := range rs.Catalogs {
			got = append(got, c.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("config %d loads catalogs %v, want %v", i, got, want)
		}
	}
}
