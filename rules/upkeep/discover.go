package upkeep

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/egressgate/egressgate/rules"
)

// maxArtefactBytes bounds what Discover reads of one file: installer logs
// are kilobytes to a few megabytes.
const maxArtefactBytes = 64 << 20

// maxPlistTokens bounds the XML tokens of a plist Discover walks.
const maxPlistTokens = 1_000_000

// Artefact kinds Discover recognises.
const (
	ArtefactInstallerLog = "windows-installer-log" // SophosCloudInstaller.log
	ArtefactPlist        = "macos-plist"           // SophosCloudConfig.plist, XML or binary
	ArtefactSetupTrace   = "linux-setup-trace"     // output of sudo bash -x ./SophosSetup.sh
)

// Found is one host an installer artefact names.
type Found struct {
	Host  string    // canonical
	Port  uint16    // from the URL, or its scheme's; 443 when neither says
	Pos   rules.Pos // file and line (line 0 for a binary plist)
	Kind  string    // Artefact...
	Where string    // what named it: "Opening connection to", "RegistrationServerURL", "CLOUD_URL", "MCS_URL"
}

var (
	openingRE = regexp.MustCompile(`Opening connection to\s+["']?([^\s"',;]+)`)
	setupRE   = regexp.MustCompile(`^\++\s+(CLOUD_URL|MCS_URL)=(.*)$`)
)

// Discover reads an installer artefact the source document names and
// returns the hosts it finds, in file order, repeats included (the caller
// merges them). The format is recognised from the content, not the name:
//   - a binary plist ("bplist00") or an XML plist: the string value of
//     every RegistrationServerURL key;
//   - text, UTF-8 or UTF-16 with a byte-order mark (as Windows writes its
//     logs), any line ends: lines with "Opening connection to URL-or-host"
//     and bash -x trace lines "+ CLOUD_URL=..." and "+ MCS_URL=...",
//     quoted or not.
//
// A file that is none of these, or names no host, is an error saying so.
func Discover(path string, data []byte) ([]Found, error) {
	if len(data) > maxArtefactBytes {
		return nil, rules.Pos{File: path}.Errorf("file is %d bytes, more than the limit of %d", len(data), maxArtefactBytes)
	}
	var (
		found []Found
		err   error
	)
	switch {
	case bytes.HasPrefix(data, []byte("bplist00")):
		found, err = discoverBinaryPlist(path, data)
	case looksLikeXMLPlist(data):
		found, err = discoverXMLPlist(path, data)
	default:
		var text string
		if text, err = decodeText(data); err != nil {
			return nil, rules.Pos{File: path}.Errorf("%w", err)
		}
		found, err = discoverText(path, text)
	}
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, rules.Pos{File: path}.Errorf("no host found: not a SophosCloudInstaller.log (\"Opening connection to\"), a SophosCloudConfig.plist (RegistrationServerURL) or bash -x output of SophosSetup.sh (CLOUD_URL, MCS_URL)")
	}
	return found, nil
}

// decodeText returns data as UTF-8: UTF-16 LE or BE when it starts with
// that byte-order mark (or, without one, when every other byte of its
// start is NUL, as a BOM-less Windows log would be), UTF-8 otherwise.
func decodeText(data []byte) (string, error) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		order, data = binary.LittleEndian, data[2:]
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		order, data = binary.BigEndian, data[2:]
	case len(data) >= 4 && data[1] == 0 && data[3] == 0 && data[0] != 0:
		order = binary.LittleEndian
	case len(data) >= 4 && data[0] == 0 && data[2] == 0 && data[1] != 0:
		order = binary.BigEndian
	default:
		return strings.TrimPrefix(string(data), "\ufeff"), nil
	}
	if len(data)%2 != 0 {
		data = data[:len(data)-1] // a torn last code unit: drop it
	}
	units := make([]uint16, len(data)/2)
	for i := range units {
		units[i] = order.Uint16(data[2*i:])
	}
	return string(utf16.Decode(units)), nil
}

func discoverText(path string, text string) ([]Found, error) {
	var found []Found
	line := 0
	for rest := text; rest != ""; {
		var l string
		l, rest, _ = strings.Cut(rest, "\n")
		line++
		l = strings.TrimRight(l, "\r")
		at := rules.Pos{File: path, Line: line}
		if m := openingRE.FindStringSubmatch(l); m != nil {
			if f, ok := hostOf(m[1]); ok {
				f.Pos, f.Kind, f.Where = at, ArtefactInstallerLog, "Opening connection to"
				found = append(found, f)
			}
			continue
		}
		if m := setupRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			if f, ok := hostOf(unquoteShell(m[2])); ok {
				f.Pos, f.Kind, f.Where = at, ArtefactSetupTrace, m[1]
				found = append(found, f)
			}
		}
	}
	return found, nil
}

// unquoteShell undoes the quoting bash -x puts around a value: 'x', "x",
// $'x', and a trailing comment or command separator.
func unquoteShell(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') {
		if end := strings.IndexByte(s[1:], s[0]); end >= 0 {
			return s[1 : 1+end]
		}
		return s[1:]
	}
	if i := strings.IndexAny(s, " \t;"); i >= 0 {
		s = s[:i]
	}
	return s
}

// hostOf takes the host and port out of a URL ("https://h:8443/p"), a
// "host:port" or a bare host, and canonicalises the host. IP literals and
// invalid names are not hosts to add.
func hostOf(s string) (Found, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, ".,;)")
	if s == "" {
		return Found{}, false
	}
	port := uint16(443)
	hostport := s
	if i := strings.Index(s, "://"); i >= 0 {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return Found{}, false
		}
		if strings.EqualFold(u.Scheme, "http") {
			port = 80
		}
		hostport = u.Host
	} else if i := strings.IndexAny(s, "/?#"); i >= 0 {
		hostport = s[:i]
	}
	host := hostport
	if h, p, ok := strings.Cut(hostport, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Found{}, false
		}
		host, port = h, uint16(n)
	}
	if rules.IsIPLiteral(host) {
		return Found{}, false
	}
	c, err := rules.CanonicalHost(host)
	if err != nil || !strings.Contains(c, ".") {
		return Found{}, false
	}
	return Found{Host: c, Port: port}, true
}

// The XML plist: <dict> holds <key>K</key> followed by the value element.

func looksLikeXMLPlist(data []byte) bool {
	head := data[:min(len(data), 1024)]
	return bytes.Contains(head, []byte("<plist")) || bytes.Contains(head, []byte("<!DOCTYPE plist"))
}

func discoverXMLPlist(path string, data []byte) ([]Found, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false
	var (
		found    []Found
		afterKey bool   // the last element closed was <key>RegistrationServerURL</key>
		inElem   string // element whose text is being read
		text     strings.Builder
		keyName  string
	)
	for tokens := 0; ; tokens++ {
		if tokens > maxPlistTokens {
			return nil, rules.Pos{File: path}.Errorf("plist has more than %d XML tokens", maxPlistTokens)
		}
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, rules.Pos{File: path, Line: line}.Errorf("reading the plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if afterKey && t.Name.Local != "string" {
				afterKey = false // RegistrationServerURL with a non-string value
			}
			inElem = t.Name.Local
			text.Reset()
		case xml.CharData:
			if inElem != "" && text.Len() < 4096 {
				text.Write(t)
			}
		case xml.EndElement:
			switch {
			case t.Name.Local == "key":
				keyName = strings.TrimSpace(text.String())
				afterKey = keyName == "RegistrationServerURL"
			case t.Name.Local == "string" && afterKey:
				if f, ok := hostOf(text.String()); ok {
					endLine, _ := dec.InputPos()
					f.Pos, f.Kind, f.Where = rules.Pos{File: path, Line: endLine}, ArtefactPlist, "RegistrationServerURL"
					found = append(found, f)
				}
				afterKey = false
			default:
				afterKey = false
			}
			inElem = ""
		}
	}
	return found, nil
}

func discoverBinaryPlist(path string, data []byte) ([]Found, error) {
	p, err := parseBinaryPlist(data)
	if err != nil {
		return nil, rules.Pos{File: path}.Errorf("reading the binary plist: %w", err)
	}
	var found []Found
	for _, v := range p.stringsForKey("RegistrationServerURL") {
		if f, ok := hostOf(v); ok {
			f.Pos, f.Kind, f.Where = rules.Pos{File: path}, ArtefactPlist, "RegistrationServerURL"
			found = append(found, f)
		}
	}
	return found, nil
}

// String renders a finding for messages: "host:port (file:line, what)".
func (f Found) String() string {
	return fmt.Sprintf("%s:%d (%s, %s)", f.Host, f.Port, f.Pos, f.Where)
}
