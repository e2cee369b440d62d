#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need (idempotent).
# Each area lists its packages in scripts/deps.d/<area>.list (one per line, # comments).
# Usage: scripts/deps.sh            (as root, or with sudo available)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$(cat "$here"/deps.d/*.list | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (Prism conformance test): the machine image may ship Node.js with npm from elsewhere, and
# Debian's npm package would conflict with it, so install Debian's only when there is none.
if ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi
# kubectl (deploy/kubeconform: `kubectl kustomize deploy/manifests`) likewise: the machine image
# may ship one from Google's repository, whose package conflicts with Debian's kubernetes-client
# (kubectl 1.20, enough for kustomize), so install Debian's only when there is none.
if ! command -v kubectl >/dev/null 2>&1; then
	missing+=(kubernetes-client)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
