# egressgate container image. Build: docker build -t egressgate .
# Not built by the test suite (no container runtime there); the build
# stage is `go build ./cmd/egressgate`, which the tests do build.

# Build: a static binary, no cgo, so it runs on distroless/static.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/egressgate ./cmd/egressgate

# Run: no shell, no package manager, uid 65532 (nonroot), the same uid the
# Kubernetes Deployment sets.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/egressgate /usr/local/bin/egressgate
USER 65532:65532
# 3128: proxy (CONNECT and plain HTTP); 9128: admin (/metrics, /healthz,
# /readyz, /rules, /misses).
EXPOSE 3128 9128
ENTRYPOINT ["/usr/local/bin/egressgate"]
# Without a config file egressgate serves the embedded catalogs. The admin
# listener binds all addresses so probes and Prometheus reach it.
CMD ["serve", "--listen=:3128", "--admin=:9128"]
