package rules

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// sourceDoc is the document the embedded catalog transcribes. It sits in
// the shared folder beside the repository (and so in CI).
const sourceDoc = "../../shared/seeds/domains-and-ports-to-allow.txt"

var (
	bulletRE = regexp.MustCompile(`^\s*•\s+(?:Domain:\s+)?(\S+)\s*$`)
	tokenRE  = regexp.MustCompile(`\*?[a-z0-9][a-z0-9*-]*(?:\.[a-z0-9*-]+)*\.(?:com|net|io)\b`)
)

// docTokens returns the host and pattern tokens of the source document:
// those that stand alone in a bullet (the lists) and those in running text.
// Bullets are grouped by the part of the document they are in.
func docTokens(t *testing.T) (bullets map[string][]string, prose []string) {
	data, err := os.ReadFile(sourceDoc)
	if os.IsNotExist(err) {
		t.Skipf("source document %s not present: cross-check skipped", sourceDoc)
	}
	if err != nil {
		t.Fatal(err)
	}
	bullets = map[string][]string{}
	part := "intro"
	marks := []struct{ prefix, part string }{
		{"Sophos Central Admin domains", "central-admin"},
		{"Allow the following wildcards to cover", "wildcards"},
		{"If your proxy or firewall doesn't support wildcards", "exact"},
		{"On Windows devices", "windows"},
		{"On macOS devices", "macos"},
		{"On Linux devices", "linux"},
		{"Note", "note"},
		{"Domains for XDR and MDR", "xdr-mdr"},
		{"Domains for TLS inspection", "tls-inspection"},
		{"Sophos AD Sync", "ad-sync"},
		{"Remote assistance", "remote-assistance"},
	}
	for _, line := range strings.Split(string(data), "\n") {
		for _, m := range marks {
			if strings.HasPrefix(line, m.prefix) {
				part = m.part
			}
		}
		if m := bulletRE.FindStringSubmatch(line); m != nil && tokenRE.MatchString(m[1]) {
			bullets[part] = append(bullets[part], m[1])
			continue
		}
		prose = append(prose, tokenRE.FindAllString(line, -1)...)
	}
	return bullets, prose
}

// TestEmbeddedCatalogMatchesSource checks the embedded catalog against its
// source document: nothing invented, nothing dropped, and every entry in
// the groups and OS lists where the document puts it.
func TestEmbeddedCatalogMatchesSource(t *testing.T) {
	bullets, prose := docTokens(t)
	c, err := Embedded(DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	byPattern := map[string]*Entry{}
	var notes strings.Builder
	for _, e := range c.Entries {
		byPattern[e.Pattern] = e
		notes.WriteString(strings.Join(e.Notes, "\n"))
	}
	for _, g := range c.Groups {
		notes.WriteString(strings.Join(g.Notes, "\n"))
	}
	inDoc := map[string]bool{}
	for part, toks := range bullets {
		for _, tok := range toks {
			inDoc[tok] = true
			if byPattern[tok] == nil {
				t.Errorf("document lists %q (%s) but the catalog has no entry for it", tok, part)
			}
		}
	}
	for _, tok := range prose {
		inDoc[tok] = true
		if byPattern[tok] == nil && !strings.Contains(notes.String(), tok) {
			t.Errorf("document mentions %q but the catalog has neither an entry nor a note for it", tok)
		}
	}
	for _, e := range c.Entries {
		if !inDoc[e.Pattern] {
			t.Errorf("%s: catalog entry %q is not in the document", e.Pos, e.Pattern)
		}
	}

	// Where the document puts each entry.
	inGroup := func(g string) []string {
		var out []string
		for _, e := range c.Entries {
			if slices.ContainsFunc(e.Groups, func(x *Group) bool { return x.ID == g }) {
				out = append(out, e.Pattern)
			}
		}
		return out
	}
	osLists := []string{"os-addresses", "mcs", "intelix", "certificate-authorities"}
	forOS := func(os string) []string {
		var out []string
		for _, e := range c.Entries {
			if slices.Contains(e.OS, os) && slices.ContainsFunc(e.Groups, func(g *Group) bool { return slices.Contains(osLists, g.ID) }) {
				out = append(out, e.Pattern)
			}
		}
		return out
	}
	examples := map[string]bool{}
	for _, e := range inGroup("installer-hosts") {
		examples[e] = true
	}
	docOS := func(os string) []string {
		var out []string
		for _, tok := range bullets[os] {
			if !examples[tok] || slices.Contains(inGroup("mcs"), tok) {
				out = append(out, tok)
			}
		}
		return out
	}
	for _, tt := range []struct {
		what      string
		got, want []string
	}{
		{"group central-admin", inGroup("central-admin"), bullets["central-admin"][:4]},
		{"group non-sophos", inGroup("non-sophos"), bullets["central-admin"][4:]},
		{"group sophos-wildcards", inGroup("sophos-wildcards"), bullets["wildcards"]},
		{"group sophos-exact", inGroup("sophos-exact"), bullets["exact"]},
		{"group xdr-mdr", inGroup("xdr-mdr"), bullets["xdr-mdr"]},
		{"group tls-inspection", inGroup("tls-inspection"), bullets["tls-inspection"]},
		{"section ad-sync", append(inGroup("adsync-presigned"), inGroup("adsync-s3")...), bullets["ad-sync"]},
		{"section remote-assistance", inGroup("remote-assistance-ssh"), bullets["remote-assistance"]},
		{"Windows lists", forOS(OSWindows), docOS("windows")},
		{"macOS lists", forOS(OSMacOS), docOS("macos")},
		{"Linux lists", forOS(OSLinux), docOS("linux")},
	} {
		got, want := setOf(tt.got), setOf(tt.want)
		var extra, missing []string
		for _, p := range got {
			if !slices.Contains(want, p) {
				extra = append(extra, p)
			}
		}
		for _, p := range want {
			if !slices.Contains(got, p) {
				missing = append(missing, p)
			}
		}
		if len(extra)+len(missing) > 0 {
			t.Errorf("%s: catalog has %q that the document does not list there, lacks %q", tt.what, extra, missing)
		}
	}
	for _, p := range []string{"ssp.sophos.com", "sdu-auto-upload.sophosupd.com", "rca-upload.stn100syd.ctr.sophos.com"} {
		if slices.Contains(byPattern[p].OS, OSLinux) {
			t.Errorf("%q is listed for Linux; the document's Linux list does not have it", p)
		}
	}
}

func setOf(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// TestEmbeddedCatalogFields pins what the catalog says of entries whose
// fields the document gives: ports, licenses, regions, examples.
func TestEmbeddedCatalogFields(t *testing.T) {
	c, err := Embedded(DefaultCatalog)
	if err != nil {
		t.Fatal(err)
	}
	get := func(p string) *Entry {
		for _, e := range c.Entries {
			if e.Pattern == p {
				return e
			}
		}
		t.Fatalf("no entry %q", p)
		return nil
	}
	tests := []struct {
		pattern  string
		ports    []uint16
		region   string
		example  bool
		licenses int
		sections []string
	}{
		{"central.sophos.com", []uint16{443}, "", false, 8, []string{"intercept-x"}},
		{"ocsp.globalsign.com", []uint16{80, 443}, "", false, 8, []string{"intercept-x"}},
		{"*.apu.sophos.com", []uint16{22}, "", false, 0, []string{"remote-assistance"}},
		{"live-terminal.stn100bom.ctr.sophos.com", []uint16{443}, "stn100bom", false, 6, []string{"intercept-x"}},
		{"tf-presigned-url-sa-east-1-prod-*-bucket.s3.sa-east-1.amazonaws.com", []uint16{443}, "sa-east-1", false, 0, []string{"ad-sync"}},
		{"api.stn100yul.ctr.sophos.com", []uint16{443}, "stn100yul", true, 8, []string{"intercept-x"}},
		{"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com", []uint16{443}, "eu-west-1", false, 8, []string{"intercept-x"}},
	}
	for _, tt := range tests {
		e := get(tt.pattern)
		if !slices.Equal(e.Ports, tt.ports) || e.Region != tt.region || e.Example != tt.example ||
			len(e.Licenses) != tt.licenses || !slices.Equal(e.Sections(), tt.sections) {
			t.Errorf("%s: ports %v region %q example %v licenses %d sections %v; want %v %q %v %d %v", tt.pattern,
				e.Ports, e.Region, e.Example, len(e.Licenses), e.Sections(), tt.ports, tt.region, tt.example, tt.licenses, tt.sections)
		}
	}
	if n := len(get("central.sophos.com").Groups); n != 3 {
		t.Errorf("central.sophos.com is in %d groups, want 3 (central-admin, sophos-exact, os-addresses)", n)
	}
}
