#!/bin/sh
# Builds the egressgate image from the repository's Dockerfile with podman
# or docker, whichever is installed (`make image` runs this).
#
#   IMAGE      image name (default egressgate:$VERSION)
#   VERSION    stamped into the binary, shown by `egressgate version`
#              (default: git describe, else "dev")
#   GO_IMAGE   the build stage's image (default: the Dockerfile's, the
#              official Go image); "local" makes one from the installed
#              toolchain with go-local.sh, for machines without a registry
#   ENGINE     podman or docker (default: podman if installed)
#   PLATFORMS  comma-separated target platforms (linux/amd64,linux/arm64);
#              more than one builds a manifest list named IMAGE (podman
#              --manifest; docker buildx, which needs --push or a
#              containerd image store to keep it). Default: the build
#              machine's. The Dockerfile cross-compiles, so no emulation
#              is needed for another architecture.
#
# With podman the image is built in Docker's format, the only one that
# keeps HEALTHCHECK, over the host's network (the build stage downloads
# modules), with runc when it is installed, and without podman's default
# ulimits when CONTAINERS_CONF is unset: raising them needs
# CAP_SYS_RESOURCE, which some sandboxes and CI machines lack.
set -eu
cd "$(dirname "$0")/../.."

engine=${ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$engine" ] || { echo "build.sh: neither podman nor docker is installed" >&2; exit 1; }
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
image=${IMAGE:-egressgate:$version}

platforms=${PLATFORMS:-}
set -- --build-arg "VERSION=$version"
if [ "${GO_IMAGE:-}" = local ]; then
	GO_IMAGE=$(deploy/container/go-local.sh "$engine")
fi
[ -z "${GO_IMAGE:-}" ] || set -- "$@" --build-arg "GO_IMAGE=$GO_IMAGE"

multi=false
case "$platforms" in *,*) multi=true ;; esac
[ -z "$platforms" ] || set -- "$@" --platform "$platforms"

case "$(basename "$engine")" in
podman)
	if $multi; then
		# A manifest list gathers the images built into it: start afresh,
		# or the images of earlier builds would stay listed.
		"$engine" manifest rm "$image" >/dev/null 2>&1 || "$engine" rmi "$image" >/dev/null 2>&1 || true
		set -- "$@" --manifest "$image"
	else
		set -- "$@" -t "$image"
	fi
	# Podman 4 does not set BUILDPLATFORM itself: without it, the build
	# stage of a --platform build would ask for the target's builder image.
	set -- "$@" --build-arg "BUILDPLATFORM=$("$engine" info --format '{{.Host.OS}}/{{.Host.Arch}}')"
	set -- "$@" --format docker --network host
	if command -v runc >/dev/null 2>&1; then
		set -- "$@" --runtime runc
	fi
	if [ -z "${CONTAINERS_CONF:-}" ]; then
		conf=$(mktemp)
		trap 'rm -f "$conf"' EXIT
		printf '[containers]\ndefault_ulimits = []\n' >"$conf"
		export CONTAINERS_CONF="$conf"
	fi
	set -- build "$@"
	;;
*)
	set -- "$@" -t "$image"
	if $multi; then
		set -- buildx build "$@"
	else
		set -- build "$@"
	fi
	;;
esac

echo "+ $engine $* ." >&2
"$engine" "$@" .
# Earlier builds leave untagged images behind (their build stage, and the
# image the tag pointed to before); the Dockerfile labels both stages, so
# only those are removed. Not after a manifest list: its images are
# untagged too.
# A failed prune leaves only disk to reclaim: it does not fail the build.
$multi || "$engine" image prune -f --filter label=io.egressgate.stage >/dev/null ||
	echo "build.sh: pruning the untagged egressgate images failed; the image is built" >&2
