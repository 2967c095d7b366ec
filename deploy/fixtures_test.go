package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// needTool returns the path of the first of names installed, or skips the
// test: under -short, which leaves out every test that starts a real
// component, and when none of names is installed (`make deps` installs
// them; how says where from).
func needTool(t *testing.T, how string, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: not starting %s", names[0])
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (%s)", strings.Join(names, " or "), how)
	return ""
}

// run runs a program with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startProcess starts a program whose output goes to a file in dir, and
// stops it (SIGTERM, then SIGKILL after 5 s) when the test ends. The
// returned channel is closed when the program exits.
func startProcess(t *testing.T, dir, logName, name string, args ...string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	logPath := filepath.Join(dir, logName)
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s output (last 3000 bytes):\n%s", filepath.Base(name), tail(out, 3000))
		}
	})
	return cmd, exited
}

// startReadyServer runs bin, a server of the Prometheus family
// (Prometheus, Alertmanager), in dir with args and a free loopback listen
// address, and returns its base URL once /-/ready answers, at most 20 s
// later. Its log is dir/name.log.
func startReadyServer(t *testing.T, ctx context.Context, dir, name, bin string, args ...string) string {
	t.Helper()
	addr := proxytest.FreeAddr(t)
	_, exited := startProcess(t, dir, name+".log", bin, append(args, "--web.listen-address="+addr)...)
	readyCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	waitHTTP(t, readyCtx, "http://"+addr+"/-/ready", exited, name)
	return "http://" + addr
}

// tail returns the last n bytes of b, or b when it is shorter.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitHTTP polls url until it answers 200, the process exits or the
// deadline passes.
func waitHTTP(t *testing.T, ctx context.Context, url string, exited <-chan struct{}, what string) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before %s answered", what, url)
		case <-ctx.Done():
			t.Fatalf("%s: %s did not answer 200 in time (last error %v)", what, url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buildEgressgate returns the path of ./cmd/egressgate built for this test
// run, and the flags `serve -h` lists.
func buildEgressgate(t *testing.T) (bin string, flags []string) {
	t.Helper()
	bin, err := egressgateBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := run(t, 10*time.Second, ".", bin, "serve", "-h")
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9.-]*)`).FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("egressgate serve -h lists no flags:\n%s", out)
	}
	return bin, flags
}

// binDir holds the binary egressgateBinary builds; TestMain removes it.
var binDir string

// egressgateBinary builds ./cmd/egressgate once per test run: every test
// that runs the binary runs the same source, and each link costs seconds.
// The build has its own bound: it depends on how warm the build cache is,
// not on anything under test.
var egressgateBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "egressgate-deploy-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "egressgate")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/egressgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/egressgate: %w\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// writeFile writes content to path, readable by all.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readYAML decodes the YAML document in path into out.
func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	data := readFile(t, path)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// writeYAML writes v to path as YAML.
func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
}

// copyFile copies the file from to the file to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, string(readFile(t, from)))
}

// configMapDir writes a ConfigMap's files into one directory, as its
// volume mounts them, and returns the directory.
func configMapDir(t *testing.T, data map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range data {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

// loadConfigMap loads a ConfigMap's config.yaml as egressgate does, with
// the ConfigMap's other files beside it.
func loadConfigMap(t *testing.T, data map[string]string) (*rules.Ruleset, error) {
	t.Helper()
	return rules.Load(filepath.Join(configMapDir(t, data), "config.yaml"))
}
