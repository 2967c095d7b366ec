# egressgate container image: a static binary on an empty base, for any
# architecture Go builds for.
#
#   make image                                   # podman or docker, whichever is installed
#   make image PLATFORMS=linux/amd64,linux/arm64 # a manifest list of both
#   docker build --build-arg VERSION=v1.2.3 -t egressgate:v1.2.3 .
#   podman build --platform linux/arm64 .        # on an amd64 machine too
#
# The build stage runs on the build machine's own platform and
# cross-compiles for the target's (TARGETOS, TARGETARCH); the final stage
# has no RUN. So an image for another architecture needs no emulation.
#
# GO_IMAGE is the build stage's image: the official Go image by default, or
# any image with the Go toolchain and a POSIX shell (deploy/container/
# go-local.sh makes one from the installed toolchain where no registry can
# be reached; docs/deploying.md, "The container").
ARG GO_IMAGE=golang:1.26
# The build machine's platform, which the build stage runs on. Docker
# (BuildKit) sets it on its own; podman 4's buildah needs it declared here.
ARG BUILDPLATFORM

# Build: CGO_ENABLED=0, so the binary needs no libc and runs FROM scratch.
# The module and build caches are cache mounts, so a rebuild after an edit
# compiles only what changed. No separate `go mod download`: it would fetch
# the test-only modules too (Kubernetes, Compose, Grafana types for
# deploy/'s tests); go build fetches only what the binary imports.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
# Lets build.sh prune the untagged images earlier builds left behind.
LABEL io.egressgate.stage=build
ENV GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build GOFLAGS=-buildvcs=false
WORKDIR /src
COPY . .
ARG VERSION=dev
# Set by BuildKit and podman from --platform (default: the build
# machine's); GOARM from the variant ("v7" of linux/arm/v7), if any.
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
RUN --mount=type=cache,target=/go/pkg/mod,id=egressgate-gomod \
    --mount=type=cache,target=/root/.cache/go-build,id=egressgate-gobuild \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${TARGETVARIANT#v} \
      go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
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
# serve's settings come from the environment (EGRESSGATE_<FLAG>, docs/
# configuration.md), so `run -e EGRESSGATE_ADMIN=:9200` moves the admin
# listener and the health check with it; flags after the image name still
# win. The admin listener binds all addresses so probes and Prometheus
# reach it.
ENV EGRESSGATE_CONFIG=/etc/egressgate/config.yaml \
    EGRESSGATE_LISTEN=:3128 \
    EGRESSGATE_ADMIN=:9128
# Needs no shell: egressgate asks its own /healthz, at EGRESSGATE_ADMIN,
# and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/egressgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/egressgate"]
CMD ["serve"]
