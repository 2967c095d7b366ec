package rules

import (
	"path/filepath"
	"strings"
	"testing"
)

// Each testdata/invalid-NAME.yaml is a config that must fail to load with
// exactly this error. A failure that lives in a catalog uses the catalog
// testdata/invalid-NAME.catalog.yaml, named by the config.
var invalidConfigs = map[string]string{
	"invalid-unknown-key.yaml": `testdata/invalid-unknown-key.yaml:4: unknown field "enabel" in policy`,
	"invalid-bad-mode.yaml":    `testdata/invalid-bad-mode.yaml:3: policy.mode: "fuzzy" is not "wildcard" or "exact"`,
	"invalid-unknown-enable.yaml": `testdata/invalid-unknown-enable.yaml:4: policy.enable: ` +
		`no section or group "no-such-group" in the catalogs (see egressgate catalog)`,
	"invalid-bad-port.yaml":    `testdata/invalid-bad-port.catalog.yaml:7: ports: 70000 is not a TCP port (1-65535)`,
	"invalid-bad-pattern.yaml": `testdata/invalid-bad-pattern.catalog.yaml:7: pattern: invalid host "b..example.com": empty label`,
	"invalid-duplicate-pattern.yaml": `testdata/invalid-duplicate-pattern.catalog.yaml:9: pattern: "a.example.com" ` +
		`already listed at line 5; list its groups and OSes on one entry`,
	"invalid-exact-ad-sync.yaml": `testdata/invalid-exact-ad-sync.yaml:3: policy.mode: exact mode cannot be used with ` +
		`section "ad-sync" (Sophos AD Sync) enabled: it needs wildcards; ` +
		`the source says: if your firewall doesn't allow wildcards you can't use Sophos AD Sync utility`,
	// yaml.v3 reports the line where the enclosing block starts, not the
	// line of the mistake (the bad indent is on line 4).
	"invalid-syntax.yaml": `testdata/invalid-syntax.yaml:2: did not find expected '-' indicator`,
	"invalid-missing-catalog.yaml": `testdata/invalid-missing-catalog.yaml:3: catalogs: ` +
		`open testdata/invalid-no-such-file.txt: no such file or directory`,
}

func TestConfigInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, ".catalog.yaml") {
			continue
		}
		if _, ok := invalidConfigs[base]; !ok {
			t.Errorf("%s has no expected error in invalidConfigs", f)
		}
	}
	for name, want := range invalidConfigs {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(name, "invalid-"), ".yaml"), func(t *testing.T) {
			rs, err := Load(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("Load succeeded with %d entries; want error %q", len(rs.Matcher.Entries()), want)
			}
			if got := err.Error(); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// The built-in default config loads, reads no file and has a stable digest.
func TestConfigDefault(t *testing.T) {
	a, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Files) != 0 {
		t.Errorf("Files = %q, want none", a.Files)
	}
	if a.Digest != b.Digest {
		t.Error("two loads of the default config have different digests")
	}
	if len(a.Matcher.Entries()) == 0 {
		t.Error("default config has no entries")
	}
}
