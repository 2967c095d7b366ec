package metrics

import (
	"os/exec"
	"testing"
)

// needTool returns the path of a program a test starts, or skips the test:
// under -short, which leaves out every test that starts a real component,
// and when the program is not installed (`make deps` installs it; how says
// where from).
func needTool(t *testing.T, how, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: not starting %s", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (%s)", name, how)
	}
	return p
}
