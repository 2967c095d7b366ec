package rules

import (
	"embed"
	"fmt"
	"path"
	"slices"
	"strings"
)

// The built-in catalogs, one YAML file each.
//
//go:embed catalogs/*.yaml
var embeddedFS embed.FS

// DefaultCatalog is the name of the built-in Sophos Central catalog.
const DefaultCatalog = "sophos-central"

// EmbeddedNames lists the built-in catalogs, sorted.
func EmbeddedNames() []string {
	des, _ := embeddedFS.ReadDir("catalogs")
	var names []string
	for _, de := range des {
		names = append(names, strings.TrimSuffix(de.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// Embedded parses the built-in catalog called name. Each call returns a
// fresh copy that the caller may keep.
func Embedded(name string) (*Catalog, error) {
	p := path.Join("catalogs", name+".yaml")
	data, err := embeddedFS.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("no built-in catalog %q (have %s)", name, strings.Join(EmbeddedNames(), ", "))
	}
	return ParseYAML("embedded:"+p, data)
}
