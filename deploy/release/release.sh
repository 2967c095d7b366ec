#!/bin/sh
# Builds an egressgate release into dist/ (make release VERSION=v1.2.3):
#
#   egressgate_1.2.3_OS_ARCH.tar.gz   one per target (.zip for Windows): the
#                                     binary, LICENSE, README.md,
#                                     CHANGELOG.md, the sample config.yaml
#                                     and site.txt (and the systemd unit
#                                     for Linux)
#   egressgate_1.2.3_ARCH.deb         Linux amd64 and arm64 packages: the
#   egressgate-1.2.3-1.ARCH.rpm       binary, the systemd unit (not
#                                     enabled), /etc/egressgate kept
#                                     across upgrades (nfpm.yaml)
#   SHA256SUMS                        sha256sum -c checks every file above
#
#   VERSION   vMAJOR.MINOR.PATCH[-PRERELEASE], required
#   TARGETS   GOOS/GOARCH list (default: the Makefile's six)
#   DIST      output directory (default: dist), emptied first
#   NFPM      the nfpm binary (default: on PATH, else in $(go env GOPATH)/bin)
#
# The binaries are static (CGO_ENABLED=0), built with -trimpath and the
# version stamped in; file times in the archives and packages are the
# commit's (SOURCE_DATE_EPOCH), so the same commit gives the same files.
set -eu
cd "$(dirname "$0")/../.."

version=${VERSION:-}
if ! printf '%s\n' "$version" | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'; then
	echo "release.sh: VERSION=\"$version\" is not vMAJOR.MINOR.PATCH[-PRERELEASE]: make release VERSION=v1.2.3" >&2
	exit 2
fi
targets=${TARGETS:-linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64 freebsd/amd64}
dist=${DIST:-dist}
go=${GO:-go}
nfpm=${NFPM:-$(command -v nfpm || echo "$($go env GOPATH)/bin/nfpm")}
[ -x "$nfpm" ] || { echo "release.sh: nfpm not found ($nfpm); make deps installs it" >&2; exit 1; }
for tool in tar zip gzip; do
	command -v "$tool" >/dev/null || { echo "release.sh: $tool is needed" >&2; exit 1; }
done

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
plain=${version#v}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dist"
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)

for target in $targets; do
	os=${target%/*}
	arch=${target#*/}
	name=egressgate_${plain}_${os}_${arch}
	dir=$work/$name
	mkdir -p "$dir"
	exe=egressgate
	[ "$os" != windows ] || exe=egressgate.exe
	echo "release.sh: $target" >&2
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$go" build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$dir/$exe" ./cmd/egressgate
	cp LICENSE README.md CHANGELOG.md deploy/systemd/config.yaml deploy/systemd/site.txt "$dir/"
	if [ "$os" = linux ]; then
		# Packages install the binary in /usr/bin, not /usr/local/bin.
		sed 's|^ExecStart=/usr/local/bin/egressgate |ExecStart=/usr/bin/egressgate |' \
			deploy/systemd/egressgate.service >"$dir/egressgate.service"
		grep -q '^ExecStart=/usr/bin/egressgate ' "$dir/egressgate.service" ||
			{ echo "release.sh: deploy/systemd/egressgate.service: no ExecStart=/usr/local/bin/egressgate to rewrite" >&2; exit 1; }
	fi
	find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	if [ "$os" = windows ]; then
		(cd "$work" && find "$name" | LC_ALL=C sort | zip -q -X -D "$dist/$name.zip" -@)
	else
		tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
			--mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -n -9 >"$dist/$name.tar.gz"
	fi
	if [ "$os" = linux ]; then
		for packager in deb rpm; do
			BUILD_DIR=$dir GOARCH=$arch PKG_VERSION=$plain \
				"$nfpm" package --config deploy/release/nfpm.yaml --packager "$packager" --target "$dist/" >/dev/null
		done
	fi
done

(cd "$dist" && LC_ALL=C ls | grep -v '^SHA256SUMS$' | xargs sha256sum >SHA256SUMS)
echo "release.sh: $(ls "$dist" | wc -l) files in $dist" >&2
