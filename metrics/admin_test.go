package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/rules"
)

// TestPageFormats checks that /rules and /misses answer browsers with
// HTML, JSON clients with JSON, and everything else (curl) with a
// plain-text table.
func TestPageFormats(t *testing.T) {
	rs, r, reg := newListTest(t)
	d := decide(rs, proxy.ListenerConnect, "example.org", 443)
	r.Decided(d)
	r.Dialed(d, time.Millisecond, 0, proxy.DialDNS)
	decideConnects(r, rs, "x.example.net", hostileHost)
	srv := newAdmin(t, r, reg, nil)
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	for _, tc := range []struct {
		name, query, accept, contentType, body string
	}{
		{"rules curl", "/rules", "*/*", "text/plain", "admitted-never-reached  -       test     example.org"},
		{"rules no accept", "/rules", "", "text/plain", "STATE"},
		{"rules browser", "/rules", browser, "text/html", `<span class="pill unreached">admitted, never reached</span>`},
		{"rules json accept", "/rules", "application/json", "application/json", `"admitted_never_reached": 1`},
		{"rules json query", "/rules?format=json", browser, "application/json", `"upstream_failures": 1`},
		{"rules html query", "/rules?format=html", "", "text/html", "<table"},
		{"rules text query", "/rules?format=text", browser, "text/plain", "entries: 4 (1 used, 1 admitted but never reached, 2 never used, 0 refused)"},
		{"rules json preferred by q", "/rules", "text/html;q=0.5, application/json", "application/json", `"rules"`},
		{"misses curl", "/misses", "*/*", "text/plain", `<script>alert(1)</script>\x1b[2j.example  1      0      invalid-host`},
		{"misses browser", "/misses", browser, "text/html", "&lt;script&gt;"},
		{"misses json", "/misses", "application/json", "application/json", `"total": 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ct, body := getAccept(t, srv.URL+tc.query, tc.accept)
			if code != 200 || !strings.HasPrefix(ct, tc.contentType) || !strings.Contains(body, tc.body) {
				t.Errorf("GET %s (Accept %q) = %d %s, want %s containing %q:\n%s", tc.query, tc.accept, code, ct, tc.contentType, tc.body, body)
			}
			if strings.Contains(body, "\x1b") {
				t.Errorf("GET %s (Accept %q) carries a raw escape character", tc.query, tc.accept)
			}
		})
	}
}

func TestHealthAndReady(t *testing.T) {
	rs := loadList(t, "test", testList)
	tests := []struct {
		name      string
		install   bool
		ready     func() bool
		path      string
		want      int
		wantInBod string
	}{
		{"healthz", false, nil, "/healthz", 200, "ok"},
		{"readyz without ruleset", false, nil, "/readyz", 503, "no ruleset"},
		{"readyz with ruleset", true, nil, "/readyz", 200, "ready"},
		{"readyz not ready", true, func() bool { return false }, "/readyz", 503, "not ready"},
		{"readyz ready", true, func() bool { return true }, "/readyz", 200, "ready"},
		{"rules without ruleset", false, nil, "/rules", 503, "no ruleset"},
		{"metrics", true, nil, "/metrics", 200, "egressgate_rule_hits_total{catalog=\"test\",rule=\"example.org\"} 0"},
		{"index", true, nil, "/", 200, "/rules"},
		{"unknown path", true, nil, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reg, _ := newTest(t, nil, Options{})
			if tt.install {
				r.Install(rs)
			}
			srv := newAdmin(t, r, reg, tt.ready)
			code, body := get(t, srv.URL+tt.path)
			if code != tt.want || !strings.Contains(body, tt.wantInBod) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, code, body, tt.want, tt.wantInBod)
			}
		})
	}
}

func TestRulesJSON(t *testing.T) {
	rs, r, reg := newListTest(t)
	for range 3 {
		r.Decided(decide(rs, proxy.ListenerConnect, "x.example.net", 443))
	}
	srv := newAdmin(t, r, reg, nil)
	code, body := get(t, srv.URL+"/rules?format=json")
	if code != 200 {
		t.Fatalf("GET /rules?format=json = %d %s", code, body)
	}
	var p RulesPage
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Used != 1 || p.NeverUsed != 3 || len(p.Rules) != 4 {
		t.Errorf("used, never used, rules = %d, %d, %d; want 1, 3, 4", p.Used, p.NeverUsed, len(p.Rules))
	}
	tests := []struct {
		rule    string
		hits    uint64
		lastHit bool
		ports   string
	}{
		{"example.org", 0, false, "[443]"},
		{"*.example.net", 3, true, "[443]"},
		{"api.example.com", 0, false, "[443,8443]"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			for _, u := range p.Rules {
				if u.Rule != tt.rule {
					continue
				}
				ports, _ := json.Marshal(u.Ports)
				if u.Hits != tt.hits || (u.LastHit != nil) != tt.lastHit || string(ports) != tt.ports || u.Catalog != "test" {
					t.Errorf("rule %q = %+v, want %d hits, last hit %v, ports %s", tt.rule, u, tt.hits, tt.lastHit, tt.ports)
				}
				return
			}
			t.Errorf("rule %q not on /rules", tt.rule)
		})
	}
}

func TestMissesPage(t *testing.T) {
	rs, r, reg := newListTest(t)
	for range 2 {
		r.Decided(decide(rs, proxy.ListenerConnect, hostileHost, 443))
	}
	r.Decided(decide(rs, proxy.ListenerHTTP, "other.example", 80))
	srv := newAdmin(t, r, reg, nil)

	t.Run("json", func(t *testing.T) {
		_, body := get(t, srv.URL+"/misses?format=json")
		var p MissesPage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		if p.Total != 3 || len(p.Misses) != 2 {
			t.Fatalf("total, hosts = %d, %d; want 3, 2", p.Total, len(p.Misses))
		}
		m := p.Misses[0]
		if m.Host != `<script>alert(1)</script>\x1b[2j.example` || m.Count != 2 || m.LastClient != testClient.String() || m.LastReason != "invalid-host" {
			t.Errorf("top miss = %+v", m)
		}
	})
	t.Run("html escapes hosts", func(t *testing.T) {
		_, _, body := getAccept(t, srv.URL+"/misses", "text/html")
		if strings.Contains(body, "<script>") || strings.Contains(body, "\x1b") {
			t.Errorf("/misses carries the host unescaped:\n%s", body)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2j.example") {
			t.Errorf("/misses lacks the escaped host:\n%s", body)
		}
	})
}

// TestRulesPageInBrowser renders /rules in headless Chromium and checks the
// table a person sees. The screenshot is kept in $EGRESSGATE_SCREENSHOT_DIR
// (default: the test's temporary directory) as rules-page.png.
func TestRulesPageInBrowser(t *testing.T) {
	chromium := needTool(t, "apt-get install chromium", "chromium")
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	// Two estates, one with Live Response off, so that the page shows
	// every state, refused rows included, and the estate picker.
	rs, err = rules.Select(&rules.Config{Policy: rules.Policy{LiveResponse: rules.LiveResponseOff},
		Estates: []rules.EstateConfig{{Name: "london", Subnets: []string{"10.1.0.0/16"}}, {Name: "sydney", Subnets: []string{"10.3.0.0/16"}}}}, rs.Catalogs)
	if err != nil {
		t.Fatal(err)
	}
	r, reg, _ := newTest(t, rs, Options{})
	for _, h := range []struct {
		host string
		n    int
	}{{"central.sophos.com", 42}, {"d1.sophosupd.com", 7}, {"ocsp.digicert.com", 3}} {
		d := decide(rs, proxy.ListenerConnect, h.host, 443)
		if !d.Verdict.Allow {
			t.Fatalf("%s:443 is not allowed by the default catalog", h.host)
		}
		d.Time = time.Now().Add(-time.Duration(h.n) * time.Minute)
		for range h.n {
			r.Decided(d)
		}
	}
	// An entry clients ask for that never gets through.
	d := decide(rs, proxy.ListenerConnect, "cloud-assets.sophos.com", 443)
	d.Time = time.Now().Add(-5 * time.Minute)
	for range 4 {
		r.Decided(d)
		r.Dialed(d, time.Millisecond, 0, proxy.DialDNS)
	}
	// More names behind the wildcard *.sophosupd.com.
	for i, h := range []string{"d2.sophosupd.com", "sus.eu.sophosupd.com"} {
		d := decide(rs, proxy.ListenerConnect, h, 443)
		d.Time = time.Now().Add(-time.Duration(i+1) * time.Minute)
		for range 3 - i {
			r.Decided(d)
		}
	}
	srv := newAdmin(t, r, reg, nil)

	browse := func(t *testing.T, args ...string) string {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1280,1100"}
		cmd := exec.Command(chromium, append(append(base, args...), srv.URL+"/rules")...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	t.Run("dom", func(t *testing.T) {
		dom := browse(t, "--dump-dom")
		for _, want := range []string{
			`<tr class="used" data-rule="central.sophos.com" data-state="used"`,
			`<td class="num hits">42</td>`,
			`<b id="used">3</b>`,
			`<span class="pill never">never used</span>`,
			`<span class="pill unreached">admitted, never reached</span>`,
			`<b id="never-reached">1</b>`,
			`<b id="refused">9</b>`,
			`<option value="london">london</option>`,
			`<span class="pill refused">refused: live-response-off</span>`,
			`<tbody class="section" data-section="intercept-x">`,
			`<summary>3 names behind it</summary>`,
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered /rules lacks %s", want)
			}
		}
	})
	t.Run("screenshot", func(t *testing.T) {
		dir := os.Getenv("EGRESSGATE_SCREENSHOT_DIR")
		if dir == "" {
			dir = t.TempDir()
		}
		file, err := filepath.Abs(filepath.Join(dir, "rules-page.png"))
		if err != nil {
			t.Fatal(err)
		}
		browse(t, "--screenshot="+file, "--hide-scrollbars")
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 10_000 {
			t.Fatalf("screenshot %s is %d bytes, want a real image", file, fi.Size())
		}
		t.Logf("screenshot of /rules: %s", file)
	})
}
