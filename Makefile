# egressgate: the two commands of the README's quick start, and the rest.
GO ?= go

# The version stamped into the binary (`egressgate version`): make build
# VERSION=v1.2.3. Empty: the module version and VCS revision Go records.
VERSION ?=
# The platforms egressgate is built and released for.
TARGETS := linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64 freebsd/amd64

.PHONY: run test deps fuzz bench build check image cross release

# Runs the proxy on the embedded default catalog (README, quick start).
run:
	$(GO) run ./cmd/egressgate serve

# Runs every test, with the race detector (README, quick start; .ci/run).
# The tools the end-to-end tests drive are installed first when missing.
test: deps
	$(GO) test -race -count=1 -timeout 20m ./...

# Installs what the tests drive from Debian's packages (.ci/deps says
# which, and how: lock wait, no service started). Needs root; without it
# nothing is installed and the tests that need a missing tool skip.
deps:
	@./.ci/deps

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o egressgate ./cmd/egressgate

# Compiles every package and vets it, tests included, for each of
# TARGETS (.ci/run), so that nothing Linux-only escapes its build tags.
# deploy/ is left out of the vet for targets other than the machine's own:
# it holds only the Linux tests of the deployment kit, and its test
# dependencies (the Kubernetes and Grafana types) would triple the time.
cross:
	@set -e; pkgs=$$($(GO) list ./... | grep -v '/deploy$$'); for t in $(TARGETS); do \
		echo "== $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build ./...; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) vet $$pkgs; \
	done

# Writes dist/: an archive per target with SHA256SUMS, and .deb and .rpm
# packages for Linux (deploy/release/release.sh; docs/development.md,
# "Releases"). Needs VERSION=vX.Y.Z and nfpm (make deps installs it).
release:
	VERSION=$(VERSION) TARGETS="$(TARGETS)" ./deploy/release/release.sh

# Builds the container image with podman or docker, whichever is installed
# (deploy/container/build.sh; docs/deploying.md, "The container").
# IMAGE=name:tag, VERSION=v1.2.3, GO_IMAGE=local where no registry is
# reachable (a builder image from the installed Go toolchain),
# PLATFORMS=linux/amd64,linux/arm64 for a manifest list of both.
image:
	./deploy/container/build.sh

# Short fuzzing runs of every fuzz target, FUZZTIME each. The targets are
# found, not listed, so a new one is fuzzed without editing this file:
# `go test -list` names each package's Fuzz functions. Their seeds (f.Add
# and testdata/fuzz/) also run in every go test.
FUZZTIME ?= 30s
fuzz:
	@set -e; n=0; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg); \
		for target in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; n=$$((n+1)); \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
		done; \
	done; echo "fuzz: $$n targets"; test $$n -gt 0

check:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# egressgate vs Squid vs goproxy (unfiltered reference) vs raw (the bare
# CONNECT-and-splice loop, the limit) vs direct, on loopback
# (docs/performance.md). Installs Squid when missing. A full run
# takes about 6 minutes; BENCHFLAGS=--quick about one.
bench:
	command -v squid >/dev/null || test -x /usr/sbin/squid || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq squid)
	mkdir -p bench-out
	$(GO) run ./cmd/egressbench --json bench-out/bench.json $(BENCHFLAGS)
