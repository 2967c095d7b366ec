package upkeep

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

// The artefacts under testdata/discover are written from the source
// document's description (see README there): a Windows installer log in
// UTF-16 with CRLF line ends, XML and binary plists, and bash -x output.
func TestDiscover(t *testing.T) {
	tests := []struct {
		file string
		want []string // host:port@line what
	}{
		{"SophosCloudInstaller.log", installerLogWant},
		{"SophosCloudInstaller-utf16be.log", installerLogWant},
		{"SophosCloudInstaller-utf8.log", installerLogWant},
		{"SophosCloudConfig.plist", []string{"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com:443@15 RegistrationServerURL"}},
		{"SophosCloudConfig-binary.plist", []string{"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com:443@0 RegistrationServerURL"}},
		{"SophosCloudConfig-binary-utf16.plist", []string{"mcs.stn100yul.ctr.sophos.com:443@0 RegistrationServerURL"}},
		{"SophosSetup-trace.txt", []string{
			"api-cloudstation-us-east-2.prod.hydra.sophos.com:443@5 CLOUD_URL",
			"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com:443@6 MCS_URL",
			"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com:443@8 MCS_URL",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "discover", tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			found, err := Discover(path, data)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range found {
				got = append(got, fmt.Sprintf("%s:%d@%d %s", f.Host, f.Port, f.Pos.Line, f.Where))
				if f.Pos.File != path {
					t.Errorf("%v: file %q, want %q", f, f.Pos.File, path)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Discover(%s) =\n%s\nwant\n%s", tt.file, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

var installerLogWant = []string{
	"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com:443@3 Opening connection to",
	"dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com:443@5 Opening connection to",
	"dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com:443@7 Opening connection to",
	"sdds3.sophosupd.com:443@8 Opening connection to",
	"mcs-push-server-eu-west-1.prod.hydra.sophos.com:8443@9 Opening connection to",
}

func TestDiscoverErrors(t *testing.T) {
	checkErrors(t, "Discover", Discover, "x.txt", []errorCase{
		{"plain text", "hello\nworld\n", "x.txt: no host found: not a SophosCloudInstaller.log"},
		{"empty", "", "x.txt: no host found"},
		{"truncated binary plist", "bplist00\x00\x01", "x.txt: reading the binary plist: too short"},
		{"broken XML plist", "<?xml version=\"1.0\"?>\n<plist><dict><key>RegistrationServerURL</key>\n<string>https://a.example.org</dict>", "x.txt:3: reading the plist"},
		{"only an IP", "Opening connection to https://192.0.2.1/\n", "no host found"},
	})
}

func TestHostOf(t *testing.T) {
	tests := []struct {
		in   string
		want string // host:port, "" for none
	}{
		{"https://Mcs.Example.ORG./x", "mcs.example.org:443"},
		{"http://crl.example.org/a.crl", "crl.example.org:80"},
		{"https://a.example.org:8443", "a.example.org:8443"},
		{"a.example.org:22", "a.example.org:22"},
		{"a.example.org/path", "a.example.org:443"},
		{"a.example.org,", "a.example.org:443"},
		{"https://[2001:db8::1]/", ""},
		{"https://a.example.org:0/", ""},
		{"https://a.example.org:99999/", ""},
		{"localhost", ""},
		{"https://", ""},
		{"bad_host!.example.org", ""},
	}
	for _, tt := range tests {
		f, ok := hostOf(tt.in)
		got := ""
		if ok {
			got = fmt.Sprintf("%s:%d", f.Host, f.Port)
		}
		if got != tt.want {
			t.Errorf("hostOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzDiscover: any bytes give hosts or an error, never a panic, and every
// host found is canonical with a port.
func FuzzDiscover(f *testing.F) {
	files, _ := filepath.Glob("testdata/discover/*")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("+ MCS_URL=$'https://a.example.org'\r\n"))
	f.Add([]byte("\xff\xfeO\x00p\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		found, err := Discover("fuzz", data)
		if err != nil {
			return
		}
		for _, fd := range found {
			if c, err := rules.CanonicalHost(fd.Host); err != nil || c != fd.Host || fd.Port == 0 {
				t.Fatalf("found %+v: not canonical (%q, %v) or no port", fd, c, err)
			}
		}
	})
}

// FuzzBinaryPlist mutates real binary plists: the reader must refuse or
// read them without panicking or running long.
func FuzzBinaryPlist(f *testing.F) {
	for _, name := range []string{"SophosCloudConfig-binary.plist", "SophosCloudConfig-binary-utf16.plist"} {
		data, err := os.ReadFile(filepath.Join("testdata", "discover", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseBinaryPlist(data)
		if err != nil {
			return
		}
		_ = p.stringsForKey("RegistrationServerURL")
	})
}

// hostilePlist builds a binary plist of one long UTF-16 string (object 0)
// and one dict of pairs keys, whose keys and values are all references to
// that string, listed dicts times in the offset table: a small file that
// asks a naive reader to decode the long string keys×dicts times. With
// keyObj set, object 1 is the ASCII string "RegistrationServerURL" and
// the dict's keys point at it, so that every value is a hit.
func hostilePlist(units, pairs, dicts int, keyObj bool) []byte {
	b := []byte("bplist00")
	offsets := []int{len(b)}
	b = append(b, 0x6F, 0x12)
	b = binary.BigEndian.AppendUint32(b, uint32(units))
	for range units {
		b = append(b, 0, 'A')
	}
	keyRef := byte(0)
	if keyObj {
		keyRef = 1
		offsets = append(offsets, len(b))
		b = append(b, 0x5F, 0x10, byte(len("RegistrationServerURL")))
		b = append(b, "RegistrationServerURL"...)
	}
	dictAt := len(b)
	b = append(b, 0xDF, 0x11)
	b = binary.BigEndian.AppendUint16(b, uint16(pairs))
	for range pairs {
		b = append(b, keyRef)
	}
	for range pairs {
		b = append(b, 0)
	}
	for range dicts {
		offsets = append(offsets, dictAt)
	}
	tableAt := len(b)
	for _, o := range offsets {
		b = binary.BigEndian.AppendUint32(b, uint32(o))
	}
	b = append(b, 0, 0, 0, 0, 0, 0, 4, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(len(offsets)))
	b = binary.BigEndian.AppendUint64(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(tableAt))
}

// TestBinaryPlistBoundedWork: references may point at one long string as
// often as the reference budget allows; the reader must not decode (or
// keep) it every time. Measured in bytes allocated, not time.
func TestBinaryPlistBoundedWork(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		maxFound int
	}{
		{"every key the long string", hostilePlist(maxPlistString, 50, 50, false), 0},
		{"every value the long string", hostilePlist(maxPlistString, 50, 50, true), maxPlistDecoded / maxPlistString},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.data) > 200<<10 {
				t.Fatalf("the hostile plist is %d bytes; it should be small", len(tt.data))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			p, err := parseBinaryPlist(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			got := p.stringsForKey("RegistrationServerURL")
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Errorf("reading a %d-byte plist allocated %d MiB", len(tt.data), n>>20)
			}
			if len(got) > tt.maxFound {
				t.Errorf("%d values found, want at most %d", len(got), tt.maxFound)
			}
		})
	}
}
