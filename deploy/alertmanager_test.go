package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressgate/egressgate/metrics/alertmanager"
	"github.com/egressgate/egressgate/rules"
)

// alertmanagerExample is the shipped Alertmanager configuration, made by
// egressgate alertmanager-config from the worked example.
const alertmanagerExample = "alertmanager/alertmanager.yml"

var updateAlertmanager = flag.Bool("update-alertmanager", false, "rewrite "+alertmanagerExample+" from the worked example's contacts")

// exampleEnterprise is the worked example whose contacts the shipped
// Alertmanager configuration routes to.
const exampleEnterprise = "examples/enterprise/egressgate.yaml"

// exampleTargets returns the contacts of the worked example,
// deploy/examples/enterprise (estates.d/sydney.yaml included), loaded and
// mapped as egressgate alertmanager-config does, and the flags of the
// command line in alertmanager/README.md.
func exampleTargets(t *testing.T) ([]alertmanager.EscalationTarget, alertmanager.Options) {
	t.Helper()
	rs, err := rules.Load(exampleEnterprise)
	if err != nil {
		t.Fatal(err)
	}
	targets := alertmanager.EscalationTargets(rs.EstateContacts())
	opts := alertmanager.Options{
		WebhookURL: "https://sms-gateway.example.org/send?to={phone}&estate={estate}&role={role}",
		SMTP: &alertmanager.SMTP{
			Smarthost: "smtp.example.org:587", From: "egressgate-alerts@example.org",
			AuthUsername: "egressgate", AuthPasswordFile: "/etc/prometheus/alertmanager-smtp-password",
		},
		Source: "deploy/" + exampleEnterprise, // the README's command runs from the repository's root
	}
	return targets, opts
}

// TestAlertmanagerExample checks the shipped example: it is what the
// generator makes of its input, and Alertmanager accepts it.
func TestAlertmanagerExample(t *testing.T) {
	targets, opts := exampleTargets(t)
	want, err := alertmanager.Config(targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := readFile(t, alertmanagerExample)
	if !bytes.Equal(got, want) && *updateAlertmanager {
		writeFile(t, alertmanagerExample, string(want))
	} else if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the generator makes of the worked example; regenerate it with go test ./deploy -run TestAlertmanagerExample -update-alertmanager:\n%s",
			alertmanagerExample, want)
	}
	amtool := needTool(t, "apt-get install prometheus-alertmanager", "amtool")
	if out, err := run(t, 30*time.Second, ".", amtool, "check-config", alertmanagerExample); err != nil {
		t.Errorf("amtool check-config %s: %v\n%s", alertmanagerExample, err, out)
	}
}

// notification is one webhook call Alertmanager made.
type notification struct {
	path     string // /ESTATE/ROLE, from the URL template
	receiver string
	at       time.Time
	status   string // of the alert: firing or resolved
	startsAt time.Time
	labels   map[string]string
}

// webhookRecorder records every notification and hands each to a channel,
// which the test reads to react (silence, resolve) the moment a contact
// is told.
type webhookRecorder struct {
	mu   sync.Mutex
	all  []notification
	seen chan notification
}

func (wr *webhookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Receiver string `json:"receiver"`
		Alerts   []struct {
			Status   string            `json:"status"`
			Labels   map[string]string `json:"labels"`
			StartsAt time.Time         `json:"startsAt"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	for _, a := range msg.Alerts {
		n := notification{r.URL.Path, msg.Receiver, now, a.Status, a.StartsAt, a.Labels}
		wr.mu.Lock()
		wr.all = append(wr.all, n)
		wr.mu.Unlock()
		select {
		case wr.seen <- n:
		default: // the test stopped reading; the record is kept
		}
	}
}

// firing returns the firing notifications sent to path, in arrival order.
func (wr *webhookRecorder) firing(path string) []notification {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	var out []notification
	for _, n := range wr.all {
		if n.path == path && n.status == "firing" {
			out = append(out, n)
		}
	}
	return out
}

func (wr *webhookRecorder) String() string {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	var b strings.Builder
	for _, n := range wr.all {
		fmt.Fprintf(&b, "\n  %s %s (%s) startsAt %s", n.at.Format("15:04:05.000"), n.path, n.status, n.startsAt.Format("15:04:05.000"))
	}
	return b.String()
}

// estateSwitch serves one gauge per estate, 1 while that estate's problem
// lasts; the test's alert rule fires on it.
type estateSwitch struct {
	mu  sync.Mutex
	now map[string]int
}

func (s *estateSwitch) set(estate string, v int) {
	s.mu.Lock()
	s.now[estate] = v
	s.mu.Unlock()
}

func (s *estateSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# TYPE escalation_test_problem gauge")
	for _, e := range slices.Sorted(func(yield func(string) bool) {
		for e := range s.now {
			if !yield(e) {
				return
			}
		}
	}) {
		fmt.Fprintf(w, "escalation_test_problem{estate=%q} %d\n", e, s.now[e])
	}
}

// TestAlertmanagerEscalation runs a real Prometheus and Alertmanager on
// loopback with the generated configuration, delays in seconds, and a
// webhook receiver standing for the contacts. Three estates' alerts fire
// together:
//   - london: nobody responds; the primary is told at once, the secondary
//     and the tertiary after their delays, counted from the alert's start;
//   - newyork: a silence is created as soon as the primary is told; the
//     secondary and the tertiary never hear of it;
//   - sydney: the problem goes away as soon as the primary is told; the
//     alert resolves before the secondary's delay, and the later contacts
//     never hear of it.
func TestAlertmanagerEscalation(t *testing.T) {
	amBin := needTool(t, "apt-get install prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
	needTool(t, "apt-get install prometheus", "prometheus")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	const secondaryAfter, tertiaryAfter = 6 * time.Second, 10 * time.Second
	rec := &webhookRecorder{seen: make(chan notification, 64)}
	hooks := httptest.NewServer(rec)
	t.Cleanup(hooks.Close)
	problems := &estateSwitch{now: map[string]int{"london": 1, "newyork": 1, "sydney": 1}}
	exporter := httptest.NewServer(problems)
	t.Cleanup(exporter.Close)

	chain := func(estate string, n int) alertmanager.EscalationTarget {
		tg := alertmanager.EscalationTarget{Estate: estate}
		for i := range n {
			tg.Contacts = append(tg.Contacts, alertmanager.Contact{Name: fmt.Sprintf("%s contact %d", estate, i+1), Email: fmt.Sprintf("c%d@%s.example.org", i+1, estate)})
		}
		return tg
	}
	cfg, err := alertmanager.Config(
		[]alertmanager.EscalationTarget{chain("london", 3), chain("newyork", 3), chain("sydney", 3), chain(rules.DefaultEstate, 1)},
		alertmanager.Options{
			SecondaryAfter: secondaryAfter, TertiaryAfter: tertiaryAfter,
			// Longer than the test: nothing is re-sent while it runs.
			GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour,
			WebhookURL: hooks.URL + "/{estate}/{role}",
		})
	if err != nil {
		t.Fatal(err)
	}
	am := startAlertmanager(t, ctx, amBin, cfg)
	startAlertingPrometheus(t, ctx, am, exporter.Listener.Addr().String())

	// React to the primaries as they are told, until london's tertiary
	// has been told too.
	startsAt := map[string]time.Time{}
	for len(rec.firing("/london/tertiary")) == 0 {
		select {
		case n := <-rec.seen:
			if n.status != "firing" {
				continue
			}
			estate := n.labels["estate"]
			if _, ok := startsAt[estate]; !ok {
				startsAt[estate] = n.startsAt
			}
			switch n.path {
			case "/newyork/primary":
				silence(t, ctx, am, "estate", "newyork")
			case "/sydney/primary":
				problems.set("sydney", 0)
			}
		case <-ctx.Done():
			t.Fatalf("london's tertiary contact was not told in time; notifications:%s", rec)
		}
	}
	// Wait past newyork's and sydney's tertiary delay, with a margin for
	// a flush that would be late.
	for _, estate := range []string{"newyork", "sydney"} {
		s, ok := startsAt[estate]
		if !ok {
			t.Fatalf("%s's primary contact was never told; notifications:%s", estate, rec)
		}
		select {
		case <-time.After(time.Until(s.Add(tertiaryAfter + 3*time.Second))):
		case <-ctx.Done():
			t.Fatal("out of time waiting past the tertiary delay")
		}
	}

	// london: each contact once, in turn, none before its delay.
	var prev time.Time
	for i, role := range []string{"primary", "secondary", "tertiary"} {
		got := rec.firing("/london/" + role)
		if len(got) != 1 {
			t.Errorf("london %s told %d times, want once; notifications:%s", role, len(got), rec)
			continue
		}
		n := got[0]
		if n.receiver != "london/"+role {
			t.Errorf("london %s: notification from receiver %q", role, n.receiver)
		}
		if earliest := n.startsAt.Add([]time.Duration{0, secondaryAfter, tertiaryAfter}[i]); n.at.Before(earliest) {
			t.Errorf("london %s told at %s, before its delay ended at %s", role, n.at.Format(time.StampMilli), earliest.Format(time.StampMilli))
		}
		if !n.at.After(prev) {
			t.Errorf("london %s told at %s, not after the previous contact (%s)", role, n.at.Format(time.StampMilli), prev.Format(time.StampMilli))
		}
		prev = n.at
		t.Logf("london %s told %.2fs after the alert started", role, n.at.Sub(n.startsAt).Seconds())
	}
	// newyork (silenced) and sydney (resolved): the primary only.
	for _, estate := range []string{"newyork", "sydney"} {
		if got := rec.firing("/" + estate + "/primary"); len(got) != 1 {
			t.Errorf("%s primary told %d times, want once; notifications:%s", estate, len(got), rec)
		}
		for _, role := range []string{"secondary", "tertiary"} {
			if got := rec.firing("/" + estate + "/" + role); len(got) != 0 {
				t.Errorf("%s %s was told (%d times) though the alert was %s first; notifications:%s",
					estate, role, len(got), map[string]string{"newyork": "silenced", "sydney": "resolved"}[estate], rec)
			}
		}
	}
	if got := rec.firing("/default/primary"); len(got) != 0 {
		t.Errorf("the enterprise's contact was told of an estate's alert; notifications:%s", rec)
	}
}

// startAlertmanager runs Alertmanager on loopback with cfg, its own
// storage and no clustering, and returns its base URL once it is ready.
func startAlertmanager(t *testing.T, ctx context.Context, bin string, cfg []byte) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alertmanager.yml"), string(cfg))
	return startReadyServer(t, ctx, dir, "alertmanager", bin,
		"--config.file=alertmanager.yml",
		"--storage.path="+filepath.Join(dir, "data"),
		"--cluster.listen-address=",
		"--log.level=debug")
}

// startAlertingPrometheus runs Prometheus on loopback, scraping the
// exporter every second and evaluating, every second, a rule that fires
// for each estate whose escalation_test_problem is 1, sending to the
// Alertmanager at am.
func startAlertingPrometheus(t *testing.T, ctx context.Context, am, exporter string) {
	t.Helper()
	bin := needTool(t, "apt-get install prometheus", "prometheus")
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "rules.yml"), map[string]any{
		"groups": []map[string]any{{
			"name": "escalation-test",
			"rules": []map[string]any{{
				"alert":  "EstateProblem",
				"expr":   "escalation_test_problem == 1",
				"labels": map[string]string{"severity": "warning"},
			}},
		}},
	})
	writeYAML(t, filepath.Join(dir, "prometheus.yml"), map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{"rules.yml"},
		"alerting": map[string]any{"alertmanagers": []map[string]any{{
			"static_configs": []map[string]any{{"targets": []string{strings.TrimPrefix(am, "http://")}}},
		}}},
		"scrape_configs": []map[string]any{{
			"job_name":       "estates",
			"static_configs": []map[string]any{{"targets": []string{exporter}}},
		}},
	})
	runPrometheus(t, ctx, bin, dir)
}

// silence creates, through Alertmanager's API v2, a one-hour silence of
// the alerts whose label equals value.
func silence(t *testing.T, ctx context.Context, am, label, value string) {
	t.Helper()
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{
		"matchers":  []map[string]any{{"name": label, "value": value, "isRegex": false, "isEqual": true}},
		"startsAt":  now.Format(time.RFC3339Nano),
		"endsAt":    now.Add(time.Hour).Format(time.RFC3339Nano),
		"createdBy": "egressgate escalation test",
		"comment":   "the primary contact responded",
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, am+"/api/v2/silences", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("creating a silence: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("creating a silence: HTTP %d: %s", resp.StatusCode, msg)
	}
}

// TestAlertingDocs keeps docs/alerting.md and alertmanager/README.md
// true: a YAML block that starts with "alerting:" is a Prometheus config
// fragment that promtool must accept, any other is an excerpt of the
// shipped example; each `amtool config routes test` line followed by a
// "# RECEIVERS" line gives those receivers on the example.
func TestAlertingDocs(t *testing.T) {
	example := readFile(t, alertmanagerExample)
	blockRE := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	routeRE := regexp.MustCompile(`(?m)^amtool config routes test --config.file=alertmanager.yml (.+)\n# (.+)$`)
	for _, file := range []string{"../docs/alerting.md", "alertmanager/README.md"} {
		doc := readFile(t, file)
		blocks := blockRE.FindAllSubmatch(doc, -1)
		routeTests := routeRE.FindAllStringSubmatch(string(doc), -1)
		if len(blocks) == 0 || len(routeTests) == 0 {
			t.Errorf("%s: %d yaml blocks, %d routing examples; want some of each", file, len(blocks), len(routeTests))
		}
		for _, b := range blocks {
			if bytes.HasPrefix(b[1], []byte("alerting:")) {
				promtool := needTool(t, "apt-get install prometheus", "promtool")
				path := filepath.Join(t.TempDir(), "prometheus.yml")
				writeFile(t, path, string(b[1]))
				if out, err := run(t, 30*time.Second, ".", promtool, "check", "config", path); err != nil {
					t.Errorf("%s: promtool check config on its alerting block: %v\n%s", file, err, out)
				}
				continue
			}
			if !bytes.Contains(example, b[1]) {
				t.Errorf("%s: yaml block is not in %s:\n%s", file, alertmanagerExample, b[1])
			}
		}
		amtool := needTool(t, "apt-get install prometheus-alertmanager", "amtool")
		for _, rt := range routeTests {
			args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerExample}, strings.Fields(rt[1])...)
			out, err := exec.Command(amtool, args...).Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != rt[2] {
				t.Errorf("%s: amtool config routes test %s = %q (%v), the doc says %q", file, rt[1], got, err, rt[2])
			}
		}
	}
}
