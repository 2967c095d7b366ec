package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// TestServeFlagsFromEnv sets serve's flags from EGRESSGATE_* variables:
// each kind of flag (address, bool, duration, int, repeatable list), the
// command line winning over the environment, an empty variable counting
// as unset, a variable counting as given (so it overrides the config
// file's listeners), and a bad value named by its variable.
func TestServeFlagsFromEnv(t *testing.T) {
	testServeFlags(t, []serveFlagsCase{
		{name: "addresses", env: map[string]string{"EGRESSGATE_LISTEN": "127.0.0.1:4128", "EGRESSGATE_ADMIN": ":9200", "EGRESSGATE_SNI_LISTEN": ":8443"},
			check: func(o *serveOptions) bool {
				return o.listen == "127.0.0.1:4128" && o.admin == ":9200" && o.sniListen == ":8443" &&
					o.explicit["listen"] && o.explicit["admin"] && o.explicit["sni-listen"] && !o.explicit["hosts"]
			}},
		{name: "kinds", env: map[string]string{"EGRESSGATE_MONITOR": "true", "EGRESSGATE_IDLE_TIMEOUT": "90s", "EGRESSGATE_MAX_CONNS": "500",
			"EGRESSGATE_CLIENTS": "10.0.0.0/8, 192.0.2.7", "EGRESSGATE_SNI_REQUIRED": "false", "EGRESSGATE_LOG_LEVEL": "debug"},
			check: func(o *serveOptions) bool {
				c := o.cfg
				return c.Monitor && c.IdleTimeout.String() == "1m30s" && c.MaxConns == 500 && c.AllowNoSNI &&
					slices.Equal(c.Clients, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}) &&
					o.logLevel.String() == "DEBUG"
			}},
		{name: "command line wins", env: map[string]string{"EGRESSGATE_LISTEN": "127.0.0.1:4128", "EGRESSGATE_CLIENTS": "10.0.0.0/8"},
			args: []string{"--listen", "127.0.0.1:5128", "--clients", "172.16.0.0/12"},
			check: func(o *serveOptions) bool {
				return o.listen == "127.0.0.1:5128" && slices.Equal(o.cfg.Clients, []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")})
			}},
		{name: "empty is unset", env: map[string]string{"EGRESSGATE_LISTEN": "", "EGRESSGATE_HOSTS": ""},
			check: func(o *serveOptions) bool {
				return o.listen == defaultProxyListen && !o.explicit["listen"] && o.hostsPath == ""
			}},
		{name: "bad int", env: map[string]string{"EGRESSGATE_MAX_CONNS": "lots"}, err: `environment EGRESSGATE_MAX_CONNS="lots" (--max-conns): `},
		{name: "bad cidr", env: map[string]string{"EGRESSGATE_ALLOW_DEST": "10.0.0.0/33"}, err: `EGRESSGATE_ALLOW_DEST="10.0.0.0/33" (--allow-dest): "10.0.0.0/33" is not a CIDR prefix`},
		{name: "checked like the flag", env: map[string]string{"EGRESSGATE_MAX_CONNS": "0"}, err: "--max-conns: 0 would refuse everything"},
	})
}

// TestHealthcheckFromEnv: healthcheck asks the admin address in
// EGRESSGATE_ADMIN, as serve reads it, unless --admin is given.
func TestHealthcheckFromEnv(t *testing.T) {
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer admin.Close()
	_, port, _ := net.SplitHostPort(admin.Listener.Addr().String())
	deadAddr := proxytest.FreeAddr(t)

	for _, tc := range []struct {
		name string
		env  string
		args []string
		exit int
	}{
		{"env, every address", ":" + port, nil, 0},
		{"env, nothing there", deadAddr, nil, 1},
		{"flag wins", deadAddr, []string{"--admin", "127.0.0.1:" + port}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EGRESSGATE_ADMIN", tc.env)
			var stdout, stderr bytes.Buffer
			if exit := run(append([]string{"healthcheck"}, tc.args...), &stdout, &stderr); exit != tc.exit {
				t.Errorf("EGRESSGATE_ADMIN=%s egressgate healthcheck %q: exit %d, want %d\n%s%s", tc.env, tc.args, exit, tc.exit, stdout.String(), stderr.String())
			}
		})
	}
}

const envDoc = "../../docs/configuration.md"

// envTableRE is the environment table of docs/configuration.md, between
// its two markers.
var envTableRE = regexp.MustCompile(`(?s)(<!-- env-table -->\n)(.*?)(<!-- /env-table -->)`)

// TestEnvTable checks that docs/configuration.md's environment table has
// one row per serve flag, with the variable setFromEnv reads for it, and
// no other. -update rewrites the table from serve's flags.
func TestEnvTable(t *testing.T) {
	var help, stderr bytes.Buffer
	run([]string{"serve", "--help"}, &help, &stderr)
	var want strings.Builder
	want.WriteString("| Variable | Flag |\n|---|---|\n")
	for _, m := range helpFlagRE.FindAllStringSubmatch(help.String(), -1) {
		fmt.Fprintf(&want, "| `%s` | `--%s` |\n", envName(m[1]), m[1])
	}
	data, err := os.ReadFile(envDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := envTableRE.FindSubmatchIndex(data)
	if m == nil {
		t.Fatalf("%s: no <!-- env-table --> ... <!-- /env-table --> table", envDoc)
	}
	got := string(data[m[4]:m[5]])
	if got == want.String() {
		return
	}
	if *update {
		out := slices.Concat(data[:m[4]], []byte(want.String()), data[m[5]:])
		if err := os.WriteFile(envDoc, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the environment table is not serve's flags; run go test ./cmd/egressgate -run TestEnvTable -update\ngot:\n%s\nwant:\n%s", envDoc, got, want.String())
}
