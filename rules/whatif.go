package rules

import (
	"fmt"
	"slices"
	"strings"
)

// This file is the policy what-if: which change of a ruleset's policy
// would admit a target it denies. explain prints the answers as hints.

// PolicyHint is a change of the policy under which a denied target would
// be admitted.
type PolicyHint struct {
	What   string // e.g. `section "remote-assistance" (Remote assistance) is off`
	Rule   string // the entry that would admit the target
	Config string // the policy lines that make the change, YAML
}

// policyChange is one candidate change of the policy.
type policyChange struct {
	what string
	pol  Policy
	// owns reports whether the change is what puts e in force, so that a
	// section is not credited with what the mode switch alone admits.
	owns func(e *Entry) bool
}

// Hints returns the policy changes under which host:port, denied by rs,
// would be admitted: an optional section or group that is off (or one the
// policy disables), wildcard instead of exact mode, every OS instead of
// some. Each is tried on its own by compiling the catalogs again.
func (rs *Ruleset) Hints(host string, port uint16) []PolicyHint {
	pol := rs.Config.Policy
	on := map[*Group]bool{}
	for _, g := range rs.Enabled {
		on[g] = true
	}
	// enable turns id on: out of policy.disable when it is there, else
	// into policy.enable.
	enable := func(kind, id, title string) (string, Policy) {
		p := pol
		what := fmt.Sprintf("%s %q (%s) is off", kind, id, title)
		if slices.Contains(p.Disable, id) {
			p.Disable = slices.DeleteFunc(slices.Clone(p.Disable), func(s string) bool { return s == id })
			what += " by policy.disable"
		} else {
			p.Enable = append(slices.Clone(p.Enable), id)
		}
		return what, p
	}
	var changes []policyChange
	for _, c := range rs.Catalogs {
		for _, s := range c.Sections {
			if !slices.ContainsFunc(c.Groups, func(g *Group) bool { return g.Section == s && on[g] }) {
				what, p := enable("section", s.ID, s.Title)
				changes = append(changes, policyChange{what, p, func(e *Entry) bool { return slices.Contains(e.Sections(), s.ID) }})
			}
		}
		for _, g := range c.Groups {
			sectionOn := g.Section == nil || slices.ContainsFunc(c.Groups, func(o *Group) bool { return o.Section == g.Section && on[o] })
			if !on[g] && sectionOn {
				what, p := enable("group", g.ID, g.Title)
				changes = append(changes, policyChange{what, p, func(e *Entry) bool { return slices.Contains(e.Groups, g) }})
			}
		}
	}
	if pol.Mode == ModeExact {
		p := pol
		p.Mode = ModeWildcard
		changes = append(changes, policyChange{"the policy is in exact mode, which leaves out every wildcard entry", p,
			(*Entry).HasWildcard})
	}
	if len(pol.OS) > 0 && len(pol.OS) < len(AllOS()) {
		p := pol
		p.OS = nil
		changes = append(changes, policyChange{fmt.Sprintf("the policy keeps only the per-OS entries of %s", strings.Join(pol.OS, ", ")), p,
			func(e *Entry) bool { return !e.ForOS(pol.OS) }})
	}

	var hints []PolicyHint
	for _, ch := range changes {
		v, p, ok := admitsWith(rs, ch.pol, host, port)
		if !ok || !ch.owns(v.Entry) {
			continue
		}
		what := ch.what
		if p.Mode != ch.pol.Mode {
			what += " (and it needs wildcard mode)"
		}
		if len(ch.pol.OS) == 0 && len(pol.OS) > 0 {
			// Name the OSes to add rather than dropping the filter.
			p.OS = slices.Clone(pol.OS)
			for _, o := range v.Entry.OS {
				if !slices.Contains(p.OS, o) {
					p.OS = append(p.OS, o)
				}
			}
		}
		hints = append(hints, PolicyHint{What: what, Rule: v.Entry.Pattern, Config: policyYAML(pol, p)})
	}
	return hints
}

// admitsWith compiles rs's catalogs under p and looks host:port up. An
// exact-mode policy that cannot take the change (a section that needs
// wildcards) is tried again in wildcard mode; the policy used is returned.
func admitsWith(rs *Ruleset, p Policy, host string, port uint16) (Verdict, Policy, bool) {
	for {
		cfg := *rs.Config
		cfg.Policy = p
		alt, err := Select(&cfg, rs.Catalogs)
		if err != nil {
			if p.Mode != ModeExact {
				return Verdict{}, p, false
			}
			p.Mode = ModeWildcard
			continue
		}
		v := alt.Matcher.Lookup(host, port)
		return v, p, v.Allow && v.Entry != nil
	}
}

// policyYAML prints the policy keys that differ between from and to, as
// they would be written in the config file.
func policyYAML(from, to Policy) string {
	var b strings.Builder
	b.WriteString("policy:\n")
	list := func(key string, a, b2 []string) {
		if !slices.Equal(a, b2) {
			fmt.Fprintf(&b, "  %s: [%s]\n", key, strings.Join(b2, ", "))
		}
	}
	if from.Mode != to.Mode {
		fmt.Fprintf(&b, "  mode: %s\n", to.Mode)
	}
	list("os", from.OS, to.OS)
	list("enable", from.Enable, to.Enable)
	list("disable", from.Disable, to.Disable)
	return b.String()
}
