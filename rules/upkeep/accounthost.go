package upkeep

import (
	"regexp"
	"strconv"
)

// AccountHost says which of the source document's host shapes a name has.
// The document cannot list each account's own management (MCS) and API
// hosts: it tells the administrator to read them from the installer's log
// and gives examples of their shapes. A denied name of one of those shapes
// is probably such a host, and the fix is to confirm it and add it.
type AccountHost struct {
	Role  string // what the host is for: "management (MCS)", "API" or "regional station"
	Shape string // the document's shape of the name, REGION and STATION for the variable parts
}

// AccountHostHint is the sentence /misses and report show for such a host.
const AccountHostHint = "probably this account's own host: confirm it, then add it"

// Line returns the plain-list catalog line that admits host on port.
func (AccountHost) Line(host string, port uint16) string {
	if port == 0 {
		port = 443
	}
	return host + ":" + strconv.Itoa(int(port))
}

// The shapes, from the examples of the document's "Opening connection to"
// lists and its per-region lists. REGION is an AWS region, STATION a
// Sophos station such as stn100yul.
const (
	awsRegion = `(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]{4,12}-\d{1,2}`
	station   = `stn\d{1,4}[a-z]{2,4}`
)

// maxHostLen is the longest DNS name (RFC 1035 section 2.3.4).
const maxHostLen = 253

var accountHostShapes = []struct {
	re *regexp.Regexp
	AccountHost
}{
	{regexp.MustCompile(`^dzr-mcs-amzn-` + awsRegion + `-[0-9a-f]{2,8}\.upe\.p\.hmr\.sophos\.com$`),
		AccountHost{"management (MCS)", "dzr-mcs-amzn-REGION-ID.upe.p.hmr.sophos.com"}},
	{regexp.MustCompile(`^dzr-api-amzn-` + awsRegion + `-[0-9a-f]{2,8}\.api-upe\.p\.hmr\.sophos\.com$`),
		AccountHost{"API", "dzr-api-amzn-REGION-ID.api-upe.p.hmr.sophos.com"}},
	{regexp.MustCompile(`^mcs\d{0,2}-cloudstation-` + awsRegion + `\.prod\.hydra\.sophos\.com$`),
		AccountHost{"management (MCS)", "mcsN-cloudstation-REGION.prod.hydra.sophos.com"}},
	{regexp.MustCompile(`^api-cloudstation-` + awsRegion + `\.prod\.hydra\.sophos\.com$`),
		AccountHost{"API", "api-cloudstation-REGION.prod.hydra.sophos.com"}},
	{regexp.MustCompile(`^mcs\d{0,2}\.` + station + `\.ctr\.sophos\.com$`),
		AccountHost{"management (MCS)", "mcsN.STATION.ctr.sophos.com"}},
	{regexp.MustCompile(`^api\.` + station + `\.ctr\.sophos\.com$`),
		AccountHost{"API", "api.STATION.ctr.sophos.com"}},
	// Sophos Central's public API names its data regions this way
	// (api-eu01.central.sophos.com); the page does not list them.
	{regexp.MustCompile(`^api-[a-z]{2}\d{2}\.central\.sophos\.com$`),
		AccountHost{"API", "api-DATAREGION.central.sophos.com"}},
	{regexp.MustCompile(`^(?:live-terminal|mcs-push-server|rca-upload-cloudstation)-` + awsRegion + `\.prod\.hydra\.sophos\.com$`),
		AccountHost{"regional station", "SERVICE-REGION.prod.hydra.sophos.com"}},
	{regexp.MustCompile(`^(?:live-terminal|mcs-push-server|rca-upload)\.` + station + `\.ctr\.sophos\.com$`),
		AccountHost{"regional station", "SERVICE.STATION.ctr.sophos.com"}},
}

// LooksLikeAccountHost reports whether host (canonical: lower case, no
// trailing dot) has one of the document's shapes of an account's own
// hosts, and which. It is pure and bounded: names longer than a DNS name
// are refused before any matching, and Go's regexps run in linear time.
func LooksLikeAccountHost(host string) (AccountHost, bool) {
	if len(host) > maxHostLen || len(host) < len("api.stn1aa.ctr.sophos.com") {
		return AccountHost{}, false
	}
	for _, s := range accountHostShapes {
		if s.re.MatchString(host) {
			return s.AccountHost, true
		}
	}
	return AccountHost{}, false
}
