package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/rules"
)

// TestDiscoverWrite: the overlay --write produces is a valid plain-list
// catalog that, layered on the embedded one in exact mode, admits every
// host the artefacts name, once each, with a comment naming where.
func TestDiscoverWrite(t *testing.T) {
	dir := t.TempDir()
	art := func(name string) string {
		p, err := filepath.Abs(filepath.Join("..", "..", "rules", "upkeep", "testdata", "discover", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	overlay := filepath.Join(dir, "account-hosts.txt")
	var stdout, stderr bytes.Buffer
	exit := run([]string{"discover", "--write", overlay,
		art("SophosCloudInstaller.log"), art("SophosCloudInstaller-utf16be.log"), art("SophosCloudConfig.plist"),
		art("SophosCloudConfig-binary.plist"), art("SophosSetup-trace.txt")}, &stdout, &stderr)
	if exit != 0 || stderr.Len() > 0 {
		// Wildcard mode (the default) admits every *.sophos.com host on
		// 443, so only the 8443 one is refused: exit 3.
		if exit != 3 {
			t.Fatalf("discover exit %d, stderr %s", exit, stderr.String())
		}
	}
	data, err := os.ReadFile(overlay)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com:443\t# from " + art("SophosCloudInstaller.log") + ":5 (Opening connection to), " + art("SophosCloudInstaller-utf16be.log") + ":5 (Opening connection to); also in sophos-central\n",
		"mcs-push-server-eu-west-1.prod.hydra.sophos.com:8443\t# from ",
		"api-cloudstation-us-east-2.prod.hydra.sophos.com:443\t# from " + art("SophosSetup-trace.txt") + ":5 (CLOUD_URL); also in sophos-central\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("overlay lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "\nmcs2-cloudstation-us-east-2.prod.hydra.sophos.com:443\t"); n != 1 {
		t.Errorf("mcs2-cloudstation-us-east-2 written %d times, want once (duplicates merged):\n%s", n, text)
	}

	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte("catalogs:\n  - path: account-hosts.txt\npolicy:\n  mode: exact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(config)
	if err != nil {
		t.Fatalf("loading the overlay: %v", err)
	}
	for _, hp := range []struct {
		host string
		port uint16
	}{
		{"dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com", 443},
		{"api-cloudstation-us-east-2.prod.hydra.sophos.com", 443},
		{"mcs-push-server-eu-west-1.prod.hydra.sophos.com", 8443},
		{"mcs2-cloudstation-us-east-2.prod.hydra.sophos.com", 443},
	} {
		if v := rs.Matcher.Lookup(hp.host, hp.port); !v.Allow {
			t.Errorf("with the overlay, %s:%d is denied (%s)", hp.host, hp.port, v.Reason)
		}
	}
	stdout.Reset()
	if exit := run([]string{"discover", "--config", config, art("SophosCloudInstaller.log"), art("SophosSetup-trace.txt")}, &stdout, &stderr); exit != 0 {
		t.Errorf("discover with the overlay: exit %d, want 0 (all admitted)\n%s", exit, stdout.String())
	}
}
