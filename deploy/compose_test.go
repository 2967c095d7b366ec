package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const composeDir = "compose"

// loadCompose loads compose.yaml with the Compose specification's Go
// loader (schema validation, interpolation, paths made absolute), as
// `docker compose` and `podman compose` read it.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(composeDir, "compose.yaml")},
		cli.WithWorkingDirectory(composeDir), cli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s/compose.yaml: %v", composeDir, err)
	}
	return p
}

// service returns the named service, or fails.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q", name)
	}
	return s
}

// mountAt returns the source of the bind mount at target in s.
func mountAt(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	t.Fatalf("service %s mounts nothing at %s (volumes %+v)", s.Name, target, s.Volumes)
	return ""
}

// commandFlag returns the value of --name in a service's command.
func commandFlag(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := flagValue(s.Command, name)
	if !ok {
		t.Fatalf("service %s: command %q has no --%s", s.Name, s.Command, name)
	}
	return v
}

// sameFile reports whether two paths name files with the same content.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// TestCompose checks the trial stack: the four services; every bind
// mount's source exists and is read-only; egressgate's listeners are
// the ports the service publishes, built from this repository's
// Dockerfile; Prometheus gets the shipped alert rules where its config
// reads them and scrapes the egressgate service's admin port with
// scrape.yml's job; Alertmanager's config is where its flag says.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.Services {
			if !yield(n) {
				return
			}
		}
	})
	if want := []string{"alertmanager", "egressgate", "grafana", "prometheus"}; !slices.Equal(names, want) {
		t.Errorf("services %q, want %q", names, want)
	}
	published := map[string][]uint32{} // service -> container ports published
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				t.Errorf("service %s: volume %s is %s, want a bind mount of a shipped file", s.Name, v.Target, v.Type)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s: %v", s.Name, v.Source, v.Target, err)
			}
			if !v.ReadOnly {
				t.Errorf("service %s mounts %s read-write; the stack only reads the shipped files", s.Name, v.Target)
			}
		}
		for _, port := range s.Ports {
			published[s.Name] = append(published[s.Name], port.Target)
			if port.HostIP != "127.0.0.1" && !(s.Name == "egressgate" && port.Target == proxyPort) {
				t.Errorf("service %s publishes %d on %q; only the proxy port is for other machines, the rest on 127.0.0.1", s.Name, port.Target, port.HostIP)
			}
		}
	}

	eg := service(t, p, "egressgate")
	listen, admin := commandFlag(t, eg, "listen"), commandFlag(t, eg, "admin")
	if got, want := published["egressgate"], []uint32{uint32(portOf(t, listen)), uint32(portOf(t, admin))}; !slices.Equal(got, want) || portOf(t, listen) != proxyPort || portOf(t, admin) != adminPort {
		t.Errorf("egressgate publishes %v, listens on %s and %s; want %d and %d", got, listen, admin, proxyPort, adminPort)
	}
	if eg.Build == nil || !sameFile(t, filepath.Join(eg.Build.Context, "Dockerfile"), dockerfile) {
		t.Errorf("egressgate is not built from this repository's Dockerfile (build %+v)", eg.Build)
	}
	if !eg.ReadOnly || eg.User != "65532:65532" || !slices.Equal(eg.CapDrop, []string{"ALL"}) {
		t.Errorf("egressgate: read_only %v, user %q, cap_drop %q; want a read-only root, the image's uid, no capabilities", eg.ReadOnly, eg.User, eg.CapDrop)
	}
	cfgDir := mountAt(t, eg, filepath.Dir(commandFlag(t, eg, "config")))
	if _, err := os.Stat(filepath.Join(cfgDir, filepath.Base(commandFlag(t, eg, "config")))); err != nil {
		t.Errorf("egressgate --config: %v", err)
	}

	// Prometheus: its config file and the rules it names.
	prom := service(t, p, "prometheus")
	promCfgPath := mountAt(t, prom, commandFlag(t, prom, "config.file"))
	var promCfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	readYAML(t, promCfgPath, &promCfg)
	if len(promCfg.RuleFiles) != 1 || !sameFile(t, mountAt(t, prom, promCfg.RuleFiles[0]), alertsFile) {
		t.Errorf("prometheus rule_files %q are not %s mounted where they are read", promCfg.RuleFiles, alertsFile)
	}
	var shipped struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	readYAML(t, scrapeFile, &shipped)
	if len(promCfg.ScrapeConfigs) != 1 {
		t.Fatalf("compose prometheus.yml: %d scrape configs, want scrape.yml's static job", len(promCfg.ScrapeConfigs))
	}
	job := promCfg.ScrapeConfigs[0]
	var targets []any
	for _, sc := range job["static_configs"].([]any) {
		targets = append(targets, sc.(map[string]any)["targets"].([]any)...)
	}
	if want := []any{"egressgate:" + strconv.Itoa(portOf(t, admin))}; !slices.Equal(targets, want) {
		t.Errorf("compose prometheus.yml scrapes %v, want %v (the egressgate service's admin port)", targets, want)
	}
	for _, sj := range shipped.ScrapeConfigs {
		if sj["job_name"] != job["job_name"] {
			continue
		}
		for k, v := range sj {
			if k != "static_configs" && job[k] != v {
				t.Errorf("compose prometheus.yml job %v: %s = %v, scrape.yml's says %v", job["job_name"], k, job[k], v)
			}
		}
		job = nil
	}
	if job != nil {
		t.Errorf("compose prometheus.yml job %v is none of scrape.yml's", job["job_name"])
	}
	am := service(t, p, "alertmanager")
	amTargets := promCfg.Alerting.Alertmanagers[0].StaticConfigs[0].Targets
	if want := "alertmanager:" + strconv.Itoa(int(published["alertmanager"][0])); !slices.Equal(amTargets, []string{want}) {
		t.Errorf("prometheus sends alerts to %q, want %s", amTargets, want)
	}
	amCfg := mountAt(t, am, commandFlag(t, am, "config.file"))

	t.Run("promtool", func(t *testing.T) {
		promtool := needTool(t, "apt-get install prometheus", "promtool")
		dir := t.TempDir()
		data := readFile(t, promCfgPath)
		abs, _ := filepath.Abs(alertsFile)
		writeFile(t, filepath.Join(dir, "prometheus.yml"), strings.ReplaceAll(string(data), promCfg.RuleFiles[0], abs))
		if out, err := run(t, 30*time.Second, dir, promtool, "check", "config", "prometheus.yml"); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", promCfgPath, err, out)
		}
	})
	t.Run("amtool", func(t *testing.T) {
		amtool := needTool(t, "apt-get install prometheus-alertmanager", "amtool")
		if out, err := run(t, 30*time.Second, ".", amtool, "check-config", amCfg); err != nil {
			t.Errorf("amtool check-config %s: %v\n%s", amCfg, err, out)
		}
	})
}

// TestComposeGrafanaProvisioning checks that Grafana's provisioning,
// as the stack mounts it, reaches the stack's Prometheus and loads the
// shipped dashboard file, unchanged.
func TestComposeGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t)
	g := service(t, p, "grafana")
	prov := mountAt(t, g, "/etc/grafana/provisioning")

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources", "prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault {
		t.Fatalf("datasources: %+v, want one default prometheus data source", ds)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	prom := service(t, p, "prometheus")
	if host != "prometheus" || len(prom.Ports) == 0 || port != strconv.Itoa(int(prom.Ports[0].Target)) {
		t.Errorf("data source URL %s is not the prometheus service's port %v", u, prom.Ports)
	}

	var dash struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "egressgate.yml"), &dash)
	if dash.APIVersion != 1 || len(dash.Providers) != 1 || dash.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers: %+v, want one file provider", dash)
	}
	dir := mountAt(t, g, dash.Providers[0].Options.Path)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 || !sameFile(t, files[0], dashboardFile) {
		t.Errorf("the provider's path %s holds %q, want only %s", dash.Providers[0].Options.Path, files, dashboardFile)
	}
	home := *g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if rel, err := filepath.Rel(dash.Providers[0].Options.Path, home); err != nil || !sameFile(t, filepath.Join(dir, rel), dashboardFile) {
		t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is not the provisioned dashboard", home)
	}
}

// TestComposePorts: the host ports are variables whose defaults are the
// ports the docs name, and setting one moves only that host port.
func TestComposePorts(t *testing.T) {
	hostPorts := func(p *types.Project) map[string]string {
		got := map[string]string{}
		for _, s := range p.Services {
			for _, port := range s.Ports {
				got[fmt.Sprintf("%s:%d", s.Name, port.Target)] = port.Published
			}
		}
		return got
	}
	defaults := map[string]string{"egressgate:3128": "3128", "egressgate:9128": "9128",
		"prometheus:9090": "9090", "alertmanager:9093": "9093", "grafana:3000": "3000"}
	for _, v := range []string{"PROXY_PORT", "ADMIN_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT"} {
		t.Setenv(v, "")
	}
	if got := hostPorts(loadCompose(t)); !maps.Equal(got, defaults) {
		t.Errorf("host ports = %v, want %v", got, defaults)
	}
	t.Setenv("PROXY_PORT", "13128")
	t.Setenv("GRAFANA_PORT", "3001")
	want := maps.Clone(defaults)
	want["egressgate:3128"], want["grafana:3000"] = "13128", "3001"
	if got := hostPorts(loadCompose(t)); !maps.Equal(got, want) {
		t.Errorf("with PROXY_PORT=13128 GRAFANA_PORT=3001: host ports = %v, want %v", got, want)
	}
}
