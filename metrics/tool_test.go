package metrics

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// startPrometheus runs the Prometheus at bin, scraping targets every
// second, on a free loopback port until ctx ends or the test does. It
// returns Prometheus's base URL and its log.
func startPrometheus(t *testing.T, ctx context.Context, bin string, targets ...string) (base string, logs *strings.Builder) {
	t.Helper()
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, target := range targets {
		quoted[i] = fmt.Sprintf("%q", target)
	}
	cfg := "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: egressgate\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs: [{targets: [" + strings.Join(quoted, ", ") + "]}]\n"
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	logs = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return "http://" + addr, logs
}
