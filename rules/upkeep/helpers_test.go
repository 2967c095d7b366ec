package upkeep

import (
	"strings"
	"testing"
)

// errorCase is an input a reader must refuse, and a part of its error.
type errorCase struct{ name, data, want string }

// checkErrors runs read, named fn in messages, on each case's data and
// wants an error containing the case's want.
func checkErrors(t *testing.T, fn string, read func(data []byte) error, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := read([]byte(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s(%q) = %v, want an error containing %q", fn, tt.data, err, tt.want)
			}
		})
	}
}
