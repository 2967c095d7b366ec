package proxy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadHosts(t *testing.T) {
	h, err := LoadHosts("testdata/hosts-good.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]netip.Addr{
		"api.example.com":    {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"api2.example.com":   {netip.MustParseAddr("127.0.0.1")},
		"mapped.example.org": {netip.MustParseAddr("127.0.0.2")},
	}
	if len(h) != len(want) {
		t.Errorf("LoadHosts = %v, want %v", h, want)
	}
	for name, addrs := range want {
		if !slices.Equal(h[name], addrs) {
			t.Errorf("LoadHosts[%q] = %v, want %v", name, h[name], addrs)
		}
	}
}

// TestLoadHostsErrors: each bad file, with the exact error (file:line).
func TestLoadHostsErrors(t *testing.T) {
	for _, tc := range []struct{ file, err string }{
		{"hosts-no-name.txt", `testdata/hosts-no-name.txt:1: address 127.0.0.1 has no name; write "127.0.0.1 name"`},
		{"hosts-bad-address.txt", `testdata/hosts-bad-address.txt:2: address "127.0.0.300" is not an IP address without zone`},
		{"hosts-bad-name.txt", `testdata/hosts-bad-name.txt:1: name: invalid host "bad..name": empty label`},
		{"hosts-zone.txt", `testdata/hosts-zone.txt:1: address "fe80::1%eth0" is not an IP address without zone`},
		{"missing.txt", "reading hosts file: open testdata/missing.txt"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadHosts(filepath.Join("testdata", tc.file))
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("LoadHosts(%s) error = %v, want %q", tc.file, err, tc.err)
			}
		})
	}
}

// TestHostsFileReload: a reload swaps in an edit that parses, reports an
// unchanged file as unchanged, and keeps the last good hosts when an edit
// does not parse, saying file:line.
func TestHostsFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.2 up.example.org\n")
	f, err := OpenHostsFile(p)
	if err != nil {
		t.Fatal(err)
	}
	addr := func() string { return fmt.Sprint(f.Hosts()["up.example.org"]) }
	steps := []struct {
		edit    string
		changed bool
		err     string
		want    string
	}{
		{"127.0.0.2 up.example.org\n", false, "", "[127.0.0.2]"},
		{"# moved\n127.0.0.3 up.example.org\n", true, "", "[127.0.0.3]"},
		{"127.0.0.4 up.example.org\n127.0.0.300 broken.example.org\n", false, p + ":2: address \"127.0.0.300\"", "[127.0.0.3]"},
		{"127.0.0.4 up.example.org\n", true, "", "[127.0.0.4]"},
	}
	for i, st := range steps {
		write(st.edit)
		changed, err := f.Reload()
		if changed != st.changed || (err == nil) != (st.err == "") || err != nil && !strings.HasPrefix(err.Error(), st.err) {
			t.Errorf("step %d: Reload = %v, %v; want %v, %q", i, changed, err, st.changed, st.err)
		}
		if got := addr(); got != st.want {
			t.Errorf("step %d: up.example.org = %s, want %s", i, got, st.want)
		}
	}
	os.Remove(p)
	if _, err := f.Reload(); err == nil || addr() != "[127.0.0.4]" {
		t.Errorf("removed file: Reload error %v, hosts %s; want an error and the last good hosts", err, addr())
	}
	if _, err := OpenHostsFile(p); err == nil {
		t.Error("OpenHostsFile of a missing file succeeded")
	}
}
