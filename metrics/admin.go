package metrics

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/egressgate/egressgate/rules"
)

// RulesPage is the JSON of /rules?format=json: every entry of the
// installed ruleset with its usage since the process started.
type RulesPage struct {
	// Estate is the estate the page is about: its entries and its hits
	// only (/rules?estate=NAME); "" for every entry and every estate.
	Estate         string      `json:"estate,omitempty"`
	Version        string      `json:"version"`                // egressgate build
	MatcherVersion uint64      `json:"matcher_version"`        // changes with every reload
	Installed      time.Time   `json:"installed"`              // when the ruleset was installed
	Catalogs       []string    `json:"catalogs"`               // catalog names, in load order
	Used           int         `json:"used"`                   // entries with a hit that reached its upstream
	NeverReached   int         `json:"admitted_never_reached"` // entries with hits, none of which reached its upstream
	NeverUsed      int         `json:"never_used"`             // entries without a hit
	Rules          []RuleUsage `json:"rules"`                  // in matcher order
}

// RuleUsage is one catalog entry on /rules.
type RuleUsage struct {
	Catalog  string     `json:"catalog"`
	Rule     string     `json:"rule"` // the entry's pattern, the rule label of its series
	Kind     string     `json:"kind"` // exact, wildcard, glob or cidr
	Groups   []string   `json:"groups"`
	Sections []string   `json:"sections"`
	Ports    []uint16   `json:"ports"`
	OS       []string   `json:"os,omitempty"` // empty: every OS
	Region   string     `json:"region,omitempty"`
	Example  bool       `json:"example"`            // an example of a per-account host
	Hits     uint64     `json:"hits"`               // admitted connections and requests
	LastHit  *time.Time `json:"last_hit,omitempty"` // absent: never hit
	// UpstreamFailures counts the hits whose upstream could not be
	// reached (DNS, connect, parent proxy); not kept per estate.
	UpstreamFailures uint64 `json:"upstream_failures"`
	// Refused is why the estate's policy refuses the entry (licence,
	// Live Response, region), with ?estate=NAME only.
	Refused string `json:"refused,omitempty"`
	// Series is the rule label the entry is exported under: Rule, or
	// "_other" beyond Options.MaxRuleSeries.
	Series string `json:"series"`
}

// States of an entry on /rules and in the report.
const (
	StateUsed         = "used"                   // some hit reached its upstream
	StateNeverReached = "admitted-never-reached" // admitted, but every upstream attempt failed
	StateNeverUsed    = "never-used"             // no hit
)

// Reached is how many of the entry's hits got through to the upstream.
func (u RuleUsage) Reached() uint64 {
	if u.UpstreamFailures >= u.Hits {
		return 0
	}
	return u.Hits - u.UpstreamFailures
}

// State says whether the entry was used, admitted but never reached, or
// never used. An entry that clients ask for and none reaches is the line
// to act on: the vendor's host cannot be reached from this network.
func (u RuleUsage) State() string {
	switch {
	case u.Reached() > 0:
		return StateUsed
	case u.Hits > 0:
		return StateNeverReached
	}
	return StateNeverUsed
}

// MissesPage is the JSON of /misses?format=json: the most denied hosts.
type MissesPage struct {
	Capacity int         `json:"capacity"` // hosts the table can track (Options.TopMisses)
	Total    uint64      `json:"total"`    // misses recorded since the process started
	Misses   []MissUsage `json:"misses"`   // most counted first
}

// MissUsage is one denied host on /misses. Host is client-supplied: it is
// escaped (see the miss log) and at most 255 bytes plus "…".
type MissUsage struct {
	Host  string `json:"host"` // lower case
	Count uint64 `json:"count"`
	// Error bounds the overcount: the host was denied at least
	// Count-Error times (space-saving top-k; 0 when exact).
	Error        uint64    `json:"error"`
	LastClient   string    `json:"last_client"`
	LastReason   string    `json:"last_reason"`
	LastListener string    `json:"last_listener"`
	LastPort     uint16    `json:"last_port"`
	LastSeen     time.Time `json:"last_seen"`
	// AccountHost is set when the host looks like the account's own
	// management, API or station host; nil otherwise.
	AccountHost *AccountHostHint `json:"account_host,omitempty"`
}

// RulesPage returns the usage of every entry of the installed ruleset, and
// false when none is installed.
func (r *Recorder) RulesPage() (*RulesPage, bool) {
	p, ok, _ := r.EstateRulesPage("")
	return p, ok
}

// EstateRulesPage is RulesPage for one estate: the entries of its policy
// with its own hits (no last-hit times: those are kept per entry only).
// known is false when estate is not "" and not in the installed config.
func (r *Recorder) EstateRulesPage(estate string) (p *RulesPage, installed, known bool) {
	b := r.binding.Load()
	if b == nil {
		return nil, false, false
	}
	p = &RulesPage{Estate: estate, Version: r.opts.Version, MatcherVersion: b.version, Installed: b.installed.UTC(), Rules: []RuleUsage{}}
	for _, c := range b.ruleset.Catalogs {
		p.Catalogs = append(p.Catalogs, c.Name)
	}
	entries, counters := b.entries, b.byID
	var estateHits []uint64
	if estate != "" {
		es, hits := b.estateHits(estate)
		if es == nil {
			return nil, true, false
		}
		entries, estateHits = es.Matcher.Entries(), hits
	}
	for i, e := range entries {
		u := RuleUsage{
			Catalog: e.Catalog, Rule: e.Pattern, Kind: e.Kind.String(),
			Groups: e.GroupIDs(), Sections: e.Sections(), Ports: e.Ports, OS: e.OS,
			Region: e.Region, Example: e.Example, Series: e.Pattern,
		}
		if e.Deny != rules.ReasonNone && estate != "" {
			u.Refused = e.Deny.String()
		}
		if u.Sections == nil {
			u.Sections = []string{}
		}
		if u.Ports == nil {
			u.Ports = []uint16{}
		}
		if estateHits != nil {
			u.Hits = estateHits[i]
			if u.Hits > 0 {
				p.Used++
			} else {
				p.NeverUsed++
			}
			p.Rules = append(p.Rules, u)
			continue
		}
		rc := counters[i]
		u.Hits, u.UpstreamFailures = rc.hits.Load(), rc.failed.Load()
		if ns := rc.lastHit.Load(); ns != 0 {
			t := time.Unix(0, ns).UTC()
			u.LastHit = &t
		}
		if !b.exported[i] {
			u.Series = otherRule
		}
		switch u.State() {
		case StateUsed:
			p.Used++
		case StateNeverReached:
			p.NeverReached++
		default:
			p.NeverUsed++
		}
		p.Rules = append(p.Rules, u)
	}
	return p, true, true
}

// MissesPage returns the most denied hosts.
func (r *Recorder) MissesPage() *MissesPage {
	top, total := r.top.snapshot()
	p := &MissesPage{Capacity: r.top.capacity, Total: total, Misses: make([]MissUsage, len(top))}
	for i, m := range top {
		p.Misses[i] = MissUsage{Host: m.Host, Count: m.Count, Error: m.Error, LastClient: m.Client,
			LastReason: m.Reason, LastListener: m.Listener, LastPort: m.Port, LastSeen: m.Seen.UTC(),
			AccountHost: accountHostHint(m.Host, m.Reason, m.Port)}
	}
	return p
}

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"minute": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"join":   strings.Join,
	// someOS returns an entry's OS list when it excludes an OS, nil when
	// the entry applies to all of them.
	"someOS": func(os []string) []string {
		for _, o := range rules.AllOS() {
			if !slices.Contains(os, o) {
				return os
			}
		}
		return nil
	},
	"ports": func(ps []uint16) string {
		var b bytes.Buffer
		for i, p := range ps {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprint(&b, p)
		}
		return b.String()
	},
}).ParseFS(templateFS, "templates/*.html"))

// AdminHandler serves the admin listener:
//
//	/metrics   g in the Prometheus exposition format
//	/rules     every catalog entry with its hits (see RulesPage)
//	/misses    the most denied hosts (see MissesPage)
//	/healthz   200 "ok" while the process serves
//	/readyz    200 "ready" once ready() reports true and a ruleset is installed, else 503
//
// /rules and /misses answer in the format the client asks for (see
// pageFormat): HTML to browsers, JSON to ?format=json or Accept:
// application/json, and a plain-text table to everything else, curl
// included.
//
// ready nil means ready as soon as a ruleset is installed.
func (r *Recorder) AdminHandler(g prometheus.Gatherer, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /rules", r.serveRules)
	mux.HandleFunc("GET /misses", r.serveMisses)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case !r.installed():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no ruleset installed")
		case ready != nil && !ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		render(w, "index.html", r.opts.Version)
	})
	return mux
}

func (r *Recorder) serveRules(w http.ResponseWriter, req *http.Request) {
	estate := req.URL.Query().Get("estate")
	p, ok, known := r.EstateRulesPage(estate)
	if !ok {
		http.Error(w, "no ruleset installed", http.StatusServiceUnavailable)
		return
	}
	if !known {
		// The name is the client's: quoted, never reflected raw.
		http.Error(w, fmt.Sprintf("no estate %q in the config", estate), http.StatusNotFound)
		return
	}
	switch pageFormat(req) {
	case formatJSON:
		writeJSON(w, p)
	case formatHTML:
		render(w, "rules.html", p)
	default:
		writeText(w, func(tw *tabwriter.Writer) { p.writeText(tw) })
	}
}

func (r *Recorder) serveMisses(w http.ResponseWriter, req *http.Request) {
	p := r.MissesPage()
	switch pageFormat(req) {
	case formatJSON:
		writeJSON(w, p)
	case formatHTML:
		render(w, "misses.html", p)
	default:
		writeText(w, func(tw *tabwriter.Writer) { p.writeText(tw) })
	}
}

// Formats of /rules and /misses.
const (
	formatText = "text"
	formatHTML = "html"
	formatJSON = "json"
)

// pageFormat picks the answer's format: ?format= (text, html or json)
// when given, else the one of text/html, application/json and text/plain
// the Accept header ranks highest (the first on a tie). A client that
// names none of them, like curl's "*/*", gets text: a 40 KB page of HTML
// is no answer for a terminal.
func pageFormat(req *http.Request) string {
	switch req.URL.Query().Get("format") {
	case formatJSON:
		return formatJSON
	case formatHTML:
		return formatHTML
	case formatText:
		return formatText
	}
	best, bestQ := formatText, 0.0
	for _, part := range strings.Split(req.Header.Get("Accept"), ",") {
		mediaType, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		var f string
		switch strings.ToLower(strings.TrimSpace(mediaType)) {
		case "text/html":
			f = formatHTML
		case "application/json":
			f = formatJSON
		case "text/plain":
			f = formatText
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = f, q
		}
	}
	return best
}

// writeText sends a plain-text table.
func writeText(w http.ResponseWriter, write func(*tabwriter.Writer)) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Vary", "Accept")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	write(tw)
	_ = tw.Flush() // a write error means the client went away
}

// writeText prints the page as a table: a summary line, then one line per
// entry with its state, hits, upstream failures and last hit.
func (p *RulesPage) writeText(w io.Writer) {
	fmt.Fprintf(w, "egressgate %s, matcher v%d installed %s, catalogs %s\n", p.Version, p.MatcherVersion,
		p.Installed.UTC().Format("2006-01-02 15:04:05 UTC"), strings.Join(p.Catalogs, ", "))
	if p.Estate != "" {
		fmt.Fprintf(w, "estate %s: the entries of its policy and its own hits\n", p.Estate)
	}
	fmt.Fprintf(w, "entries: %d (%d used, %d admitted but never reached, %d never used); hits since the process started\n\n",
		len(p.Rules), p.Used, p.NeverReached, p.NeverUsed)
	fmt.Fprintln(w, "STATE\tCATALOG\tRULE\tHITS\tFAILED UPSTREAM\tLAST HIT (UTC)\tPORTS\tGROUPS")
	for _, u := range p.Rules {
		last := "-"
		if u.LastHit != nil {
			last = u.LastHit.UTC().Format("2006-01-02 15:04:05")
		}
		ports := make([]string, len(u.Ports))
		for i, port := range u.Ports {
			ports[i] = strconv.Itoa(int(port))
		}
		state := u.State()
		if u.Refused != "" {
			state = "refused:" + u.Refused
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", state, u.Catalog, u.Rule, u.Hits, u.UpstreamFailures,
			last, strings.Join(ports, ","), strings.Join(u.Groups, ","))
	}
}

// writeText prints the page as a table, most denied first. Hosts are
// escaped already (see the miss log).
func (p *MissesPage) writeText(w io.Writer) {
	fmt.Fprintf(w, "%d misses since the process started; %d hosts tracked (capacity %d; a count may be over by at most its error)\n\n",
		p.Total, len(p.Misses), p.Capacity)
	fmt.Fprintln(w, "HOST\tCOUNT\tERROR\tLAST REASON\tLAST CLIENT\tLISTENER\tPORT\tLAST SEEN (UTC)")
	for _, m := range p.Misses {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\n", termSafe(m.Host), m.Count, m.Error, m.LastReason, m.LastClient,
			m.LastListener, m.LastPort, m.LastSeen.UTC().Format("2006-01-02 15:04:05"))
	}
	first := true
	for _, m := range p.Misses {
		if a := m.AccountHost; a != nil {
			if first {
				fmt.Fprintln(w, "\nACCOUNT HOSTS AMONG THE MISSES")
				first = false
			}
			fmt.Fprintf(w, "%s: %s (%s): add %s\n", termSafe(m.Host), a.Hint, a.Role, a.Add)
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a write error means the client went away
}

// render executes a page into a buffer first, so a template error is a
// 500 rather than half a page.
func render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Vary", "Accept")
	_, _ = w.Write(buf.Bytes())
}
