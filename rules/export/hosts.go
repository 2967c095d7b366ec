package export

import (
	"fmt"
	"io"
	"strings"

	"github.com/egressgate/egressgate/rules"
)

// WriteHosts writes the concrete names the estate admits, one per line,
// for DNS allowlists and tools that take a list of names. Ports are not
// part of the format; wildcard, glob and CIDR entries cannot be written
// as names and are listed as comments.
func WriteHosts(w io.Writer, v *View) error {
	var b strings.Builder
	writeHeader(&b, v.header())
	admitted, _ := v.split()
	seen := map[string]bool{}
	var skipped []*rules.Entry
	for _, e := range admitted {
		if e.Kind != rules.KindExact {
			skipped = append(skipped, e)
			continue
		}
		if !seen[e.Pattern] {
			seen[e.Pattern] = true
			fmt.Fprintln(&b, e.Pattern)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "# %d entries cannot be names in this format; allow them another way:\n", len(skipped))
		for _, e := range skipped {
			fmt.Fprintf(&b, "#   %s (%s)\n", e.Pattern, e.Kind)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHeader writes lines as "# " comments.
func writeHeader(b *strings.Builder, lines []string) {
	for _, line := range lines {
		fmt.Fprintf(b, "# %s\n", line)
	}
}
