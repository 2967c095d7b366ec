package upkeep

import (
	"bufio"
	"bytes"
	"github.com/egressgate/egressgate/rules"
	"regexp"
	"slices"
	"strings"
)

// The importer reads a saved text copy of the vendor's "Domains and ports
// to allow" page (what a browser's "save as text" or a copy and paste of
// the page gives) into the catalog schema. The page is a sequence of
// headings and lead-in sentences, each followed by a bulleted list; the
// importer knows which lead-in starts which group (pageLayout), takes every
// bulleted host or pattern under it, and merges an entry listed under
// several lead-ins into one entry with all their groups and OSes.
//
// What the page cannot say by its layout, egressgate's IDs, titles and
// notes of sections and groups, and the ports of OCSP and CRL (plain
// HTTP), comes from the layout table below. What the embedded catalog adds
// by hand beyond that is listed, with the reason, in import_test.go.

// pageMark is a lead-in line of the page and what it starts.
type pageMark struct {
	prefix string // the trimmed line, without a step number, contains it
	exact  bool   // the line is exactly prefix
	group  string // the group its bullets go to; "" for none
	os     string // "" keeps the current OS; "-" clears it
	// licenses marks the list of license names.
	licenses bool
	// secondInstaller marks the installer log's second host (the API
	// host), whose bullets are examples only.
	secondInstaller bool
}

var pageLayout = []pageMark{
	{prefix: "Follow these instructions if you have any of these licenses", licenses: true},
	{prefix: "Ports", exact: true},
	{prefix: "Sophos Central Admin domains", exact: true, group: "central-admin"},
	{prefix: "Allow the following non-Sophos addresses", group: "non-sophos"},
	{prefix: "Sophos domains", exact: true},
	{prefix: "Allow the following wildcards to cover the Sophos domains", group: "sophos-wildcards"},
	{prefix: "If your proxy or firewall doesn't support wildcards", group: "sophos-exact"},
	{prefix: "On Windows devices", group: "", os: rules.OSWindows},
	{prefix: "On macOS devices", group: "", os: rules.OSMacOS},
	{prefix: "On Linux devices", group: "", os: rules.OSLinux},
	{prefix: "The first will look like one of these", group: "installer-hosts"},
	{prefix: "The second will look like one of these", group: "installer-hosts", secondInstaller: true},
	{prefix: "Add both the domains to your rules", group: ""},
	{prefix: "Add the following addresses", group: "os-addresses"},
	{prefix: "Add the domains required for Sophos Management Communication System", group: "mcs"},
	{prefix: "Add the domains required for the SophosLabs Intelix service", group: "intelix"},
	{prefix: "You may need to allow access to the following Certificate Authority sites", group: "certificate-authorities"},
	{prefix: "Note", exact: true, group: "", os: "-"},
	{prefix: "Domains for XDR and MDR", exact: true, group: "xdr-mdr", os: "-"},
	{prefix: "Domains for TLS inspection", exact: true, group: "tls-inspection", os: "-"},
	{prefix: "To confirm you need to add these domain exclusions", group: ""},
	{prefix: "Sophos AD Sync", exact: true, group: "", os: "-"},
	{prefix: "If you're using the Active Directory service, allow the following pre-signed s3 domains", group: "adsync-presigned"},
	{prefix: "Allow the following wildcards:", exact: true, group: "adsync-s3"},
	{prefix: "Remote assistance", exact: true, group: "remote-assistance-ssh", os: "-"},
}

// pageSections and pageGroups are egressgate's names for the parts of the
// page, in catalog order.
var pageSections = []rules.SectionFile{
	{ID: "intercept-x", Title: "Intercept X, XDR, or MDR",
		Notes: []string{"Don't use firewall regional rules: the services run on AWS, whose addresses are not static."}},
	{ID: "ad-sync", Title: "Sophos AD Sync", Optional: true,
		NeedsWildcards: "the source says: if your firewall doesn't allow wildcards you can't use Sophos AD Sync utility",
		Notes:          []string{"Opens whole S3 regions. When using wildcard FQDNs, make sure DNS requests go through your firewall."}},
	{ID: "remote-assistance", Title: "Remote assistance", Optional: true,
		Notes: []string{"Lets Sophos Support staff reach devices remotely over port 22 TCP."}},
}

var pageGroups = []rules.GroupFile{
	{ID: "central-admin", Section: "intercept-x", Title: "Sophos Central Admin domains"},
	{ID: "non-sophos", Section: "intercept-x", Title: "Non-Sophos addresses needed for essential operations"},
	{ID: "sophos-wildcards", Section: "intercept-x", Title: "Sophos domains, wildcard set (firewalls that support wildcards)",
		Notes: []string{"Wildcard mode only: exact mode drops these patterns."}},
	{ID: "sophos-exact", Section: "intercept-x", Title: "Sophos domains, exact set (firewalls without wildcards)"},
	{ID: "installer-hosts", Section: "intercept-x", Title: "Hosts the installer log names (examples)",
		Notes: []string{"Each account's management and API hosts must be read from its installer log: Windows SophosCloudInstaller.log lines starting 'Opening connection to'; macOS SophosCloudConfig.plist key RegistrationServerURL; Linux 'sudo bash -x ./SophosSetup.sh' lines '+ CLOUD_URL=' and '+ MCS_URL='. The entries here are the source's examples."}},
	{ID: "os-addresses", Section: "intercept-x", Title: "Per-OS addresses",
		Notes: []string{"Linux lists no ssp.sophos.com, no sdu-auto-upload.sophosupd.com and no rca-upload hosts."}},
	{ID: "mcs", Section: "intercept-x", Title: "Sophos Management Communication System"},
	{ID: "intelix", Section: "intercept-x", Title: "SophosLabs Intelix"},
	// OCSP and CRL are fetched over plain HTTP: the page says "port 443"
	// for the whole product, but a CA's revocation service is port 80.
	{ID: "certificate-authorities", Section: "intercept-x", Title: "Certificate authorities (OCSP and CRL over plain HTTP)",
		Ports: []int{80, 443}, Notes: []string{"Needed if the firewall does not already allow them."}},
	{ID: "xdr-mdr", Section: "intercept-x", Title: "XDR and MDR: Live Response and Live Discover",
		Notes: []string{"The domains required for Live Response and Live Discover can change; contact Sophos Support if these features don't work with all domains allowed."}},
	{ID: "tls-inspection", Section: "intercept-x", Title: "Exempt from TLS inspection or application filtering",
		Notes: []string{"egressgate never terminates TLS; these are admitted like the others."}},
	{ID: "adsync-presigned", Section: "ad-sync", Title: "AD Sync: pre-signed S3 domains (Active Directory service)"},
	{ID: "adsync-s3", Section: "ad-sync", Title: "AD Sync: S3 wildcards"},
	{ID: "remote-assistance-ssh", Section: "remote-assistance", Title: "Remote assistance over SSH"},
}

// pageLicenseIDs are egressgate's IDs of the license names the page lists.
// A name not here gets an ID made from its words.
var pageLicenseIDs = map[string]string{
	"Intercept X Advanced":                             "intercept-x-advanced",
	"Intercept X Advanced for Server":                  "intercept-x-advanced-server",
	"Intercept X Advanced with XDR":                    "intercept-x-advanced-xdr",
	"Intercept X Advanced for Server with XDR":         "intercept-x-advanced-server-xdr",
	"Managed Detection and Response Essentials":        "mdr-essentials",
	"Managed Detection and Response Complete":          "mdr-complete",
	"Managed Detection and Response Essentials Server": "mdr-essentials-server",
	"Managed Detection and Response Complete Server":   "mdr-complete-server",
}

// Notes the importer writes on installer examples.
const (
	noteInstallerAlso    = "Also given as an example of the hosts an installer log names."
	noteInstallerExample = "Example only: each account's real host comes from its installer log (Windows SophosCloudInstaller.log, macOS SophosCloudConfig.plist, Linux SophosSetup.sh output)."
)

// maxPageBytes bounds a saved page: the vendor's is about 20 kB.
const maxPageBytes = 64 << 20

var (
	pageStepRE    = regexp.MustCompile(`^\d{1,3}\.\s+`)
	pageBulletRE  = regexp.MustCompile(`^\s*(?:•|-)\s+(?:Domain:\s+)?(\S+)\s*$`)
	pagePortRE    = regexp.MustCompile(`^\s*(?:•|-)\s+(?:Port:\s+)?(\d{1,5})\b`)
	pageHostRE    = regexp.MustCompile(`^(?:\*\.)?[a-z0-9*][a-z0-9*-]*(?:\.[a-z0-9*-]+)+$`)
	pageRegionRE  = regexp.MustCompile(`(?:^|[.-])((?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d|stn\d+[a-z]+)(?:$|[.-])`)
	pageLicenseRE = regexp.MustCompile(`^\s*•\s+(.+?)\s*$`)
)

// ImportPage reads a saved text copy of the vendor page into a catalog
// named sophos-central. Each entry's position is the page line where it
// is first listed. A bulleted host under no lead-in the importer knows is
// an error naming its line: the page's layout has changed and the layout
// table must learn the new lead-in.
func ImportPage(path string, data []byte) (*rules.Catalog, error) {
	if len(data) > maxPageBytes {
		return nil, rules.Pos{File: path}.Errorf("page is %d bytes, more than the limit of %d", len(data), maxPageBytes)
	}
	f := rules.CatalogFile{
		Catalog: rules.DefaultCatalog,
		Title:   "Sophos Central - domains and ports to allow",
		Source:  `Sophos Central Admin help, "Domains and ports to allow"`,
	}
	type seen struct {
		groups []string
		os     []string
		first  bool // in the installer log's first list
		second bool // in the installer log's second list
	}
	var order []string
	entries := map[string]*seen{}
	entryLine := map[string]int{}
	groupPorts := map[string][]int{}

	var cur pageMark
	os := ""
	inLicenses := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimPrefix(sc.Text(), "\ufeff")
		trimmed := strings.TrimSpace(strings.TrimSuffix(text, "\r"))
		if m, ok := matchMark(pageStepRE.ReplaceAllString(trimmed, "")); ok {
			cur = m
			inLicenses = m.licenses
			switch m.os {
			case "":
			case "-":
				os = ""
			default:
				os = m.os
			}
			continue
		}
		if inLicenses {
			if lm := pageLicenseRE.FindStringSubmatch(trimmed); lm != nil {
				name := lm[1]
				id := pageLicenseIDs[name]
				if id == "" {
					id = slugID(name)
				}
				if !slices.ContainsFunc(f.Licenses, func(l rules.LicenseFile) bool { return l.ID == id }) {
					f.Licenses = append(f.Licenses, rules.LicenseFile{ID: id, Name: name, Line: line})
				}
				continue
			}
			if trimmed != "" {
				inLicenses = false
			}
		}
		if cur.group != "" {
			if pm := pagePortRE.FindStringSubmatch(trimmed); pm != nil && strings.Contains(trimmed, "Port:") {
				groupPorts[cur.group] = append(groupPorts[cur.group], atoiBounded(pm[1]))
				continue
			}
		}
		bm := pageBulletRE.FindStringSubmatch(trimmed)
		if bm == nil {
			continue
		}
		host := strings.ToLower(bm[1])
		if !pageHostRE.MatchString(host) || !strings.Contains(host, ".") {
			continue
		}
		if cur.group == "" {
			return nil, rules.Pos{File: path, Line: line}.Errorf("%q is listed under no lead-in the importer knows; the page's layout has changed", host)
		}
		e := entries[host]
		if e == nil {
			e = &seen{}
			entries[host] = e
			entryLine[host] = line
			order = append(order, host)
		}
		if !slices.Contains(e.groups, cur.group) {
			e.groups = append(e.groups, cur.group)
		}
		if os != "" && !slices.Contains(e.os, os) {
			e.os = append(e.os, os)
		}
		if cur.group == "installer-hosts" {
			if cur.secondInstaller {
				e.second = true
			} else {
				e.first = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, rules.Pos{File: path}.Errorf("reading: %w", err)
	}

	for _, s := range pageSections {
		if s.ID == "intercept-x" {
			for _, l := range f.Licenses {
				s.Licenses = append(s.Licenses, l.ID)
			}
		}
		f.Sections = append(f.Sections, s)
	}
	for _, g := range pageGroups {
		if ps := groupPorts[g.ID]; len(ps) > 0 {
			g.Ports = ps
		}
		if g.ID == "xdr-mdr" {
			// "Allow these domains if your license includes XDR or MDR."
			for _, l := range f.Licenses {
				if strings.Contains(l.Name, "XDR") || strings.HasPrefix(l.Name, "Managed Detection and Response") {
					g.Licenses = append(g.Licenses, l.ID)
				}
			}
		}
		g.Line = 1
		f.Groups = append(f.Groups, g)
	}
	for _, host := range order {
		e := entries[host]
		ef := rules.EntryFile{Pattern: host, Line: entryLine[host]}
		// Groups in catalog order, so the file reads like the page.
		for _, g := range pageGroups {
			if slices.Contains(e.groups, g.ID) {
				ef.Groups = append(ef.Groups, g.ID)
			}
		}
		for _, o := range rules.AllOS() {
			if slices.Contains(e.os, o) {
				ef.OS = append(ef.OS, o)
			}
		}
		if m := pageRegionRE.FindStringSubmatch(host); m != nil {
			ef.Region = m[1]
		}
		// The page lists Live Response's terminal hosts among the XDR and
		// MDR hosts without marking them; their name does. Unmarked, an
		// imported catalog would admit them with Live Response off.
		ef.LiveResponse = strings.HasPrefix(host, "live-terminal")
		switch {
		case (e.first || e.second) && len(ef.Groups) > 1:
			ef.Notes = []string{noteInstallerAlso}
		case e.second || e.first:
			ef.Example = true
			ef.Notes = []string{noteInstallerExample}
		}
		f.Entries = append(f.Entries, ef)
	}
	if len(f.Entries) == 0 {
		return nil, rules.Pos{File: path}.Errorf("no bulleted hosts found; is this a text copy of the \"Domains and ports to allow\" page?")
	}
	return f.Build(path)
}

func matchMark(line string) (pageMark, bool) {
	for _, m := range pageLayout {
		if m.exact && line == m.prefix || !m.exact && strings.Contains(line, m.prefix) {
			return m, true
		}
	}
	return pageMark{}, false
}

// slugID makes a catalog ID from a name: lower case words joined by '-'.
func slugID(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
		if b.Len() >= 60 {
			break
		}
	}
	if b.Len() == 0 {
		return "license"
	}
	return b.String()
}

// atoiBounded parses up to five digits; a value out of range is left for
// checkPorts to refuse.
func atoiBounded(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
