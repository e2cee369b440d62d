#!/usr/bin/env bash
# Installs what is missing, builds with AddressSanitizer + UndefinedBehaviorSanitizer, and runs
# every test (unit, integration, end-to-end, deploy) under ctest. Usage: scripts/test.sh [ctest args]
# Environment: BUILD_DIR (default build), TPD_TOOLS_DIR (cache for helm & co, default ~/.cache/tpd-tools)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DTPD_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2
cd "$build"
ctest --output-on-failure -j2 --timeout 900 "$@"
