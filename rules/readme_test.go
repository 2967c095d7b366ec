package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var fenceRE = regexp.MustCompile("(?s)```(yaml|text)\n(.*?)```")

// TestREADMEExamples loads every config and catalog example of the README,
// so the documentation cannot drift from the code.
func TestREADMEExamples(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var configs, catalogs, lists int
	blocks := fenceRE.FindAllStringSubmatch(string(data), -1)
	// Plain lists first: the config example names local.txt.
	for _, b := range blocks {
		if b[1] == "text" && strings.HasPrefix(b[2], "# local.txt") {
			lists++
			if _, err := ParseList("local.txt", "local", []byte(b[2])); err != nil {
				t.Errorf("README plain list: %v", err)
			}
			os.WriteFile(filepath.Join(dir, "local.txt"), []byte(b[2]), 0o644)
		}
	}
	for _, b := range blocks {
		if b[1] != "yaml" {
			continue
		}
		switch {
		case strings.HasPrefix(b[2], "# egressgate.yaml"):
			configs++
			p := filepath.Join(dir, "egressgate.yaml")
			os.WriteFile(p, []byte(b[2]), 0o644)
			rs, err := Load(p)
			if err != nil {
				t.Errorf("README config: %v", err)
				continue
			}
			if rs.Config.Listeners.Proxy != ":3128" || len(rs.Catalogs) != 2 {
				t.Errorf("README config: listeners %+v, %d catalogs", rs.Config.Listeners, len(rs.Catalogs))
			}
		case strings.HasPrefix(b[2], "catalog:"):
			catalogs++
			c, err := ParseYAML("example.yaml", []byte(b[2]))
			if err != nil {
				t.Errorf("README catalog: %v", err)
				continue
			}
			rs, err := Select(&Config{Policy: Policy{Enable: []string{"support"}}}, []*Catalog{c})
			if err != nil {
				t.Errorf("README catalog: %v", err)
				continue
			}
			for _, tt := range []struct {
				host  string
				port  uint16
				allow bool
			}{{"api.example.org", 443, true}, {"x.cdn.example.org", 443, true}, {"cdn.example.org", 443, false},
				{"tf-1-bucket.s3.example.net", 443, true}, {"crl.example.net", 80, true}, {"a.support.example.org", 22, true}} {
				if v := rs.Matcher.Lookup(tt.host, tt.port); v.Allow != tt.allow {
					t.Errorf("README catalog: Lookup(%q, %d) = %+v, want allow=%v", tt.host, tt.port, v, tt.allow)
				}
			}
			if _, err := Select(&Config{Policy: Policy{Mode: ModeExact, Enable: []string{"support"}}}, []*Catalog{c}); err == nil {
				t.Error("README catalog: exact mode with the support section on was accepted")
			}
		}
	}
	if configs != 1 || catalogs != 1 || lists != 1 {
		t.Errorf("README has %d config, %d catalog and %d plain-list examples; want one of each", configs, catalogs, lists)
	}
}
