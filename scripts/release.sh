#!/usr/bin/env bash
# release.sh - makes the release artefacts, each with a .sha256 beside it:
#   teleport-access-pagerduty-v<version>-linux-<arch>-bin.tar.gz   named like upstream's; holds
#       the stripped binary, `install` (packaging/install), the systemd unit template, the sample
#       config, the manual page, the runtime library list, README.md and VERSION;
#   teleport-pagerduty_<version>-1_<arch>.deb                         CPack, Depends computed by
#       dpkg-shlibdeps, checked with lintian (errors and warnings fail it).
#
#   scripts/release.sh [--out DIR] [--build DIR]
# builds a release binary (-O3, no sanitizers, no tests, -DTPD_PACKAGE_DEB=ON) in --build
# (default build-release-pkg) with -j2 and writes to --out (default dist/). --binary FILE makes
# only the tarball, from an already built binary (the tests do, to save a build), with its build
# folder as --build for the generated files. The version is the binary's own
# (`teleport-pagerduty version`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/dist
build=$root/build-release-pkg
binary=""
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--binary) binary=$2; shift 2 ;;
	*) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
deb=false
if [ -z "$binary" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTPD_TESTS=OFF -DTPD_SANITIZE=OFF \
		-DTPD_PACKAGE_DEB=ON -DCMAKE_C_FLAGS=-Wno-format-truncation >/dev/null
	cmake --build "$build" -j2 >/dev/null
	binary=$build/teleport-pagerduty
	deb=true
fi
for f in teleport-pagerduty.toml.example teleport-pagerduty.1; do
	[ -f "$build/$f" ] || { echo "release.sh: $build/$f is missing (build the default target)" >&2; exit 1; }
done
version=$("$binary" version | sed -n 's/^teleport-pagerduty v\([^ ]*\) .*/\1/p')
[ -n "$version" ] || { echo "release.sh: cannot read the version of $binary" >&2; exit 1; }
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
name=teleport-access-pagerduty-v$version-linux-$arch-bin
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
d=$stage/teleport-access-pagerduty
mkdir -p "$d" "$out"
install -m 0755 "$binary" "$d/teleport-pagerduty"
strip --strip-unneeded "$d/teleport-pagerduty" 2>/dev/null || true
install -m 0755 "$root/packaging/install" "$d/install"
install -m 0644 "$root/deploy/systemd/teleport-pagerduty.service.in" "$root/packaging/runtime-libraries.txt" \
	"$build/teleport-pagerduty.toml.example" "$build/teleport-pagerduty.1" "$root/README.md" "$d/"
echo "$version" >"$d/VERSION"
# Reproducible archive: fixed owner, order and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -czf "$out/$name.tar.gz" teleport-access-pagerduty
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
if $deb; then
	rm -rf "$build/packages"
	(cd "$build" && cpack -G DEB >/dev/null)
	for f in "$build"/packages/*.deb; do
		cp "$f" "$out/"
		(cd "$out" && sha256sum "$(basename "$f")" >"$(basename "$f").sha256")
		command -v lintian >/dev/null || { echo "release.sh: lintian is missing (scripts/deps.sh installs it)" >&2; exit 1; }
		lintian --fail-on error,warning "$out/$(basename "$f")" >&2
		echo "$out/$(basename "$f")"
	done
fi
