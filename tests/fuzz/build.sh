#!/usr/bin/env bash
# build.sh - builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang into <build>/fuzz.
#
# Usage: tests/fuzz/build.sh [BUILD_DIR]     (default: $TPD_BUILD_DIR, else <repo>/build)
# Environment: CLANG (default: clang-14, else clang).
# Configures the stand-alone project tests/fuzz/CMakeLists.txt in BUILD_DIR/fuzz (incremental),
# so the normal gcc build in BUILD_DIR is never touched. Exit 77 when no clang with libFuzzer is
# installed (ctest reports the fuzz tests as skipped; scripts/deps.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${TPD_BUILD_DIR:-$root/build}}
out=$build/fuzz

cc=${CLANG:-}
if [ -z "$cc" ]; then
	for c in clang-14 clang; do
		if command -v "$c" >/dev/null 2>&1; then cc=$(command -v "$c"); break; fi
	done
fi
if [ -z "$cc" ]; then
	echo "fuzz: no clang found; install the packages in scripts/deps.d/fuzz.list (scripts/deps.sh)" >&2
	exit 77
fi
# libFuzzer ships in the compiler runtime package (libclang-rt-14-dev on Debian 12).
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n); int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' |
	"$cc" -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
	echo "fuzz: $cc cannot link -fsanitize=fuzzer; install libclang-rt-14-dev (scripts/deps.d/fuzz.list)" >&2
	exit 77
fi
# One fuzz build at a time per build dir (ctest may start several fuzz tests at once).
mkdir -p "$out"
exec 9>"$out/.build.lock"
flock 9
# -Werror follows the product build's TPD_WERROR (its CMakeCache.txt), off when unknown.
werror=OFF
grep -qE '^TPD_WERROR:BOOL=(ON|TRUE|1)$' "$build/CMakeCache.txt" 2>/dev/null && werror=ON
cmake -S "$here" -B "$out" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug -DTPD_WERROR=$werror >/dev/null
cmake --build "$out" -j2
