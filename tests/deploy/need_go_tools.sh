#!/usr/bin/env bash
# need_go_tools.sh - runs a test that needs Go-built tools, or reports it skipped.
#
# helm and kubeconform come from scripts/tools.sh, which builds them with `go install` and needs
# Go >= 1.22 (Debian 12's golang-go is 1.19). When a named tool is neither in the tool cache
# nor buildable (no go on PATH, or an older one), this prints what is missing and how to get it
# and exits 77, which the ctest registrations declare as SKIP_RETURN_CODE (CI fails on any
# skip, see .ci/run). Otherwise it runs the command (exec; its exit status is the test's).
#
# The tool `kubernetes` stands for scripts/k8s.sh's binaries (Kubernetes v1.35, Go >= 1.25): the
# test is skipped when k8s.sh says it cannot build them (its exit 77, with its reason).
#
# Usage: tests/deploy/need_go_tools.sh TOOL... -- COMMAND [ARG...]
#   TOOL: helm | kubeconform | kubernetes
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/lib/go.sh"
TOOLS_DIR=${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}
GO_MIN_MINOR=22

tools=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	tools+=("$1")
	shift
done
[ "${1:-}" = "--" ] && [ $# -ge 2 ] || {
	echo "usage: need_go_tools.sh TOOL... -- COMMAND [ARG...]" >&2
	exit 2
}
shift

# The pinned version of a tool, as scripts/tools.sh names its cache folder.
pinned() { sed -n "s/^$1_VERSION=\([^[:space:]#]*\).*/\1/p" "$root/scripts/tools.sh" | head -n1; }

missing=()
for t in "${tools[@]}"; do
	case $t in
	helm) v=$(pinned HELM) ;;
	kubeconform) v=$(pinned KUBECONFORM) ;;
	kubernetes)
		rc=0
		why=$(bash "$root/scripts/k8s.sh" --print-env --no-install 2>&1 >/dev/null) || rc=$?
		if [ $rc -eq 77 ]; then
			echo "SKIP: ${why//$'\n'/ }"
			exit 77
		fi
		continue
		;;
	*)
		echo "need_go_tools.sh: unknown tool $t" >&2
		exit 2
		;;
	esac
	[ -n "$v" ] && [ -x "$TOOLS_DIR/$t-$v/$t" ] || missing+=("$t ${v:-?}")
done

if [ ${#missing[@]} -gt 0 ]; then
	have="no go on PATH"
	ok=0
	if command -v go >/dev/null 2>&1; then
		have="$(tpd_go_version) at $(command -v go)"
		minor=$(tpd_go_minor)
		[ -n "$minor" ] && [ "$minor" -ge $GO_MIN_MINOR ] && ok=1
	fi
	if [ $ok -eq 0 ]; then
		list=$(printf '%s, ' "${missing[@]}")
		echo "SKIP: needs ${list%, } (not in $TOOLS_DIR), which scripts/tools.sh builds with" \
			"Go >= 1.$GO_MIN_MINOR; found $have. Install Go >= 1.$GO_MIN_MINOR from https://go.dev/dl/" \
			"(e.g. into /usr/local/go, whose bin/ the tests add to PATH) and run the tests again."
		exit 77
	fi
fi
exec "$@"
