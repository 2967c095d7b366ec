# egressgate container image: a static binary on an empty base.
#
#   make image                                   # podman or docker, whichever is installed
#   docker build --build-arg VERSION=v1.2.3 -t egressgate:v1.2.3 .
#
# GO_IMAGE is the build stage's image: the official Go image by default, or
# any image with the Go toolchain and a POSIX shell (deploy/container/
# go-local.sh makes one from the installed toolchain where no registry can
# be reached; docs/deploying.md, "The container").
ARG GO_IMAGE=golang:1.26

# Build: CGO_ENABLED=0, so the binary needs no libc and runs FROM scratch.
# The module and build caches are cache mounts, so a rebuild after an edit
# compiles only what changed. No separate `go mod download`: it would fetch
# the test-only modules too (Kubernetes, Compose, Grafana types for
# deploy/'s tests); go build fetches only what the binary imports.
FROM ${GO_IMAGE} AS build
# Lets build.sh prune the untagged images earlier builds left behind.
LABEL io.egressgate.stage=build
ENV GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build GOFLAGS=-buildvcs=false
WORKDIR /src
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod,id=egressgate-gomod \
    --mount=type=cache,target=/root/.cache/go-build,id=egressgate-gobuild \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/egressgate ./cmd/egressgate

# Run: nothing but the binary, the CA bundle (for the commands that verify
# certificates, such as `report --prometheus https://...`) and the sample
# config. No shell, no package manager, no base image to pull.
FROM scratch
LABEL io.egressgate.stage=runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/egressgate /usr/local/bin/egressgate
# The config lives at /etc/egressgate/config.yaml, with its catalogs beside
# it. The image ships deploy/systemd's samples there (the embedded catalogs,
# plus site.txt for your own hosts); mount your own directory over
# /etc/egressgate to change them (a directory, so edits are reloaded).
COPY deploy/systemd/config.yaml deploy/systemd/site.txt /etc/egressgate/
# uid and gid 65532 (distroless's "nonroot"), the same the Kubernetes
# Deployment sets; ports 3128 and 9128 are above 1024, so no capability.
USER 65532:65532
# 3128: proxy (CONNECT and plain HTTP); 9128: admin (/metrics, /healthz,
# /readyz, /rules, /misses).
EXPOSE 3128 9128
# Needs no shell: egressgate asks its own /healthz and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/egressgate", "healthcheck", "--admin", "127.0.0.1:9128"]
ENTRYPOINT ["/usr/local/bin/egressgate"]
# The admin listener binds all addresses so probes and Prometheus reach it.
CMD ["serve", "--config=/etc/egressgate/config.yaml", "--listen=:3128", "--admin=:9128"]
