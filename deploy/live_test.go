package deploy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// deployFlags returns the flags of `egressgate serve` that the artefacts
// pass, with the file that passes them.
func deployFlags(t *testing.T) map[string][]string {
	t.Helper()
	var args [][2]string // file, arg
	dep := findObject(t, loadKubernetes(t), "Deployment")
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		args = append(args, [2]string{kubeDir + "/deployment.yaml", a})
	}
	for _, a := range strings.Fields(strings.Join(unitDirectives(t, systemdUnit)["ExecStart"], " ")) {
		args = append(args, [2]string{systemdUnit, a})
	}
	data := readFile(t, dockerfile)
	if m := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindStringSubmatch(string(data)); m != nil {
		for _, a := range strings.Split(m[1], ",") {
			args = append(args, [2]string{"Dockerfile", strings.Trim(a, ` "`)})
		}
	}
	out := map[string][]string{}
	for _, a := range args {
		if name, ok := strings.CutPrefix(a[1], "-"); ok {
			name, _, _ = strings.Cut(strings.TrimPrefix(name, "-"), "=")
			out[name] = append(out[name], a[0])
		}
	}
	return out
}

// TestServeFlags checks that every flag the Deployment, the systemd unit
// and the Dockerfile pass to `egressgate serve` is one it has.
func TestServeFlags(t *testing.T) {
	_, flags := buildEgressgate(t)
	for name, files := range deployFlags(t) {
		if !slices.Contains(flags, name) {
			t.Errorf("%s pass --%s, which egressgate serve does not have (it has %q)", strings.Join(slices.Compact(files), ", "), name, flags)
		}
	}
}

// liveCatalog is the catalog the live test serves: one entry in two
// groups, on the ports of the test's upstreams, one on a port nothing
// listens on (admitted, never reached), and two entries nothing asks for.
const liveCatalog = `catalog: live
groups:
  - {id: web, title: Web}
  - {id: api, title: API}
  - {id: spare, title: Never used}
entries:
  - {pattern: %[1]s, groups: [web, api], ports: [%[2]d, %[3]d, %[4]d]}
  - {pattern: unreachable.example.org, groups: [web], ports: [%[4]d]}
  - {pattern: never.example.org, groups: [spare]}
  - {pattern: "*.unused.example.net", groups: [spare]}
`

// TestLive runs two egressgate replicas and a Prometheus scraping them with
// scrape.yml's static job, sends traffic through one replica (allowed
// CONNECTs, a plain-HTTP request, denials, a refused upstream), and then
// evaluates every PromQL expression of the dashboard and the alerts
// through Prometheus's query API: each must evaluate and return data, so a
// misspelt metric or label fails here. Alert conditions are empty when all
// is well, so for them the operands are checked (see conditionParts).
//
// Grafana's variables become: $__range 5m, $__rate_interval 1m,
// $__interval 15s, $job egressgate, $instance .* (grafanaVars).
func TestLive(t *testing.T) {
	needTool(t, "apt-get install prometheus", "prometheus")
	bin, flags := buildEgressgate(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	for _, f := range []string{"config", "listen", "admin", "allow-dest", "hosts"} {
		if !slices.Contains(flags, f) {
			t.Fatalf("egressgate serve has no --%s (flags %q)", f, flags)
		}
	}

	// Upstreams on loopback: a TLS server for CONNECT, a plain one for
	// absolute-URI requests, and a port nothing listens on.
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from upstream\n") })
	tlsUp := httptest.NewTLSServer(hello)
	t.Cleanup(tlsUp.Close)
	plainUp := httptest.NewServer(hello)
	t.Cleanup(plainUp.Close)
	tlsPort, plainPort := portOf(t, tlsUp.Listener.Addr().String()), portOf(t, plainUp.Listener.Addr().String())
	closedPort := portOf(t, proxytest.FreeAddr(t))

	// The upstream's name resolves through --hosts to the loopback
	// upstreams, which --allow-dest lets egressgate dial.
	dir := t.TempDir()
	const host = "upstream.example.org"
	// never.example.org too: the probe (--probe-interval) tries every
	// concrete name, and no test may ask a real resolver.
	writeFile(t, filepath.Join(dir, "hosts"), "127.0.0.1 "+host+" unreachable.example.org never.example.org\n")
	writeFile(t, filepath.Join(dir, "live.yaml"), fmt.Sprintf(liveCatalog, host, tlsPort, plainPort, closedPort))
	writeFile(t, filepath.Join(dir, "config.yaml"), "embedded: []\ncatalogs:\n  - path: live.yaml\n")

	// Two replicas, as the Deployment runs: the joins must hold with two
	// instances. Traffic goes through the first only.
	type replica struct {
		proxy, admin string
		cmd          *exec.Cmd
	}
	var replicas []replica
	for i := range 2 {
		r := replica{proxy: proxytest.FreeAddr(t), admin: proxytest.FreeAddr(t)}
		var exited <-chan struct{}
		r.cmd, exited = startProcess(t, dir, fmt.Sprintf("egressgate-%d.log", i), bin, "serve",
			"--config", filepath.Join(dir, "config.yaml"),
			"--listen", r.proxy,
			"--admin", r.admin,
			"--allow-dest", "127.0.0.0/8",
			"--hosts", filepath.Join(dir, "hosts"),
			"--probe-interval", "1s",
			// The watch reads a page whose certificate it does not trust:
			// its series exist (with no success) for the alerts' operands.
			"--catalog-watch", tlsUp.URL+"/page")
		readyCtx, cancelReady := context.WithTimeout(ctx, 10*time.Second)
		waitHTTP(t, readyCtx, "http://"+r.admin+"/readyz", exited, "egressgate")
		cancelReady()
		replicas = append(replicas, r)
	}
	resp, err := http.Get("http://" + replicas[0].admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"egressgate_rule_hits_total", "egressgate_requests_total", "egressgate_rule_info"} {
		if !strings.Contains(string(body), m) {
			t.Fatalf("egressgate serves no %s on /metrics: the dashboard and alerts query it", m)
		}
	}

	p := startPrometheus(t, ctx, []string{replicas[0].admin, replicas[1].admin})
	// Traffic after the first scrape, so that increase() sees it.
	waitQuery(t, ctx, p, `count(up{job="egressgate"} == 1) == 2`, "both replicas scraped")

	proxyURL := &url.URL{Scheme: "http", Host: replicas[0].proxy}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:             http.ProxyURL(proxyURL),
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // httptest's certificate
		DisableKeepAlives: true,                                  // every request a tunnel that closes
	}}
	get := func(u string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, tc := range []struct {
		url   string
		allow bool
	}{
		{fmt.Sprintf("https://%s:%d/", host, tlsPort), true},
		{fmt.Sprintf("https://%s:%d/again", host, tlsPort), true},
		{fmt.Sprintf("https://%s:%d/", host, tlsPort), true},
		{fmt.Sprintf("http://%s:%d/", host, plainPort), true},
		{fmt.Sprintf("http://%s:%d/again", host, plainPort), true},
		{"https://denied.example.net/", false},                                  // not-in-catalog
		{"http://denied.example.net/", false},                                   // not-in-catalog, plain HTTP
		{fmt.Sprintf("https://%s:1/", host), false},                             // port-not-allowed
		{fmt.Sprintf("https://%s:%d/", host, closedPort), false},                // admitted, refused upstream
		{fmt.Sprintf("https://unreachable.example.org:%d/", closedPort), false}, // admitted, never reached
	} {
		code, err := get(tc.url)
		if ok := err == nil && code == http.StatusOK; ok != tc.allow {
			t.Errorf("GET %s through the proxy = %d, %v; want allowed %v", tc.url, code, err, tc.allow)
		}
	}
	// A reload, so the reload counters move.
	if err := replicas[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	evalCtx, cancelEval := context.WithTimeout(ctx, 25*time.Second)
	defer cancelEval()
	waitQuery(t, evalCtx, p, `sum(egressgate_rule_hits_total{rule="`+host+`"}) >= 5 and sum(egressgate_tunnel_bytes_total) > 0`, "the traffic scraped")
	evaluateAll(t, evalCtx, p, artefactChecks(t))
	checkRulesHealthy(t, evalCtx, p)

	// What the traffic makes true, read through the artefacts' own queries.
	for _, tc := range []struct {
		expr string
		want string
	}{
		{`count(sum by (catalog, rule) (egressgate_rule_hits_total{job=~"egressgate"}) == 0)`, "2"}, // never.example.org, *.unused.example.net
		{`sum(egressgate_requests_total{decision="deny",reason="port-not-allowed"})`, "1"},
		{`sum(egressgate_requests_total{decision="deny",reason="not-in-catalog"})`, "2"},
		{`sum(egressgate_upstream_errors_total{reason="refused"})`, "2"},
		{`sum(egressgate_rule_upstream_failures_total{rule="unreachable.example.org"})`, "1"},
		{`count(sum by (group) (egressgate_rule_info * on (job, instance, catalog, rule) group_left () egressgate_rule_hits_total) > 0)`, "2"}, // web and api
	} {
		res, err := p.query(ctx, tc.expr)
		if err != nil || len(res) != 1 || fmt.Sprint(res[0].Value[1]) != tc.want {
			t.Errorf("%s = %v (%v), want %s", tc.expr, res, err, tc.want)
		}
	}
	// upstream.example.org reached its upstream, so its one refused
	// CONNECT does not make it "never reached".
	res, err := p.query(ctx, panelExpr(t, "Admitted, never reached"))
	if err != nil || len(res) != 1 || res[0].Metric["rule"] != "unreachable.example.org" {
		t.Errorf("Admitted, never reached = %v (%v), want unreachable.example.org only", res, err)
	}
}

// waitQuery waits until expr returns data.
func waitQuery(t *testing.T, ctx context.Context, p *prometheus, expr, what string) {
	t.Helper()
	for {
		res, err := p.query(ctx, expr)
		if err == nil && len(res) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %s returned %v, %v", what, expr, res, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestKitServes starts egressgate with the arguments the Deployment, the
// systemd unit and the Dockerfile give it, the Deployment's ConfigMap as
// the config, and the listen ports moved to free loopback ports; then the
// Deployment's probe paths must answer 200 on the admin listener, and the
// proxy must refuse a host no catalog names.
func TestKitServes(t *testing.T) {
	bin, _ := buildEgressgate(t)
	objs := loadKubernetes(t)
	dep := findObject(t, objs, "Deployment")
	c := dep.Spec.Template.Spec.Containers[0]
	cm := findObject(t, objs, "ConfigMap")
	cfgDir := configMapDir(t, cm.Data)
	data := readFile(t, dockerfile)
	var dockerCmd []string
	if m := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindStringSubmatch(string(data)); m != nil {
		for _, a := range strings.Split(m[1], ",") {
			dockerCmd = append(dockerCmd, strings.Trim(a, ` "`))
		}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{kubeDir + "/deployment.yaml", c.Args},
		{systemdUnit, strings.Fields(strings.Join(unitDirectives(t, systemdUnit)["ExecStart"], " "))[1:]},
		{"Dockerfile", dockerCmd},
	} {
		t.Run(filepath.Base(tc.name), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			listen, admin := proxytest.FreeAddr(t), proxytest.FreeAddr(t)
			args := rewriteFlags(tc.args, map[string]string{
				"config": filepath.Join(cfgDir, "config.yaml"),
				"listen": listen,
				"admin":  admin,
			})
			_, exited := startProcess(t, t.TempDir(), "egressgate.log", bin, args...)
			waitHTTP(t, ctx, "http://"+admin+c.ReadinessProbe.HTTPGet.Path, exited, "egressgate "+strings.Join(args, " "))
			waitHTTP(t, ctx, "http://"+admin+c.LivenessProbe.HTTPGet.Path, exited, "egressgate "+strings.Join(args, " "))
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: listen}),
			}}
			resp, err := client.Get("http://denied.example.net/")
			if err != nil {
				t.Fatalf("GET through the proxy: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET http://denied.example.net/ through the proxy = %d, want 403", resp.StatusCode)
			}
		})
	}
}

// rewriteFlags returns args with the values of the flags in set replaced
// ("--name=v" and "--name v" forms); flags args lacks are appended.
func rewriteFlags(args []string, set map[string]string) []string {
	out := slices.Clone(args)
	done := map[string]bool{}
	for i := 0; i < len(out); i++ {
		name, ok := strings.CutPrefix(out[i], "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		if n, _, eq := strings.Cut(name, "="); eq {
			if v, ok := set[n]; ok {
				out[i] = "--" + n + "=" + v
				done[n] = true
			}
		} else if v, ok := set[name]; ok && i+1 < len(out) {
			out[i+1] = v
			done[name] = true
			i++
		}
	}
	for _, n := range slices.Sorted(maps.Keys(set)) {
		if !done[n] {
			out = append(out, "--"+n+"="+set[n])
		}
	}
	return out
}
