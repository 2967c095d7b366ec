//go:build !unix

package rules

import "errors"

// mkfifo fails: there are no FIFOs in the file system here, and the tests
// that need one skip.
func mkfifo(string) error { return errors.ErrUnsupported }
