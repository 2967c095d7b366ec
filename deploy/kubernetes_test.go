package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

const (
	kubeOverlay   = "kubernetes/overlays/example"
	kubeComponent = "kubernetes/components/servicemonitor"
)

// kubeTypes are the Go types of every kind the manifests may hold, by
// apiVersion and kind: a kind not listed is an error, so an object the
// tests know nothing about cannot slip in.
var kubeTypes = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// decodeStrict decodes a multi-document YAML stream into the Kubernetes
// API's Go types (k8s.io/api, and prometheus-operator's for the
// ServiceMonitor), failing on an unknown or duplicate field with its path
// (`unknown field "spec.replica"`), as `kubectl apply --validate=strict`
// would, and on a kind without a type.
func decodeStrict(data []byte) ([]any, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []any
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(js) == "null" { // only comments
			continue
		}
		var tm metav1.TypeMeta
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		newObj, ok := kubeTypes[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: no Go type for apiVersion %q kind %q", i, tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		strict, err := k8sjson.UnmarshalStrict(js, obj, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		if err := errors.Join(strict...); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
}

// kustomize renders a kustomization with `kubectl kustomize`, or skips.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	kubectl := needTool(t, "not a Debian package; it renders kustomizations offline", "kubectl")
	ctx := t.Context()
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return out
}

// builtKit is one kustomization rendered and decoded.
type builtKit struct {
	objs []any
}

func buildKit(t *testing.T, dir string) builtKit {
	t.Helper()
	objs, err := decodeStrict(kustomize(t, dir))
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	for _, o := range objs {
		if m := o.(metav1.ObjectMetaAccessor).GetObjectMeta(); m.GetNamespace() != "egressgate" && kindOf(o) != "Namespace" {
			t.Errorf("%s: %s %s is in namespace %q, want egressgate", dir, kindOf(o), m.GetName(), m.GetNamespace())
		}
	}
	return builtKit{objs}
}

func kindOf(o any) string { return reflect.TypeOf(o).Elem().Name() }

// one returns the only object of type T named name ("" for any name).
func one[T any](t *testing.T, k builtKit, name string) T {
	t.Helper()
	var found []T
	for _, o := range k.objs {
		if v, ok := o.(T); ok && (name == "" || any(v).(metav1.ObjectMetaAccessor).GetObjectMeta().GetName() == name) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T named %q, want 1", len(found), zero, name)
	}
	return found[0]
}

// TestKubernetesDecodeStrict pins that decodeStrict rejects what a typo
// makes: each testdata/kubernetes/*.yaml opens with "# want: TEXT", the
// text its error must contain.
func TestKubernetesDecodeStrict(t *testing.T) {
	files, _ := filepath.Glob("testdata/kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/kubernetes/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data := readFile(t, f)
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line %q is not \"# want: ERROR\"", f, first)
			}
			_, err := decodeStrict(data)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("decodeStrict(%s) = %v, want an error containing %q", f, err, want)
			}
		})
	}
}

// TestKustomizeBase renders the base with kubectl kustomize, decodes every
// object strictly, and checks the objects against each other and against
// egressgate's listeners and catalog: the HPA scales the Deployment from
// 2 on CPU, the NetworkPolicy admits the proxy port from the clients and
// the admin port from monitoring, and lets out every port of the embedded
// catalog and DNS.
func TestKustomizeBase(t *testing.T) {
	k := buildKit(t, kubeDir)
	var kinds []string
	for _, o := range k.objs {
		kinds = append(kinds, kindOf(o))
	}
	slices.Sort(kinds)
	if want := []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Service"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds = %q, want %q", kinds, want)
	}
	dep := one[*appsv1.Deployment](t, k, "egressgate")
	checkHPA(t, k, dep)
	checkNetworkPolicy(t, k, dep)
}

// TestKustomizeOverlay renders overlays/example: the image, replicas and
// config it sets are in the objects, its config loads, the HPA's floor
// follows the replicas, and the ServiceMonitor component scrapes the
// admin port through its own Service.
func TestKustomizeOverlay(t *testing.T) {
	k := buildKit(t, kubeOverlay)
	dep := one[*appsv1.Deployment](t, k, "egressgate")
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example.org/egressgate:v1.0.0" {
		t.Errorf("overlay: image = %q, want the overlay's registry.example.org/egressgate:v1.0.0", img)
	}
	if r := dep.Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("overlay: replicas = %v, want 3", r)
	}
	hpa := checkHPA(t, k, dep)
	if *hpa.Spec.MinReplicas != *dep.Spec.Replicas {
		t.Errorf("overlay: HPA minReplicas = %d, want the replicas, %d", *hpa.Spec.MinReplicas, *dep.Spec.Replicas)
	}
	checkNetworkPolicy(t, k, dep)

	cm := one[*corev1.ConfigMap](t, k, "egressgate-config")
	want := readFile(t, filepath.Join(kubeOverlay, "config.yaml"))
	if cm.Data["config.yaml"] != string(want) {
		t.Errorf("overlay: ConfigMap config.yaml is not the overlay's config.yaml")
	}
	if vol := dep.Spec.Template.Spec.Volumes[0]; vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
		t.Errorf("overlay: the Deployment mounts %+v, want the ConfigMap %s (no hash suffix: updates reload in place)", vol, cm.Name)
	}
	rs, err := loadConfigMap(t, cm.Data)
	if err != nil {
		t.Fatalf("overlay: config.yaml does not load: %v", err)
	}
	var site int
	for _, e := range rs.Matcher.Entries() {
		if strings.Contains(e.Pattern, "example.") {
			site++
		}
	}
	if site != 2 {
		t.Errorf("overlay: %d entries from site.txt in force, want 2", site)
	}

	// The component: a headless Service on the admin port, and a
	// ServiceMonitor selecting it by the port's name.
	svc := one[*corev1.Service](t, k, "egressgate-metrics")
	sm := one[*monitoringv1.ServiceMonitor](t, k, "egressgate")
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select Service %s (labels %v)", sm.Spec.Selector, svc.Name, svc.Labels)
	}
	if client := one[*corev1.Service](t, k, "egressgate"); sel.Matches(labels.Set(client.Labels)) {
		t.Errorf("ServiceMonitor selects the clients' Service %s too", client.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || containerPort(t, dep, svc.Spec.Ports[0].TargetPort) != adminPort {
		t.Errorf("Service %s ports %+v, want one, to the admin port %d", svc.Name, svc.Spec.Ports, adminPort)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %q path /metrics", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
	}
	if sm.Spec.JobLabel == "" || svc.Labels[sm.Spec.JobLabel] != "egressgate" {
		t.Errorf("ServiceMonitor jobLabel %q gives job=%q, want egressgate (the alerts and the dashboard select it)", sm.Spec.JobLabel, svc.Labels[sm.Spec.JobLabel])
	}
}

// containerPort resolves a port by number or container port name.
func containerPort(t *testing.T, dep *appsv1.Deployment, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range dep.Spec.Template.Spec.Containers[0].Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Errorf("port %q is not a container port of %s", p.StrVal, dep.Name)
	return 0
}

func checkHPA(t *testing.T, k builtKit, dep *appsv1.Deployment) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, k, "")
	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != dep.Name {
		t.Errorf("HPA scales %+v, want the Deployment %s", ref, dep.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
		t.Fatalf("HPA min %v max %d, want min at least 2 and max above it", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA metrics %+v, want CPU", hpa.Spec.Metrics)
	}
	if _, ok := dep.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("HPA on CPU utilization needs a CPU request on the container")
	}
	return hpa
}

// checkNetworkPolicy checks the policy against the Deployment's listeners
// (ingress) and the embedded catalog's ports (egress).
func checkNetworkPolicy(t *testing.T, k builtKit, dep *appsv1.Deployment) {
	t.Helper()
	np := one[*networkingv1.NetworkPolicy](t, k, "")
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || np.Spec.PodSelector.Size() == 0 || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods %v", np.Spec.PodSelector, dep.Spec.Template.Labels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	// Ingress: each listener's port, by the flag's port, in exactly one
	// rule; the admin port only from the monitoring namespace.
	args := dep.Spec.Template.Spec.Containers[0].Args
	ingress := map[int][]networkingv1.NetworkPolicyPeer{}
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Errorf("NetworkPolicy ingress rule %+v admits everyone", r)
		}
		for _, p := range r.Ports {
			if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil {
				t.Errorf("NetworkPolicy ingress port %+v, want TCP and a port", p)
				continue
			}
			n := containerPort(t, dep, *p.Port)
			if _, dup := ingress[n]; dup {
				t.Errorf("NetworkPolicy: port %d in two ingress rules", n)
			}
			ingress[n] = r.From
		}
	}
	for _, flag := range []string{"listen", "admin"} {
		v, _ := flagValue(args, flag)
		if _, ok := ingress[portOf(t, v)]; !ok {
			t.Errorf("NetworkPolicy admits no traffic to --%s=%s", flag, v)
		}
	}
	if len(ingress) != 2 {
		t.Errorf("NetworkPolicy ingress ports %v, want only the proxy and admin listeners", slices.Collect(maps.Keys(ingress)))
	}
	for _, peer := range ingress[adminPort] {
		if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || peer.IPBlock != nil {
			t.Errorf("NetworkPolicy: admin port from %+v, want only the monitoring namespace", peer)
		}
	}

	// Egress: every port an entry of the embedded catalogs names, in
	// optional sections too (a config may turn them on), and DNS.
	need := map[string]bool{"UDP/53": true, "TCP/53": true}
	for _, name := range rules.EmbeddedNames() {
		cat, err := rules.Embedded(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range cat.Entries {
			for _, p := range e.Ports {
				need[fmt.Sprintf("TCP/%d", p)] = true
			}
		}
	}
	open := map[string]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port == nil || p.Protocol == nil {
				t.Errorf("NetworkPolicy egress port %+v without a port or protocol lets everything out", p)
				continue
			}
			open[fmt.Sprintf("%s/%d", *p.Protocol, p.Port.IntValue())] = true
		}
	}
	for p := range need {
		if !open[p] {
			t.Errorf("NetworkPolicy egress does not allow %s, which the embedded catalog or DNS needs", p)
		}
	}
	for p := range open {
		if !need[p] {
			t.Errorf("NetworkPolicy egress allows %s, which no catalog entry needs", p)
		}
	}
}

// TestKustomizeProbesAnswer starts egressgate with the overlay's
// Deployment arguments and ConfigMap (ports moved to free loopback
// ports), and asks every probe's path, and the ServiceMonitor's, on the
// port it names: each must answer 200.
func TestKustomizeProbesAnswer(t *testing.T) {
	k := buildKit(t, kubeOverlay)
	bin, _ := buildEgressgate(t)
	dep := one[*appsv1.Deployment](t, k, "egressgate")
	cm := one[*corev1.ConfigMap](t, k, "egressgate-config")
	c := dep.Spec.Template.Spec.Containers[0]
	cfgDir := t.TempDir()
	for name, content := range cm.Data {
		writeFile(t, filepath.Join(cfgDir, name), content)
	}
	addrs := map[int]string{} // container port -> where it listens in the test
	set := map[string]string{"config": filepath.Join(cfgDir, "config.yaml")}
	for _, flag := range []string{"listen", "admin"} {
		v, _ := flagValue(c.Args, flag)
		addr := proxytest.FreeAddr(t)
		addrs[portOf(t, v)] = addr
		set[flag] = addr
	}
	args := rewriteFlags(c.Args, set)
	_, exited := startProcess(t, t.TempDir(), "egressgate.log", bin, args...)
	ctx := t.Context()
	type check struct {
		what, path string
		port       intstr.IntOrString
	}
	var checks []check
	for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s is not an httpGet probe", name)
			continue
		}
		checks = append(checks, check{name, p.HTTPGet.Path, p.HTTPGet.Port})
	}
	sm := one[*monitoringv1.ServiceMonitor](t, k, "egressgate")
	svc := one[*corev1.Service](t, k, "egressgate-metrics")
	checks = append(checks, check{"ServiceMonitor", sm.Spec.Endpoints[0].Path, svc.Spec.Ports[0].TargetPort})
	if len(checks) < 3 {
		t.Fatalf("probes: %+v, want readiness and liveness", checks)
	}
	for _, ch := range checks {
		addr, ok := addrs[containerPort(t, dep, ch.port)]
		if !ok {
			t.Errorf("%s: port %s is no listener of egressgate", ch.what, ch.port.String())
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		waitHTTP(t, wctx, "http://"+addr+ch.path, exited, ch.what+" of "+kubeOverlay)
		cancel()
	}
}
