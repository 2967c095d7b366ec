package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	kubeDir     = "kubernetes/base"
	systemdUnit = "systemd/egressgate.service"
	dockerfile  = "../Dockerfile"
)

// The ports the artefacts must agree on (docs/proxy.md: --listen default :3128,
// --admin default 127.0.0.1:9128).
const (
	proxyPort = 3128
	adminPort = 9128
)

// k8sObject is the part of a Kubernetes manifest the tests read: enough of
// Namespace, ConfigMap, Deployment, Service and PodDisruptionBudget.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		// Deployment
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext map[string]any `yaml:"securityContext"`
				Containers      []container    `yaml:"containers"`
				Volumes         []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service (its selector is a plain map; Deployment's is parsed
		// above, so the Service's is read from ServiceSelector below)
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MinAvailable any `yaml:"minAvailable"`
	} `yaml:"spec"`
	raw map[string]any
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// loadKubernetes decodes every document of every file that
// kustomization.yaml lists, and checks that it lists every manifest in
// the directory.
func loadKubernetes(t *testing.T) []*k8sObject {
	t.Helper()
	var kust struct {
		Kind      string   `yaml:"kind"`
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(kubeDir, "kustomization.yaml"), &kust)
	if kust.Kind != "Kustomization" || kust.Namespace == "" {
		t.Errorf("kustomization.yaml: kind %q, namespace %q; want Kustomization and a namespace", kust.Kind, kust.Namespace)
	}
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("%s is not in kustomization.yaml's resources", f)
		}
	}
	var objs []*k8sObject
	for _, r := range kust.Resources {
		data, err := os.ReadFile(filepath.Join(kubeDir, r))
		if err != nil {
			t.Fatalf("kustomization.yaml: resource %s: %v", r, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", r, i, err)
			}
			o := &k8sObject{}
			if err := n.Decode(o); err != nil {
				t.Fatalf("%s: document %d: %v", r, i, err)
			}
			if err := n.Decode(&o.raw); err != nil {
				t.Fatalf("%s: document %d: %v", r, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: document %d has no apiVersion, kind or name", r, i)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func findObject(t *testing.T, objs []*k8sObject, kind string) *k8sObject {
	t.Helper()
	var found *k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			if found != nil {
				t.Fatalf("two %s objects: %s and %s", kind, found.Metadata.Name, o.Metadata.Name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s in %s", kind, kubeDir)
	}
	return found
}

// flagValue returns the value of --name in args ("--name=v" or "--name v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--" + name, "-" + name} {
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
		}
	}
	return "", false
}

// imageSetting returns serve's setting flag as the image gives it: the
// Dockerfile's CMD flag, else its EGRESSGATE_* environment
// (docs/configuration.md). text is the Dockerfile with continued lines
// joined.
func imageSetting(text, flag string) string {
	var args []string
	if cmd := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindStringSubmatch(text); cmd != nil {
		args = strings.Split(strings.ReplaceAll(cmd[1], `"`, ""), ", ")
	}
	if v, ok := flagValue(args, flag); ok {
		return v
	}
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ENV (.*)$`).FindAllStringSubmatch(text, -1) {
		for _, kv := range strings.Fields(m[1]) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env["EGRESSGATE_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))]
}

// portOf returns the port of a listen address such as ":3128".
func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("listen address %q has no port", addr)
	}
	return p
}

func isSubset(sub, super map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetes checks that the manifests decode, that the kinds
// docs/deploying.md lists are there, and that ports, probes, mounts and selectors
// agree with each other and with egressgate's flags.
func TestKubernetes(t *testing.T) {
	objs := loadKubernetes(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.Kind)
	}
	slices.Sort(kinds)
	if want := []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Service"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds = %q, want %q", kinds, want)
	}

	dep := findObject(t, objs, "Deployment")
	spec := dep.Spec
	if spec.Replicas == nil || *spec.Replicas != 2 {
		t.Errorf("Deployment: replicas = %v, want 2", spec.Replicas)
	}
	podLabels := spec.Template.Metadata.Labels
	if !isSubset(spec.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment: selector %v does not select the pod labels %v", spec.Selector.MatchLabels, podLabels)
	}
	if sc := spec.Template.Spec.SecurityContext; sc["runAsNonRoot"] != true {
		t.Errorf("Deployment: pod securityContext.runAsNonRoot = %v, want true", sc["runAsNonRoot"])
	}
	if len(spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(spec.Template.Spec.Containers))
	}
	c := spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("container args = %q, want serve first", c.Args)
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for flag, want := range map[string]struct {
		name string
		port int
	}{"listen": {"proxy", proxyPort}, "admin": {"admin", adminPort}} {
		v, ok := flagValue(c.Args, flag)
		if !ok {
			t.Errorf("container args %q: no --%s", c.Args, flag)
			continue
		}
		if strings.HasPrefix(v, "127.") || strings.HasPrefix(v, "localhost") || strings.HasPrefix(v, "[::1]") {
			t.Errorf("--%s=%s listens on loopback only: kubelet and Prometheus cannot reach it", flag, v)
		}
		if got := portOf(t, v); got != want.port || ports[want.name] != want.port {
			t.Errorf("--%s=%s and container port %q = %d; want both %d", flag, v, want.name, ports[want.name], want.port)
		}
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("container: no %s.httpGet", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || (pr.p.HTTPGet.Port != "admin" && pr.p.HTTPGet.Port != adminPort) {
			t.Errorf("%s: GET %s on port %v, want %s on admin (%d)", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, adminPort)
		}
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
	}
	sc := c.SecurityContext
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container securityContext = %+v, want no privilege escalation, read-only root, non-root, capabilities drop [ALL]", sc)
	}

	// The config is a ConfigMap mounted as a directory (hot reload sees the
	// ..data swap; a subPath mount never sees an update) at the directory of
	// --config.
	cm := findObject(t, objs, "ConfigMap")
	configPath, ok := flagValue(c.Args, "config")
	if !ok {
		t.Fatalf("container args %q: no --config", c.Args)
	}
	if _, ok := cm.Data[filepath.Base(configPath)]; !ok {
		t.Errorf("ConfigMap %s has no key %s (--config=%s)", cm.Metadata.Name, filepath.Base(configPath), configPath)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(configPath) {
			continue
		}
		mounted = true
		if m.SubPath != "" || !m.ReadOnly {
			t.Errorf("volumeMount %s: subPath %q, readOnly %v; want a read-only directory mount", m.Name, m.SubPath, m.ReadOnly)
		}
		i := slices.IndexFunc(spec.Template.Spec.Volumes, func(v struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		}) bool {
			return v.Name == m.Name
		})
		if i < 0 || spec.Template.Spec.Volumes[i].ConfigMap == nil || spec.Template.Spec.Volumes[i].ConfigMap.Name != cm.Metadata.Name {
			t.Errorf("volumeMount %s is not the ConfigMap %s", m.Name, cm.Metadata.Name)
		}
	}
	if !mounted {
		t.Errorf("nothing is mounted at %s, the directory of --config", filepath.Dir(configPath))
	}

	svc := findObject(t, objs, "Service")
	svcSel, _ := svc.raw["spec"].(map[string]any)["selector"].(map[string]any)
	sel := map[string]string{}
	for k, v := range svcSel {
		sel[k], _ = v.(string)
	}
	if !isSubset(sel, podLabels) {
		t.Errorf("Service: selector %v does not select the pod labels %v", sel, podLabels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != proxyPort || (svc.Spec.Ports[0].TargetPort != "proxy" && svc.Spec.Ports[0].TargetPort != proxyPort) {
		t.Errorf("Service: ports = %+v, want only %d to the proxy port", svc.Spec.Ports, proxyPort)
	}

	pdb := findObject(t, objs, "PodDisruptionBudget")
	if !isSubset(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget: selector %v does not select the pod labels %v", pdb.Spec.Selector.MatchLabels, podLabels)
	}
	if n, ok := pdb.Spec.MinAvailable.(int); !ok || n < 1 || spec.Replicas == nil || n >= *spec.Replicas {
		t.Errorf("PodDisruptionBudget: minAvailable = %v, want at least 1 and fewer than the replicas", pdb.Spec.MinAvailable)
	}
}

// TestKubernetesConfigLoads loads the ConfigMap's config the way
// egressgate does, with every file of the ConfigMap beside it.
func TestKubernetesConfigLoads(t *testing.T) {
	cm := findObject(t, loadKubernetes(t), "ConfigMap")
	rs, err := loadConfigMap(t, cm.Data)
	if err != nil {
		t.Fatalf("ConfigMap %s: config.yaml does not load: %v", cm.Metadata.Name, err)
	}
	if len(rs.Matcher.Entries()) == 0 {
		t.Errorf("ConfigMap %s: config.yaml admits no entries", cm.Metadata.Name)
	}
}

// TestScrapeMatchesDeployment checks the Kubernetes scrape job's
// relabelling against the Deployment, which promtool cannot: the keep
// rules must match the pod's label and admin port name, or the job
// silently scrapes nothing.
func TestScrapeMatchesDeployment(t *testing.T) {
	var scrape struct {
		ScrapeConfigs []struct {
			JobName        string           `yaml:"job_name"`
			KubernetesSD   []map[string]any `yaml:"kubernetes_sd_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `yaml:"source_labels"`
				Regex        string   `yaml:"regex"`
				Action       string   `yaml:"action"`
				TargetLabel  string   `yaml:"target_label"`
				Replacement  string   `yaml:"replacement"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, scrapeFile, &scrape)
	dep := findObject(t, loadKubernetes(t), "Deployment")
	tmpl := dep.Spec.Template
	meta := map[string]string{
		"__meta_kubernetes_pod_phase": "Running",
		"__meta_kubernetes_namespace": "egressgate",
	}
	for k, v := range tmpl.Metadata.Labels {
		meta["__meta_kubernetes_pod_label_"+sanitizeLabel(k)] = v
	}
	for k, v := range tmpl.Metadata.Annotations {
		meta["__meta_kubernetes_pod_annotation_"+sanitizeLabel(k)] = v
	}
	var jobs int
	for _, sc := range scrape.ScrapeConfigs {
		if len(sc.KubernetesSD) == 0 {
			continue
		}
		jobs++
		// Run the relabelling on each container port, as the pod role
		// yields one target per port: exactly the admin port must survive.
		var kept []string
		for _, p := range tmpl.Spec.Containers[0].Ports {
			labels := map[string]string{"__meta_kubernetes_pod_container_port_name": p.Name}
			for k, v := range meta {
				labels[k] = v
			}
			keep, job := true, sc.JobName
			for _, rc := range sc.RelabelConfigs {
				var vals []string
				for _, l := range rc.SourceLabels {
					vals = append(vals, labels[l])
				}
				re := rc.Regex
				if re == "" {
					re = "(.*)"
				}
				matched := regexp.MustCompile("^(?:" + re + ")$").MatchString(strings.Join(vals, ";"))
				switch rc.Action {
				case "keep":
					keep = keep && matched
				case "drop":
					keep = keep && !matched
				case "", "replace":
					if rc.TargetLabel == "job" {
						job = rc.Replacement
					}
				}
			}
			if keep {
				kept = append(kept, p.Name)
			}
			if job != "egressgate" {
				t.Errorf("job %s: targets get job=%q, want egressgate (alerts.yml selects it)", sc.JobName, job)
			}
		}
		if !slices.Equal(kept, []string{"admin"}) {
			t.Errorf("job %s keeps container ports %q of the Deployment, want [admin]", sc.JobName, kept)
		}
	}
	if jobs == 0 {
		t.Errorf("%s: no Kubernetes job", scrapeFile)
	}
	if p := tmpl.Metadata.Annotations["prometheus.io/port"]; p != strconv.Itoa(adminPort) {
		t.Errorf("pod annotation prometheus.io/port = %q, want %d", p, adminPort)
	}
}

// sanitizeLabel turns a Kubernetes label name into the Prometheus label
// suffix service discovery gives it.
func sanitizeLabel(s string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(s, "_")
}

// unitDirectives reads a systemd unit into key → values.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	data := readFile(t, path)
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestSystemdUnit checks the unit's hardening and flags, and runs
// systemd-analyze verify on it when systemd is installed.
func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t, systemdUnit)
	for k, want := range map[string]string{
		"Type":                  "notify",
		"User":                  "egressgate",
		"DynamicUser":           "yes",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"AmbientCapabilities":   "",
		"CapabilityBoundingSet": "",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
	} {
		if got, ok := d[k]; !ok || got[len(got)-1] != want {
			t.Errorf("%s: %s = %q, want %q", systemdUnit, k, got, want)
		}
	}
	if n, err := strconv.Atoi(strings.Join(d["LimitNOFILE"], "")); err != nil || n < 4096 {
		t.Errorf("%s: LimitNOFILE = %q, want a number of at least 4096", systemdUnit, d["LimitNOFILE"])
	}
	start := strings.Fields(strings.Join(d["ExecStart"], ""))
	if len(start) < 2 || start[1] != "serve" {
		t.Fatalf("%s: ExecStart = %q, want egressgate serve", systemdUnit, start)
	}
	for flag, port := range map[string]int{"listen": proxyPort, "admin": adminPort} {
		if v, ok := flagValue(start, flag); !ok || portOf(t, v) != port {
			t.Errorf("%s: ExecStart --%s = %q, want port %d", systemdUnit, flag, v, port)
		}
	}

	analyze := needTool(t, "apt-get install systemd", "systemd-analyze")
	// verify insists that ExecStart's binary exists; point it at one that
	// does, in a copy of the unit of the same name.
	data := readFile(t, systemdUnit)
	unit := filepath.Join(t.TempDir(), "egressgate.service")
	writeFile(t, unit, string(bytes.ReplaceAll(data, []byte(start[0]), []byte("/bin/true"))))
	out, err := run(t, 30*time.Second, ".", analyze, "verify", unit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", systemdUnit, err, out)
	}
}

// TestDockerfile checks the Dockerfile's shape; TestContainerImage builds
// and runs it.
func TestDockerfile(t *testing.T) {
	data := readFile(t, dockerfile)
	s := strings.ReplaceAll(string(data), "\\\n", " ") // join continued lines
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ARG GO_IMAGE=golang:1\.26\S*$`),
		// The build stage runs on the build machine and cross-compiles.
		regexp.MustCompile(`(?m)^FROM --platform=\$BUILDPLATFORM \$\{GO_IMAGE\} AS build$`),
		regexp.MustCompile(`GOOS=\$TARGETOS GOARCH=\$TARGETARCH .*go build`),
		regexp.MustCompile(`CGO_ENABLED=0 .*go build -trimpath .*-X main\.version=\$\{VERSION\}.*\./cmd/egressgate`),
		regexp.MustCompile(`(?m)^FROM scratch$`),
		regexp.MustCompile(`(?m)^COPY --from=build /etc/ssl/certs/ca-certificates\.crt /etc/ssl/certs/ca-certificates\.crt$`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^EXPOSE 3128 9128$`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/egressgate", "healthcheck"`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/egressgate"\]$`),
	} {
		if !want.MatchString(s) {
			t.Errorf("%s does not match %s", dockerfile, want)
		}
	}
	if !regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).MatchString(s) {
		t.Fatalf("%s: no CMD", dockerfile)
	}
	setting := func(flag string) string { return imageSetting(s, flag) }
	for flag, port := range map[string]int{"listen": proxyPort, "admin": adminPort} {
		if v := setting(flag); portOf(t, v) != port || strings.HasPrefix(v, "127.") {
			t.Errorf("%s: --%s = %q, want all addresses, port %d", dockerfile, flag, v, port)
		}
	}
	// The config the CMD names is the one the image ships.
	config := setting("config")
	if config != "/etc/egressgate/config.yaml" || !regexp.MustCompile(`(?m)^COPY deploy/systemd/config\.yaml deploy/systemd/site\.txt /etc/egressgate/$`).MatchString(s) {
		t.Errorf("%s: --config = %q; want /etc/egressgate/config.yaml, where the image copies deploy/systemd's samples", dockerfile, config)
	}
}
