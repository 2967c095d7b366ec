package metrics

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy"
	"github.com/egressgate/egressgate/proxy/proxytest"
	"github.com/egressgate/egressgate/rules"
)

// noDNS answers every lookup with "no such host": an admitted name the
// proxy must resolve fails upstream (upstream-dns).
type noDNS struct{}

func (noDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestStatesThroughTheProxy drives real CONNECTs through the proxy from
// two estates' client addresses (real hits, upstream failures, refusals)
// and checks every entry state in the global view and both estates' views,
// in /rules's JSON (fields pinned) and in the report built from it.
func TestStatesThroughTheProxy(t *testing.T) {
	const (
		ltUS   = "live-terminal-us-east-2.prod.hydra.sophos.com"
		ltEU   = "live-terminal-eu-west-1.prod.hydra.sophos.com"
		fail   = "central.sophos.com"
		london = "127.1.0.5"
		ny     = "127.2.0.5"
	)
	up := proxytest.Listen(t)
	proxytest.Serve(t, up, func(c net.Conn) { c.Close() })
	port := up.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "local.txt"), fmt.Appendf(nil, "ok.example.test:%d\n", port), 0o644)
	cfg := filepath.Join(dir, "egressgate.yaml")
	os.WriteFile(cfg, []byte(`catalogs:
  - path: local.txt
policy:
  live_response: "off"
estates:
  - name: london
    subnets: [127.1.0.0/16]
  - name: newyork
    subnets: [127.2.0.0/16]
    source: enterprise
    policy:
      live_response: "on"
      regions: [us-east-2]
`), 0o644)
	r, reg, _ := newTest(t, nil, Options{})
	rl, err := rules.NewReloader(cfg, nil, rules.ReloadHooks{OnSwap: r.Install})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{Rules: rl, Recorder: r, Resolver: noDNS{},
		Hosts:     proxy.Hosts{"ok.example.test": {netip.MustParseAddr("127.0.0.1")}},
		AllowDest: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ln := proxytest.Listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	for _, c := range []struct {
		src, target string
		status      int
	}{
		{london, fmt.Sprintf("ok.example.test:%d", port), 200}, // used
		{london, fail + ":443", 502},                           // admitted, upstream-dns
		{ny, fail + ":443", 502},
		{london, ltUS + ":443", 403}, // live-response-off
		{ny, ltUS + ":443", 502},     // admitted in newyork, upstream-dns
		{ny, ltEU + ":443", 403},     // region-excluded
	} {
		if got := connectStatus(t, ln.Addr().String(), c.src, c.target); got != c.status {
			t.Fatalf("CONNECT %s from %s = %d, want %d", c.target, c.src, got, c.status)
		}
	}

	type want struct{ state, reason string }
	for _, view := range []struct {
		estate string
		rows   map[string]want
		counts StateCounts
	}{
		{"", map[string]want{
			"ok.example.test": {StateUsed, ""}, fail: {StateNeverReached, ""}, ltUS: {StateNeverReached, ""},
			ltEU: {StateRefused, "live-response-off"}, "sophos.com": {StateNeverUsed, ""},
		}, StateCounts{Used: 1, NeverReached: 2, NeverUsed: 79, Refused: 8}},
		{"london", map[string]want{
			"ok.example.test": {StateUsed, ""}, fail: {StateNeverReached, ""}, ltUS: {StateRefused, "live-response-off"},
			ltEU: {StateRefused, "live-response-off"},
		}, StateCounts{Used: 1, NeverReached: 1, NeverUsed: 79, Refused: 9}},
		{"newyork", map[string]want{
			"ok.example.test": {StateNeverUsed, ""}, fail: {StateNeverReached, ""}, ltUS: {StateNeverReached, ""},
			ltEU: {StateRefused, "region-excluded"}, "mcs-push-server-eu-west-1.prod.hydra.sophos.com": {StateRefused, "region-excluded"},
		}, StateCounts{NeverReached: 2}},
	} {
		t.Run("view "+view.estate, func(t *testing.T) {
			admin := newAdmin(t, r, reg, nil)
			u := admin.URL + "/rules?format=json"
			if view.estate != "" {
				u += "&estate=" + view.estate
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			json.NewDecoder(resp.Body).Decode(&raw)
			resp.Body.Close()
			for _, k := range []string{"used", "admitted_never_reached", "never_used", "refused", "rules", "estates"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("/rules JSON lacks %q", k)
				}
			}
			rows := map[string]map[string]any{}
			for _, row := range raw["rules"].([]any) {
				m := row.(map[string]any)
				rows[m["rule"].(string)] = m
			}
			for rule, w := range view.rows {
				m := rows[rule]
				reason, _ := m["reason"].(string)
				if m == nil || m["state"] != w.state || reason != w.reason {
					t.Errorf("%s: state %v, reason %q; want %s %q", rule, m["state"], reason, w.state, w.reason)
				}
			}
			// The report from the same page tells the same truth.
			rep, err := FetchAdmin(context.Background(), http.DefaultClient, admin.URL, view.estate)
			if err != nil {
				t.Fatal(err)
			}
			got := countStates(rep.Rules)
			if view.estate == "newyork" {
				got.NeverUsed, got.Refused = 0, 0 // pinned by rows above
			}
			if got != view.counts || float64(got.Used) != raw["used"].(float64) && view.estate != "newyork" {
				t.Errorf("report counts %+v, want %+v (JSON used %v)", got, view.counts, raw["used"])
			}
		})
	}
}

// connectStatus sends a CONNECT from src and returns the status.
func connectStatus(t *testing.T, proxyAddr, src, target string) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode
}
