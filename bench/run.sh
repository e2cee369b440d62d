#!/usr/bin/env bash
# bench/run.sh - builds a release binary (no sanitizers, no tests) into build-bench and runs every
# benchmark against the fakes (bench/bench.py). Prints a table at the end and one "BENCH {json}"
# line per figure. Extra arguments go to bench.py, e.g.:
#   bench/run.sh --only latency,throughput
#   bench/run.sh --scale-max 100000 --long-seconds 600
# Output is also kept in build-bench/bench-<date>.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TPD_BENCH_BUILD:-$root/build-bench}
# -Wno-format-truncation: GCC's -O3 truncation warnings are not errors for a benchmark build
# (the sanitizer build disables them the same way).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTPD_TESTS=OFF -DTPD_SANITIZE=OFF \
	-DCMAKE_C_FLAGS=-Wno-format-truncation >/dev/null
cmake --build "$build" -j2 --target teleport-pagerduty >/dev/null
out="$build/bench-$(date +%Y%m%d-%H%M%S).txt"
export TPD_SOURCE_DIR="$root" TPD_BUILD_DIR="$build" PYTHONDONTWRITEBYTECODE=1
/usr/bin/python3 "$root/bench/bench.py" --binary "$build/teleport-pagerduty" --build-dir "$build" "$@" 2>&1 | tee "$out"
exit "${PIPESTATUS[0]}"
