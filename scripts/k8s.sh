#!/usr/bin/env bash
# k8s.sh - provides a real Kubernetes API server for the tests: kube-apiserver (and a matching
# kubectl) built from Debian bookworm's `kubernetes` source package, plus Debian's etcd-server.
#
# The source package is fetched with apt-get through a private APT configuration (its own
# sources list with a bookworm deb-src line, its own lists and cache), so the machine's APT
# sources are never edited. It is built offline (vendored tree, GOPROXY=off) with Debian's Go
# 1.19 (package golang-1.19-go, /usr/lib/go-1.19/bin) - Kubernetes 1.20's vendored
# golang.org/x/sys does not build with current Go toolchains, so PATH puts 1.19 first. The
# binaries are cached in ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}/kube-apiserver-<version>;
# a cached build is reused and nothing is fetched again. The build tree and Go cache (about
# 3 GB) live in a temporary folder removed afterwards.
#
# Cold build: about 4 min on 2 cores, 1.3 GB RAM peak, 3 GB temporary disk.
#
# Usage: scripts/k8s.sh [--print-env] [--no-install]
#   --print-env   print `export KUBE_APISERVER=... KUBECTL_120=... ETCD=...` lines
#   --no-install  do not apt-get install missing packages (fail instead)
# Exit status non-zero with a message when anything is missing or fails.
set -euo pipefail

KUBE_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1   # Debian 12 `kubernetes` source package
KUBE_GIT_VERSION=v1.20.2                           # what the upstream tree really is
GO_ROOT=/usr/lib/go-1.19                           # Debian's golang-1.19-go
PKGS=(etcd-server golang-1.19-go dpkg-dev rsync make ca-certificates)

TOOLS_DIR=${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
DEST=$TOOLS_DIR/kube-apiserver-$KUBE_GIT_VERSION

die() { echo "k8s.sh: $*" >&2; exit 1; }
log() { echo "k8s.sh: $*" >&2; }

print_env=0
install=1
for a in "$@"; do
	case $a in
	--print-env) print_env=1 ;;
	--no-install) install=0 ;;
	*) die "unknown argument: $a" ;;
	esac
done

ensure_packages() {
	local missing=() p
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ $install -eq 1 ] || die "missing packages: ${missing[*]} (run scripts/deps.sh)"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
		|| die "apt-get install ${missing[*]} failed"
}

# Fetches and unpacks the source package into $1 using a private APT configuration.
fetch_source() {
	local work=$1 apt=$1/apt
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$apt/preferences.d"
	cat >"$apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
	cat >"$apt/apt.conf" <<EOF
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/sources.list.d";
Dir::Etc::Preferences "$apt/preferences";
Dir::Etc::PreferencesParts "$apt/preferences.d";
Dir::State::Lists "$apt/lists";
Dir::Cache "$apt/cache";
APT::Sandbox::User "root";
EOF
	[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || die "no Debian archive keyring (package debian-archive-keyring)"
	log "apt-get update (private deb-src list for bookworm)"
	APT_CONFIG=$apt/apt.conf apt-get update -q >"$work/apt-update.log" 2>&1 \
		|| { cat "$work/apt-update.log" >&2; die "apt-get update with the private deb-src list failed"; }
	log "apt-get source kubernetes=$KUBE_DEB_VERSION"
	(cd "$work" && APT_CONFIG=$apt/apt.conf apt-get source -q --download-only "kubernetes=$KUBE_DEB_VERSION" \
		>"$work/apt-source.log" 2>&1) \
		|| { cat "$work/apt-source.log" >&2; die "apt-get source kubernetes=$KUBE_DEB_VERSION failed"; }
	local dsc
	dsc=$(ls "$work"/kubernetes_*.dsc 2>/dev/null | head -n1)
	[ -n "$dsc" ] || die "no .dsc downloaded"
	(cd "$work" && dpkg-source -x "$dsc" src >"$work/dpkg-source.log" 2>&1) \
		|| { cat "$work/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
}

build() {
	local work
	work=$(mktemp -d "${TMPDIR:-/tmp}/tpd-k8s-build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	local t0=$SECONDS
	fetch_source "$work"
	local src=$work/src
	mkdir -p "$src/.go/src/k8s.io" "$work/home" "$work/gocache"
	ln -s ../../.. "$src/.go/src/k8s.io/kubernetes"
	log "building kube-apiserver and kubectl $KUBE_GIT_VERSION with $("$GO_ROOT/bin/go" version) (several minutes)"
	(cd "$src" && env PATH="$GO_ROOT/bin:$PATH" GOROOT="$GO_ROOT" GOPATH="$src/.go" GOCACHE="$work/gocache" \
		GOFLAGS= GO111MODULE= CGO_ENABLED=0 GOPROXY=off HOME="$work/home" \
		KUBE_GIT_VERSION=$KUBE_GIT_VERSION KUBE_GIT_TREE_STATE=clean \
		make WHAT="cmd/kube-apiserver cmd/kubectl" >"$work/make.log" 2>&1) \
		|| { tail -n 40 "$work/make.log" >&2; die "make WHAT=cmd/kube-apiserver failed"; }
	mkdir -p "$DEST.tmp"
	cp "$src/_output/bin/kube-apiserver" "$src/_output/bin/kubectl" "$DEST.tmp/"
	"$DEST.tmp/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
	rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
	rm -rf "$work"
	trap - EXIT
	log "built in $((SECONDS - t0)) s -> $DEST"
}

ensure_packages
mkdir -p "$TOOLS_DIR"
exec 9>"$TOOLS_DIR/.k8s.lock"
flock 9
if [ ! -x "$DEST/kube-apiserver" ] || [ ! -x "$DEST/kubectl" ]; then
	[ -x "$GO_ROOT/bin/go" ] || die "$GO_ROOT/bin/go missing (package golang-1.19-go)"
	build
fi
flock -u 9
command -v etcd >/dev/null 2>&1 || die "etcd not found (package etcd-server)"

if [ $print_env -eq 1 ]; then
	echo "export KUBE_APISERVER=\"$DEST/kube-apiserver\""
	echo "export KUBECTL_120=\"$DEST/kubectl\""
	echo "export ETCD=\"$(command -v etcd)\""
fi
