package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/proxytest"
)

// TestSquidExportAgrees exports a catalog with every kind of entry as
// Squid ACLs, checks it with "squid -k parse", then runs a real Squid and
// egressgate side by side on loopback and sends the same CONNECTs through
// both with curl -x: each must admit exactly the hosts egressgate's
// matcher admits. Names resolve to 127.0.0.1 through each proxy's hosts
// file; the upstream is a local HTTP server.
func TestSquidExportAgrees(t *testing.T) {
	squid := findTool(t, "squid", "squid")
	curl := findTool(t, "curl", "curl")

	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "upstream") })
	port, _ := strconv.Atoi(portString(up))
	other := port + 1 // a port only otherport.example.org may use; nothing listens

	dir := t.TempDir()
	// Squid started as root drops to its own user, which must reach the
	// directory and write its logs there.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := strconv.Itoa(port)
	write("sample.list", strings.Join([]string{
		"exact.example.org:" + p,
		"*.wild.example.org:" + p,
		"tf-*-bucket.s3.example.net:" + p,
		"127.0.0.1/32:" + p,
		"otherport.example.org:" + strconv.Itoa(other),
	}, "\n")+"\n")
	config := write("egressgate.yaml", "embedded: []\ncatalogs:\n  - path: sample.list\nlisteners:\n  proxy: 127.0.0.1:0\n  admin: 'off'\n")
	samples := []string{
		"exact.example.org", "EXACT.Example.ORG", "sub.exact.example.org",
		"wild.example.org", "a.wild.example.org", "a.b.wild.example.org", "awild.example.org",
		"tf-x-bucket.s3.example.net", "tf--bucket.s3.example.net", "tf-x.y-bucket.s3.example.net",
		"x.tf-x-bucket.s3.example.net", "tf-x-bucket.s3.example.net.evil.example",
		"otherport.example.org", "unlisted.example.org", "127.0.0.1", "127.0.0.2",
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost")
	for _, s := range samples {
		if net.ParseIP(s) == nil {
			hosts.WriteString(" " + strings.ToLower(s))
		}
	}
	hostsFile := write("hosts", hosts.String()+"\n")

	var export, stderr bytes.Buffer
	if exit := run([]string{"catalog", "--config", config, "--format", "squid"}, &export, &stderr); exit != 0 {
		t.Fatalf("catalog --format squid: exit %d: %s", exit, stderr.String())
	}
	exportFile := write("egressgate-acls.conf", export.String())
	squidAddr := proxytest.FreeAddr(t)
	squidConf := write("squid.conf", fmt.Sprintf(`http_port %s
include %s
http_access deny all
cache deny all
hosts_file %s
dns_nameservers 127.0.0.1
pinger_enable off
shutdown_lifetime 0 seconds
pid_filename %s/squid.pid
cache_log %s/cache.log
access_log stdio:%s/access.log
coredump_dir %s
`, squidAddr, exportFile, hostsFile, dir, dir, dir, dir))

	out, err := exec.Command(squid, "-k", "parse", "-f", squidConf).CombinedOutput()
	if err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "WARNING") || strings.Contains(line, "ERROR") {
			t.Errorf("squid -k parse: %s", line)
		}
	}

	cmd := exec.Command(squid, "-N", "-f", squidConf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting squid: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitListening(t, squidAddr, 30*time.Second, func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
		return string(b)
	})

	egAddr := startServe(t, 1, "--config", config, "--hosts", hostsFile, "--allow-dest", "127.0.0.0/8").addrs["proxy"]

	rs := loadRuleset(t, config)
	connect := func(proxyAddr, host string) string {
		target := host
		if strings.Contains(host, ":") {
			target = "[" + host + "]"
		}
		out, _ := exec.Command(curl, "-s", "-o", "/dev/null", "--max-time", "10", "--noproxy", "",
			"-x", "http://"+proxyAddr, "-p", "-w", "%{http_connect}",
			"http://"+target+":"+p+"/").Output()
		return strings.TrimSpace(string(out))
	}
	admitted := 0
	for _, host := range samples {
		t.Run(host, func(t *testing.T) {
			want := "403"
			if rs.Matcher.Lookup(host, uint16(port)).Allow {
				want = "200"
				admitted++
			}
			if got := connect(egAddr, host); got != want {
				t.Errorf("egressgate: CONNECT %s:%d = %s, want %s", host, port, got, want)
			}
			if got := connect(squidAddr, host); got != want {
				t.Errorf("squid with the export: CONNECT %s:%d = %s, want %s (as egressgate)", host, port, got, want)
			}
		})
	}
	// Squid's own log shows that the answers came from it.
	cmd.Process.Signal(os.Interrupt)
	access, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	if !bytes.Contains(access, []byte("TCP_TUNNEL/200")) || !bytes.Contains(access, []byte("TCP_DENIED/403")) {
		t.Errorf("squid's access log lacks tunnels or denials:\n%s", access)
	}
	// The sample must exercise both answers, or the test proves nothing.
	if admitted == 0 || admitted == len(samples) {
		t.Errorf("%d of %d samples admitted; want some of each", admitted, len(samples))
	}
}

// TestSquidExportParses: "squid -k parse" accepts the export of the
// embedded catalog, alone and layered with a list of wildcards and CIDRs,
// without a warning.
func TestSquidExportParses(t *testing.T) {
	squid := findTool(t, "squid", "squid")
	for _, config := range []string{"", "testdata/configs/layered.yaml"} {
		t.Run(filepath.Base(config), func(t *testing.T) {
			dir := t.TempDir()
			var export, stderr bytes.Buffer
			if exit := run([]string{"catalog", "--config", config, "--format", "squid"}, &export, &stderr); exit != 0 {
				t.Fatalf("catalog --format squid: exit %d: %s", exit, stderr.String())
			}
			acls := filepath.Join(dir, "acls.conf")
			conf := filepath.Join(dir, "squid.conf")
			if err := os.WriteFile(acls, export.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte("http_port 127.0.0.1:3128\ninclude "+acls+"\nhttp_access deny all\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(squid, "-k", "parse", "-f", conf).CombinedOutput()
			if err != nil {
				t.Fatalf("squid -k parse: %v\n%s", err, out)
			}
			if bytes.Contains(out, []byte("WARNING")) || bytes.Contains(out, []byte("ERROR")) {
				t.Errorf("squid -k parse complains:\n%s", out)
			}
		})
	}
}
