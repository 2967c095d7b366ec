package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Threat responses, after the MTR and MDR preferences: how the vendor's
// team acts on an active threat. They change no verdict.
const (
	ThreatNotify      = "notify"      // tell the contacts (the default)
	ThreatCollaborate = "collaborate" // work with the contacts; may act if they cannot be reached
	ThreatAuthorize   = "authorize"   // act, then tell; prompts to turn Live Response on
)

// Live Response settings.
const (
	LiveResponseOn  = "on"
	LiveResponseOff = "off"
)

// EffectivePolicy is an estate's policy with every unset field filled in:
// from the enterprise defaults, then from the built-in defaults.
type EffectivePolicy struct {
	Mode    string   // ModeWildcard or ModeExact
	OS      []string // never empty
	Enable  []string
	Disable []string
	// Licenses are the licence IDs the estate holds; nil means every
	// licence (no licence filter).
	Licenses []string
	// Regions are the Central regions in use; nil means every region.
	Regions          []string
	ThreatResponse   string
	ActIfUnreachable bool
	LiveResponse     bool
	// Exclusions are the devices never admitted to Live Response hosts.
	Exclusions []netip.Prefix
	Contacts   Contacts
}

// matcherKey is what the compiled matcher of a policy depends on: two
// estates with the same key share one Matcher.
func (p *EffectivePolicy) matcherKey() string {
	var b strings.Builder
	list := func(name string, l []string, sorted bool) {
		if sorted {
			l = slices.Sorted(slices.Values(l))
		}
		fmt.Fprintf(&b, "%s=%q;", name, l)
	}
	b.WriteString(p.Mode + ";")
	list("os", p.OS, true)
	list("enable", p.Enable, false)
	list("disable", p.Disable, false)
	if p.Licenses == nil {
		b.WriteString("licenses=*;")
	} else {
		list("licenses", p.Licenses, true)
	}
	if p.Regions == nil {
		b.WriteString("regions=*;")
	} else {
		list("regions", p.Regions, true)
	}
	fmt.Fprintf(&b, "lr=%t", p.LiveResponse)
	return b.String()
}

// where locates the fields of one policy block: the file it was written
// in, the line of each key, and the dotted path of the block in that file.
type where struct {
	file   string
	lines  map[string]int
	prefix string // "policy.", "estates.2.policy." or "" for an estate file
}

func (w where) at(key string) Pos { return Pos{w.file, w.lines[w.prefix+key]} }

// field names a field of the block in errors: "policy.mode", or "mode" in
// an estate file.
func (w where) field(key string) string {
	if w.prefix == "" || strings.HasPrefix(w.prefix, "policy.") {
		return w.prefix + key
	}
	return "policy." + key
}

// validatePolicy checks one policy block as written, against the
// catalogs: every ID it names exists, every value is one of its kind. warn
// receives what check should only warn about.
func validatePolicy(p *Policy, w where, catalogs []*Catalog, warn func(error)) error {
	switch p.Mode {
	case "", ModeWildcard, ModeExact:
	default:
		return w.at("mode").Errorf("%s: %q is not %q or %q", w.field("mode"), p.Mode, ModeWildcard, ModeExact)
	}
	for i, o := range p.OS {
		if !slices.Contains(AllOS(), o) {
			return w.at(fmt.Sprintf("os.%d", i)).Errorf("%s: %q is not one of %s", w.field("os"), o, strings.Join(AllOS(), ", "))
		}
	}
	for _, list := range []struct {
		key string
		ids []string
	}{{"enable", p.Enable}, {"disable", p.Disable}} {
		for i, id := range list.ids {
			if _, _, err := findID(catalogs, id); err != nil {
				return w.at(fmt.Sprintf("%s.%d", list.key, i)).Errorf("%s: %w", w.field(list.key), err)
			}
		}
	}
	for i, id := range p.Disable {
		if slices.Contains(p.Enable, id) {
			return w.at(fmt.Sprintf("disable.%d", i)).Errorf("%s: %q is both enabled and disabled", w.field("disable"), id)
		}
	}
	known := catalogLicenses(catalogs)
	for i, l := range p.Licenses {
		if !slices.Contains(known, l) {
			return w.at(fmt.Sprintf("licenses.%d", i)).Errorf("%s: %q is not a licence of the catalogs (known: %s)", w.field("licenses"), l, strings.Join(known, ", "))
		}
	}
	regions := catalogRegions(catalogs)
	for i, r := range p.Regions {
		if !slices.Contains(regions, r) {
			return w.at(fmt.Sprintf("regions.%d", i)).Errorf("%s: %q is not a region the catalogs name (known: %s)", w.field("regions"), r, strings.Join(regions, ", "))
		}
	}
	switch p.ThreatResponse {
	case "", ThreatNotify, ThreatCollaborate, ThreatAuthorize:
	default:
		return w.at("threat_response").Errorf("%s: %q is not %q, %q or %q", w.field("threat_response"), p.ThreatResponse, ThreatNotify, ThreatCollaborate, ThreatAuthorize)
	}
	if p.ActIfUnreachable != nil && *p.ActIfUnreachable && p.ThreatResponse != "" && p.ThreatResponse != ThreatCollaborate {
		return w.at("act_if_unreachable").Errorf("%s: only the %q threat response acts when the contacts cannot be reached; this block has %q", w.field("act_if_unreachable"), ThreatCollaborate, p.ThreatResponse)
	}
	switch p.LiveResponse {
	case "", LiveResponseOn, LiveResponseOff:
	default:
		return w.at("live_response").Errorf("%s: %q is not %q or %q", w.field("live_response"), p.LiveResponse, LiveResponseOn, LiveResponseOff)
	}
	for i, x := range p.LiveResponseExclusions {
		if _, err := parsePrefix(x); err != nil {
			return w.at(fmt.Sprintf("live_response_exclusions.%d", i)).Errorf("%s: %v", w.field("live_response_exclusions"), err)
		}
	}
	if p.Contacts != nil {
		if _, err := p.Contacts.contacts(w.at, w.field("contacts"), warn); err != nil {
			return err
		}
	}
	return nil
}

// parsePrefix reads an address ("10.2.99.7", a single device) or a CIDR
// ("10.2.99.0/24"), IPv4-mapped IPv6 unmapped.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
		}
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; write %s", s, p.Masked())
	}
	return p, nil
}

// catalogLicenses lists the licence IDs the catalogs define.
func catalogLicenses(catalogs []*Catalog) []string {
	var out []string
	for _, c := range catalogs {
		for _, l := range c.Licenses {
			if !slices.Contains(out, l.ID) {
				out = append(out, l.ID)
			}
		}
	}
	return out
}

// catalogRegions lists the regions the catalogs' entries carry, sorted.
func catalogRegions(catalogs []*Catalog) []string {
	var out []string
	for _, c := range catalogs {
		for _, e := range c.Entries {
			if e.Region != "" && !slices.Contains(out, e.Region) {
				out = append(out, e.Region)
			}
		}
	}
	slices.Sort(out)
	return out
}

// inherit returns own with every field it leaves unset taken from def. A
// field the estate sets is never replaced: lists are taken whole, not
// merged, so an estate that names its licences has exactly those.
func inherit(own, def Policy) Policy {
	p := own
	str := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	lst := func(dst *[]string, v []string) {
		if *dst == nil {
			*dst = v
		}
	}
	str(&p.Mode, def.Mode)
	lst(&p.OS, def.OS)
	// enable and disable name the same sections from two sides: what an
	// estate enables is not disabled by an inherited disable, and the
	// other way round.
	without := func(l, drop []string) []string {
		if l == nil {
			return nil
		}
		out := []string{}
		for _, id := range l {
			if !slices.Contains(drop, id) {
				out = append(out, id)
			}
		}
		return out
	}
	if p.Enable == nil {
		p.Enable = without(def.Enable, own.Disable)
	}
	if p.Disable == nil {
		p.Disable = without(def.Disable, own.Enable)
	}
	lst(&p.Licenses, def.Licenses)
	lst(&p.Regions, def.Regions)
	str(&p.ThreatResponse, def.ThreatResponse)
	if p.ActIfUnreachable == nil {
		p.ActIfUnreachable = def.ActIfUnreachable
	}
	str(&p.LiveResponse, def.LiveResponse)
	lst(&p.LiveResponseExclusions, def.LiveResponseExclusions)
	if p.Contacts == nil {
		p.Contacts = def.Contacts
	}
	return p
}

// effective fills in the built-in defaults of a policy whose blocks were
// validated: wildcard mode, every OS, notify, and Live Response on where
// the licences include one the catalogs' Live Response hosts are for (XDR
// or MDR), off otherwise. The catalog page asks for the Live Response
// hosts wherever such a licence is held, so a config that says nothing
// admits the page as published; "off" is the operator's hardening choice.
func effective(p Policy, catalogs []*Catalog) EffectivePolicy {
	e := EffectivePolicy{Mode: p.Mode, OS: p.OS, Enable: p.Enable, Disable: p.Disable,
		Licenses: p.Licenses, Regions: p.Regions, ThreatResponse: p.ThreatResponse}
	if e.Mode == "" {
		e.Mode = ModeWildcard
	}
	if len(e.OS) == 0 {
		e.OS = AllOS()
	}
	if e.ThreatResponse == "" {
		e.ThreatResponse = ThreatNotify
	}
	e.ActIfUnreachable = p.ActIfUnreachable != nil && *p.ActIfUnreachable && e.ThreatResponse == ThreatCollaborate
	switch p.LiveResponse {
	case LiveResponseOn:
		e.LiveResponse = true
	case LiveResponseOff:
		e.LiveResponse = false
	default:
		e.LiveResponse = licensedForLiveResponse(p.Licenses, catalogs)
	}
	for _, x := range p.LiveResponseExclusions {
		pfx, _ := parsePrefix(x) // validated
		e.Exclusions = append(e.Exclusions, pfx)
	}
	if p.Contacts != nil {
		e.Contacts, _ = p.Contacts.contacts(func(string) Pos { return Pos{} }, "", nil) // validated
	}
	return e
}

// licensedForLiveResponse reports whether licences (nil: every licence)
// include one that some Live Response host of the catalogs is for. A
// Live Response host that names no licence is for every licence.
func licensedForLiveResponse(licences []string, catalogs []*Catalog) bool {
	if licences == nil {
		return true
	}
	for _, c := range catalogs {
		for _, e := range c.Entries {
			if !e.LiveResponse {
				continue
			}
			if len(e.Licenses) == 0 || slices.ContainsFunc(e.Licenses, func(l string) bool { return slices.Contains(licences, l) }) {
				return true
			}
		}
	}
	return false
}

// denyReason says why pol refuses e although e's group is on, or
// ReasonNone. The order matters when several apply: the licence first
// (nothing else matters without it), then Live Response, then the region.
func (pol *EffectivePolicy) denyReason(e *Entry) Reason {
	if pol.Licenses != nil && len(e.Licenses) > 0 && !slices.ContainsFunc(e.Licenses, func(l string) bool { return slices.Contains(pol.Licenses, l) }) {
		return ReasonNotLicensed
	}
	if e.LiveResponse && !pol.LiveResponse {
		return ReasonLiveResponseOff
	}
	if pol.Regions != nil && e.Region != "" && !slices.Contains(pol.Regions, e.Region) {
		return ReasonRegionExcluded
	}
	return ReasonNone
}
