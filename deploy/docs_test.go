package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const deployingDoc = "../docs/deploying.md"

// TestDeployingWalkthrough checks the commands of docs/deploying.md's
// walk-through against what the other tests run: every repository path
// they name exists, every make target is in the Makefile, every kubectl
// command names a kustomization the tests render, every egressgate
// subcommand exists, the podman run line publishes the image's ports
// and mounts the config directory its CMD reads, and `cd deploy/compose`
// leads to the compose file TestCompose loads.
func TestDeployingWalkthrough(t *testing.T) {
	data := readFile(t, deployingDoc)
	doc := string(data)
	start := strings.Index(doc, "## From nothing to a fleet")
	end := strings.Index(doc[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatalf("%s: no section \"From nothing to a fleet\"", deployingDoc)
	}
	walk := doc[start : start+1+end]
	for _, step := range []string{"### 1. One machine with systemd", "### 2. The container", "### 3. Kubernetes with the overlay", "### 4. The local trial stack"} {
		if !strings.Contains(walk, step) {
			t.Errorf("%s: no step %q", deployingDoc, step)
		}
	}
	makefile := readFile(t, "../Makefile")
	bin, _ := buildEgressgate(t)
	var lines []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(walk, -1) {
		lines = append(lines, strings.Split(strings.TrimSpace(m[1]), "\n")...)
	}
	if len(lines) < 15 {
		t.Fatalf("%s: %d commands in the walk-through, want the four steps' commands", deployingDoc, len(lines))
	}
	seen := map[string]bool{}
	copies := map[string]string{} // "cp -r SRC DST": DST is SRC, edited
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "cp" && f[1] == "-r" {
			copies[f[3]] = f[2]
		}
		for _, p := range regexp.MustCompile(`\bdeploy/[\w./-]+`).FindAllString(line, -1) {
			if src, ok := copies[p]; ok {
				p = src
			}
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%s: %q names %s: %v", deployingDoc, line, p, err)
			}
		}
		switch {
		case f[0] == "make":
			seen["make"] = true
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f[1]) + `:`).Match(makefile) {
				t.Errorf("%s: %q: the Makefile has no target %s", deployingDoc, line, f[1])
			}
		case f[0] == "kubectl" && (f[1] == "kustomize" || f[1] == "apply"):
			seen["kubectl"] = true
			dir := f[len(f)-1]
			if src, ok := copies[dir]; ok {
				dir = src
			}
			if !slices.Contains([]string{"deploy/" + kubeDir, "deploy/" + kubeOverlay}, dir) {
				t.Errorf("%s: %q renders %s, which the tests do not", deployingDoc, line, dir)
			}
		case f[0] == "egressgate":
			seen["egressgate"] = true
			out, _ := run(t, 10*time.Second, ".", bin, f[1], "-h")
			if strings.Contains(out, "unknown command") {
				t.Errorf("%s: %q: egressgate has no subcommand %s", deployingDoc, line, f[1])
			}
		case f[0] == "podman" && f[1] == "run":
			seen["podman run"] = true
			checkRunLine(t, f)
		case f[0] == "cd":
			seen["cd"] = true
			if _, err := os.Stat(filepath.Join("..", f[1], "compose.yaml")); err != nil || f[1] != "deploy/"+composeDir {
				t.Errorf("%s: %q is not the directory of the compose file the tests load (deploy/%s)", deployingDoc, line, composeDir)
			}
		}
	}
	for _, k := range []string{"make", "kubectl", "egressgate", "podman run", "cd"} {
		if !seen[k] {
			t.Errorf("%s: the walk-through has no %s command", deployingDoc, k)
		}
	}
}

// checkRunLine checks a `podman run` command of the walk-through against
// the Dockerfile: it publishes both exposed ports, and mounts a
// directory at the one the image reads its config from (its CMD's
// flag or its environment).
func checkRunLine(t *testing.T, f []string) {
	t.Helper()
	data := readFile(t, dockerfile)
	config := imageSetting(strings.ReplaceAll(string(data), "\\\n", " "), "config")
	var ports []string
	var mounted, readOnly bool
	for i, a := range f {
		if i+1 >= len(f) {
			break
		}
		switch a {
		case "-p", "--publish":
			parts := strings.Split(f[i+1], ":")
			ports = append(ports, parts[len(parts)-1])
		case "-v", "--volume":
			parts := strings.Split(f[i+1], ":")
			mounted = mounted || len(parts) >= 2 && parts[1] == filepath.Dir(config)
		case "--read-only":
			readOnly = true
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"3128", "9128"}) {
		t.Errorf("%s: podman run publishes %q, want the image's 3128 and 9128", deployingDoc, ports)
	}
	if !mounted || !readOnly {
		t.Errorf("%s: podman run: config directory %s mounted %v, --read-only %v; want both", deployingDoc, filepath.Dir(config), mounted, readOnly)
	}
}

// TestDeployingCounts pins the counts docs/deploying.md states for the
// expressions the Prometheus tests evaluate, so that a panel or an alert
// added without its sentence fails here.
func TestDeployingCounts(t *testing.T) {
	data := readFile(t, deployingDoc)
	m := regexp.MustCompile(`(\d+) PromQL expressions \((\d+) panel queries, (\d+) variable queries, (\d+) alert conditions and\s+(\d+) of their\s+operands`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("%s: no sentence \"N PromQL expressions (N panel queries, N variable queries, N alert conditions and N of their operands\"", deployingDoc)
	}
	var panels, variables, conditions, operands int
	checks := artefactChecks(t)
	for _, c := range checks {
		switch {
		case strings.HasPrefix(c.where, "dashboard panel "):
			panels++
		case strings.HasPrefix(c.where, "dashboard variable "):
			variables++
		case c.cond:
			conditions++
		default:
			operands++
		}
	}
	got := fmt.Sprintf("%d %d %d %d %d", len(checks), panels, variables, conditions, operands)
	if want := strings.Join(m[1:], " "); got != want {
		t.Errorf("%s states %s expressions (all, panel queries, variable queries, alert conditions, operands); the artefacts have %s", deployingDoc, want, got)
	}
}
