package deploy

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// releaseVersion is the version TestRelease stamps; its packages carry
// it as 0.0.0~test (deb) and 0.0.0~test-1 (rpm).
const releaseVersion = "v0.0.0-test"

// releaseTargets are make release's targets (the Makefile's TARGETS).
var releaseTargets = []string{"linux/amd64", "linux/arm64", "darwin/arm64", "darwin/amd64", "windows/amd64", "freebsd/amd64"}

// nfpmPath finds nfpm as release.sh does, or skips.
func nfpmPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nfpm"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nfpm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("nfpm not installed (make deps: go install github.com/goreleaser/nfpm/v2/cmd/nfpm)")
	return ""
}

// TestRelease runs make release as a maintainer would, into a temporary
// dist/, and checks what it wrote: an archive per target holding the
// binary for that target and the documents, SHA256SUMS matching every
// file, and .deb and .rpm packages holding the binary, the systemd unit
// (verified with systemd-analyze, pointed at the packaged binary) and
// /etc/egressgate as configuration an upgrade keeps. The Linux amd64
// binary from the archive runs and prints the stamped version.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six targets and four packages: not with -short")
	}
	nfpmPath(t)
	for _, tool := range []string{"make", "dpkg-deb", "tar", "zip", "gzip", "sha256sum"} {
		needTool(t, "apt-get install make dpkg zip gzip coreutils", tool)
	}
	dist := t.TempDir()
	start := time.Now()
	if out, err := run(t, 30*time.Minute, "..", "make", "release", "VERSION="+releaseVersion, "DIST="+dist); err != nil {
		t.Fatalf("make release: %v\n%s", err, tail([]byte(out), 4000))
	}
	t.Logf("make release took %.0f s", time.Since(start).Seconds())

	plain := strings.TrimPrefix(releaseVersion, "v")
	want := []string{"SHA256SUMS",
		"egressgate-0.0.0~test-1.aarch64.rpm", "egressgate-0.0.0~test-1.x86_64.rpm",
		"egressgate_0.0.0~test_amd64.deb", "egressgate_0.0.0~test_arm64.deb"}
	for _, target := range releaseTargets {
		name := "egressgate_" + plain + "_" + strings.ReplaceAll(target, "/", "_")
		if strings.HasPrefix(target, "windows/") {
			want = append(want, name+".zip")
		} else {
			want = append(want, name+".tar.gz")
		}
	}
	slices.Sort(want)
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dist/ holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkSums(t, dist, want)
	for _, target := range releaseTargets {
		checkArchive(t, dist, plain, target)
	}
	checkDeb(t, filepath.Join(dist, "egressgate_0.0.0~test_amd64.deb"), "amd64")
	checkDeb(t, filepath.Join(dist, "egressgate_0.0.0~test_arm64.deb"), "arm64")
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Logf("rpm not installed (apt-get install rpm): the .rpm contents are not listed")
		return
	}
	checkRPM(t, filepath.Join(dist, "egressgate-0.0.0~test-1.x86_64.rpm"), "x86_64")
	checkRPM(t, filepath.Join(dist, "egressgate-0.0.0~test-1.aarch64.rpm"), "aarch64")
}

// checkSums reads SHA256SUMS: one "HASH  NAME" line per other file in
// dist, each hash that file's.
func checkSums(t *testing.T, dist string, files []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var listed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Errorf("SHA256SUMS line %q is not HASH  NAME", sc.Text())
			continue
		}
		listed = append(listed, name)
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Errorf("SHA256SUMS names %s: %v", name, err)
			continue
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s has %x, listed %s", name, h, sum)
		}
	}
	wantListed := slices.DeleteFunc(slices.Clone(files), func(s string) bool { return s == "SHA256SUMS" })
	if !slices.Equal(listed, wantListed) {
		t.Errorf("SHA256SUMS lists %q, want %q", listed, wantListed)
	}
}

// checkArchive opens a target's archive: one top directory named after
// it, holding the binary for the target and the documents and samples.
func checkArchive(t *testing.T, dist, plain, target string) {
	t.Helper()
	goos, goarch, _ := strings.Cut(target, "/")
	top := "egressgate_" + plain + "_" + goos + "_" + goarch
	exe := "egressgate"
	if goos == "windows" {
		exe += ".exe"
	}
	want := []string{"CHANGELOG.md", "LICENSE", "README.md", "config.yaml", exe, "site.txt"}
	if goos == "linux" {
		want = append(want, "egressgate.service")
	}
	slices.Sort(want)
	files := map[string][]byte{}
	if goos == "windows" {
		zr, err := zip.OpenReader(filepath.Join(dist, top+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if f.FileInfo().IsDir() {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			files[f.Name], _ = io.ReadAll(rc)
			rc.Close()
		}
	} else {
		f, err := os.Open(filepath.Join(dist, top+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s.tar.gz: %v", top, err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s.tar.gz: %v", top, err)
			}
			if h.Typeflag == tar.TypeReg {
				if h.Uid != 0 || h.Gid != 0 {
					t.Errorf("%s.tar.gz: %s owned by %d:%d, want 0:0", top, h.Name, h.Uid, h.Gid)
				}
				files[h.Name], _ = io.ReadAll(tr)
			}
		}
	}
	var got []string
	for name := range files {
		rest, ok := strings.CutPrefix(name, top+"/")
		if !ok {
			t.Errorf("%s: %s is outside the top directory %s/", top, name, top)
		}
		got = append(got, rest)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", top, got, want)
	}
	bin := files[top+"/"+exe]
	magic := map[string]string{"linux": "\x7fELF", "freebsd": "\x7fELF", "darwin": "\xcf\xfa\xed\xfe", "windows": "MZ"}[goos]
	if !strings.HasPrefix(string(bin), magic) {
		t.Errorf("%s/%s does not start as a %s executable (%q)", top, exe, goos, bin[:min(len(bin), 4)])
	}
	if target == "linux/amd64" {
		path := filepath.Join(t.TempDir(), "egressgate")
		if err := os.WriteFile(path, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, time.Minute, ".", path, "version")
		if f := strings.Fields(out); err != nil || len(f) < 2 || f[1] != releaseVersion {
			t.Errorf("%s/egressgate version = %q (%v), want %s", top, strings.TrimSpace(out), err, releaseVersion)
		}
	}
}

// packageFiles are the files every package installs.
var packageFiles = []string{
	"/etc/egressgate/config.yaml",
	"/etc/egressgate/site.txt",
	"/usr/bin/egressgate",
	"/usr/lib/systemd/system/egressgate.service",
	"/usr/share/doc/egressgate/CHANGELOG.md",
	"/usr/share/doc/egressgate/LICENSE",
	"/usr/share/doc/egressgate/README.md",
}

// packageConfig are the files an upgrade keeps as the administrator
// left them.
var packageConfig = []string{"/etc/egressgate/config.yaml", "/etc/egressgate/site.txt"}

// checkDeb lists a .deb (dpkg-deb -c), reads its control fields and
// conffiles (dpkg-deb -I), and extracts it to verify the unit with the
// packaged binary.
func checkDeb(t *testing.T, deb, arch string) {
	t.Helper()
	out, err := run(t, time.Minute, ".", "dpkg-deb", "-c", deb)
	if err != nil {
		t.Fatalf("dpkg-deb -c %s: %v\n%s", deb, err, out)
	}
	var files []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 6 && !strings.HasSuffix(f[5], "/") {
			files = append(files, strings.TrimPrefix(f[5], "."))
			if f[5] == "./usr/bin/egressgate" && !strings.HasPrefix(f[0], "-rwxr-xr-x") {
				t.Errorf("%s: /usr/bin/egressgate mode %s, want -rwxr-xr-x", deb, f[0])
			}
		}
	}
	slices.Sort(files)
	if !slices.Equal(files, packageFiles) {
		t.Errorf("dpkg-deb -c %s:\n%s\nwant the files %q", filepath.Base(deb), out, packageFiles)
	}
	out, err = run(t, time.Minute, ".", "dpkg-deb", "-I", deb, "conffiles")
	if conf := strings.Fields(out); err != nil || !slices.Equal(conf, packageConfig) {
		t.Errorf("dpkg-deb -I %s conffiles = %q (%v), want %q", filepath.Base(deb), out, err, packageConfig)
	}
	out, err = run(t, time.Minute, ".", "dpkg-deb", "-f", deb, "Package", "Version", "Architecture")
	if want := "Package: egressgate\nVersion: 0.0.0~test\nArchitecture: " + arch + "\n"; err != nil || out != want {
		t.Errorf("dpkg-deb -f %s = %q (%v), want %q", filepath.Base(deb), out, err, want)
	}
	root := t.TempDir()
	if out, err := run(t, time.Minute, ".", "dpkg-deb", "-x", deb, root); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	bin := filepath.Join(root, "usr/bin/egressgate")
	if f, err := elf.Open(bin); err != nil {
		t.Errorf("%s: /usr/bin/egressgate: %v", filepath.Base(deb), err)
	} else {
		wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
		if f.Machine != wantMachine {
			t.Errorf("%s: /usr/bin/egressgate is for %s, want %s", filepath.Base(deb), f.Machine, wantMachine)
		}
		f.Close()
	}
	verifyPackagedUnit(t, filepath.Join(root, "usr/lib/systemd/system/egressgate.service"), bin)
}

// verifyPackagedUnit runs systemd-analyze verify on the packaged unit.
// verify insists that ExecStart's binary exists on this machine: a copy of
// the unit, of the same name, points at the packaged binary instead.
func verifyPackagedUnit(t *testing.T, unit, bin string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze not installed: the packaged unit is not verified")
		return
	}
	data := readFile(t, unit)
	if !strings.Contains(string(data), "\nExecStart=/usr/bin/egressgate serve ") {
		t.Errorf("packaged unit: ExecStart does not run /usr/bin/egressgate serve:\n%s", data)
	}
	copied := filepath.Join(t.TempDir(), "egressgate.service")
	writeFile(t, copied, strings.ReplaceAll(string(data), "/usr/bin/egressgate", bin))
	if out, err := run(t, time.Minute, ".", analyze, "verify", copied); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify (the packaged unit): %v\n%s", err, out)
	}
}

// checkRPM lists an .rpm's files with their flags: the binary and unit,
// and /etc/egressgate as %config(noreplace) ("cn").
func checkRPM(t *testing.T, rpm, arch string) {
	t.Helper()
	out, err := run(t, time.Minute, ".", "rpm", "-qlp", rpm)
	if files := strings.Fields(out); err != nil || !slices.Equal(files, packageFiles) {
		t.Errorf("rpm -qlp %s = %q (%v), want %q", filepath.Base(rpm), out, err, packageFiles)
	}
	out, err = run(t, time.Minute, ".", "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm)
	if err != nil {
		t.Fatalf("rpm -qp --qf %s: %v\n%s", rpm, err, out)
	}
	for line := range strings.Lines(out) {
		name, flags, _ := strings.Cut(strings.TrimSpace(line), " ")
		if wantConfig := slices.Contains(packageConfig, name); wantConfig != (flags == "cn") {
			t.Errorf("rpm %s: %s has flags %q; want \"cn\" (config, noreplace) exactly for %q", filepath.Base(rpm), name, flags, packageConfig)
		}
	}
	out, err = run(t, time.Minute, ".", "rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}", rpm)
	if want := "egressgate 0.0.0~test-1 " + arch + " Apache-2.0"; err != nil || out != want {
		t.Errorf("rpm -qp %s = %q (%v), want %q", filepath.Base(rpm), out, err, want)
	}
}
