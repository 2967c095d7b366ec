package rules

import (
	"slices"
	"testing"
)

// TestAllOSIsTheCallers pins that a caller who changes the OS list, or an
// effective policy's list filled from it, changes no other policy's.
func TestAllOSIsTheCallers(t *testing.T) {
	AllOS()[0] = "plan9"
	e := effective(Policy{}, nil)
	e.OS[1] = "plan9"
	if got, want := AllOS(), []string{OSWindows, OSMacOS, OSLinux}; !slices.Equal(got, want) {
		t.Errorf("AllOS() = %q after callers changed their copies, want %q", got, want)
	}
}
