# go.sh - sourced by the scripts that build Go tools (scripts/teleport.sh, scripts/k8s.sh,
# tests/deploy/need_go_tools.sh): which Go is on PATH, and the one way they refuse an old one.

# "go1.26.8", or nothing when there is no go on PATH.
tpd_go_version() {
	command -v go >/dev/null 2>&1 || return 0
	go env GOVERSION 2>/dev/null || go version | awk '{print $3}'
}

# The minor version (26 for go1.26.8), or nothing.
tpd_go_minor() {
	tpd_go_version | sed -n 's/^go1\.\([0-9]*\).*/\1/p'
}

# tpd_need_go MIN WHO WHAT: sets GO_MINOR, or says "WHO: ... WHAT needs Go >= 1.MIN" on stderr
# and exits 77 (a ctest skip) when go is missing or older.
tpd_need_go() {
	local min=$1 who=$2 what=$3 v
	v=$(tpd_go_version)
	GO_MINOR=$(tpd_go_minor)
	if [ -z "$GO_MINOR" ] || [ "$GO_MINOR" -lt "$min" ]; then
		echo "$who: ${v:+found $v}${v:-Go is not installed}; $what needs Go >= 1.$min" \
			"(https://go.dev/dl/)" >&2
		exit 77
	fi
}
