#!/usr/bin/env bash
# k8s.sh - builds and caches the real Kubernetes the k8s, ha and cluster tests run: Kubernetes
# v1.35.4 (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
# kubectl) from the Go module proxy, and checks that the Debian packages a node needs are there
# (etcd-server, containerd, runc, containernetworking-plugins, iptables, iproute2).
#
# Why v1.35: the newest minor whose kubelet runs on this kind of machine. v1.36 and later need
# containerd 2.x and Debian 12 ships 1.6.20; v1.35 still accepts cgroup v1 with
# `failCgroupV1: false` (docs/kubernetes-node.md).
#
# How: the wrapper module tests/cluster/go (pinned in its go.mod/go.sum) requires
# k8s.io/kubernetes v1.35.4 and replaces each of the 31 k8s.io staging modules, which
# Kubernetes' own go.mod points into a ./staging folder the module zip lacks, with its published
# v0.35.4 twin. One `go build` of the six commands with the version stamped in (the API server
# checks the kubelet's version skew; unstamped binaries say v0.0.0-master).
#
# Binaries go to ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}/kubernetes-<version>/bin; Go's module
# and build caches to .../go/mod and .../go/cache, shared with scripts/tools.sh (helm,
# kubeconform) and scripts/teleport.sh. They are rebuilt only when the wrapper module changes.
# Cold (empty Go caches): see the README's "How long things take"; warm: under a second.
#
# Usage: scripts/k8s.sh [--print-env] [--no-install] [--tidy]
#   --print-env   print `export KUBE_APISERVER=... KUBECTL=... ETCD=...` lines
#   --no-install  do not apt-get install missing packages (fail instead)
#   --tidy        maintainers: re-run `go mod tidy` and copy go.mod/go.sum back into the repository
# Exit status 77 when Go >= 1.25 is missing (a test that needs these binaries is then skipped),
# non-zero with a message on any other failure.
set -euo pipefail

KUBE_VERSION=v1.35.4
KUBE_MIN_GO=25   # k8s.io/kubernetes v1.35's go.mod says go 1.25.0
CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
PKGS=(etcd-server containerd runc containernetworking-plugins iptables iproute2 util-linux)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib/go.sh"
TOOLS_DIR=${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
DEST=$TOOLS_DIR/kubernetes-$KUBE_VERSION
MOD=$ROOT/tests/cluster/go
export GOMODCACHE=$TOOLS_DIR/go/mod GOCACHE=$TOOLS_DIR/go/cache
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

die() { echo "k8s.sh: $*" >&2; exit 1; }
log() { echo "k8s.sh: $(date -u +%H:%M:%S) $*" >&2; }

print_env=0 install=1 tidy=0
for a in "$@"; do
	case $a in
	--print-env) print_env=1 ;;
	--no-install) install=0 ;;
	--tidy) tidy=1 ;;
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

check_go() {
	tpd_need_go $KUBE_MIN_GO k8s.sh "building Kubernetes $KUBE_VERSION"
}

# What the binaries are built from: the wrapper module's files and the version pin.
stamp() {
	(cd "$MOD" && cat go.mod go.sum tools.go && echo "$KUBE_VERSION") | sha256sum | cut -d' ' -f1
}

build() {
	local t0=$SECONDS src=$DEST/src minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	rm -rf "$src" "$DEST/bin.tmp"
	mkdir -p "$src" "$DEST/bin.tmp"
	cp "$MOD/go.mod" "$MOD/go.sum" "$MOD/tools.go" "$src/"
	if [ $tidy -eq 1 ]; then
		log "go mod tidy"
		(cd "$src" && GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy failed"
		cp "$src/go.mod" "$src/go.sum" "$MOD/"
	fi
	local v=k8s.io/component-base/version ld="-s -w"
	ld+=" -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
	ld+=" -X $v.buildDate=1970-01-01T00:00:00Z"
	local pkgs=() c
	for c in "${CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	log "building Kubernetes $KUBE_VERSION (${CMDS[*]}) with $(go env GOVERSION); cold, this takes many minutes"
	(cd "$src" && go build -p 2 -trimpath -ldflags "$ld" -o "$DEST/bin.tmp/" "${pkgs[@]}") \
		|| die "go build of Kubernetes $KUBE_VERSION failed"
	"$DEST/bin.tmp/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
	stamp >"$DEST/bin.tmp/.stamp"
	rm -rf "$DEST/bin" && mv "$DEST/bin.tmp" "$DEST/bin"
	rm -rf "$src"
	log "built in $((SECONDS - t0)) s -> $DEST/bin"
}

ensure_packages
check_go
mkdir -p "$TOOLS_DIR"
exec 9>"$TOOLS_DIR/.k8s.lock"
flock 9
if [ $tidy -eq 1 ] || [ "$(cat "$DEST/bin/.stamp" 2>/dev/null)" != "$(stamp)" ]; then
	build
fi
flock -u 9
command -v etcd >/dev/null 2>&1 || die "etcd not found (package etcd-server)"

if [ $print_env -eq 1 ]; then
	b=$DEST/bin
	echo "export K8S_VERSION=\"$KUBE_VERSION\""
	echo "export KUBE_APISERVER=\"$b/kube-apiserver\""
	echo "export KUBE_CONTROLLER_MANAGER=\"$b/kube-controller-manager\""
	echo "export KUBE_SCHEDULER=\"$b/kube-scheduler\""
	echo "export KUBELET=\"$b/kubelet\""
	echo "export KUBE_PROXY=\"$b/kube-proxy\""
	echo "export KUBECTL=\"$b/kubectl\""
	echo "export ETCD=\"$(command -v etcd)\""
fi
