#!/usr/bin/env bash
# Installs what is missing, builds with AddressSanitizer + UndefinedBehaviorSanitizer, and runs
# every test (unit, integration, end-to-end, deploy) under ctest. Usage: scripts/test.sh [ctest args]
# Environment: BUILD_DIR (default build), TPD_TOOLS_DIR (cache for helm & co, default ~/.cache/tpd-tools)
# A test that lacks an optional input (for example Go >= 1.22 for helm) is reported as skipped
# by name at the end of ctest's output; CI (.ci/run) fails on any skip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
t0=$(date +%s)
"$root/scripts/deps.sh"
t1=$(date +%s)
# -DTPD_WERROR=ON: here (and so in CI) any compiler warning fails the build; users' builds warn.
cmake -S "$root" -B "$build" -DTPD_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPD_WERROR=ON >/dev/null
cmake --build "$build" -j2
t2=$(date +%s)
cd "$build"
rc=0
ctest --output-on-failure -j2 --timeout 900 "$@" || rc=$?
t3=$(date +%s)
echo "test.sh: deps $((t1 - t0)) s, configure+build $((t2 - t1)) s, ctest $((t3 - t2)) s" >&2
exit $rc
