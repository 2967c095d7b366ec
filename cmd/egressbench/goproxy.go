package main

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
)

// goproxyPkg is the unfiltered reference proxy: goproxy's default CONNECT
// path (see baseline/main.go).
const goproxyPkg = "github.com/egressgate/egressgate/cmd/egressbench/baseline"

// goproxyBaseline starts the reference proxy with a hosts file mapping the
// bench name to 127.0.0.1. It admits every CONNECT: it has no policy.
type goproxyBaseline struct {
	bin string
	dir string
	n   int // instances started, to name logs
}

// newGoproxy writes the hosts file into dir.
func newGoproxy(bin, dir, host string) (*goproxyBaseline, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hostsFile(host)), 0o644); err != nil {
		return nil, err
	}
	return &goproxyBaseline{bin: bin, dir: dir}, nil
}

// launch starts a fresh goproxy baseline.
func (g *goproxyBaseline) launch() (*instance, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g.n++
	c, err := startChild("goproxy", addr, filepath.Join(g.dir, fmt.Sprintf("goproxy-%d.out", g.n)),
		[]string{g.bin, "--listen", addr, "--hosts", filepath.Join(g.dir, "hosts")})
	if err != nil {
		return nil, err
	}
	return c.instance(addr), nil
}

// goproxyVersion names the goproxy module a baseline binary was built with.
func goproxyVersion(bin string) (string, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", err
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/elazarl/goproxy" {
			return m.Path + " " + m.Version + " (unfiltered, default CONNECT path)", nil
		}
	}
	return "", fmt.Errorf("%s: no goproxy module in its build info", bin)
}
