// Package alertmanager generates an Alertmanager configuration that
// escalates each estate's alerts through its contacts (egressgate
// alertmanager-config), built only from Alertmanager's own routing:
//
//   - Every estate is a route matching estate="NAME". Its children use
//     continue: true, one per contact, each with its own group_wait: the
//     primary's is 0s, the secondary's and the tertiary's are the delays.
//     Each child is its own aggregation group, and Alertmanager counts a new
//     group's wait from the alert's startsAt, so the secondary hears of an
//     alert SecondaryAfter after it started firing, also across an
//     Alertmanager restart.
//   - A group flush drops silenced alerts, and a first flush with nothing
//     firing sends nothing: a silence (the response) or the alert resolving
//     before a delay is over keeps the later contacts from ever hearing of it.
//     Escalation receivers do not send resolved notifications.
//   - group_by ['...'] by default makes every alert its own group, so every
//     alert has its own escalation clock; a coarser grouping would let an
//     alert that joins an already escalated group reach the later contacts
//     at the next group_interval instead.
//   - Report-type alerts (severity="info") are not escalated: they go at
//     once to every contact who has not opted out of reports.
//   - Alerts without an estate label, with estate="default" or with an
//     estate the config does not name go to the enterprise's contacts (the
//     target named rules.DefaultEstate).
package alertmanager

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/egressgate/egressgate/rules"
)

// Labels the generated routes match on.
const (
	estateLabel   = "estate"
	severityLabel = "severity"
	// reportSeverity is the severity of report-type notifications, which
	// contacts may opt out of.
	reportSeverity = "info"
)

// contactRoles are the names of a target's contacts, in the order they are
// tried; they name the receivers ("london/secondary").
var contactRoles = []string{"primary", "secondary", "tertiary"}

// nobodyReceiver takes the reports of an estate whose contacts all opted
// out of them.
const nobodyReceiver = "egressgate/nobody"

// Contact is one person an estate's alerts go to.
type Contact struct {
	Name  string
	Email string // required when the config sends email
	Phone string // with country code; only for webhook URL templates
	// OptOutReports keeps report-type (severity="info") alerts from this
	// contact.
	OptOutReports bool
}

// EscalationTarget is an estate and its contacts in the order they are
// tried: primary (required), then secondary and tertiary (optional).
type EscalationTarget struct {
	Estate   string
	Contacts []Contact
}

// EscalationTargets maps each estate's contacts, as the ruleset has them
// (rules.Ruleset.EstateContacts), to the generator's input: primary,
// secondary, tertiary, in that order, skipping those not set. A primary
// without name or email (an enterprise without contacts) leaves the estate
// with no contacts at all, and Config then says the estate has
// no primary contact.
func EscalationTargets(ecs []rules.EstateContacts) []EscalationTarget {
	out := make([]EscalationTarget, 0, len(ecs))
	for _, ec := range ecs {
		t := EscalationTarget{Estate: ec.Estate}
		add := func(c *rules.Contact) {
			if c != nil && (c.Name != "" || c.Email != "") {
				t.Contacts = append(t.Contacts, Contact{Name: c.Name, Email: c.Email, Phone: c.Phone, OptOutReports: c.OptOutReports})
			}
		}
		add(&ec.Contacts.Primary)
		if len(t.Contacts) > 0 {
			add(ec.Contacts.Secondary)
			add(ec.Contacts.Tertiary)
		}
		out = append(out, t)
	}
	return out
}

// SMTP is how Alertmanager sends email. The password stays in a file that
// Alertmanager reads, never in the generated configuration.
type SMTP struct {
	Smarthost        string // host:port
	From             string
	AuthUsername     string // empty: no authentication
	AuthPasswordFile string
	// RequireTLS nil keeps Alertmanager's default (true).
	RequireTLS *bool
}

// Options are the timings and the receivers of the generated
// configuration. At least one of WebhookURL and SMTP must be set; with
// both, every contact gets both.
type Options struct {
	// SecondaryAfter and TertiaryAfter are how long after an alert
	// starts firing the secondary and the tertiary contact hear of it,
	// unless it was silenced or resolved; 0 means 15m and 30m.
	SecondaryAfter, TertiaryAfter time.Duration
	// GroupBy nil means ["..."]: every alert is its own group.
	GroupBy []string
	// GroupInterval 0 means 5m; RepeatInterval 0 means 4h.
	GroupInterval, RepeatInterval time.Duration
	// WebhookURL is a URL template: {estate}, {role} (primary, secondary,
	// tertiary), {name}, {email} and {phone} are replaced by the contact's
	// values, escaped for the part of the URL they are in.
	WebhookURL string
	SMTP       *SMTP
	// Source names the config the targets came from, for the header.
	Source string
}

// Default delays, after the MDR practice of trying the next contact when
// the previous one has not answered within a quarter of an hour.
const (
	DefaultSecondaryAfter = 15 * time.Minute
	DefaultTertiaryAfter  = 30 * time.Minute
)

func (o *Options) withDefaults() Options {
	out := *o
	if out.SecondaryAfter == 0 {
		out.SecondaryAfter = DefaultSecondaryAfter
	}
	if out.TertiaryAfter == 0 {
		out.TertiaryAfter = DefaultTertiaryAfter
	}
	if out.GroupBy == nil {
		out.GroupBy = []string{"..."}
	}
	if out.GroupInterval == 0 {
		out.GroupInterval = 5 * time.Minute
	}
	if out.RepeatInterval == 0 {
		out.RepeatInterval = 4 * time.Hour
	}
	return out
}

// The parts of Alertmanager's configuration the generator writes, in the
// order Alertmanager documents them.
type (
	amConfig struct {
		Global    *amGlobal    `yaml:"global,omitempty"`
		Route     *amRoute     `yaml:"route"`
		Receivers []amReceiver `yaml:"receivers"`
	}
	amGlobal struct {
		SMTPSmarthost        string `yaml:"smtp_smarthost,omitempty"`
		SMTPFrom             string `yaml:"smtp_from,omitempty"`
		SMTPAuthUsername     string `yaml:"smtp_auth_username,omitempty"`
		SMTPAuthPasswordFile string `yaml:"smtp_auth_password_file,omitempty"`
		SMTPRequireTLS       *bool  `yaml:"smtp_require_tls,omitempty"`
	}
	amRoute struct {
		Receiver       string     `yaml:"receiver,omitempty"`
		Matchers       []string   `yaml:"matchers,omitempty,flow"`
		GroupBy        []string   `yaml:"group_by,omitempty,flow"`
		GroupWait      string     `yaml:"group_wait,omitempty"`
		GroupInterval  string     `yaml:"group_interval,omitempty"`
		RepeatInterval string     `yaml:"repeat_interval,omitempty"`
		Continue       bool       `yaml:"continue,omitempty"`
		Routes         []*amRoute `yaml:"routes,omitempty"`
	}
	amReceiver struct {
		Name           string      `yaml:"name"`
		EmailConfigs   []amEmail   `yaml:"email_configs,omitempty"`
		WebhookConfigs []amWebhook `yaml:"webhook_configs,omitempty"`
	}
	amEmail struct {
		To           string `yaml:"to"`
		SendResolved bool   `yaml:"send_resolved"`
	}
	amWebhook struct {
		URL          string `yaml:"url"`
		SendResolved bool   `yaml:"send_resolved"`
	}
)

// Config returns an Alertmanager configuration (YAML) that
// routes each target's alerts to its contacts in turn. One target must be
// rules.DefaultEstate. Targets keep their order in the output, the default last.
func Config(targets []EscalationTarget, opts Options) ([]byte, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	var tmpl *urlTemplate
	if o.WebhookURL != "" {
		var err error
		if tmpl, err = parseURLTemplate(o.WebhookURL); err != nil {
			return nil, fmt.Errorf("alertmanager config: %w", err)
		}
	}
	cfg := amConfig{Route: &amRoute{
		GroupBy:        o.GroupBy,
		GroupWait:      "0s",
		GroupInterval:  promDuration(o.GroupInterval),
		RepeatInterval: promDuration(o.RepeatInterval),
	}}
	if s := o.SMTP; s != nil {
		cfg.Global = &amGlobal{s.Smarthost, s.From, s.AuthUsername, s.AuthPasswordFile, s.RequireTLS}
	}
	seen := map[string]bool{}
	var def *amRoute
	needNobody := false
	for _, t := range targets {
		if err := t.validate(o.SMTP != nil); err != nil {
			return nil, err
		}
		if seen[t.Estate] {
			return nil, fmt.Errorf("alertmanager config: estate %q listed twice", t.Estate)
		}
		seen[t.Estate] = true
		rt, receivers, err := estateRoute(t, o, tmpl)
		if err != nil {
			return nil, err
		}
		cfg.Receivers = append(cfg.Receivers, receivers...)
		needNobody = needNobody || rt.Routes[0].Receiver == nobodyReceiver
		if t.Estate == rules.DefaultEstate {
			def = rt
			continue
		}
		rt.Matchers = []string{matcher(estateLabel, t.Estate)}
		cfg.Route.Routes = append(cfg.Route.Routes, rt)
	}
	if def == nil {
		return nil, fmt.Errorf("alertmanager config: no contacts for the enterprise (estate %q): alerts without a known estate would reach nobody", rules.DefaultEstate)
	}
	// The default chain comes last and matches everything the estate
	// routes before it did not take.
	cfg.Route.Receiver = def.Receiver
	cfg.Route.Routes = append(cfg.Route.Routes, def)
	if needNobody {
		cfg.Receivers = append(cfg.Receivers, amReceiver{Name: nobodyReceiver})
	}

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Alertmanager configuration generated by `egressgate alertmanager-config`")
	if o.Source != "" {
		fmt.Fprintf(&buf, " from %s", commentSafe(o.Source))
	}
	fmt.Fprintf(&buf, ".\n# Regenerate it when the contacts change rather than editing it.\n#\n")
	fmt.Fprintf(&buf, "# Each estate's alerts (label %s) go to its primary contact at once, to its\n", estateLabel)
	fmt.Fprintf(&buf, "# secondary %s and its tertiary %s after they started firing,\n", promDuration(o.SecondaryAfter), promDuration(o.TertiaryAfter))
	fmt.Fprintf(&buf, "# unless they were silenced or resolved by then. %s=%q alerts (reports)\n", severityLabel, reportSeverity)
	fmt.Fprintf(&buf, "# go at once to every contact who did not opt out of reports.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("alertmanager config: encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("alertmanager config: encoding: %w", err)
	}
	return buf.Bytes(), nil
}

// commentSafe returns s as it is when it needs no escaping, else quoted
// with strconv.Quote, so that a path holding a newline (or any character
// Go would escape) cannot end the YAML comment it is written into and add
// keys to the generated configuration.
func commentSafe(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

func (o *Options) validate() error {
	var errs []error
	if o.WebhookURL == "" && o.SMTP == nil {
		errs = append(errs, errors.New("no receiver: give a webhook URL template, SMTP settings or both"))
	}
	if o.SecondaryAfter < 0 || o.TertiaryAfter <= o.SecondaryAfter {
		errs = append(errs, fmt.Errorf("delays secondary %v, tertiary %v: want 0 < secondary < tertiary", o.SecondaryAfter, o.TertiaryAfter))
	}
	for name, d := range map[string]time.Duration{
		"secondary delay": o.SecondaryAfter, "tertiary delay": o.TertiaryAfter,
		"group interval": o.GroupInterval, "repeat interval": o.RepeatInterval,
	} {
		if d <= 0 || d%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("%s %v: want a positive whole number of milliseconds", name, d))
		}
	}
	for _, l := range o.GroupBy {
		if l != "..." && !isLabelName(l) {
			errs = append(errs, fmt.Errorf("group_by label %q: want a label name or \"...\"", l))
		}
	}
	if slices.Contains(o.GroupBy, "...") && len(o.GroupBy) > 1 {
		errs = append(errs, errors.New(`group_by "..." must be alone: it already groups by every label`))
	}
	if s := o.SMTP; s != nil {
		if s.Smarthost == "" || s.From == "" {
			errs = append(errs, errors.New("smtp: smarthost and from are both required"))
		}
		if (s.AuthUsername == "") != (s.AuthPasswordFile == "") {
			errs = append(errs, errors.New("smtp: give the auth username and the password file together"))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("alertmanager config: %w", err)
	}
	return nil
}

func (t *EscalationTarget) validate(needEmail bool) error {
	if t.Estate == "" {
		return errors.New("alertmanager config: a target has no estate name")
	}
	if len(t.Contacts) == 0 {
		return fmt.Errorf("alertmanager config: estate %q has no primary contact", t.Estate)
	}
	if len(t.Contacts) > len(contactRoles) {
		return fmt.Errorf("alertmanager config: estate %q has %d contacts, at most %d (primary, secondary, tertiary)", t.Estate, len(t.Contacts), len(contactRoles))
	}
	for i, c := range t.Contacts {
		if needEmail && c.Email == "" {
			return fmt.Errorf("alertmanager config: estate %q %s contact %q has no email, and the config sends email", t.Estate, contactRoles[i], c.Name)
		}
	}
	return nil
}

// estateRoute returns the route of one target, without its estate matcher,
// and the receivers it names: one per contact.
func estateRoute(t EscalationTarget, o Options, tmpl *urlTemplate) (*amRoute, []amReceiver, error) {
	delays := []time.Duration{0, o.SecondaryAfter, o.TertiaryAfter}
	reports := &amRoute{Matchers: []string{matcher(severityLabel, reportSeverity)}}
	rt := &amRoute{Routes: []*amRoute{reports}}
	var receivers []amReceiver
	for i, c := range t.Contacts {
		role := contactRoles[i]
		name := t.Estate + "/" + role
		// Only the primary hears that an alert resolved: the others heard
		// of it only if it outlasted their delay, and a resolution alone
		// would be noise to whoever never saw it fire.
		rcv := amReceiver{Name: name}
		if o.SMTP != nil {
			rcv.EmailConfigs = []amEmail{{To: c.Email, SendResolved: i == 0}}
		}
		if tmpl != nil {
			u, err := tmpl.expand(map[string]string{"estate": t.Estate, "role": role, "name": c.Name, "email": c.Email, "phone": c.Phone})
			if err != nil {
				return nil, nil, fmt.Errorf("alertmanager config: estate %q %s contact: %w", t.Estate, role, err)
			}
			rcv.WebhookConfigs = []amWebhook{{URL: u, SendResolved: i == 0}}
		}
		receivers = append(receivers, rcv)
		if i == 0 {
			rt.Receiver = name
		}
		if !c.OptOutReports {
			reports.Routes = append(reports.Routes, &amRoute{Receiver: name, Continue: true})
		}
		step := &amRoute{Receiver: name, Continue: i < len(t.Contacts)-1}
		if i > 0 {
			step.GroupWait = promDuration(delays[i])
		}
		rt.Routes = append(rt.Routes, step)
	}
	switch {
	case len(t.Contacts) == 1 && len(reports.Routes) == 1:
		// One contact, who takes reports: they go where everything else
		// goes, and a reports route would only repeat that.
		rt.Routes = rt.Routes[1:]
	case len(reports.Routes) == 0:
		// Everyone opted out: the reports stop here rather than falling
		// through to the escalation below.
		reports.Receiver = nobodyReceiver
	case len(reports.Routes) == 1:
		reports.Receiver, reports.Routes = reports.Routes[0].Receiver, nil
	default:
		reports.Receiver = rt.Receiver
		reports.Routes[len(reports.Routes)-1].Continue = false
	}
	return rt, receivers, nil
}

// matcher returns an Alertmanager equality matcher, the value quoted the
// way its matcher parser unquotes.
func matcher(label, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return label + `="` + r.Replace(value) + `"`
}

// promDuration formats d the way Alertmanager parses durations: units
// from h down to ms, no fractions ("1h30m", "4s", "0s").
func promDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

func isLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// urlTemplate is a webhook URL with {placeholders}. A value replacing a
// placeholder in the path is path-escaped; in the query, or before the
// path (scheme, host, port), it is query-escaped, so that "+44 20" stays
// one value and no value can add a user or move the webhook to another
// host: an escaped '@' or ':' there makes the URL invalid instead.
type urlTemplate struct {
	parts []urlPart
}

type urlPart struct {
	literal string
	field   string // placeholder name; "" for a literal
	strict  bool   // query-escape the value, else path-escape it
}

var templateFields = []string{"estate", "role", "name", "email", "phone"}

func parseURLTemplate(s string) (*urlTemplate, error) {
	t := &urlTemplate{}
	var prefix strings.Builder // the URL so far, placeholders as "x"
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		lit := rest[:open]
		if strings.Contains(lit, "}") {
			return nil, fmt.Errorf("webhook URL %q: unmatched '}'", s)
		}
		t.parts = append(t.parts, urlPart{literal: lit})
		prefix.WriteString(lit)
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("webhook URL %q: unclosed '{'", s)
		}
		field := rest[open+1 : open+end]
		if !slices.Contains(templateFields, field) {
			return nil, fmt.Errorf("webhook URL %q: unknown placeholder {%s}, want one of {%s}", s, field, strings.Join(templateFields, "}, {"))
		}
		t.parts = append(t.parts, urlPart{field: field, strict: inQueryOrAuthority(prefix.String())})
		prefix.WriteString("x")
		rest = rest[open+end+1:]
	}
	// Check the template's shape once, with sample values, so that a bad
	// scheme or host is reported for the template rather than per contact.
	sample := map[string]string{"estate": "e", "role": "primary", "name": "n", "email": "e@example.org", "phone": "+1"}
	if err := checkWebhookURL(t.fill(sample)); err != nil {
		return nil, fmt.Errorf("webhook URL %q: %w", s, err)
	}
	return t, nil
}

// inQueryOrAuthority reports whether a value appended to the URL prefix
// would land in its query or before its path.
func inQueryOrAuthority(prefix string) bool {
	i := strings.Index(prefix, "://")
	return i < 0 || !strings.ContainsAny(prefix[i+3:], "/?#") || strings.Contains(prefix, "?")
}

// expand fills the placeholders and checks that the result is a URL
// Alertmanager accepts.
func (t *urlTemplate) expand(values map[string]string) (string, error) {
	s := t.fill(values)
	if err := checkWebhookURL(s); err != nil {
		return "", fmt.Errorf("webhook URL %q: %w", s, err)
	}
	return s, nil
}

func (t *urlTemplate) fill(values map[string]string) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.field == "":
			b.WriteString(p.literal)
		case p.strict:
			b.WriteString(url.QueryEscape(values[p.field]))
		default:
			b.WriteString(url.PathEscape(values[p.field]))
		}
	}
	return b.String()
}

// checkWebhookURL returns an error unless s is an absolute http or https
// URL, which Alertmanager requires of a webhook.
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http:// or https:// URL")
	}
	return nil
}
