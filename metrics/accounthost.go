package metrics

import (
	"fmt"
	"io"

	"github.com/egressgate/egressgate/rules"
	"github.com/egressgate/egressgate/rules/upkeep"
)

// AccountHostHint marks a denied host that has the shape of a Sophos
// Central account's own management, API or station host (see
// upkeep.LooksLikeAccountHost): the hint to confirm it and the catalog
// line that would admit it.
type AccountHostHint struct {
	Role  string `json:"role"`
	Shape string `json:"shape"`
	Hint  string `json:"hint"` // upkeep.AccountHostHint
	Add   string `json:"add"`  // plain-list catalog line, "host:port"
}

// accountHostHint returns the hint for a host denied for reason and port,
// or nil. Only a host no entry names gets one: a port refused on a named
// host is another problem.
// host is as /misses shows it (escaped, lower case): an escaped name never
// has a shape, so nothing a client sends reaches the hint unvalidated.
func accountHostHint(host, reason string, port uint16) *AccountHostHint {
	if reason != rules.ReasonNotInCatalog.String() {
		return nil
	}
	ah, ok := upkeep.LooksLikeAccountHost(host)
	if !ok {
		return nil
	}
	return &AccountHostHint{Role: ah.Role, Shape: ah.Shape, Hint: upkeep.AccountHostHint, Add: ah.Line(host, port)}
}

// writeAccountHostHints lists, after the top misses, those that look like
// the account's own hosts, with the line to add. The hint is computed
// here rather than read from the source, so a report on an older
// egressgate's /misses shows it too.
func writeAccountHostHints(w io.Writer, ms []MissUsage) {
	first := true
	for _, m := range ms {
		h := accountHostHint(m.Host, m.LastReason, m.LastPort)
		if h == nil {
			continue
		}
		if first {
			fmt.Fprintf(w, "\nACCOUNT HOSTS AMONG THE MISSES\n")
			first = false
		}
		fmt.Fprintf(w, "%s\t%s (%s, shape %s); add: %s\n", termSafe(m.Host), h.Hint, h.Role, h.Shape, h.Add)
	}
}
