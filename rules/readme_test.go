package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var fenceRE = regexp.MustCompile("(?s)```(yaml|text)\n(.*?)```")

// fileCommentRE is the first line of an example that is a whole file:
// "# NAME.yaml" or "# NAME.txt".
var fileCommentRE = regexp.MustCompile(`^# ([A-Za-z0-9._-]+\.(yaml|txt))\n`)

// TestDocsExamples loads every config and catalog example of the README
// and of docs/*.md, so the documentation cannot drift from the code. A
// config example starts with "# NAME.yaml", a plain list with
// "# NAME.txt" (written next to the configs, which may name it), a
// catalog with "catalog:".
func TestDocsExamples(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	files = append([]string{"../README.md"}, files...)
	if len(files) < 2 {
		t.Fatal("no docs/*.md")
	}
	type block struct{ file, lang, text string }
	var blocks []block
	for _, f := range files {
		data := mustRead(t, f)
		for _, m := range fenceRE.FindAllStringSubmatch(string(data), -1) {
			blocks = append(blocks, block{filepath.Base(f), m[1], m[2]})
		}
	}
	dir := t.TempDir()
	var configs, catalogs, lists int
	// Plain lists first: config examples name them.
	for _, b := range blocks {
		m := fileCommentRE.FindStringSubmatch(b.text)
		if b.lang != "text" || m == nil || m[2] != "txt" {
			continue
		}
		lists++
		if _, err := ParseList(m[1], "local", []byte(b.text)); err != nil {
			t.Errorf("%s: plain list %s: %v", b.file, m[1], err)
		}
		if err := os.WriteFile(filepath.Join(dir, m[1]), []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range blocks {
		if b.lang != "yaml" {
			continue
		}
		if m := fileCommentRE.FindStringSubmatch(b.text); m != nil && m[2] == "yaml" {
			configs++
			p := filepath.Join(dir, m[1])
			if err := os.WriteFile(p, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			rs, err := Load(p)
			if err != nil {
				t.Errorf("%s: config %s: %v", b.file, m[1], err)
				continue
			}
			// The annotated example of every key (configuration.md, "Config file").
			if strings.Contains(b.text, "listeners:") && (rs.Config.Listeners.Proxy != ":3128" || len(rs.Catalogs) != 2) {
				t.Errorf("%s: config %s: listeners %+v, %d catalogs", b.file, m[1], rs.Config.Listeners, len(rs.Catalogs))
			}
			continue
		}
		if !strings.HasPrefix(b.text, "catalog:") {
			continue
		}
		catalogs++
		c, err := ParseYAML("example.yaml", []byte(b.text))
		if err != nil {
			t.Errorf("%s: catalog: %v", b.file, err)
			continue
		}
		if c.Name != "example-vendor" {
			continue
		}
		// The catalog-format example (catalog.md) shows each kind of pattern.
		rs, err := Select(&Config{Policy: Policy{Enable: []string{"support"}}}, []*Catalog{c})
		if err != nil {
			t.Errorf("%s: catalog: %v", b.file, err)
			continue
		}
		for _, tt := range []struct {
			host  string
			port  uint16
			allow bool
		}{{"api.example.org", 443, true}, {"x.cdn.example.org", 443, true}, {"cdn.example.org", 443, false},
			{"tf-1-bucket.s3.example.net", 443, true}, {"crl.example.net", 80, true}, {"a.support.example.org", 22, true}} {
			if v := rs.Matcher.Lookup(tt.host, tt.port); v.Allow != tt.allow {
				t.Errorf("%s: catalog: Lookup(%q, %d) = %+v, want allow=%v", b.file, tt.host, tt.port, v, tt.allow)
			}
		}
		if _, err := Select(&Config{Policy: Policy{Mode: ModeExact, Enable: []string{"support"}}}, []*Catalog{c}); err == nil {
			t.Errorf("%s: catalog: exact mode with the support section on was accepted", b.file)
		}
	}
	if configs == 0 || catalogs == 0 || lists == 0 {
		t.Errorf("docs have %d config, %d catalog and %d plain-list examples; want at least one of each", configs, catalogs, lists)
	}
}
