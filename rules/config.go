package rules

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Modes of a Policy, after the two ways the catalog's source document offers.
const (
	// ModeWildcard admits every entry of the enabled groups: the wildcard
	// set and every named host, each keeping its own entry.
	ModeWildcard = "wildcard"
	// ModeExact admits only entries without '*', for sites whose other
	// firewalls cannot do wildcards.
	ModeExact = "exact"
)

// Size limits of the files a config reads: an estate file is written by
// that estate's admins, and none of them may make a reload read, hash or
// parse without bound. Catalogs have maxCatalogBytes.
const (
	maxConfigBytes     = 16 << 20 // the config and the password file
	maxEstateFileBytes = 1 << 20  // one estate's own file
)

// errTooLarge is readLimited's error for a file past its limit.
type errTooLarge struct{ limit int }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("larger than the limit of %d bytes", e.limit)
}

// readLimited reads the file at path, at most limit bytes of it: a larger
// file is an errTooLarge, found without reading it whole. Anything but a
// regular file (a FIFO would block the reload forever, a device never end)
// is refused; O_NONBLOCK lets the open of a FIFO return so that it can be
// told apart.
func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, errTooLarge{limit}
	}
	return data, nil
}

// readError says what went wrong reading the file at path, which is a
// kind of file ("config", "catalog", "estate file").
func readError(path, kind string, err error) error {
	var tl errTooLarge
	if errors.As(err, &tl) {
		return Pos{File: path}.Errorf("%s is %v; split it, or shorten it", kind, tl)
	}
	return Pos{File: path}.Errorf("reading %s: %w", kind, err)
}

// Config is egressgate's config file.
type Config struct {
	Path string // file it was read from; "" for the built-in default

	// Listeners are the addresses to serve on; flags override them.
	Listeners Listeners `yaml:"listeners"`
	// Embedded names the built-in catalogs to use; nil means all of them,
	// an empty list none.
	Embedded *[]string `yaml:"embedded"`
	// Catalogs are files layered on top of the embedded catalogs, in order.
	Catalogs []CatalogRef `yaml:"catalogs"`
	// Policy chooses what of the catalogs is allowed: the enterprise
	// defaults, which the default estate has and every estate inherits
	// where it sets nothing.
	Policy Policy `yaml:"policy"`
	// Estates are the parts of the enterprise chosen by client subnet,
	// each with its own policy or the enterprise's (see EstateConfig).
	Estates []EstateConfig `yaml:"estates"`
	// EstatesDir is the directory of the estates with source: estate,
	// each in NAME.yaml: relative to the config file's directory, or
	// absolute. Empty means EstatesDir ("estates.d"); "." puts the
	// files beside the config, as a Kubernetes ConfigMap (which has no
	// subdirectories) mounts them.
	EstatesDir string `yaml:"estates_dir"`
	// Auth, when set, turns on proxy authentication.
	Auth *AuthConfig `yaml:"auth"`

	lines map[string]int // line of each policy value, for errors
}

// Listeners are the addresses egressgate serves on. Empty means the
// default of the flag; "off" turns an optional listener off.
type Listeners struct {
	Proxy string `yaml:"proxy"`
	SNI   string `yaml:"sni"`
	Admin string `yaml:"admin"`
}

// CatalogRef names a catalog file.
type CatalogRef struct {
	Path string `yaml:"path"` // relative to the config file's directory
	// Name overrides the catalog's name; a plain list is otherwise named
	// after its file.
	Name string `yaml:"name"`
}

// Policy selects, from the catalogs, the entries that are allowed, and
// holds an estate's preferences. Every field's zero value means "not set":
// an estate's unset field takes the enterprise's, and an unset enterprise
// field the built-in default said in its comment.
type Policy struct {
	Mode string `yaml:"mode"` // ModeWildcard (default) or ModeExact
	// OS limits per-OS entries to these; empty means every OS.
	OS []string `yaml:"os"`
	// Enable turns on optional sections or groups, by ID or
	// "catalog/ID".
	Enable []string `yaml:"enable"`
	// Disable turns off sections or groups that are on by default.
	Disable []string `yaml:"disable"`
	// Licenses are the catalog licence IDs held; entries of no licence
	// held are denied not-licensed. Unset means every licence.
	Licenses []string `yaml:"licenses"`
	// Regions are the Central regions in use; entries that carry another
	// region are denied region-excluded. Unset means every region.
	Regions []string `yaml:"regions"`
	// ThreatResponse is ThreatNotify (default), ThreatCollaborate or
	// ThreatAuthorize.
	ThreatResponse string `yaml:"threat_response"`
	// ActIfUnreachable lets the vendor act when the contacts cannot be
	// reached; it only means something with ThreatCollaborate.
	ActIfUnreachable *bool `yaml:"act_if_unreachable"`
	// LiveResponse is LiveResponseOn or LiveResponseOff; unset means on
	// where Licenses include an XDR or MDR licence (or are unset), off
	// otherwise.
	LiveResponse string `yaml:"live_response"`
	// LiveResponseExclusions are devices (addresses or CIDRs) never
	// admitted to the Live Response hosts.
	LiveResponseExclusions []string `yaml:"live_response_exclusions"`
	// Contacts are the authorized contacts; unset means the enterprise's.
	Contacts *ContactsConfig `yaml:"contacts"`
}

// Ruleset is a loaded config: the catalogs read, the estates with their
// effective policies, and the matchers compiled for them. It is immutable
// once loaded.
type Ruleset struct {
	Config   *Config
	Catalogs []*Catalog
	// Enabled and Matcher are the default estate's (the enterprise
	// defaults'): the groups that are on, in catalog order, and the
	// matcher.
	Enabled []*Group
	Matcher *Matcher
	// Estates are the default estate (index 0), then the config's
	// estates in order.
	Estates []*Estate
	// Users maps proxy-authentication users to their estates; nil when
	// authentication is off.
	Users *Users
	// Files are the files the ruleset was read from, for the watcher.
	Files []string
	// Digest is a hash of every file's content, to skip no-op reloads.
	Digest [sha256.Size]byte
	// Problems are the errors of estate files that kept their estate's
	// last good settings (see Estate.Stale); the ruleset loaded anyway.
	Problems []error
	// CheckErrors are what check refuses although the proxy can serve
	// (no primary contact); Warnings what it only warns about.
	CheckErrors, Warnings []error

	subnets       *estateTable
	compiled      map[string]*compiled // by EffectivePolicy.matcherKey
	catalogDigest [sha256.Size]byte
}

// Load reads the config at path ("" for the built-in default: every
// embedded catalog under the default policy), the catalogs it names, and
// compiles the matcher. Every error names the file and line.
func Load(path string) (*Ruleset, error) { return load(path, nil) }

// load is Load with the ruleset in use: an estate file that fails keeps
// prev's settings for that estate, and matchers of unchanged policies
// are reused.
func load(path string, prev *Ruleset) (*Ruleset, error) { return loadTrying(path, prev, nil) }

// loadTrying is load that, when tried is not nil, appends to it every
// file it reads or tries to read, also when it fails: the reloader
// watches their directories, so that a file that was missing is seen when
// it appears.
func loadTrying(path string, prev *Ruleset, tried *[]string) (*Ruleset, error) {
	l := &loading{tried: tried, h: sha256.New(), catHash: sha256.New()}
	cfg := &Config{}
	if path != "" {
		var err error
		if cfg, err = l.config(path); err != nil {
			return nil, err
		}
	}
	catalogs, err := l.catalogs(cfg)
	if err != nil {
		return nil, err
	}
	var catDigest [sha256.Size]byte
	l.catHash.Sum(catDigest[:0])
	rs, err := selectRules(cfg, catalogs, prev, catDigest, l.estateFile)
	if err != nil {
		return nil, err
	}
	if cfg.Auth != nil {
		if rs.Users, err = loadUsers(cfg, rs, l.usersFile); err != nil {
			return nil, err
		}
	}
	rs.Files = l.files
	l.h.Sum(rs.Digest[:0])
	return rs, nil
}

// loading is the state of one loadTrying: the files read, in order, and
// the digests over them.
type loading struct {
	tried *[]string // every file tried, when not nil
	files []string  // every file read (and estate files tried)
	h     hash.Hash // the ruleset digest: every file
	// catHash covers the catalogs alone: when it is unchanged, matchers
	// of unchanged policies are reused.
	catHash hash.Hash
}

func (l *loading) try(p string) {
	if l.tried != nil {
		*l.tried = append(*l.tried, p)
	}
}

// config reads and parses the config file.
func (l *loading) config(path string) (*Config, error) {
	l.try(path)
	data, err := readLimited(path, maxConfigBytes)
	if err != nil {
		if errors.As(err, new(errTooLarge)) {
			return nil, readError(path, "config", err)
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	hashFile(l.h, path, data)
	l.files = append(l.files, path)
	return ParseConfig(path, data)
}

// catalogs returns the embedded catalogs cfg names (all when it names
// none), then its catalog files, in order.
func (l *loading) catalogs(cfg *Config) ([]*Catalog, error) {
	var catalogs []*Catalog
	embeddedNames := EmbeddedNames()
	if cfg.Embedded != nil {
		embeddedNames = *cfg.Embedded
	}
	for _, name := range embeddedNames {
		c, err := Embedded(name)
		if err != nil {
			return nil, Pos{cfg.Path, cfg.lines["embedded"]}.Errorf("embedded: %w", err)
		}
		fmt.Fprintf(l.catHash, "embedded:%s\x00", name)
		catalogs = append(catalogs, c)
	}
	for i, ref := range cfg.Catalogs {
		c, err := l.catalogFile(cfg, i, ref, catalogs)
		if err != nil {
			return nil, err
		}
		catalogs = append(catalogs, c)
	}
	return catalogs, nil
}

// catalogFile reads and parses the i-th catalog file of cfg, ref, named
// as ref says and by a name none of before has; every entry must name a
// group.
func (l *loading) catalogFile(cfg *Config, i int, ref CatalogRef, before []*Catalog) (*Catalog, error) {
	p := ref.Path
	if !filepath.IsAbs(p) && cfg.Path != "" {
		p = filepath.Join(filepath.Dir(cfg.Path), p)
	}
	l.try(p)
	data, err := readLimited(p, maxCatalogBytes)
	if err != nil {
		if errors.As(err, new(errTooLarge)) {
			err = readError(p, "catalog", err)
		}
		return nil, Pos{cfg.Path, cfg.lines[fmt.Sprintf("catalogs.%d", i)]}.Errorf("catalogs: %w", err)
	}
	hashFile(l.h, p, data)
	hashFile(l.catHash, p+"\x00"+ref.Name, data)
	l.files = append(l.files, p)
	c, err := Parse(p, data)
	if err != nil {
		return nil, err
	}
	if ref.Name != "" {
		c.Name = ref.Name
		for _, e := range c.Entries {
			e.Catalog = ref.Name
		}
	}
	for _, prev := range before {
		if prev.Name == c.Name {
			return nil, Pos{File: p}.Errorf("catalog name %q is already used by %s; set name: in the config", c.Name, prev.Path)
		}
	}
	for _, e := range c.Entries {
		if len(e.Groups) == 0 {
			return nil, e.Pos.Errorf("groups: entry %q has no group; name at least one", e.Pattern)
		}
	}
	return c, nil
}

// estateFile reads an estate's own file. A missing one is part of the
// digest too, so that its appearing is a change.
func (l *loading) estateFile(p string) ([]byte, error) {
	l.files = append(l.files, p)
	l.try(p)
	data, err := readLimited(p, maxEstateFileBytes)
	if err != nil {
		fmt.Fprintf(l.h, "%s\x00missing\x00", p)
		return nil, err
	}
	hashFile(l.h, p, data)
	return data, nil
}

// usersFile reads the password file.
func (l *loading) usersFile(p string) ([]byte, error) {
	l.try(p)
	data, err := readLimited(p, maxConfigBytes)
	if err == nil {
		l.files = append(l.files, p)
		hashFile(l.h, p, data)
	}
	return data, err
}

// hashFile adds one file to the ruleset digest, framed by its name and
// length so that bytes cannot move between files unnoticed.
func hashFile(h hash.Hash, path string, data []byte) {
	fmt.Fprintf(h, "%s\x00%d\x00", path, len(data))
	h.Write(data)
}

// ParseConfig parses a config file.
func ParseConfig(path string, data []byte) (*Config, error) {
	cfg := &Config{}
	lines, err := decodeFile(path, "config", maxConfigBytes, data, "write at least one key, or run without --config for the built-in default", cfg)
	if err != nil {
		return nil, err
	}
	cfg.Path, cfg.lines = path, lines
	return cfg, nil
}

// decodeFile decodes data, the kind of file at path, into out, as the
// config and the estate files are read. Errors name the file and line: a
// file over limit bytes; a key out does not know; a file without a key,
// refused rather than read as the defaults, since a file caught empty in
// the middle of a save must not swap in another policy (fix says what to
// write instead). It returns the line of every key and list item
// (recordLines).
func decodeFile(path, kind string, limit int, data []byte, fix string, out any) (map[string]int, error) {
	if len(data) > limit {
		return nil, readError(path, kind, errTooLarge{limit})
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(path, err)
	}
	if len(root.Content) == 0 {
		return nil, Pos{File: path}.Errorf("%s is empty; %s", kind, fix)
	}
	// A second pass: only the Decoder refuses unknown keys.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return nil, yamlError(path, err)
	}
	lines := map[string]int{}
	recordLines(root.Content[0], "", lines)
	return lines, nil
}

// recordLines notes the line of every mapping key and sequence item,
// keyed by its dotted path ("policy.enable.1").
func recordLines(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			out[k] = n.Content[i].Line
			recordLines(n.Content[i+1], k+".", out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			k := fmt.Sprintf("%s%d", prefix, i)
			out[k] = c.Line
			recordLines(c, k+".", out)
		}
	}
}

// Select applies cfg's policy to catalogs and compiles the result. The
// files of estates with source estate are read from disk.
func Select(cfg *Config, catalogs []*Catalog) (*Ruleset, error) {
	return selectRules(cfg, catalogs, nil, [sha256.Size]byte{}, nil)
}

func selectRules(cfg *Config, catalogs []*Catalog, prev *Ruleset, catDigest [sha256.Size]byte, readEstate estateFile) (*Ruleset, error) {
	rs := &Ruleset{Config: cfg, Catalogs: catalogs, catalogDigest: catDigest}
	if catDigest == ([sha256.Size]byte{}) || prev != nil && prev.catalogDigest != catDigest {
		prev = nil // unknown or changed catalogs: compile everything afresh
	}
	if prev != nil {
		// The same catalogs: keep the parsed ones, so that the groups and
		// sections of reused matchers' entries are this ruleset's own.
		rs.Catalogs = prev.Catalogs
	}
	if err := buildEstates(rs, prev, readEstate); err != nil {
		return nil, err
	}
	def := rs.Estates[0]
	rs.Matcher, rs.Enabled = def.Matcher, def.Enabled
	cfg.Policy.Mode = def.Policy.Mode
	return rs, nil
}

// compilePolicy selects the entries pol turns on and compiles them. Each
// entry is copied, so that matchers of different policies share none;
// an entry the policy refuses although its group is on (licence, Live
// Response, region) keeps matching, with its Deny reason set. Its errors
// carry no position: the caller knows where the policy was written.
func compilePolicy(catalogs []*Catalog, pol *EffectivePolicy) (*Matcher, []*Group, error) {
	enabledSec := map[*Section]bool{}
	disabledSec := map[*Section]bool{}
	enabledGrp := map[*Group]bool{}
	disabledGrp := map[*Group]bool{}
	for _, list := range []struct {
		key      string
		ids      []string
		sec      map[*Section]bool
		grp      map[*Group]bool
		opposite map[*Group]bool
	}{{"enable", pol.Enable, enabledSec, enabledGrp, nil}, {"disable", pol.Disable, disabledSec, disabledGrp, enabledGrp}} {
		for _, id := range list.ids {
			s, g, err := findID(catalogs, id)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", list.key, err)
			}
			if (s != nil && enabledSec[s] && list.opposite != nil) || (g != nil && list.opposite[g]) {
				return nil, nil, fmt.Errorf("%s: %q is both enabled and disabled", list.key, id)
			}
			if s != nil {
				list.sec[s] = true
			} else {
				list.grp[g] = true
			}
		}
	}
	var enabled []*Group
	on := map[*Group]bool{}
	for _, c := range catalogs {
		for _, g := range c.Groups {
			secOn := g.Section == nil || (!g.Section.Optional || enabledSec[g.Section]) && !disabledSec[g.Section]
			if enabledGrp[g] || secOn && !g.Optional && !disabledGrp[g] {
				on[g] = true
				enabled = append(enabled, g)
			}
		}
	}
	var entries []*Entry
	for _, c := range catalogs {
		for _, e := range c.Entries {
			if pol.Mode == ModeExact && e.HasWildcard() || !e.ForOS(pol.OS) {
				continue
			}
			if slices.ContainsFunc(e.Groups, func(g *Group) bool { return on[g] }) {
				ne := *e
				ne.Deny = pol.denyReason(e)
				entries = append(entries, &ne)
			}
		}
	}
	if pol.Mode == ModeExact {
		if err := checkExactMode(enabled, entries, enabledSec, enabledGrp); err != nil {
			return nil, nil, err
		}
	}
	m, err := Compile(entries)
	if err != nil {
		return nil, nil, err
	}
	return m, enabled, nil
}

// checkExactMode rejects what exact mode cannot express: a section the
// source says needs wildcards, or an enabled group with only wildcards.
func checkExactMode(enabled []*Group, entries []*Entry, enabledSec map[*Section]bool, enabledGrp map[*Group]bool) error {
	for _, g := range enabled {
		if s := g.Section; s != nil && s.NeedsWildcards != "" {
			return fmt.Errorf("policy.mode: exact mode cannot be used with section %q (%s) enabled: it needs wildcards; %s", s.ID, s.Title, s.NeedsWildcards)
		}
		if !enabledGrp[g] && (g.Section == nil || !enabledSec[g.Section]) {
			continue
		}
		if !slices.ContainsFunc(entries, func(e *Entry) bool { return slices.Contains(e.Groups, g) }) {
			return fmt.Errorf("policy.mode: exact mode cannot be used with group %q enabled: all its patterns are wildcards", g.ID)
		}
	}
	return nil
}

// findID finds a section or group by "ID" or "catalog/ID".
func findID(catalogs []*Catalog, id string) (*Section, *Group, error) {
	catName, local, qualified := strings.Cut(id, "/")
	if !qualified {
		local = catName
	}
	var sec *Section
	var grp *Group
	found := 0
	for _, c := range catalogs {
		if qualified && c.Name != catName {
			continue
		}
		for _, s := range c.Sections {
			if s.ID == local {
				sec, found = s, found+1
			}
		}
		for _, g := range c.Groups {
			if g.ID == local {
				grp, found = g, found+1
			}
		}
	}
	switch {
	case found == 0:
		return nil, nil, fmt.Errorf("no section or group %q in the catalogs (see egressgate catalog)", id)
	case found > 1:
		return nil, nil, fmt.Errorf("%q is in several catalogs; write it as catalog/%s", id, local)
	case sec != nil:
		return sec, nil, nil
	}
	return nil, grp, nil
}
