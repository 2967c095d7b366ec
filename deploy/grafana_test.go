package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	grafana "github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

var registerGrafanaPlugins sync.Once

// dashboardStrictErrors decodes a dashboard with the Grafana Foundation
// SDK's strict decoder: the dashboard's schema, each panel type's options
// and field config, and the Prometheus query's fields. It returns every
// error but one kind: "required field is missing from input", which the
// SDK reports for each option the JSON leaves to Grafana's defaults
// (Grafana fills them in when it loads a dashboard; the SDK does not).
// Unknown fields, wrong types and unknown panel types stay errors.
func dashboardStrictErrors(data []byte) []string {
	registerGrafanaPlugins.Do(plugins.RegisterDefaultPlugins)
	var d grafana.Dashboard
	err := d.UnmarshalJSONStrict(data)
	if err == nil {
		return nil
	}
	var berrs cog.BuildErrors
	if !errors.As(err, &berrs) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range berrs {
		if e.Message != "required field is missing from input" {
			out = append(out, e.Error())
		}
	}
	return out
}

// TestDashboardStrict decodes the shipped dashboard strictly into the
// Grafana dashboard types, so that a panel with a misspelt or misplaced
// field fails here rather than being dropped by Grafana on import.
func TestDashboardStrict(t *testing.T) {
	data := readFile(t, dashboardFile)
	if errs := dashboardStrictErrors(data); len(errs) > 0 {
		t.Errorf("%s does not decode into the Grafana dashboard types:\n%s", dashboardFile, strings.Join(errs, "\n"))
	}
}

// TestDashboardStrictCatchesTypos pins that the strict decoding fails on
// what a hand edit gets wrong: each case changes the shipped dashboard in
// one place, and the error must name that place.
func TestDashboardStrictCatchesTypos(t *testing.T) {
	data := readFile(t, dashboardFile)
	// firstPanel returns the index and object of the first top-level
	// panel of the given type that has targets.
	firstPanel := func(d map[string]any, typ string) (int, map[string]any) {
		for i, p := range d["panels"].([]any) {
			if p := p.(map[string]any); p["type"] == typ && p["targets"] != nil {
				return i, p
			}
		}
		t.Fatalf("%s has no top-level %s panel with targets", dashboardFile, typ)
		return 0, nil
	}
	for _, tc := range []struct {
		name   string
		change func(d map[string]any) string // returns the text the error must hold
	}{
		{"dashboard-field", func(d map[string]any) string { d["refersh"] = "30s"; return "Dashboard: unexpected field 'refersh'" }},
		{"panel-field", func(d map[string]any) string {
			i, p := firstPanel(d, "timeseries")
			p["titel"] = "x"
			return fmt.Sprintf("panels[%d].Panel: unexpected field 'titel'", i)
		}},
		{"panel-options", func(d map[string]any) string {
			i, p := firstPanel(d, "timeseries")
			p["options"].(map[string]any)["legnd"] = map[string]any{}
			return fmt.Sprintf("panels[%d].options.Options: unexpected field 'legnd'", i)
		}},
		{"query-field", func(d map[string]any) string {
			i, p := firstPanel(d, "stat")
			p["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
			return fmt.Sprintf("panels[%d].targets[0].Dataquery: unexpected field 'exprr'", i)
		}},
		{"wrong-type", func(d map[string]any) string {
			i, p := firstPanel(d, "stat")
			p["gridPos"].(map[string]any)["h"] = "8"
			return fmt.Sprintf("panels[%d].gridPos.h: json: cannot unmarshal string", i)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			where := tc.change(d)
			changed, _ := json.Marshal(d)
			errs := dashboardStrictErrors(changed)
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), where) {
				t.Errorf("strict errors %q, want one containing %q", errs, where)
			}
		})
	}
}
