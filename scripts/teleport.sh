#!/usr/bin/env bash
# teleport.sh - builds and caches the real Teleport used by the real-teleport tests.
#
# For each pinned Teleport version, from one wrapper module of ours (tests/realteleport/go/<v>,
# pinned in its go.sum) and nothing but Go modules:
#   teleport            Teleport's own server, with the review features on and no web UI
#   tctl, tbot          straight from Teleport's module
#   pagerduty-upstream  upstream's PagerDuty plugin with a settable PagerDuty API URL
#   tpd-driver          creates, reviews and deletes access requests through Teleport's api/client
#
# Binaries go to ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}/teleport-<version>/bin; Go's module and
# build caches to .../go/mod and .../go/cache (shared with scripts/tools.sh). A binary is
# rebuilt only when its sources or the module's go.mod/go.sum change.
#
# Usage: scripts/teleport.sh [--print-env] [--tidy] [VERSION ...]
#   VERSION     one of the pinned versions below (default: all)
#   --print-env print `export TPD_TELEPORT_BIN_<major>=...` lines
#   --tidy      maintainers: re-run `go mod tidy` and copy go.mod/go.sum back into the repository
# Exit status 77 if Go >= 1.22 is missing, non-zero on any other failure.
set -euo pipefail

# version  major  module pseudo-version                      sha256 of the api module zip
PINS=(
	"15.3.1 15 v0.0.0-20240507172345-1d048d0736fc e048e26eceae714b9920b277b708d671501429f1b4509d2d3966a338c352ef89"
)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib/go.sh"
TOOLS_DIR=${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
export GOMODCACHE=$TOOLS_DIR/go/mod GOCACHE=$TOOLS_DIR/go/cache
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"

die() { echo "teleport.sh: $*" >&2; exit 1; }
log() { echo "teleport.sh: $(date -u +%H:%M:%S) $*" >&2; }

# Go >= 1.22 (Teleport 15's go.mod says 1.21; the later pins need 1.22+). 77 = skip for ctest.
check_go() {
	tpd_need_go 22 teleport.sh "building Teleport for the real-teleport tests"
	command -v unzip >/dev/null 2>&1 || die "unzip is not installed"
}

# sha256 over the files that make up one binary (module files + its command folder).
stamp_of() { # srcdir pkgdir
	(cd "$1" && find go.mod go.sum tools.go "$2" -type f 2>/dev/null | LC_ALL=C sort | xargs sha256sum) \
		| sha256sum | cut -d' ' -f1
}

# Copies the wrapper module (symlinks resolved) into the cache and puts the api module next to it.
stage() { # version major pseudo apisum
	local ver=$1 major=$2 pseudo=$3 apisum=$4
	local dir=$TOOLS_DIR/teleport-$ver mod=$ROOT/tests/realteleport/go/v$major
	[ -f "$mod/go.mod" ] || die "no wrapper module at $mod"
	mkdir -p "$dir"
	local zip=$dir/api-$pseudo.zip
	if [ ! -f "$zip" ] || [ "$(sha256sum "$zip" | cut -d' ' -f1)" != "$apisum" ]; then
		local proxy
		proxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -v -e '^direct$' -e '^off$' | head -n1)
		[ -n "$proxy" ] || die "GOPROXY names no proxy; the api module zip comes from the Go module proxy"
		log "fetching github.com/gravitational/teleport/api@$pseudo (module zip) from $proxy"
		curl -fsSL --retry 3 -o "$zip.tmp" \
			"$proxy/github.com/gravitational/teleport/api/@v/$pseudo.zip" \
			|| die "could not fetch the api module zip"
		local got
		got=$(sha256sum "$zip.tmp" | cut -d' ' -f1)
		[ "$got" = "$apisum" ] || die "api module zip sha256 $got, pinned $apisum"
		mv "$zip.tmp" "$zip"
	fi
	rm -rf "$dir/src.tmp"
	cp -rL "$mod" "$dir/src.tmp"
	rm -rf "$dir/src.tmp/teleport-api"
	mkdir -p "$dir/src.tmp/api-unzip"
	unzip -q "$zip" -d "$dir/src.tmp/api-unzip"
	mv "$dir/src.tmp/api-unzip/github.com/gravitational/teleport/api@$pseudo" "$dir/src.tmp/teleport-api"
	rm -rf "$dir/src.tmp/api-unzip" "$dir/src"
	mv "$dir/src.tmp" "$dir/src"
}

build_one() { # dir name package
	local dir=$1 name=$2 pkg=$3 pkgdir=${3#./} stamp ld="-s -w"
	case $pkg in ./*) ;; *) pkgdir=tools.go ;; esac
	stamp=$(stamp_of "$dir/src" "$pkgdir")
	if [ -x "$dir/bin/$name" ] && [ "$(cat "$dir/bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	[ "$GO_MINOR" -ge 23 ] && ld+=" -checklinkname=0"
	log "building $name ($pkg) in $dir"
	local t0=$SECONDS
	mkdir -p "$dir/bin"
	(cd "$dir/src" && go build -trimpath -ldflags "$ld" -o "$dir/bin/$name.tmp" "$pkg") \
		|| die "go build $pkg failed"
	mv "$dir/bin/$name.tmp" "$dir/bin/$name"
	echo "$stamp" >"$dir/bin/.$name.stamp"
	log "built $name in $((SECONDS - t0)) s"
}

build_version() { # version major pseudo apisum
	local ver=$1 major=$2 pseudo=$3 dir=$TOOLS_DIR/teleport-$1
	stage "$@"
	if [ $tidy -eq 1 ]; then
		log "go mod tidy for Teleport $ver"
		(cd "$dir/src" && GONOSUMDB=github.com/gravitational/teleport GOFLAGS=-mod=mod go mod tidy) \
			|| die "go mod tidy failed"
		cp "$dir/src/go.mod" "$dir/src/go.sum" "$ROOT/tests/realteleport/go/v$major/"
	fi
	build_one "$dir" teleport ./cmd/teleport
	build_one "$dir" tctl github.com/gravitational/teleport/tool/tctl
	build_one "$dir" tbot github.com/gravitational/teleport/tool/tbot
	build_one "$dir" pagerduty-upstream ./cmd/pagerduty-upstream
	build_one "$dir" tpd-driver ./cmd/tpd-driver
}

print_env=0 tidy=0
wanted=()
for a in "$@"; do
	case $a in
	--print-env) print_env=1 ;;
	--tidy) tidy=1 ;;
	-*) die "unknown option: $a" ;;
	*) wanted+=("$a") ;;
	esac
done

selected=()
for pin in "${PINS[@]}"; do
	set -- $pin
	if [ ${#wanted[@]} -eq 0 ]; then
		selected+=("$pin")
		continue
	fi
	for w in "${wanted[@]}"; do
		if [ "$w" = "$1" ] || [ "$w" = "$2" ] || [ "$w" = "v$2" ]; then selected+=("$pin"); fi
	done
done
[ ${#selected[@]} -gt 0 ] || die "no pinned version matches: ${wanted[*]} (pinned: $(printf '%s ' "${PINS[@]%% *}"))"

check_go
mkdir -p "$TOOLS_DIR"
# One build at a time (ctest may start several tests that need Teleport).
exec 9>"$TOOLS_DIR/.teleport.lock"
flock 9
for pin in "${selected[@]}"; do
	# shellcheck disable=SC2086
	build_version $pin
done
flock -u 9

if [ $print_env -eq 1 ]; then
	for pin in "${selected[@]}"; do
		set -- $pin
		echo "export TPD_TELEPORT_BIN_$2=\"$TOOLS_DIR/teleport-$1/bin\""
	done
fi
