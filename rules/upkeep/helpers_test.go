package upkeep

import (
	"strings"
	"testing"
)

// errorCase is an input a reader must refuse, and a part of its error.
type errorCase struct{ name, data, want string }

// checkErrors reads each case's data with read, as the file called name,
// and wants an error containing the case's want; fn names read in
// messages.
func checkErrors[T any](t *testing.T, fn string, read func(name string, data []byte) (T, error), name string, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := read(name, []byte(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s(%q) = %v, want an error containing %q", fn, tt.data, err, tt.want)
			}
		})
	}
}
