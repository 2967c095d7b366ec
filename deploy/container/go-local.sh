#!/bin/sh
# Makes a Go builder image from the Go toolchain installed on this machine,
# for building the Dockerfile where no registry can be reached:
#
#   deploy/container/go-local.sh [ENGINE]   # prints the image name
#   podman build --build-arg GO_IMAGE=$(deploy/container/go-local.sh) .
#
# The image holds $(go env GOROOT), a static busybox (from Debian's
# busybox-static) as /bin/sh and the POSIX tools, the CA bundle, and /tmp.
# It is named after the toolchain's version (localhost/go-local:go1.26.8)
# and made only when the engine does not have it yet.
set -eu

engine=${1:-$(command -v podman || command -v docker)}
goroot=$(go env GOROOT)
gover=$(go env GOVERSION)
image=localhost/go-local:$gover

if "$engine" image inspect "$image" >/dev/null 2>&1; then
	echo "$image"
	exit 0
fi

# Debian's busybox-static installs it here (and conflicts with the
# dynamically linked busybox, which could not run in the image).
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "go-local.sh: no $busybox (Debian package busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc/ssl/certs" "$root/usr/local"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
# The toolchain goes in as it is installed, without a copy: tar reads it in
# place, under usr/local/go in the image.
tar -C "$root" -cf - . -C "$(dirname "$goroot")" --transform "s|^\\./$(basename "$goroot")|./usr/local/go|" "./$(basename "$goroot")" |
	"$engine" import \
		--change 'ENV PATH=/usr/local/go/bin:/bin' \
		--change 'ENV GOTOOLCHAIN=local' \
		--change 'ENV HOME=/tmp' \
		- "$image" >/dev/null
echo "$image"
