package metrics

import (
	"fmt"
	"slices"

	"github.com/egressgate/egressgate/rules"
)

// States of a catalog entry: the one vocabulary of /rules (text, HTML,
// JSON), /rules?estate=, the report and the dashboard. EntryState is the
// only place that decides which applies.
const (
	StateUsed         = "used"                   // some hit reached its upstream
	StateNeverReached = "admitted-never-reached" // admitted, but every upstream attempt failed
	StateNeverUsed    = "never-used"             // admitted, no hit
	StateRefused      = "refused"                // the policy refuses it; see the reason
)

// States lists the states in the order the views show them.
var States = []string{StateUsed, StateNeverReached, StateNeverUsed, StateRefused}

// Reasons an entry is refused beyond the matcher's deny reasons
// (not-licensed, live-response-off, region-excluded): the entry is not in
// the estate's policy at all.
const (
	RefusedSectionOff = "section-off" // none of its groups is on
	RefusedExactMode  = "exact-mode"  // a wildcard or glob, and the policy is in exact mode
	RefusedOSExcluded = "os-excluded" // not for any OS the policy serves
)

// EntryState says what an entry's hits mean: refused when the policy
// refuses it (refused is the reason, "" when admitted), else used when a
// hit reached its upstream, admitted-never-reached when hits came and none
// got through, never-used without a hit. A refused entry stays refused
// whatever it counted before a reload refused it: it cannot be used now.
func EntryState(hits, failed uint64, refused string) string {
	switch {
	case refused != "":
		return StateRefused
	case hits > failed:
		return StateUsed
	case hits > 0:
		return StateNeverReached
	}
	return StateNeverUsed
}

// StateCounts counts entries per state, as the top level of /rules's JSON
// carries them.
type StateCounts struct {
	Used         int `json:"used"`
	NeverReached int `json:"admitted_never_reached"`
	NeverUsed    int `json:"never_used"`
	Refused      int `json:"refused"`
}

// String says the counts as the text views print them.
func (c StateCounts) String() string {
	return fmt.Sprintf("%d used, %d admitted but never reached, %d never used, %d refused", c.Used, c.NeverReached, c.NeverUsed, c.Refused)
}

// add counts one entry in state.
func (c *StateCounts) add(state string) {
	switch state {
	case StateUsed:
		c.Used++
	case StateNeverReached:
		c.NeverReached++
	case StateRefused:
		c.Refused++
	default:
		c.NeverUsed++
	}
}

// settle sets the row's state from its hits, failures and reason, and
// counts it.
func (c *StateCounts) settle(u *RuleUsage) {
	u.State = EntryState(u.Hits, u.UpstreamFailures, u.Reason)
	c.add(u.State)
}

// countStates counts rows whose State is set.
func countStates(rows []RuleUsage) StateCounts {
	var c StateCounts
	for _, u := range rows {
		c.add(u.State)
	}
	return c
}

// absentReason says why an entry of the catalogs is not in a policy's
// matcher: its sections are off, the policy is in exact mode, or it is for
// no OS the policy serves.
func absentReason(e *rules.Entry, es *rules.Estate) string {
	on := false
	for _, g := range e.Groups {
		if slices.Contains(es.Enabled, g) {
			on = true
		}
	}
	switch {
	case !on:
		return RefusedSectionOff
	case es.Policy.Mode == rules.ModeExact && e.HasWildcard():
		return RefusedExactMode
	}
	return RefusedOSExcluded
}

// SectionRows are the rows of one catalog section, for the grouped /rules
// page.
type SectionRows struct {
	Section string // "" for entries of no section (plain lists)
	StateCounts
	Rules []RuleUsage
}

// BySection groups the rows by their first section, in the order the
// sections first appear, and orders each section's rows by state (used,
// admitted but never reached, refused, never used), keeping the matcher's
// order within a state: what works, what fails, what the policy refuses,
// then what nobody asked for.
func (p *RulesPage) BySection() []SectionRows {
	var out []SectionRows
	at := map[string]int{}
	for _, u := range p.Rules {
		sec := ""
		if len(u.Sections) > 0 {
			sec = u.Sections[0]
		}
		i, ok := at[sec]
		if !ok {
			i = len(out)
			at[sec] = i
			out = append(out, SectionRows{Section: sec})
		}
		out[i].Rules = append(out[i].Rules, u)
		out[i].add(u.State)
	}
	rank := map[string]int{StateUsed: 0, StateNeverReached: 1, StateRefused: 2, StateNeverUsed: 3}
	for _, sec := range out {
		slices.SortStableFunc(sec.Rules, func(a, b RuleUsage) int { return rank[a.State] - rank[b.State] })
	}
	return out
}
