package main

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// releaseTargets are the platforms the issue names: egressgate builds
// for each, and make release ships each.
var releaseTargets = []string{"linux/amd64", "linux/arm64", "darwin/arm64", "darwin/amd64", "windows/amd64", "freebsd/amd64"}

// TestMakefileTargets: the Makefile's TARGETS, which make cross and make
// release use, are the release targets.
func TestMakefileTargets(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TARGETS := (.*)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("Makefile: no TARGETS := line")
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, releaseTargets) {
		t.Errorf("Makefile TARGETS = %q, want %q", got, releaseTargets)
	}
}

// TestCrossCompile builds egressgate and egressbench for every release
// target, as a user there would (CGO_ENABLED=0), and reads each binary's
// header: the right format, operating system and machine. make cross
// (.ci/run) also vets every package for each.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles six targets: not with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not on PATH: %v", err)
	}
	for _, target := range releaseTargets {
		t.Run(strings.ReplaceAll(target, "/", "-"), func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			out := t.TempDir()
			cmd := exec.Command(goBin, "build", "-o", out+string(filepath.Separator), "../../cmd/egressgate", "../../cmd/egressbench")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			start := time.Now()
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=%s GOARCH=%s go build: %v\n%s", goos, goarch, err, b)
			}
			t.Logf("built in %.1f s", time.Since(start).Seconds())
			for _, name := range []string{"egressgate", "egressbench"} {
				if goos == "windows" {
					name += ".exe"
				}
				if err := checkBinary(filepath.Join(out, name), goos, goarch); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// checkBinary reports whether the executable at path is for goos/goarch,
// from its header.
func checkBinary(path, goos, goarch string) error {
	machine := map[string]map[string]string{
		"elf":   {"amd64": elf.EM_X86_64.String(), "arm64": elf.EM_AARCH64.String()},
		"macho": {"amd64": macho.CpuAmd64.String(), "arm64": macho.CpuArm64.String()},
		"pe":    {"amd64": fmt.Sprint(pe.IMAGE_FILE_MACHINE_AMD64)},
	}
	var format, got, abi string
	switch goos {
	case "linux", "freebsd":
		f, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("%s: not ELF: %w", path, err)
		}
		defer f.Close()
		format, got, abi = "elf", f.Machine.String(), f.OSABI.String()
		// Go marks FreeBSD binaries with their ABI; Linux ones are SYSV.
		want := map[string]string{"linux": elf.ELFOSABI_NONE.String(), "freebsd": elf.ELFOSABI_FREEBSD.String()}[goos]
		if abi != want {
			return fmt.Errorf("%s: ELF OS ABI %s, want %s", path, abi, want)
		}
	case "darwin":
		f, err := macho.Open(path)
		if err != nil {
			return fmt.Errorf("%s: not Mach-O: %w", path, err)
		}
		defer f.Close()
		format, got = "macho", f.Cpu.String()
	case "windows":
		f, err := pe.Open(path)
		if err != nil {
			return fmt.Errorf("%s: not PE: %w", path, err)
		}
		defer f.Close()
		format, got = "pe", fmt.Sprint(f.Machine)
	default:
		return fmt.Errorf("%s: no header check for %s", path, goos)
	}
	if want := machine[format][goarch]; got != want {
		return fmt.Errorf("%s: %s machine %s, want %s (%s)", path, format, got, want, goarch)
	}
	return nil
}
