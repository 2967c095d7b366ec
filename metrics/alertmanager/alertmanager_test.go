package alertmanager

import (
	"flag"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"

	"github.com/egressgate/egressgate/metrics/internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// alertingInput is the "input.yaml" section of a testdata/alertmanager-*
// case: the targets and the options, durations as Go durations.
type alertingInput struct {
	Options struct {
		SecondaryAfter string   `yaml:"secondary_after"`
		TertiaryAfter  string   `yaml:"tertiary_after"`
		GroupBy        []string `yaml:"group_by"`
		GroupInterval  string   `yaml:"group_interval"`
		RepeatInterval string   `yaml:"repeat_interval"`
		WebhookURL     string   `yaml:"webhook_url"`
		SMTP           *struct {
			Smarthost        string `yaml:"smarthost"`
			From             string `yaml:"from"`
			AuthUsername     string `yaml:"auth_username"`
			AuthPasswordFile string `yaml:"auth_password_file"`
			RequireTLS       *bool  `yaml:"require_tls"`
		} `yaml:"smtp"`
		Source string `yaml:"source"`
	} `yaml:"options"`
	Targets []struct {
		Estate   string `yaml:"estate"`
		Contacts []struct {
			Name          string `yaml:"name"`
			Email         string `yaml:"email"`
			Phone         string `yaml:"phone"`
			OptOutReports bool   `yaml:"opt_out_reports"`
		} `yaml:"contacts"`
	} `yaml:"targets"`
}

func (in *alertingInput) convert(t *testing.T) ([]EscalationTarget, Options) {
	t.Helper()
	dur := func(s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	o := in.Options
	opts := Options{
		SecondaryAfter: dur(o.SecondaryAfter), TertiaryAfter: dur(o.TertiaryAfter),
		GroupBy: o.GroupBy, GroupInterval: dur(o.GroupInterval), RepeatInterval: dur(o.RepeatInterval),
		WebhookURL: o.WebhookURL, Source: o.Source,
	}
	if s := o.SMTP; s != nil {
		opts.SMTP = &SMTP{s.Smarthost, s.From, s.AuthUsername, s.AuthPasswordFile, s.RequireTLS}
	}
	var targets []EscalationTarget
	for _, tg := range in.Targets {
		et := EscalationTarget{Estate: tg.Estate}
		for _, c := range tg.Contacts {
			et.Contacts = append(et.Contacts, Contact{c.Name, c.Email, c.Phone, c.OptOutReports})
		}
		targets = append(targets, et)
	}
	return targets, opts
}

// TestAlertmanagerConfigGolden runs every testdata/alertmanager-*.txtar:
// the "input.yaml" section's targets and options must give the "want"
// section (a configuration) or the "error" section. A configuration must
// pass `amtool check-config`, and each line "LABELS => RECEIVERS" of the
// "routes" section must hold for `amtool config routes test`: an alert with
// those labels reaches exactly those receivers, in that order.
func TestAlertmanagerConfigGolden(t *testing.T) {
	amtool, _ := exec.LookPath("amtool")
	if testing.Short() {
		amtool = "" // -short starts no real component
	}
	if amtool == "" {
		t.Log("no amtool (-short, or apt-get install prometheus-alertmanager): configurations are compared, not checked")
	}
	txtar.Each(t, "testdata/alertmanager-*.txtar", func(t *testing.T, file string, a txtar.Archive) {
		src, _ := a.File("input.yaml")
		var in alertingInput
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("input.yaml: %v", err)
		}
		targets, opts := in.convert(t)
		out, err := Config(targets, opts)
		wantErr, isErrCase := a.File("error")
		if isErrCase {
			if err == nil {
				t.Fatalf("Config = config, want error %q", strings.TrimSpace(wantErr))
			}
			if got := err.Error() + "\n"; got != wantErr {
				if *update {
					a.SetFile("error", got)
					txtar.Rewrite(t, file, a)
					return
				}
				t.Fatalf("Config error =\n%s\nwant\n%s", got, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		if want, _ := a.File("want"); string(out) != want {
			if !*update {
				t.Fatalf("Config =\n%s\nwant\n%s", out, want)
			}
			a.SetFile("want", string(out))
			txtar.Rewrite(t, file, a)
		}
		if amtool == "" {
			return
		}
		path := filepath.Join(t.TempDir(), "alertmanager.yml")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil {
			t.Fatalf("amtool check-config: %v\n%s", err, msg)
		}
		routes, _ := a.File("routes")
		for line := range strings.Lines(routes) {
			labels, want, ok := strings.Cut(strings.TrimSpace(line), " => ")
			if !ok {
				t.Fatalf("routes: line %q is not LABELS => RECEIVERS", line)
			}
			args := append([]string{"config", "routes", "test", "--config.file=" + path}, strings.Fields(labels)...)
			msg, err := exec.Command(amtool, args...).Output()
			if err != nil {
				t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, msg)
			}
			if got := strings.TrimSpace(string(msg)); got != want {
				t.Errorf("alert {%s} reaches %s, want %s", labels, got, want)
			}
		}
	})
}

func TestPromDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{4 * time.Second, "4s"},
		{90 * time.Minute, "1h30m"},
		{26*time.Hour + 1500*time.Millisecond, "26h1s500ms"},
		{15 * time.Minute, "15m"},
	}
	for _, tt := range tests {
		if got := promDuration(tt.in); got != tt.want {
			t.Errorf("promDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURLTemplate(t *testing.T) {
	tests := []struct {
		tmpl string
		want string // for the contact below; or the error
	}{
		{"http://127.0.0.1:9000/{estate}/{role}", "http://127.0.0.1:9000/new%20york/secondary"},
		{"https://sms.example.org/send?to={phone}&who={name}", "https://sms.example.org/send?to=%2B44+20+7946+0000&who=Ann+O%27Neil"},
		{"https://hooks.example.org/{email}", "https://hooks.example.org/ann@example.org"},
		{"http://x.example.org/{nope}", `webhook URL "http://x.example.org/{nope}": unknown placeholder {nope}, want one of {estate}, {role}, {name}, {email}, {phone}`},
		{"http://x.example.org/{estate", `webhook URL "http://x.example.org/{estate": unclosed '{'`},
		{"http://x.example.org/estate}", `webhook URL "http://x.example.org/estate}": unmatched '}'`},
		{"/relative/{estate}", `webhook URL "/relative/{estate}": want an absolute http:// or https:// URL`},
		{"ftp://x.example.org/{estate}", `webhook URL "ftp://x.example.org/{estate}": want an absolute http:// or https:// URL`},
		{"http://{role}.example.org/", "http://secondary.example.org/"},
		{"http://127.0.0.1:9095{name}/", `webhook URL "http://127.0.0.1:9095{name}/": parse "http://127.0.0.1:9095n/": invalid port ":9095n" after host`},
		{"http://{email}/", `webhook URL "http://{email}/": parse "http://e%40example.org/": invalid URL escape "%40"`},
		{"http://{name}.example.org/", `webhook URL "http://Ann+O%27Neil.example.org/": parse "http://Ann+O%27Neil.example.org/": invalid URL escape "%27"`},
	}
	values := map[string]string{"estate": "new york", "role": "secondary", "name": "Ann O'Neil", "email": "ann@example.org", "phone": "+44 20 7946 0000"}
	for _, tt := range tests {
		tmpl, err := parseURLTemplate(tt.tmpl)
		var got string
		if err == nil {
			got, err = tmpl.expand(values)
		}
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("parseURLTemplate(%q).expand = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

// FuzzURLTemplate checks that a template either fails to parse or
// expands, for any values, to a URL that parses; and that when every
// placeholder comes after the host, no value can move the webhook to
// another scheme or host; nor, wherever it is, add a user.
func FuzzURLTemplate(f *testing.F) {
	f.Add("http://127.0.0.1:9000/{estate}/{role}", "london", "+44 20")
	f.Add("https://sms.example.org/send?to={phone}&who={name}", "a/b?c#d", "@evil.example")
	f.Add("http://{estate}.example.org/", "x", "y")
	f.Add("http://h.example.org/{name}", "../../x", "//evil.example/")
	f.Fuzz(func(t *testing.T, tmplText, v1, v2 string) {
		tmpl, err := parseURLTemplate(tmplText)
		if err != nil {
			return
		}
		values := map[string]string{"estate": v1, "role": "primary", "name": v2, "email": v1, "phone": v2}
		got, err := tmpl.expand(values)
		if err != nil {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("expand(%q) = %q, which does not parse: %v", tmplText, got, err)
		}
		literalAt := false
		for _, p := range tmpl.parts {
			literalAt = literalAt || strings.Contains(p.literal, "@")
		}
		if u.User != nil && !literalAt {
			t.Errorf("template %q with %q, %q expands to %q, which has a user %q the template does not", tmplText, v1, v2, got, u.User)
		}
		head := tmpl.parts[0].literal
		scheme, rest, ok := strings.Cut(head, "://")
		if !ok || !strings.ContainsAny(rest, "/?#") || scheme == "" {
			return // a placeholder may be in the authority
		}
		base, _ := url.Parse(head)
		if u.Scheme != base.Scheme || u.Host != base.Host {
			t.Errorf("template %q with %q, %q expands to %q: scheme/host %s://%s, want %s://%s", tmplText, v1, v2, got, u.Scheme, u.Host, base.Scheme, base.Host)
		}
	})
}

func TestEscalationTargets(t *testing.T) {
	ann := rules.Contact{Name: "Ann", Email: "ann@example.org", Phone: "+44 20 7946 0000"}
	bob := rules.Contact{Name: "Bob", Email: "bob@example.org", OptOutReports: true, OptOutAnnouncements: true}
	cat := rules.Contact{Name: "Cat", Email: "cat@example.org"}
	in := []rules.EstateContacts{
		{Estate: "default", Contacts: rules.Contacts{Primary: ann}},
		{Estate: "london", Contacts: rules.Contacts{Primary: ann, Secondary: &bob, Tertiary: &cat}},
		{Estate: "paris", Contacts: rules.Contacts{Primary: ann, Tertiary: &cat}},                  // no secondary: the tertiary moves up
		{Estate: "rome", Contacts: rules.Contacts{Secondary: &bob}},                                // no primary: none at all, the generator refuses
		{Estate: "oslo", Contacts: rules.Contacts{Primary: rules.Contact{Email: "o@example.org"}}}, // email only is a contact
	}
	A := Contact{Name: "Ann", Email: "ann@example.org", Phone: "+44 20 7946 0000"}
	B := Contact{Name: "Bob", Email: "bob@example.org", OptOutReports: true}
	C := Contact{Name: "Cat", Email: "cat@example.org"}
	want := []EscalationTarget{
		{Estate: "default", Contacts: []Contact{A}},
		{Estate: "london", Contacts: []Contact{A, B, C}},
		{Estate: "paris", Contacts: []Contact{A, C}},
		{Estate: "rome"},
		{Estate: "oslo", Contacts: []Contact{{Email: "o@example.org"}}},
	}
	if got := EscalationTargets(in); !reflect.DeepEqual(got, want) {
		t.Errorf("EscalationTargets =\n%+v\nwant\n%+v", got, want)
	}
}

// TestAlertmanagerConfigSourceStaysAComment checks that a config path
// naming characters YAML or a comment cannot carry (a newline above all)
// is escaped, so the "generated from" comment stays one line and cannot
// add keys to the generated configuration.
func TestAlertmanagerConfigSourceStaysAComment(t *testing.T) {
	data, err := os.ReadFile("testdata/alertmanager-webhook.txtar")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := txtar.Parse(string(data)).File("input.yaml")
	var in alertingInput
	if err := yaml.Unmarshal([]byte(src), &in); err != nil {
		t.Fatalf("input.yaml: %v", err)
	}
	targets, opts := in.convert(t)
	opts.Source = ""
	plain, err := Config(targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(plain, &want); err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{
		"etc/egressgate.yaml\ninhibit_rules: [{equal: [x]}]\n# ",
		"a\r\nreceivers: []",
		"a\u2028b\"\\",
	} {
		opts.Source = source
		out, err := Config(targets, opts)
		if err != nil {
			t.Fatalf("Source %q: %v", source, err)
		}
		first, rest, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(first, "# ") || !strings.HasPrefix(rest, "# Regenerate") {
			t.Errorf("Source %q: the comment is not one line:\n%s", source, out)
		}
		var got map[string]any
		if err := yaml.Unmarshal(out, &got); err != nil {
			t.Fatalf("Source %q: the output does not parse: %v\n%s", source, err, out)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Source %q changed the configuration:\n%s", source, out)
		}
	}
}
