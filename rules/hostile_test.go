package rules

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// billionLaughs is the YAML alias bomb: nine levels of nine references,
// some 387 million strings once expanded, in a few hundred bytes.
func billionLaughs(key string) string {
	s := key + ": [&a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		s += ", &" + n + " [" + strings.Repeat("*"+prev+",", 8) + "*" + prev + "]"
		prev = n
	}
	return s + "]\ncontacts: {primary: {name: *i}}\n"
}

// TestHostileEstateFile: an estate file is written by another estate's
// admins, and the config's readers must stay bounded whatever it holds.
// Each case must fail with an error that names the file; an oversized file
// is refused before it is parsed (or read whole) with a clear message, and
// the estate keeps its last good settings on reload.
func TestHostileEstateFile(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"larger than the limit", "licenses: [" + strings.Repeat("intercept-x-advanced, ", maxEstateFileBytes/20) + "]\n",
			"estate file is larger than the limit of 1048576 bytes"},
		{"a long comment past the limit", "mode: exact\n#" + strings.Repeat("x", maxEstateFileBytes) + "\n",
			"estate file is larger than the limit of 1048576 bytes"},
		{"alias bomb", billionLaughs("licenses"), "cannot unmarshal"},
		{"alias bomb in an unknown key", billionLaughs("x-anchors"), "unknown field"},
		{"deeply nested sequences", "licenses: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", "exceeded max depth"},
		{"deeply nested mappings", "contacts: " + strings.Repeat("{a: ", 20000) + "1" + strings.Repeat("}", 20000) + "\n", "exceeded max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, sydney, first := loadedExample(t)
			writeFile(t, sydney, tt.content)
			rs, err := load(p, first)
			if err != nil {
				t.Fatalf("a broken estate file failed the whole config: %v", err)
			}
			es := rs.Estate("sydney")
			if es.Stale == nil || !strings.HasPrefix(es.Stale.Error(), sydney) || !strings.Contains(es.Stale.Error(), tt.want) {
				msg := "<nil>"
				if es.Stale != nil {
					msg = es.Stale.Error()
					if len(msg) > 300 {
						msg = msg[:300] + "..."
					}
				}
				t.Errorf("sydney's error is %s; want it to name %s and say %q", msg, sydney, tt.want)
			}
			if got := changed(first, rs); len(got) != 0 {
				t.Errorf("a hostile estate file changed %v", got)
			}
		})
	}
}

// TestOversizedConfigFiles: the config, a catalog and the password file
// are refused past their limit with the file named, without being read
// whole.
func TestOversizedConfigFiles(t *testing.T) {
	dir := t.TempDir()
	big := func(name string, limit int) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("# a comment\n"); err != nil {
			t.Fatal(err)
		}
		// Sparse: the size is there, the disk blocks are not.
		if err := f.Truncate(int64(limit) + 1<<28); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := big("egressgate.yaml", maxConfigBytes)
	start := time.Now()
	_, err := Load(cfg)
	if err == nil || !strings.HasPrefix(err.Error(), cfg) || !strings.Contains(err.Error(), "config is larger than the limit of") {
		t.Errorf("Load(%s) = %v, want the size limit named", cfg, err)
	}
	t.Logf("refused in %v", time.Since(start))

	cat := big("big.catalog.yaml", maxCatalogBytes)
	cfg = filepath.Join(dir, "small.yaml")
	writeFile(t, cfg, "embedded: []\ncatalogs:\n  - path: big.catalog.yaml\n")
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), cat) || !strings.Contains(err.Error(), "catalog is larger than the limit of") {
		t.Errorf("Load with %s = %v, want the size limit named", cat, err)
	}
}

// TestEstateFileNotRegular: an estate's admins can put anything at their
// file's name. A FIFO would block the reload forever (and every later one
// behind its lock), a directory cannot be read: each is refused with the
// file named, and the estate keeps its last good settings.
func TestEstateFileNotRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
	}{
		{"fifo", func(p string) error { return mkfifo(p) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"symlink to a fifo", func(p string) error {
			fifo := p + ".fifo"
			if err := mkfifo(fifo); err != nil {
				return err
			}
			return os.Symlink(fifo, p)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, sydney, first := loadedExample(t)
			if err := os.Remove(sydney); err != nil {
				t.Fatal(err)
			}
			if err := tt.make(sydney); err != nil {
				t.Skipf("cannot make a %s here: %v", tt.name, err)
			}
			done := make(chan struct{})
			var rs *Ruleset
			var err error
			go func() {
				defer close(done)
				rs, err = load(p, first)
			}()
			select {
			case <-done:
			case <-time.After(waitDeadline):
				// Unblock the reader so that the test can end.
				if f, err := os.OpenFile(sydney, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatalf("reading a %s as an estate file blocked for %v", tt.name, waitDeadline)
			}
			if err != nil {
				t.Fatalf("a %s as an estate file failed the whole config: %v", tt.name, err)
			}
			if es := rs.Estate("sydney"); es.Stale == nil || !strings.HasPrefix(es.Stale.Error(), sydney) {
				t.Errorf("sydney's error is %v; want one naming %s", es.Stale, sydney)
			}
			if got := changed(first, rs); len(got) != 0 {
				t.Errorf("changed %v", got)
			}
		})
	}
}

// TestEstateFileGone: an estate file deleted or renamed (an admin's
// "mv sydney.yaml sydney.yaml.bak") keeps the estate's last good
// settings, says which file is missing, and touches no other estate; the
// file's return is picked up.
func TestEstateFileGone(t *testing.T) {
	for _, tt := range []struct {
		name string
		gone func(path string) error
	}{
		{"deleted", os.Remove},
		{"renamed", func(p string) error { return os.Rename(p, p+".bak") }},
		{"estates.d renamed", func(p string) error { return os.Rename(filepath.Dir(p), filepath.Dir(p)+".old") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, sydney, first := loadedExample(t)
			good := mustRead(t, sydney)
			if err := tt.gone(sydney); err != nil {
				t.Fatal(err)
			}
			second, err := load(p, first)
			if err != nil {
				t.Fatalf("a missing estate file failed the whole config: %v", err)
			}
			if es := second.Estate("sydney"); es.Stale == nil || !strings.HasPrefix(es.Stale.Error(), sydney) || !strings.Contains(es.Stale.Error(), "missing") {
				t.Errorf("sydney's error is %v; want it to say %s is missing", es.Stale, sydney)
			}
			if got := changed(first, second); len(got) != 0 {
				t.Errorf("changed %v", got)
			}
			// Still stale on the next reload, from the stale ruleset.
			third, err := load(p, second)
			if err != nil || third.Estate("sydney").Stale == nil || len(changed(first, third)) != 0 {
				t.Fatalf("second reload: %v, changed %v", err, changed(first, third))
			}
			writeFile(t, sydney, strings.Replace(string(good), "mode: exact", "mode: wildcard", 1))
			back, err := load(p, third)
			if err != nil || back.Estate("sydney").Stale != nil {
				t.Fatalf("file back: %v, stale %v", err, back.Estate("sydney").Stale)
			}
			if got := changed(first, back); !reflect.DeepEqual(got, []string{"sydney"}) {
				t.Errorf("file back changed %v, want [sydney]", got)
			}
		})
	}
}

// TestEstateForClients pins the estate of client addresses in the forms a
// listener sees them: IPv4, IPv4-mapped IPv6 (a dual-stack socket), IPv6
// with a zone (link-local), with subnets that overlap between estates.
func TestEstateForClients(t *testing.T) {
	cfg := &Config{Estates: []EstateConfig{
		{Name: "london", Subnets: []string{"10.1.0.0/16", "2001:db8:1::/48"}},
		{Name: "lab", Subnets: []string{"10.1.200.0/24", "2001:db8:1:200::/64", "10.1.0.7"}},
		{Name: "mapped", Subnets: []string{"::ffff:10.9.0.0/112"}},
		{Name: "v6all", Subnets: []string{"::/0"}},
		{Name: "linklocal", Subnets: []string{"fe80::/64"}},
	}}
	cat, err := Embedded("sophos-central")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Select(cfg, []*Catalog{cat})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ client, want string }{
		{"10.1.0.5", "london"},
		{"::ffff:10.1.0.5", "london"},
		{"10.1.200.5", "lab"},
		{"::ffff:10.1.200.5", "lab"},
		{"10.1.0.7", "lab"},
		{"::ffff:10.1.0.7", "lab"},
		{"10.1.0.8", "london"},
		{"10.9.3.4", "mapped"},
		{"::ffff:10.9.3.4", "mapped"},
		{"10.2.0.5", DefaultEstate},
		{"::ffff:10.2.0.5", DefaultEstate}, // ::/0 holds IPv6 clients only
		{"2001:db8:1::5", "london"},
		{"2001:db8:1:200::5", "lab"},
		{"2001:db8:2::5", "v6all"},
		{"fe80::5%eth0", "linklocal"},
		{"fe80:0:0:1::5%eth0", "v6all"},
	} {
		if got := rs.EstateFor(netip.MustParseAddr(tt.client)).Name; got != tt.want {
			t.Errorf("EstateFor(%s) = %s, want %s", tt.client, got, tt.want)
		}
	}
}

// TestEstateFileModeConflict: a mode the estate's file sets that cannot
// hold with the sections it has on (exact mode with AD Sync) is found only
// when its matcher is compiled. It is still that file's error: the estate
// keeps its last good settings, the error names the file and line, and
// the enterprise's own edits keep applying to the other estates.
func TestEstateFileModeConflict(t *testing.T) {
	p, sydney, first := loadedExample(t)
	writeFile(t, sydney, "licenses: [intercept-x-advanced]\nenable: [ad-sync]\nmode: exact\n")
	second, err := load(p, first)
	if err != nil {
		t.Fatalf("sydney's file failed the whole config: %v", err)
	}
	es := second.Estate("sydney")
	if es.Stale == nil || !strings.HasPrefix(es.Stale.Error(), sydney+":3: ") {
		t.Errorf("sydney's error is %v; want it to name %s:3", es.Stale, sydney)
	}
	if got := changed(first, second); len(got) != 0 {
		t.Errorf("changed %v", got)
	}

	// The enterprise changes newyork meanwhile: that applies.
	data := mustRead(t, p)
	writeFile(t, p, strings.Replace(string(data), "regions: [us-east-2, us-west-2]", "regions: [us-east-2]", 1))
	third, err := load(p, second)
	if err != nil {
		t.Fatalf("the enterprise's edit failed while sydney's file is wrong: %v", err)
	}
	if got := changed(second, third); !reflect.DeepEqual(got, []string{"newyork"}) {
		t.Errorf("changed %v, want [newyork]", got)
	}
	if third.Estate("sydney").Stale == nil {
		t.Error("sydney lost its error")
	}
}

// loadedExample copies the worked example, loads it, and returns the
// config's path, Sydney's estate file and the ruleset loaded.
func loadedExample(t *testing.T) (config, sydney string, rs *Ruleset) {
	t.Helper()
	dir, config := copyExample(t)
	rs, err := Load(config)
	if err != nil {
		t.Fatal(err)
	}
	return config, filepath.Join(dir, EstatesDir, "sydney.yaml"), rs
}
