package metrics

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/pprof"
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
// installed ruleset with its usage since the process started, and how many
// entries are in each state.
type RulesPage struct {
	// Estate is the estate the page is about: its policy's verdict on
	// each entry and its own hits (/rules?estate=NAME); "" for every
	// estate.
	Estate         string    `json:"estate,omitempty"`
	Version        string    `json:"version"`         // egressgate build
	MatcherVersion uint64    `json:"matcher_version"` // changes with every reload
	Installed      time.Time `json:"installed"`       // when the ruleset was installed
	Catalogs       []string  `json:"catalogs"`        // catalog names, in load order
	// Estates are the estates of the config, the default first, for the
	// page's estate picker.
	Estates []string `json:"estates"`
	StateCounts
	Rules []RuleUsage `json:"rules"` // in matcher order
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
	LastHit  *time.Time `json:"last_hit,omitempty"` // absent: never hit, or not kept (per estate)
	// UpstreamFailures counts the hits whose upstream could not be
	// reached (DNS, connect, parent proxy).
	UpstreamFailures uint64 `json:"upstream_failures"`
	// State is one of States, set by EntryState.
	State string `json:"state"`
	// Reason is why a refused entry is refused: a deny reason of the
	// policy (not-licensed, live-response-off, region-excluded) or why
	// the policy leaves it out (section-off, exact-mode, os-excluded).
	Reason string `json:"reason,omitempty"`
	// Names are the names admitted through a wildcard or glob entry, most
	// hits first: at most 32, the least used evicted.
	Names []NameHits `json:"names,omitempty"`
	// Series is the rule label the entry is exported under: Rule, or
	// "_other" beyond Options.MaxRuleSeries.
	Series string `json:"series"`
}

// Reached is how many of the entry's hits got through to the upstream.
func (u RuleUsage) Reached() uint64 {
	if u.UpstreamFailures >= u.Hits {
		return 0
	}
	return u.Hits - u.UpstreamFailures
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
	LastEstate   string    `json:"last_estate,omitempty"` // the last client's estate
	LastReason   string    `json:"last_reason"`
	LastListener string    `json:"last_listener"`
	LastPort     uint16    `json:"last_port"`
	LastSeen     time.Time `json:"last_seen"`
	// AccountHost is set when the host looks like the account's own
	// management, API or station host; nil otherwise.
	AccountHost *AccountHostHint `json:"account_host,omitempty"`
	// Hints are the policy changes that would admit the host (what
	// explain prints), for the first maxMissHints hosts only.
	Hints []rules.PolicyHint `json:"hints,omitempty"`
}

// maxMissHints bounds the hosts of /misses whose hints are worked out:
// each compiles the catalogs again per candidate change.
const maxMissHints = 10

// RulesPage returns the usage of every entry of the installed ruleset, and
// false when none is installed.
func (r *Recorder) RulesPage() (*RulesPage, bool) {
	p, ok, _ := r.EstateRulesPage("")
	return p, ok
}

// EstateRulesPage is RulesPage for one estate: every entry with the
// estate's policy's verdict on it and the estate's own hits and failures
// (no last-hit times: those are kept per entry only). known is false when
// estate is not "" and not in the installed config.
func (r *Recorder) EstateRulesPage(estate string) (p *RulesPage, installed, known bool) {
	b := r.binding.Load()
	if b == nil {
		return nil, false, false
	}
	p = &RulesPage{Estate: estate, Version: r.opts.Version, MatcherVersion: b.version, Installed: b.installed.UTC(), Rules: []RuleUsage{}}
	for _, c := range b.ruleset.Catalogs {
		p.Catalogs = append(p.Catalogs, c.Name)
	}
	for _, es := range b.ruleset.Estates {
		p.Estates = append(p.Estates, es.Name)
	}
	var v *estateView
	if estate != "" {
		es := b.ruleset.Estate(estate)
		if es == nil {
			return nil, true, false
		}
		v = b.view(es)
	}
	for i, e := range b.entries {
		u := newRuleUsage(e)
		if !b.exported[i] {
			u.Series = otherRule
		}
		if v != nil {
			u.Reason = v.refused(i)
			u.Hits, u.UpstreamFailures, u.Names = v.usage(i)
		} else {
			rc := b.byID[i]
			u.Reason = b.refused[i]
			u.Hits, u.UpstreamFailures, u.Names = rc.hits.Load(), rc.failed.Load(), rc.names.snapshot()
			if ns := rc.lastHit.Load(); ns != 0 {
				t := time.Unix(0, ns).UTC()
				u.LastHit = &t
			}
		}
		p.settle(&u)
		p.Rules = append(p.Rules, u)
	}
	return p, true, true
}

// newRuleUsage is the row of e without usage.
func newRuleUsage(e *rules.Entry) RuleUsage {
	u := RuleUsage{
		Catalog: e.Catalog, Rule: e.Pattern, Kind: e.Kind.String(),
		Groups: e.GroupIDs(), Sections: e.Sections(), Ports: e.Ports, OS: e.OS,
		Region: e.Region, Example: e.Example, Series: e.Pattern,
	}
	if u.Sections == nil {
		u.Sections = []string{}
	}
	if u.Ports == nil {
		u.Ports = []uint16{}
	}
	return u
}

// MissesPage returns the most denied hosts.
func (r *Recorder) MissesPage() *MissesPage {
	top, total := r.top.snapshot()
	p := &MissesPage{Capacity: r.top.capacity, Total: total, Misses: make([]MissUsage, len(top))}
	b := r.binding.Load()
	for i, m := range top {
		p.Misses[i] = MissUsage{Host: m.Host, Count: m.Count, Error: m.Error, LastClient: m.Client, LastEstate: m.Estate,
			LastReason: m.Reason, LastListener: m.Listener, LastPort: m.Port, LastSeen: m.Seen.UTC(),
			AccountHost: accountHostHint(m.Host, m.Reason, m.Port)}
		if b != nil && i < maxMissHints && (m.Estate == "" || m.Estate == rules.DefaultEstate) && hintable(m.Reason) {
			// The hints are the enterprise policy's: an estate's own
			// policy may differ.
			p.Misses[i].Hints = b.ruleset.Hints(m.Host, m.Port)
		}
	}
	return p
}

// hintable reports whether a miss of this reason may be admitted by a
// change of the policy.
func hintable(reason string) bool {
	return reason == rules.ReasonNotInCatalog.String() || reason == rules.ReasonPortNotAllowed.String()
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

// AdminOptions are the optional parts of the admin listener.
type AdminOptions struct {
	// Ready reports whether the proxy listeners are up, for /readyz; nil
	// means ready as soon as a ruleset is installed.
	Ready func() bool
	// PAC serves the proxy auto-config file at PACPath; nil for none.
	PAC     http.Handler
	PACPath string
	// Pprof serves the Go profiler under /debug/pprof/: off by default,
	// since profiles show internals and cost CPU while they run.
	Pprof bool
}

// AdminHandler is the whole admin listener, built in this one place:
//
//	/          an index linking every page, the PAC file and the estate views
//	/metrics   g in the Prometheus exposition format
//	/rules     every catalog entry with its state and hits (see RulesPage)
//	/misses    the most denied hosts (see MissesPage)
//	/healthz   200 "ok" while the process serves
//	/readyz    200 "ready" once o.Ready reports true and a ruleset is installed, else 503
//
// and, with o.PAC and o.Pprof, the PAC file and the profiler. /rules and
// /misses answer in the format the client asks for (see pageFormat): HTML
// to browsers, JSON to ?format=json or Accept: application/json, and a
// plain-text table to everything else, curl included.
func (r *Recorder) AdminHandler(g prometheus.Gatherer, o AdminOptions) http.Handler {
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
		case o.Ready != nil && !o.Ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	if o.PAC != nil && o.PACPath != "" {
		mux.Handle("GET "+o.PACPath, o.PAC)
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		idx := adminIndex{Version: r.opts.Version, Pprof: o.Pprof}
		if o.PAC != nil {
			idx.PACPath = o.PACPath
		}
		if b := r.binding.Load(); b != nil {
			for _, es := range b.ruleset.Estates {
				idx.Estates = append(idx.Estates, es.Name)
			}
		}
		render(w, "index.html", idx)
	})
	return mux
}

// adminIndex is what the index page links.
type adminIndex struct {
	Version string
	Estates []string
	PACPath string // "" without a PAC file
	Pprof   bool
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
	writePage(w, req, "rules.html", p)
}

func (r *Recorder) serveMisses(w http.ResponseWriter, req *http.Request) {
	writePage(w, req, "misses.html", r.MissesPage())
}

// textPage is an admin page that prints itself as a text table.
type textPage interface{ writeText(io.Writer) }

// writePage answers with p in the format the request asks for: JSON, the
// HTML template named tmpl, or a text table.
func writePage(w http.ResponseWriter, req *http.Request, tmpl string, p textPage) {
	switch pageFormat(req) {
	case formatJSON:
		writeJSON(w, p)
	case formatHTML:
		render(w, tmpl, p)
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

// writeText prints the page as a table: a summary line with the count of
// each state, then one line per entry with its state, reason, hits,
// upstream failures and last hit, and under a wildcard or glob entry one
// line per name admitted through it.
func (p *RulesPage) writeText(w io.Writer) {
	fmt.Fprintf(w, "egressgate %s, matcher v%d installed %s, catalogs %s\n", p.Version, p.MatcherVersion,
		p.Installed.UTC().Format("2006-01-02 15:04:05 UTC"), strings.Join(p.Catalogs, ", "))
	if p.Estate != "" {
		fmt.Fprintf(w, "estate %s: its policy's verdict on each entry and its own hits\n", p.Estate)
	}
	fmt.Fprintf(w, "entries: %d (%s); hits since the process started\n\n", len(p.Rules), p.StateCounts)
	fmt.Fprintln(w, "STATE\tREASON\tCATALOG\tRULE\tHITS\tFAILED UPSTREAM\tLAST HIT (UTC)\tPORTS\tGROUPS")
	for _, u := range p.Rules {
		ports := make([]string, len(u.Ports))
		for i, port := range u.Ports {
			ports[i] = strconv.Itoa(int(port))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", u.State, orDash(u.Reason), u.Catalog, u.Rule, u.Hits, u.UpstreamFailures,
			lastHit(u), strings.Join(ports, ","), strings.Join(u.Groups, ","))
		for _, n := range u.Names {
			fmt.Fprintf(w, "\t\t\t  %s\t%d\t\t\t\t\n", termSafe(n.Name), n.Hits)
		}
	}
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeText prints the page as a table, most denied first. Hosts are
// escaped already (see the miss log).
func (p *MissesPage) writeText(w io.Writer) {
	fmt.Fprintf(w, "%d misses since the process started; %d hosts tracked (capacity %d; a count may be over by at most its error)\n\n",
		p.Total, len(p.Misses), p.Capacity)
	fmt.Fprintln(w, "HOST\tCOUNT\tERROR\tLAST REASON\tLAST CLIENT\tESTATE\tLISTENER\tPORT\tLAST SEEN (UTC)")
	for _, m := range p.Misses {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", termSafe(m.Host), m.Count, m.Error, m.LastReason, m.LastClient,
			orDash(m.LastEstate), m.LastListener, m.LastPort, m.LastSeen.UTC().Format("2006-01-02 15:04:05"))
		for _, h := range m.Hints {
			fmt.Fprintf(w, "  hint: admitted by %s if %s: %s\n", h.Rule, h.What, strings.ReplaceAll(strings.TrimSpace(h.Config), "\n", "; "))
		}
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
