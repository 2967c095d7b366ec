package rules

import (
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestEstatesDocExamples keeps docs/estates.md honest: its worked example
// is the shipped one, byte for byte, and every other config example in it
// loads.
func TestEstatesDocExamples(t *testing.T) {
	data := mustRead(t, "../docs/estates.md")
	shippedConfig := mustRead(t, exampleConfig)
	shippedSydney := mustRead(t, "../deploy/examples/enterprise/estates.d/sydney.yaml")
	var config, sydney, others int
	for _, b := range fenceRE.FindAllStringSubmatch(string(data), -1) {
		if b[1] != "yaml" {
			continue
		}
		switch b[2] {
		case string(shippedConfig):
			config++
			continue
		case string(shippedSydney):
			sydney++
			continue
		}
		others++
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "estates.d", "sydney.yaml"), string(shippedSydney))
		p := filepath.Join(dir, "egressgate.yaml")
		writeFile(t, p, b[2])
		if strings.Contains(b[2], "password_file: users") {
			// A user of the example estate, hash of "password" at cost 4.
			writeFile(t, filepath.Join(dir, "users"), "alice:$2a$04$fO8qOZ0IXwA1ro2O/qc3L.uwVNdxWCOefhGYmPHR71SieR1bI4iae:london\n")
		}
		if _, err := Load(p); err != nil {
			t.Errorf("docs/estates.md example starting %q: %v", firstLine(b[2]), err)
		}
	}
	if config != 1 || sydney != 1 || others == 0 {
		t.Errorf("docs/estates.md: %d copies of the shipped config, %d of sydney.yaml, %d other examples; want 1, 1, some", config, sydney, others)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestConfigKeysInDocs keeps docs/configuration.md's key table in step
// with the config structs: every yaml key of Config, found by reflection,
// is a row of the table, and every row is a key. A struct met a second
// time (an estate's policy, the secondary contact) is not listed again.
func TestConfigKeysInDocs(t *testing.T) {
	keys := configKeys(reflect.TypeFor[Config](), "", map[reflect.Type]bool{})
	data := mustRead(t, configurationDoc)
	_, table, ok := strings.Cut(string(data), "\n"+keyTableHeading+"\n")
	if !ok {
		t.Fatalf("%s: no section %q", configurationDoc, keyTableHeading)
	}
	if end := strings.Index(table, "\n## "); end >= 0 {
		table = table[:end]
	}
	documented := map[string]bool{}
	for _, m := range keyRowRE.FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	for _, k := range keys {
		if !documented[k] {
			t.Errorf("%s: config key %s has no row in %q", configurationDoc, k, keyTableHeading)
		}
		delete(documented, k)
	}
	for k := range documented {
		t.Errorf("%s: %q lists %s, which is no config key", configurationDoc, keyTableHeading, k)
	}
}

const (
	configurationDoc = "../docs/configuration.md"
	keyTableHeading  = "## Every key"
)

// keyRowRE matches a table row's first cell, a key in backquotes.
var keyRowRE = regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\|")

// configKeys lists the yaml keys of t with their dotted paths below
// prefix; a list's items are written "[]".
func configKeys(t reflect.Type, prefix string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Pointer && t.Elem().Kind() != reflect.Struct {
			return nil
		}
		if t.Kind() == reflect.Slice {
			prefix = strings.TrimSuffix(prefix, ".") + "[]."
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, prefix+name)
		keys = append(keys, configKeys(f.Type, prefix+name+".", seen)...)
	}
	return keys
}
