package deploy

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// testVersion is stamped into the images the container tests build.
const testVersion = "v0.0.0-podman-test"

// testImage is the image the container test builds, and the stem of the
// cross-architecture test's tags. Each test process has tags of its own,
// removed when its test ends: several checkouts test on one machine at
// once, and a tag they shared would let one run inspect or run the image
// another had just built, for another platform. A rebuild still takes
// seconds, not minutes: the Dockerfile's cache mounts do not go with a tag.
var testImage = fmt.Sprintf("localhost/egressgate:podman-test-%d-%08x", os.Getpid(), rand.Uint32())

// podmanEnv finds podman and what it needs on these machines, or skips:
// root, runc (crun refuses hybrid cgroups), and a static busybox for the
// local builder image. It points CONTAINERS_CONF at a file without
// default ulimits, which need CAP_SYS_RESOURCE.
func podmanEnv(t *testing.T) string {
	t.Helper()
	podman := needTool(t, "apt-get install podman", "podman")
	if os.Geteuid() != 0 {
		t.Skip("podman: the container test runs rootful podman and needs root")
	}
	needTool(t, "apt-get install runc", "runc")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("busybox-static not installed, needed for the local Go builder image: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	writeFile(t, conf, "[containers]\ndefault_ulimits = []\n")
	t.Setenv("CONTAINERS_CONF", conf)
	return podman
}

// TestContainerImage builds the Dockerfile with podman (`make image`'s
// script, the local builder image as GO_IMAGE) and runs the image as a
// user would: read-only root filesystem, the image's non-root user, a
// config directory mounted at /etc/egressgate, the listeners moved to free
// loopback ports on the host network through EGRESSGATE_LISTEN and
// EGRESSGATE_ADMIN. It checks the stamped version,
// /healthz and /readyz, a CONNECT the catalog denies (403 with the
// reason), the image's HEALTHCHECK command turning the container healthy,
// and that SIGTERM drains: a tunnel open at the signal keeps working
// until its client closes it, and then egressgate exits 0, well before
// --drain-timeout.
func TestContainerImage(t *testing.T) {
	podman := podmanEnv(t)
	pm := func(timeout time.Duration, args ...string) (string, error) {
		t.Helper()
		return run(t, timeout, ".", podman, args...)
	}

	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", testImage).Run() })
	start := time.Now()
	out, err := run(t, 8*time.Minute, "..", "sh", "-c",
		"IMAGE="+testImage+" VERSION="+testVersion+" GO_IMAGE=local ENGINE="+podman+" deploy/container/build.sh")
	if err != nil {
		t.Fatalf("deploy/container/build.sh: %v\n%s", err, tail([]byte(out), 4000))
	}
	t.Logf("image built in %.0f s", time.Since(start).Seconds())

	// The image as built: user, ports, health check, entry point.
	out, err = pm(time.Minute, "image", "inspect", testImage)
	if err != nil {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	var inspect []struct {
		Config struct {
			User         string
			ExposedPorts map[string]struct{}
			Entrypoint   []string
			Cmd          []string
		}
		// Docker-format images only (podman build --format docker);
		// podman shows it here rather than under Config.
		Healthcheck *struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(out), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	cfg, hc := inspect[0].Config, inspect[0].Healthcheck
	if cfg.User != "65532:65532" {
		t.Errorf("image user = %q, want 65532:65532", cfg.User)
	}
	if _, ok := cfg.ExposedPorts[strconv.Itoa(proxyPort)+"/tcp"]; !ok || len(cfg.ExposedPorts) != 2 {
		t.Errorf("image exposes %v, want %d/tcp and %d/tcp", cfg.ExposedPorts, proxyPort, adminPort)
	}
	if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[2] != "healthcheck" {
		t.Fatalf("image healthcheck = %+v, want CMD egressgate healthcheck (exec form: there is no shell)", hc)
	}
	// "egressgate VERSION GO_RELEASE"
	if out, err := pm(time.Minute, "run", "--rm", "--runtime", "runc", "--network", "none", "--no-healthcheck", testImage, "version"); err != nil || len(strings.Fields(out)) < 2 || strings.Fields(out)[1] != testVersion {
		t.Errorf("egressgate version in the image = %q (%v), want the stamped %s", strings.TrimSpace(out), err, testVersion)
	}

	// An upstream that echoes, for the tunnel held open across SIGTERM.
	upPort := portOf(t, proxytest.EchoUpstream(t))

	// The config directory, mounted where the image's CMD looks.
	cfgDir := t.TempDir()
	if err := os.Chmod(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfgDir, "config.yaml"), "embedded: []\ncatalogs:\n  - path: site.txt\n")
	writeFile(t, filepath.Join(cfgDir, "site.txt"), fmt.Sprintf("upstream.test:%d\n", upPort))
	writeFile(t, filepath.Join(cfgDir, "hosts"), "127.0.0.1 upstream.test\n")

	listen, admin := proxytest.FreeAddr(t), proxytest.FreeAddr(t)
	const drain = 20 * time.Second
	// The listeners move through the environment, as a container
	// platform sets them; the rest through flags after the image's CMD.
	args := rewriteFlags(cfg.Cmd, map[string]string{
		"hosts":         "/etc/egressgate/hosts",
		"allow-dest":    "127.0.0.0/8",
		"drain-timeout": drain.String(),
	})
	healthJSON, _ := json.Marshal(hc.Test[1:])
	name := fmt.Sprintf("egressgate-test-%d", os.Getpid())
	runArgs := append([]string{"run", "-d", "--name", name, "--runtime", "runc", "--network", "host",
		"--read-only", "--volume", cfgDir + ":/etc/egressgate:ro",
		"--env", "EGRESSGATE_LISTEN=" + listen, "--env", "EGRESSGATE_ADMIN=" + admin,
		// The image's own check, unchanged: it follows EGRESSGATE_ADMIN.
		// No interval, since podman's timer needs systemd: the test runs
		// it itself.
		"--health-cmd", string(healthJSON), "--health-interval", "disable",
		testImage}, args...)
	if out, err := pm(time.Minute, runArgs...); err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(runArgs, " "), err, out)
	}
	t.Cleanup(func() {
		// t.Context() is done by now: these get a context of their own.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := exec.CommandContext(ctx, podman, "logs", name).CombinedOutput()
			t.Logf("container log (last 3000 bytes):\n%s", tail(out, 3000))
		}
		out, err := exec.CommandContext(ctx, podman, "rm", "-f", "-t", "0", name).CombinedOutput()
		if err != nil {
			t.Errorf("podman rm %s: %v\n%s", name, err, out)
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	exited := make(chan struct{}) // podman run -d returned; the container's end is seen by podman wait
	waitHTTP(t, ctx, "http://"+admin+"/healthz", exited, "the container")
	waitHTTP(t, ctx, "http://"+admin+"/readyz", exited, "the container")

	// Non-root, on a read-only root: as the host's kernel sees the process.
	out, err = pm(time.Minute, "inspect", "--format", "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}", name)
	if err != nil {
		t.Fatalf("podman inspect: %v\n%s", err, out)
	}
	pid, readOnly, _ := strings.Cut(strings.TrimSpace(out), " ")
	if readOnly != "true" {
		t.Errorf("container ReadonlyRootfs = %s, want true", readOnly)
	}
	if status, err := os.ReadFile("/proc/" + pid + "/status"); err != nil {
		t.Errorf("reading the container process's status: %v", err)
	} else if uid := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(status)); uid == nil || uid[1] != "65532" || uid[2] != "65532" {
		t.Errorf("container process runs as %q, want uid 65532", uid)
	}
	if mounts, err := os.ReadFile("/proc/" + pid + "/mounts"); err != nil {
		t.Errorf("reading the container's mounts: %v", err)
	} else if root := regexp.MustCompile(`(?m)^\S+ / \S+ (\S+)`).FindStringSubmatch(string(mounts)); root == nil || !slices.Contains(strings.Split(root[1], ","), "ro") {
		t.Errorf("container root mount options = %q, want ro", root)
	}

	// A CONNECT the catalog does not admit: 403, with the reason.
	resp, _ := connect(t, listen, "denied.example.net:443")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Egressgate-Reason") != "not-in-catalog" {
		t.Errorf("CONNECT denied.example.net:443 = %s, reason %q; want 403 not-in-catalog", resp.Status, resp.Header.Get("X-Egressgate-Reason"))
	}

	if out, err := pm(time.Minute, "healthcheck", "run", name); err != nil {
		t.Errorf("podman healthcheck run: %v\n%s", err, out)
	}
	if out, _ := pm(time.Minute, "inspect", "--format", "{{.State.Health.Status}}", name); strings.TrimSpace(out) != "healthy" {
		t.Errorf("container health = %q, want healthy", strings.TrimSpace(out))
	}

	// SIGTERM with a tunnel open: it keeps working through the drain.
	resp, tunnel := connect(t, listen, fmt.Sprintf("upstream.test:%d", upPort))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT upstream.test:%d = %s, want 200", upPort, resp.Status)
	}
	echo := func(msg string) {
		t.Helper()
		tunnel.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := tunnel.Write([]byte(msg)); err != nil {
			t.Fatalf("tunnel write %q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(tunnel, got); err != nil || string(got) != msg {
			t.Fatalf("tunnel echo = %q, %v; want %q", got, err, msg)
		}
	}
	echo("before SIGTERM")
	if out, err := pm(time.Minute, "kill", "--signal", "TERM", name); err != nil {
		t.Fatalf("podman kill --signal TERM: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := pm(30*time.Second, "logs", name)
		if strings.Contains(out, `"msg":"shutting down"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"shutting down\" in the log 10 s after SIGTERM")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, _ := pm(30*time.Second, "inspect", "--format", "{{.State.Running}}", name); strings.TrimSpace(out) != "true" {
		t.Fatalf("container stopped with a tunnel open, before --drain-timeout")
	}
	echo("during the drain")
	termAt := time.Now()
	tunnel.Close()
	out, err = pm(drain+30*time.Second, "wait", name)
	if err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("container exit = %q (%v), want 0", strings.TrimSpace(out), err)
	}
	if d := time.Since(termAt); d > drain/2 {
		t.Errorf("container took %.1f s to exit after its last tunnel closed; the drain should end with the last tunnel", d.Seconds())
	}
	if out, _ := pm(30*time.Second, "logs", name); strings.Contains(out, "drain timeout reached") {
		t.Errorf("log says the drain timed out; want a clean drain:\n%s", tail([]byte(out), 2000))
	}
}

// connect sends CONNECT target to the proxy at addr and returns the
// response and the connection, which is the tunnel after a 200.
func connect(t *testing.T, addr, target string) (*http.Response, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if !strings.Contains(string(body), target) {
			t.Errorf("CONNECT %s: %s body %q does not name the target", target, resp.Status, body)
		}
		return resp, c
	}
	if br.Buffered() > 0 {
		t.Fatalf("CONNECT %s: %d bytes after the 200 before the tunnel", target, br.Buffered())
	}
	c.SetDeadline(time.Time{})
	return resp, c
}

// TestImageCrossArch builds the image for linux/arm64 on this machine,
// as podman build --platform linux/arm64 does (make image
// PLATFORMS=linux/arm64), with no emulation: the build stage
// cross-compiles. The image says arm64, and the binary in it is an
// AArch64 executable. Then make image PLATFORMS=linux/amd64,linux/arm64
// builds a manifest list of both.
func TestImageCrossArch(t *testing.T) {
	podman := podmanEnv(t)
	arm64Image, listImage := testImage+"-arm64", testImage+"-multi"
	build := func(image, platforms string) {
		t.Helper()
		start := time.Now()
		out, err := run(t, 15*time.Minute, "..", "sh", "-c",
			"IMAGE="+image+" VERSION="+testVersion+" GO_IMAGE=local ENGINE="+podman+" PLATFORMS="+platforms+" deploy/container/build.sh")
		if err != nil {
			t.Fatalf("PLATFORMS=%s deploy/container/build.sh: %v\n%s", platforms, err, tail([]byte(out), 4000))
		}
		t.Logf("PLATFORMS=%s built in %.0f s", platforms, time.Since(start).Seconds())
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", arm64Image).Run() })
	build(arm64Image, "linux/arm64")
	out, err := run(t, time.Minute, ".", podman, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", arm64Image)
	if err != nil || strings.TrimSpace(out) != "linux/arm64" {
		t.Errorf("podman image inspect %s = %q (%v), want linux/arm64", arm64Image, strings.TrimSpace(out), err)
	}
	// The binary, copied out of a container that never runs.
	out, err = run(t, time.Minute, ".", podman, "create", "--platform", "linux/arm64", arm64Image)
	if err != nil {
		t.Fatalf("podman create: %v\n%s", err, out)
	}
	ctr := strings.TrimSpace(out)
	t.Cleanup(func() { exec.Command(podman, "rm", "-f", ctr).Run() })
	bin := filepath.Join(t.TempDir(), "egressgate")
	if out, err := run(t, time.Minute, ".", podman, "cp", ctr+":/usr/local/bin/egressgate", bin); err != nil {
		t.Fatalf("podman cp: %v\n%s", err, out)
	}
	if f, err := elf.Open(bin); err != nil {
		t.Errorf("the image's egressgate: %v", err)
	} else {
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("the image's egressgate is for %s, want %s", f.Machine, elf.EM_AARCH64)
		}
		f.Close()
	}

	// The list goes when the test ends: its images are untagged, and a
	// later build's prune of untagged egressgate images would take them
	// from under it and leave podman a list it cannot read. Its images go
	// too: a later single-platform build could take one of them from the
	// layer cache, the arm64 one's platform with it.
	t.Cleanup(func() {
		exec.Command(podman, "manifest", "rm", listImage).Run()
		exec.Command(podman, "image", "prune", "-f", "--filter", "label=io.egressgate.stage").Run()
	})
	build(listImage, "linux/amd64,linux/arm64")
	out, err = run(t, time.Minute, ".", podman, "manifest", "inspect", listImage)
	if err != nil {
		t.Fatalf("podman manifest inspect %s: %v\n%s", listImage, err, out)
	}
	var list struct {
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("podman manifest inspect %s: %v\n%s", listImage, err, out)
	}
	var platforms []string
	for _, m := range list.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(platforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("manifest list %s holds %q, want %q", listImage, platforms, want)
	}
}
