package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEstatesDocExamples keeps docs/estates.md honest: its worked example
// is the shipped one, byte for byte, and every other config example in it
// loads.
func TestEstatesDocExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/estates.md")
	if err != nil {
		t.Fatal(err)
	}
	shippedConfig, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	shippedSydney, err := os.ReadFile("../deploy/examples/enterprise/estates.d/sydney.yaml")
	if err != nil {
		t.Fatal(err)
	}
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
