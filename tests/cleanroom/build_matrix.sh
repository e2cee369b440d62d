#!/usr/bin/env bash
# build_matrix.sh - configures and builds the project (tests on, -DTPD_WERROR=ON) once per
# build type and sanitizer setting, each in its own folder, and prints one line per build:
#   <type> sanitize=<ON|OFF> ok|FAIL <seconds> s
# Exit 1 if any build fails (its warnings/errors are printed).
# Usage: tests/cleanroom/build_matrix.sh OUTDIR [TYPE[:SAN] ...]
#   default: every type in Debug Release RelWithDebInfo MinSizeRel, each with SAN OFF and ON.
#   TYPE:SAN picks one, e.g. Release:OFF MinSizeRel:OFF.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build_matrix.sh OUTDIR [TYPE[:SAN] ...]}
shift
combos=("$@")
if [ ${#combos[@]} -eq 0 ]; then
	for t in Debug Release RelWithDebInfo MinSizeRel; do
		combos+=("$t:OFF" "$t:ON")
	done
fi
mkdir -p "$out"
failed=0
for c in "${combos[@]}"; do
	t=${c%%:*} san=${c#*:}
	[ "$san" = "$c" ] && san=OFF
	dir=$out/$t-san$san
	log=$dir.log
	start=$(date +%s)
	if cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$t" -DTPD_SANITIZE="$san" -DTPD_WERROR=ON \
		-DTPD_TESTS=ON >"$log" 2>&1 && cmake --build "$dir" -j2 >>"$log" 2>&1; then
		res=ok
	else
		res=FAIL
		failed=1
	fi
	printf '%-15s sanitize=%-3s %-4s %4d s\n' "$t" "$san" "$res" $(($(date +%s) - start))
	if [ $res = FAIL ]; then
		grep -E 'error|warning' "$log" | head -40
	fi
done
exit $failed
