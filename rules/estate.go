package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Preference sources of an estate, after the MTR enterprise preferences:
// where its settings are written.
const (
	// SourceConfigured uses the enterprise defaults ("Use configured
	// settings"); it is the source of an estate that names none.
	SourceConfigured = "configured"
	// SourceEnterprise has its own settings written in the enterprise
	// config, under the estate ("Set preferences from Enterprise level").
	SourceEnterprise = "enterprise"
	// SourceEstate has its own file, NAME.yaml in estates_dir
	// (estates.d next to the config by default), kept by the estate's
	// admins ("Set preferences from sub estate level").
	SourceEstate = "estate"
)

// DefaultEstate is the name of the estate of clients that no estate's
// subnets hold: it has the enterprise defaults.
const DefaultEstate = "default"

// EstatesDir is the default directory, next to the config, of the
// estates whose source is SourceEstate (Config.EstatesDir).
const EstatesDir = "estates.d"

// estatesDir returns the directory of the estates' own files.
func (cfg *Config) estatesDir() string {
	dir := cfg.EstatesDir
	if dir == "" {
		dir = EstatesDir
	}
	if filepath.IsAbs(dir) {
		return filepath.Clean(dir)
	}
	return filepath.Join(filepath.Dir(cfg.Path), dir)
}

// MaxEstates bounds the estates of one config, so that the label values
// of the metrics stay bounded.
const MaxEstates = 10000

// EstateConfig is one entry of the config's estates list.
type EstateConfig struct {
	Name    string   `yaml:"name"`
	Subnets []string `yaml:"subnets"`
	// Source is SourceConfigured (when empty), SourceEnterprise or
	// SourceEstate.
	Source string `yaml:"source"`
	// Policy holds the estate's own settings when Source is
	// SourceEnterprise; an unset field falls back to the enterprise
	// default. Nil (or any other source) means none.
	Policy *Policy `yaml:"policy"`
}

// Estate is a part of the enterprise served with its own policy: a name,
// the client subnets it owns, its effective policy and the matcher
// compiled for it (shared with every estate of the same policy).
type Estate struct {
	Name    string
	Source  string // SourceConfigured, SourceEnterprise or SourceEstate
	Subnets []netip.Prefix
	// File is the estate's own file (SourceEstate), "" otherwise.
	File string
	// Own is the policy block the estate wrote itself (empty for
	// SourceConfigured); the rest comes from the enterprise.
	Own Policy
	// Policy is the effective policy.
	Policy EffectivePolicy
	// Matcher judges the estate's connections. Estates with the same
	// policy (mode, OS, sections, licences, regions, Live Response) share
	// one.
	Matcher *Matcher
	// Enabled are the groups the policy turns on, in catalog order.
	Enabled []*Group
	// Index is the estate's position in Ruleset.Estates (0 for the
	// default estate).
	Index int
	// Pos is where the estate is declared in the config.
	Pos Pos
	// Stale is the error that kept the estate's last good file in force,
	// nil when its file loaded.
	Stale error
}

// Lookup gives the estate's verdict for a connection from client to host
// and port: the matcher's, and for a Live Response host a deny when client
// is one of the devices excluded from Live Response. It does not allocate
// where Matcher.Lookup does not.
func (es *Estate) Lookup(client netip.Addr, host string, port uint16) Verdict {
	v := es.Matcher.Lookup(host, port)
	if v.Allow && v.Entry.LiveResponse && es.Excluded(client) {
		return Verdict{Reason: ReasonDeviceExcluded, Entry: v.Entry}
	}
	return v
}

// Excluded reports whether client is a device excluded from Live Response.
func (es *Estate) Excluded(client netip.Addr) bool {
	// A link-local client's address carries its interface as a zone, and
	// netip.Prefix.Contains never matches a zoned address: drop it, or
	// such a device would escape its exclusion.
	client = client.Unmap().WithZone("")
	for _, p := range es.Policy.Exclusions {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// Estate returns the estate called name, or nil.
func (rs *Ruleset) Estate(name string) *Estate {
	for _, e := range rs.Estates {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// EstateFor returns the estate of a client address: the estate with the
// longest subnet that holds it, or the default estate. It takes no lock
// and does not allocate.
func (rs *Ruleset) EstateFor(client netip.Addr) *Estate {
	if i := rs.subnets.lookup(client); i >= 0 {
		return rs.Estates[i]
	}
	return rs.Estates[0]
}

var estateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidEstateName reports whether name may name an estate: 1 to 63 of
// a-z, 0-9, _ and -, starting with a letter or digit.
func ValidEstateName(name string) bool { return estateNameRE.MatchString(name) }

// estateFile reads an estate's own file for SourceEstate; Load gives one
// that hashes and records the file, Select one that only reads it.
type estateFile func(path string) ([]byte, error)

// buildEstates resolves the enterprise defaults and every estate of cfg,
// compiles one matcher per distinct policy (reusing prev's when the
// catalogs did not change) and fills rs. readFile reads an estate's own
// file; nil means readLimited.
func buildEstates(rs *Ruleset, prev *Ruleset, readFile estateFile) error {
	cfg := rs.Config
	if readFile == nil {
		readFile = func(p string) ([]byte, error) { return readLimited(p, maxEstateFileBytes) }
	}
	b := &estateBuild{rs: rs, prev: prev, readFile: readFile, reuse: map[string]*compiled{},
		seen: map[string]int{}, fileLines: map[string]map[string]int{}}
	if err := validatePolicy(&cfg.Policy, where{cfg.Path, cfg.lines, "policy."}, rs.Catalogs, b.warn); err != nil {
		return err
	}
	if len(cfg.Estates) > MaxEstates {
		return Pos{cfg.Path, cfg.lines["estates"]}.Errorf("estates: %d estates; at most %d", len(cfg.Estates), MaxEstates)
	}
	if prev != nil { // same catalogs (selectRules checked)
		b.reuse = prev.compiled
	}
	rs.compiled = map[string]*compiled{}
	rs.Estates = []*Estate{{Name: DefaultEstate, Source: SourceConfigured, Pos: Pos{cfg.Path, cfg.lines["policy"]}}}
	for i, ec := range cfg.Estates {
		es, err := b.readEstate(i, ec)
		if err != nil {
			return err
		}
		rs.Estates = append(rs.Estates, es)
	}
	var err error
	if rs.subnets, err = newEstateTable(b.prefixes); err != nil {
		return err
	}
	var noContact []string
	for _, es := range rs.Estates {
		es.Policy = effective(inherit(es.Own, cfg.Policy), rs.Catalogs)
		if es.Own.Contacts == nil && cfg.Policy.Contacts == nil && len(cfg.Estates) > 0 {
			noContact = append(noContact, es.Name)
		}
		b.check(es)
		if err := b.compileEstate(es); err != nil {
			return err
		}
	}
	if len(noContact) > 0 {
		// Contacts change no verdict: an estates config without them
		// serves; only alert routing has no one to call.
		b.warn(Pos{cfg.Path, cfg.lines["policy"]}.Errorf("policy.contacts: estates %s have no primary contact (none of their own, none from the enterprise): alert routing has no one to call, and egressgate alertmanager-config refuses until they have one; set policy.contacts.primary", strings.Join(noContact, ", ")))
	}
	return nil
}

// estateBuild is the state of one buildEstates.
type estateBuild struct {
	rs, prev  *Ruleset
	readFile  estateFile
	reuse     map[string]*compiled // prev's matchers, by policy
	prefixes  []estatePrefix
	seen      map[string]int            // the line of each estate name
	fileLines map[string]map[string]int // an estate file's key lines, by estate
}

// warn adds a warning to the ruleset.
func (b *estateBuild) warn(err error) { b.rs.Warnings = append(b.rs.Warnings, err) }

// compileFor returns the matcher of a policy: one already compiled for
// this ruleset, prev's for the same policy, or a new one.
func (b *estateBuild) compileFor(pol *EffectivePolicy) (*compiled, error) {
	key := pol.matcherKey()
	if c := b.rs.compiled[key]; c != nil {
		return c, nil
	}
	c := b.reuse[key]
	if c == nil {
		m, enabled, err := compilePolicy(b.rs.Catalogs, pol)
		if err != nil {
			return nil, err
		}
		c = &compiled{m, enabled}
	}
	b.rs.compiled[key] = c
	return c, nil
}

// readEstate checks the i-th estate of the config (name, subnets, source)
// and reads its own settings.
func (b *estateBuild) readEstate(i int, ec EstateConfig) (*Estate, error) {
	cfg := b.rs.Config
	key := fmt.Sprintf("estates.%d", i)
	at := func(k string) Pos { return Pos{cfg.Path, cfg.lines[key+"."+k]} }
	pos := Pos{cfg.Path, cfg.lines[key]}
	if !estateNameRE.MatchString(ec.Name) || ec.Name == DefaultEstate {
		return nil, at("name").Errorf("estates: name %q: want 1 to 63 of a-z, 0-9, _ and - (and not %q, the estate of clients in no subnet)", ec.Name, DefaultEstate)
	}
	if prevLine, dup := b.seen[ec.Name]; dup {
		return nil, at("name").Errorf("estates: name %q is already used at line %d", ec.Name, prevLine)
	}
	b.seen[ec.Name] = pos.Line
	es := &Estate{Name: ec.Name, Source: ec.Source, Index: i + 1, Pos: pos}
	for j, s := range ec.Subnets {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, at(fmt.Sprintf("subnets.%d", j)).Errorf("estates: %s: subnets: %v", ec.Name, err)
		}
		es.Subnets = append(es.Subnets, p)
		b.prefixes = append(b.prefixes, estatePrefix{p, int32(es.Index), at(fmt.Sprintf("subnets.%d", j))})
	}
	if es.Source == "" {
		es.Source = SourceConfigured
	}
	if ec.Policy != nil && es.Source != SourceEnterprise {
		return nil, at("policy").Errorf("estates: %s: policy: only an estate with source: %s has settings in this file (source is %q)", ec.Name, SourceEnterprise, es.Source)
	}
	switch es.Source {
	case SourceConfigured:
	case SourceEnterprise:
		if ec.Policy != nil {
			es.Own = *ec.Policy
		}
		if err := validatePolicy(&es.Own, where{cfg.Path, cfg.lines, key + ".policy."}, b.rs.Catalogs, b.warn); err != nil {
			return nil, err
		}
	case SourceEstate:
		if err := b.readEstateFile(es, at("source")); err != nil {
			return nil, err
		}
	default:
		return nil, at("source").Errorf("estates: %s: source: %q is not %q, %q or %q", ec.Name, es.Source, SourceConfigured, SourceEnterprise, SourceEstate)
	}
	return es, nil
}

// readEstateFile reads the settings of an estate with source estate from
// its own file. When the file is broken but was good in prev, the estate
// keeps its last good settings, marked Stale, and no other estate
// notices. source is where the config names the source.
func (b *estateBuild) readEstateFile(es *Estate, source Pos) error {
	cfg, catalogs := b.rs.Config, b.rs.Catalogs
	es.File = filepath.Join(cfg.estatesDir(), es.Name+".yaml")
	own, lines, err := readEstatePolicy(es.File, b.readFile, catalogs, b.warn)
	b.fileLines[es.Name] = lines
	if err == nil {
		// A setting of the file that cannot hold with the rest (exact
		// mode with AD Sync on) shows only when compiled: it is the
		// file's error too.
		pol := effective(inherit(own, cfg.Policy), catalogs)
		if _, cerr := b.compileFor(&pol); cerr != nil {
			line := lines["mode"]
			if own.Mode == "" {
				line = lines["enable"]
			}
			err = Pos{es.File, line}.Errorf("%s", strings.TrimPrefix(cerr.Error(), "policy."))
		}
	}
	if err != nil {
		var old *Estate
		if b.prev != nil {
			old = b.prev.Estate(es.Name)
		}
		if old == nil || old.Source != SourceEstate || old.File != es.File {
			if errors.Is(err, os.ErrNotExist) {
				// Say which estate wants the file, and where.
				return source.Errorf("estates: %s: %v", es.Name, err)
			}
			return err
		}
		// The estate's admins broke their file: keep its last good
		// settings, and no other estate notices.
		own, es.Stale = old.Own, err
		b.rs.Problems = append(b.rs.Problems, err)
	}
	es.Own = own
	return nil
}

// check warns of settings in an estate's effective policy that cannot
// act.
func (b *estateBuild) check(es *Estate) {
	cfg := b.rs.Config
	if es.Policy.ThreatResponse == ThreatAuthorize && !es.Policy.LiveResponse {
		b.warn(es.Pos.Errorf("estate %s: threat response %q with Live Response off: the MDR team is prompted to use Live Response and cannot; set live_response: on, and exclude sensitive devices with live_response_exclusions", es.Name, ThreatAuthorize))
	}
	if inherited := inherit(es.Own, cfg.Policy).ActIfUnreachable; inherited != nil && *inherited && es.Policy.ThreatResponse != ThreatCollaborate {
		// validatePolicy refused both in one block; this one came
		// through inheritance, so say where it was set.
		at := Pos{cfg.Path, cfg.lines["policy.act_if_unreachable"]}
		switch {
		case es.Own.ActIfUnreachable == nil:
		case es.Source == SourceEstate:
			at = Pos{es.File, b.fileLines[es.Name]["act_if_unreachable"]}
		default:
			at = Pos{cfg.Path, cfg.lines[fmt.Sprintf("estates.%d.policy.act_if_unreachable", es.Index-1)]}
		}
		b.warn(at.Errorf("estate %s: act_if_unreachable is ignored: only the %q threat response acts when the contacts cannot be reached, and its threat response is %q", es.Name, ThreatCollaborate, es.Policy.ThreatResponse))
	}
}

// compileEstate gives an estate the matcher of its effective policy, or
// an error at the line that set the mode that cannot hold.
func (b *estateBuild) compileEstate(es *Estate) error {
	cfg := b.rs.Config
	c, err := b.compileFor(&es.Policy)
	if err != nil {
		// An estate file's own conflict was caught when it was read;
		// this is its last good settings against new enterprise
		// defaults.
		p := Pos{cfg.Path, cfg.lines["policy.mode"]}
		switch {
		case es.Own.Mode != "" && es.Source == SourceEstate:
			p = Pos{es.File, 0}
		case es.Own.Mode != "":
			p = Pos{cfg.Path, cfg.lines[fmt.Sprintf("estates.%d.policy.mode", es.Index-1)]}
		}
		if es.Index == 0 {
			return p.Errorf("%v", err)
		}
		return p.Errorf("estate %s: %v", es.Name, err)
	}
	es.Matcher, es.Enabled = c.matcher, c.enabled
	return nil
}

// compiled is the matcher of one distinct policy.
type compiled struct {
	matcher *Matcher
	enabled []*Group
}

// Matchers returns the distinct matchers of the ruleset, the default
// estate's first.
func (rs *Ruleset) Matchers() []*Matcher {
	var out []*Matcher
	for _, e := range rs.Estates {
		if !slices.Contains(out, e.Matcher) {
			out = append(out, e.Matcher)
		}
	}
	return out
}

// loadEstateFile reads and validates an estate's own file: a policy block
// at the top level.
func loadEstateFile(path string, readFile estateFile, catalogs []*Catalog, warn func(error)) (Policy, error) {
	p, _, err := readEstatePolicy(path, readFile, catalogs, warn)
	return p, err
}

// readEstatePolicy is loadEstateFile that also returns the line of each
// key.
func readEstatePolicy(path string, readFile estateFile, catalogs []*Catalog, warn func(error)) (Policy, map[string]int, error) {
	data, err := readFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Policy{}, nil, &PosError{Pos: Pos{File: path}, Err: fmt.Errorf("estate file missing: an estate with source: %s needs it: %w", SourceEstate, err)}
		}
		return Policy{}, nil, readError(path, "estate file", err)
	}
	var p Policy
	fix := "write at least one setting (an estate that wants the enterprise defaults has source: " + SourceConfigured + ")"
	lines, err := decodeFile(path, "estate file", maxEstateFileBytes, data, fix, &p)
	if err != nil {
		return Policy{}, nil, err
	}
	if err := validatePolicy(&p, where{path, lines, ""}, catalogs, warn); err != nil {
		return Policy{}, nil, err
	}
	return p, lines, nil
}
