package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/egressgate/egressgate/metrics/alertmanager"
)

// runAlertmanagerConfig writes an Alertmanager configuration that routes
// each estate's alerts to its contacts in turn (see docs/alerting.md).
// Exit 0 when written, 1 when the config or the contacts are wrong or the
// file cannot be written, 2 for bad usage.
func runAlertmanagerConfig(fs *commandLine, args []string, stdout, stderr io.Writer) int {
	config, opts, out, exit, ok := parseAlertmanagerFlags(fs, args, stdout, stderr)
	if !ok {
		return exit
	}
	rs, ok := loadConfig(config, stderr)
	if !ok {
		return 1
	}
	opts.Source = rs.Config.Path
	var noContact []string
	for _, ec := range rs.EstateContacts() {
		if ec.Contacts.Primary.Name == "" {
			noContact = append(noContact, ec.Estate)
		}
	}
	if len(noContact) > 0 {
		fmt.Fprintf(stderr, "egressgate alertmanager-config: estates without a primary contact: %s: their alerts would have no one to call; set policy.contacts.primary, or the estate's own contacts\n", strings.Join(noContact, ", "))
		return 1
	}
	data, err := alertmanager.Config(alertmanager.EscalationTargets(rs.EstateContacts()), opts)
	if err != nil {
		fmt.Fprintf(stderr, "egressgate alertmanager-config: %v\n", err)
		return 1
	}
	if out == "" {
		stdout.Write(data)
		return 0
	}
	if err := writeFileAtomic(out, data); err != nil {
		fmt.Fprintf(stderr, "egressgate alertmanager-config: %v\n", err)
		return 1
	}
	return 0
}

// parseAlertmanagerFlags returns the config path, the generator's options
// and the output path the flags say; ok is false after the help (exit 0)
// or a usage error reported to stderr (exit 2).
func parseAlertmanagerFlags(fs *commandLine, args []string, stdout, stderr io.Writer) (config string, opts alertmanager.Options, out string, exit int, ok bool) {
	configFlag := fs.addConfig()
	fs.DurationVar(&opts.SecondaryAfter, "secondary-after", alertmanager.DefaultSecondaryAfter, "how long after an alert starts firing the secondary contact hears of it, unless silenced or resolved")
	fs.DurationVar(&opts.TertiaryAfter, "tertiary-after", alertmanager.DefaultTertiaryAfter, "the same for the tertiary contact")
	fs.StringVar(&opts.WebhookURL, "webhook-url", "", "webhook URL `template` for every contact; {estate}, {role}, {name}, {email} and {phone} are replaced")
	smtp := alertmanager.SMTP{}
	fs.StringVar(&smtp.Smarthost, "smtp-smarthost", "", "send email through this SMTP `host:port`")
	fs.StringVar(&smtp.From, "smtp-from", "", "sender `address` of the email")
	fs.StringVar(&smtp.AuthUsername, "smtp-auth-username", "", "SMTP user `name`")
	fs.StringVar(&smtp.AuthPasswordFile, "smtp-auth-password-file", "", "`file` Alertmanager reads the SMTP password from")
	requireTLS := fs.Bool("smtp-require-tls", true, "require STARTTLS (Alertmanager's default)")
	groupBy := fs.String("group-by", "...", "comma-separated `labels` to group alerts by; ... (every label) gives each alert its own escalation clock")
	fs.DurationVar(&opts.GroupInterval, "group-interval", 0, "Alertmanager group_interval (default 5m)")
	fs.DurationVar(&opts.RepeatInterval, "repeat-interval", 0, "Alertmanager repeat_interval (default 4h)")
	fs.StringVar(&out, "o", "", "write to `file` instead of standard output")
	if exit, ok := fs.parseNoArgs(args, stdout, stderr); !ok {
		return "", opts, "", exit, false
	}
	if opts.SecondaryAfter <= 0 || opts.TertiaryAfter <= 0 {
		// 0 would mean the generator's default, not "at once".
		return "", opts, "", fs.fail(stderr, "--secondary-after %v, --tertiary-after %v: delays must be positive", opts.SecondaryAfter, opts.TertiaryAfter), false
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["smtp-smarthost"] || set["smtp-from"] || set["smtp-auth-username"] || set["smtp-auth-password-file"] || set["smtp-require-tls"] {
		if set["smtp-require-tls"] {
			smtp.RequireTLS = requireTLS
		}
		opts.SMTP = &smtp
	}
	opts.GroupBy = strings.Split(*groupBy, ",")
	for i := range opts.GroupBy {
		opts.GroupBy[i] = strings.TrimSpace(opts.GroupBy[i])
	}
	return *configFlag, opts, out, 0, true
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, so that an Alertmanager reloading meanwhile never reads
// half a configuration.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
