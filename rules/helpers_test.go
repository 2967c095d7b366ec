package rules

import (
	"os"
	"testing"
)

// mustRead returns the contents of the file at path, failing t when it
// cannot be read.
func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
