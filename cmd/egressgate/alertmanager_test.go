package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/metrics/alertmanager"
)

func TestParseAlertmanagerFlags(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name   string
		args   string
		config string
		opts   alertmanager.Options
		out    string
		usage  string // a usage error, or ""
	}{
		{"defaults", "--webhook-url http://127.0.0.1:9/{estate}", "", alertmanager.Options{
			SecondaryAfter: 15 * time.Minute, TertiaryAfter: 30 * time.Minute, GroupBy: []string{"..."},
			WebhookURL: "http://127.0.0.1:9/{estate}"}, "", ""},
		{"everything", "--config e.yaml --secondary-after 5m --tertiary-after 1h --group-by alertname,estate --group-interval 1m --repeat-interval 2h -o am.yml " +
			"--smtp-smarthost smtp.example.org:587 --smtp-from a@example.org --smtp-auth-username u --smtp-auth-password-file /p --smtp-require-tls=false",
			"e.yaml", alertmanager.Options{
				SecondaryAfter: 5 * time.Minute, TertiaryAfter: time.Hour, GroupBy: []string{"alertname", "estate"},
				GroupInterval: time.Minute, RepeatInterval: 2 * time.Hour,
				SMTP: &alertmanager.SMTP{Smarthost: "smtp.example.org:587", From: "a@example.org", AuthUsername: "u", AuthPasswordFile: "/p", RequireTLS: &no}},
			"am.yml", ""},
		{"smtp without tls flag keeps the default", "--smtp-smarthost h:25 --smtp-from a@example.org", "", alertmanager.Options{
			SecondaryAfter: 15 * time.Minute, TertiaryAfter: 30 * time.Minute, GroupBy: []string{"..."},
			SMTP: &alertmanager.SMTP{Smarthost: "h:25", From: "a@example.org"}}, "", ""},
		{"tls flag alone means smtp", "--smtp-require-tls", "", alertmanager.Options{
			SecondaryAfter: 15 * time.Minute, TertiaryAfter: 30 * time.Minute, GroupBy: []string{"..."},
			SMTP: &alertmanager.SMTP{RequireTLS: &yes}}, "", ""},
		{"bad duration", "--secondary-after soon", "", alertmanager.Options{}, "", `invalid value "soon" for flag -secondary-after`},
		{"zero delay", "--secondary-after 0s", "", alertmanager.Options{}, "", "delays must be positive"},
		{"argument", "--webhook-url http://127.0.0.1:9/ extra", "", alertmanager.Options{}, "", `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			config, opts, out, _, ok := parseAlertmanagerFlags(newCommandLine("alertmanager-config"), strings.Fields(tt.args), io.Discard, &stderr)
			if tt.usage != "" {
				if ok || !strings.Contains(stderr.String(), tt.usage) {
					t.Errorf("parseAlertmanagerFlags(%s): ok %v, stderr %q; want a usage error with %q", tt.args, ok, stderr.String(), tt.usage)
				}
				return
			}
			if !ok || config != tt.config || out != tt.out || !reflect.DeepEqual(opts, tt.opts) {
				t.Errorf("parseAlertmanagerFlags(%s) = %q, %+v (smtp %+v), %q, %v; want %q, %+v (smtp %+v), %q\nstderr: %s",
					tt.args, config, opts, opts.SMTP, out, ok, tt.config, tt.opts, tt.opts.SMTP, tt.out, stderr.String())
			}
		})
	}
}

func TestRunAlertmanagerConfigErrors(t *testing.T) {
	tests := []struct {
		args   string
		exit   int
		stderr string
	}{
		{"--config testdata/configs/missing.yaml --webhook-url http://127.0.0.1:9/", 1, "missing.yaml"},
		{"--group-interval never", 2, `invalid value "never" for flag -group-interval`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		exit := run(append([]string{"alertmanager-config"}, strings.Fields(tt.args)...), &stdout, &stderr)
		if exit != tt.exit || !strings.Contains(stderr.String(), tt.stderr) || stdout.Len() != 0 {
			t.Errorf("alertmanager-config %s: exit %d, stderr %q, stdout %q; want exit %d, stderr with %q", tt.args, exit, stderr.String(), stdout.String(), tt.exit, tt.stderr)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alertmanager.yml")
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("after writeFileAtomic(%q): file has %q (%v)", content, got, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory has %d entries after two writes, want 1 (no temporary file left)", len(entries))
	}
	err := writeFileAtomic(filepath.Join(dir, "no", "such", "dir.yml"), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "writing ") {
		t.Errorf("writeFileAtomic into a missing directory: %v, want an error naming the file", err)
	}
}

// TestAlertmanagerConfigWorkedExample runs the command line of
// deploy/alertmanager/README.md on the worked example; the output must be
// the shipped deploy/alertmanager/alertmanager.yml.
func TestAlertmanagerConfigWorkedExample(t *testing.T) {
	t.Chdir(filepath.Join("..", ".."))
	const config = "deploy/examples/enterprise/egressgate.yaml"
	args := []string{"alertmanager-config", "--config", config,
		"--smtp-smarthost", "smtp.example.org:587", "--smtp-from", "egressgate-alerts@example.org",
		"--smtp-auth-username", "egressgate", "--smtp-auth-password-file", "/etc/prometheus/alertmanager-smtp-password",
		"--webhook-url", "https://sms-gateway.example.org/send?to={phone}&estate={estate}&role={role}"}
	var stdout, stderr bytes.Buffer
	exit := run(args, &stdout, &stderr)
	if exit != 0 {
		t.Fatalf("egressgate %s: exit %d\n%s", strings.Join(args, " "), exit, stderr.String())
	}
	want, err := os.ReadFile("deploy/alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(want) {
		t.Errorf("egressgate %s =\n%s\nwant deploy/alertmanager/alertmanager.yml:\n%s", strings.Join(args, " "), stdout.String(), want)
	}
}
