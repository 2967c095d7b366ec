package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The enterprise kits: the worked example of docs/estates.md as the
// container sees it, from a Kubernetes overlay (ConfigMap and Secret
// volumes) and from compose (bind mounts), checked by the binary.

const (
	enterpriseOverlay = "kubernetes/overlays/enterprise"
	enterpriseExample = "examples/enterprise/egressgate.yaml"
	enterpriseCompose = "compose.enterprise.yaml"
)

// kubeletDataDir is the timestamped directory the kubelet writes a
// volume's files into; "..data" points at it and each top-level name at
// "..data/NAME", so that an update is one rename of "..data".
const kubeletDataDir = "..2026_12_04_00_00_00.000000001"

// mountVolume lays out files (key to content) at dir as the kubelet
// mounts a ConfigMap or Secret volume: every key a file directly under
// dir, or, with items, only the listed keys at their paths (which may
// have slashes), each a symlink through "..data".
func mountVolume(t *testing.T, dir string, files map[string][]byte, items []corev1.KeyToPath) {
	t.Helper()
	paths := map[string]string{} // path in the volume -> key
	if len(items) == 0 {
		for k := range files {
			paths[k] = k
		}
	}
	for _, it := range items {
		if _, ok := files[it.Key]; !ok {
			t.Fatalf("volume at %s: items names key %q, which the object does not have", dir, it.Key)
		}
		paths[it.Path] = it.Key
	}
	data := filepath.Join(dir, kubeletDataDir)
	top := map[string]bool{}
	for p, key := range paths {
		if strings.Contains(p, "..") || filepath.IsAbs(p) {
			t.Fatalf("volume at %s: path %q, which the API refuses", dir, p)
		}
		dst := filepath.Join(data, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, files[key], 0o444); err != nil {
			t.Fatal(err)
		}
		top[strings.Split(p, "/")[0]] = true
	}
	if err := os.Symlink(kubeletDataDir, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// mountPod lays out, under root, every ConfigMap and Secret volume the
// Deployment's container mounts, from the rendered objects. It fails on
// a volume of another kind, an object the kit lacks, and a Secret file
// the pod's user could not read.
func mountPod(t *testing.T, k builtKit, dep *appsv1.Deployment, root string) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range spec.Containers[0].VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volumeMount %s names no volume", m.Name)
		}
		if m.SubPath != "" {
			t.Errorf("volumeMount %s uses subPath, which never sees an update", m.Name)
		}
		files := map[string][]byte{}
		var items []corev1.KeyToPath
		switch {
		case v.ConfigMap != nil:
			cm := one[*corev1.ConfigMap](t, k, v.ConfigMap.Name)
			for key, s := range cm.Data {
				files[key] = []byte(s)
			}
			for key, b := range cm.BinaryData {
				files[key] = b
			}
			items = v.ConfigMap.Items
		case v.Secret != nil:
			sec := one[*corev1.Secret](t, k, v.Secret.SecretName)
			for key, b := range sec.Data { // base64 in the manifest, decoded by the API's types
				files[key] = b
			}
			for key, s := range sec.StringData {
				files[key] = []byte(s)
			}
			items = v.Secret.Items
			checkSecretReadable(t, spec, v.Secret)
		default:
			t.Fatalf("volume %s is neither a ConfigMap nor a Secret", v.Name)
		}
		mountVolume(t, filepath.Join(root, m.MountPath), files, items)
	}
}

// checkSecretReadable fails unless the container's user can read the
// Secret's files: the kubelet makes them root's with defaultMode, group
// fsGroup.
func checkSecretReadable(t *testing.T, spec corev1.PodSpec, s *corev1.SecretVolumeSource) {
	t.Helper()
	mode := int32(0o644)
	if s.DefaultMode != nil {
		mode = *s.DefaultMode
	}
	sc := spec.SecurityContext
	byGroup := mode&0o040 != 0 && sc != nil && sc.FSGroup != nil
	if mode&0o004 == 0 && !byGroup {
		t.Errorf("Secret %s: mode %#o without fsGroup: uid %v could not read it", s.SecretName, mode, sc.RunAsUser)
	}
}

// checkEnterprise runs the binary's check on the config at root+config,
// then explain as the users file's user: a Live Response host is
// admitted for newyork's user and refused for london's clients.
func checkEnterprise(t *testing.T, root, config string) {
	t.Helper()
	bin, _ := buildEgressgate(t)
	cfg := filepath.Join(root, config)
	out, err := run(t, 30*time.Second, root, bin, "check", "--config", cfg)
	if err != nil {
		t.Fatalf("egressgate check --config %s: %v\n%s", config, err, out)
	}
	if !strings.Contains(out, "estate (") || !strings.Contains(out, "sydney.yaml)") {
		t.Errorf("check does not show sydney's own file:\n%s", out)
	}
	const lt = "live-terminal-us-east-2.prod.hydra.sophos.com"
	if out, err := run(t, 30*time.Second, root, bin, "explain", "--config", cfg, "--user", "ny-build", lt); err != nil || !strings.HasPrefix(out, "ALLOW") {
		t.Errorf("explain --user ny-build %s = %v\n%s\nwant ALLOW in newyork (the users file read)", lt, err, out)
	}
	if out, _ := run(t, 30*time.Second, root, bin, "explain", "--config", cfg, "--client", "10.1.0.5", lt); !strings.Contains(out, "live-response-off") {
		t.Errorf("explain --client 10.1.0.5 %s:\n%s\nwant london's live-response-off", lt, out)
	}
}

// TestEnterpriseOverlayMounted renders the enterprise overlay with
// kubectl kustomize, lays out its ConfigMap and Secret volumes as the
// kubelet mounts them, and checks the config the container is started
// with.
func TestEnterpriseOverlayMounted(t *testing.T) {
	k := buildKit(t, enterpriseOverlay)
	dep := one[*appsv1.Deployment](t, k, "egressgate")
	root := t.TempDir()
	mountPod(t, k, dep, root)
	config, ok := flagValue(dep.Spec.Template.Spec.Containers[0].Args, "config")
	if !ok {
		t.Fatalf("the container's args %q have no --config", dep.Spec.Template.Spec.Containers[0].Args)
	}
	checkEnterprise(t, root, config)
}

// TestEnterpriseComposeMounted loads compose.yaml with the enterprise
// override, lays out the egressgate service's bind mounts, and checks
// the config its command names.
func TestEnterpriseComposeMounted(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(composeDir, "compose.yaml"), filepath.Join(composeDir, enterpriseCompose)},
		cli.WithWorkingDirectory(composeDir), cli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := service(t, p, "egressgate")
	root := t.TempDir()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind || !v.ReadOnly {
			t.Errorf("volume at %s: %s, read-only %v; want a read-only bind mount", v.Target, v.Type, v.ReadOnly)
			continue
		}
		dst := filepath.Join(root, v.Target)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(v.Source)
		if err != nil {
			t.Fatalf("bind mount source: %v", err)
		}
		if st.IsDir() {
			err = os.CopyFS(dst, os.DirFS(v.Source))
		} else {
			var data []byte
			if data, err = os.ReadFile(v.Source); err == nil {
				err = os.WriteFile(dst, data, 0o444)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	checkEnterprise(t, root, commandFlag(t, s, "config"))
}

// TestEnterpriseOverlayIsTheExample: the overlay's config is the worked
// example with only its layout changed (estates_dir, the users file),
// and sydney.yaml is the example's estates.d/sydney.yaml.
func TestEnterpriseOverlayIsTheExample(t *testing.T) {
	read := func(p string) []byte {
		t.Helper()
		b := readFile(t, p)
		return b
	}
	overlay := read(filepath.Join(enterpriseOverlay, "config.yaml"))
	example := read(enterpriseExample)
	if !bytes.HasSuffix(overlay, example) {
		t.Errorf("%s/config.yaml does not end with %s unchanged", enterpriseOverlay, enterpriseExample)
	}
	layout := string(overlay[:len(overlay)-min(len(example), len(overlay))])
	for _, want := range []string{"estates_dir: .\n", "password_file: ../egressgate-auth/users\n"} {
		if !strings.Contains(layout, want) {
			t.Errorf("%s/config.yaml: the lines before the example lack %q", enterpriseOverlay, want)
		}
	}
	if !bytes.Equal(read(filepath.Join(enterpriseOverlay, "sydney.yaml")), read("examples/enterprise/estates.d/sydney.yaml")) {
		t.Errorf("%s/sydney.yaml differs from the example's estates.d/sydney.yaml", enterpriseOverlay)
	}
}
