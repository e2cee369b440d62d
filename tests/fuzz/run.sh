#!/usr/bin/env bash
# run.sh - builds and runs the libFuzzer targets; the ctest label `fuzz` calls it per target.
#
# Usage: tests/fuzz/run.sh [-B BUILD_DIR] [--no-build] [SECONDS] [TARGET...]
#   SECONDS   fuzzing time per target (default 60); `tests/fuzz/run.sh 600` for a long run
#   TARGET    fuzz_toml fuzz_yaml fuzz_identity fuzz_pd_json fuzz_pd_client fuzz_teleport
#             fuzz_status (default: all; the fuzz_ prefix may be left out)
#   BUILD_DIR default $TPD_BUILD_DIR, else <repo>/build; binaries live in BUILD_DIR/fuzz
#
# For each target: replays tests/fuzz/regressions/<target>/* (every crash found so far), then
# fuzzes from the committed seeds (tests/fuzz/corpus/<target>, read-only) plus a working corpus
# BUILD_DIR/fuzz/corpus/<target> that keeps growing across runs. A crash, leak, UBSan report,
# timeout (> 10 s per input) or broken invariant fails the run and leaves the reproducer in
# BUILD_DIR/fuzz/artifacts/<target>/. Prints executions/s and coverage per target at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${TPD_BUILD_DIR:-$root/build}
do_build=1
secs=60
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	-B) build=$2; shift 2 ;;
	--no-build) do_build=0; shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	[0-9]*) secs=$1; shift ;;
	*) t=$1; [[ $t == fuzz_* ]] || t=fuzz_$t; targets+=("$t"); shift ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$here"/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
if [ $do_build -eq 1 ]; then
	"$here/build.sh" "$build" || exit $?
fi
out=$build/fuzz

max_len() {
	case $1 in
	fuzz_identity | fuzz_pd_client | fuzz_status) echo 16384 ;;
	*) echo 8192 ;;
	esac
}

sym=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
export ASAN_OPTIONS=${ASAN_OPTIONS_FUZZ:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:handle_abort=1}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH=$sym

status=0
summary=()
for t in "${targets[@]}"; do
	bin=$out/$t
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is missing (run tests/fuzz/build.sh)" >&2
		[ $do_build -eq 0 ] && exit 77
		status=1
		continue
	fi
	work=$out/corpus/$t
	art=$out/artifacts/$t
	mkdir -p "$work" "$art"
	log=$out/$t.log
	: >"$log"
	opts=(-timeout=10 -rss_limit_mb=2560 -max_len="$(max_len "$t")" -artifact_prefix="$art/")
	# A fixed seed (TPD_FUZZ_SEED, set by the ctest) makes CI runs repeatable: the same inputs in
	# the same order, so a red CI is a real regression to reproduce, not a lucky draw. Unset (a
	# longer local run) lets libFuzzer pick a fresh seed each time.
	[ -n "${TPD_FUZZ_SEED:-}" ] && opts+=(-seed="$TPD_FUZZ_SEED")
	[ -f "$here/dict/$t.dict" ] && opts+=(-dict="$here/dict/$t.dict")

	# 1. Every crash found so far must stay fixed.
	reg=$here/regressions/$t
	if compgen -G "$reg/*" >/dev/null; then
		if ! "$bin" "${opts[@]}" "$reg"/* >>"$log" 2>&1; then
			echo "fuzz: $t: a regression input fails again (see $log):" >&2
			grep -E "Running:|ERROR|INVARIANT|runtime error|SUMMARY" "$log" | tail -20 >&2
			status=1
			summary+=("$t: REGRESSION")
			continue
		fi
	fi

	# 2. Fuzz for the given time (seeds read-only, new units go to the working corpus).
	seeds=$here/corpus/$t
	"$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 "$work" "$seeds" >>"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
	if [ $rc -ne 0 ]; then
		status=1
		crash=$(ls -t "$art" 2>/dev/null | head -1)
		echo "fuzz: $t FAILED (exit $rc); reproducer: $art/$crash; log: $log" >&2
		grep -E "ERROR|INVARIANT|runtime error|SUMMARY|^    #[0-9]+ " "$log" | head -30 >&2
		echo "fuzz: replay with: $bin $art/$crash ; minimise with: $bin -minimize_crash=1 -runs=20000 $art/$crash" >&2
		summary+=("$t: FAILED after ${execs:-?} runs")
	else
		summary+=("$(printf '%-15s %9s runs %7s exec/s  %s' "$t" "${execs:-?}" "${eps:-?}" "${cov:-}")")
	fi
done
echo "fuzz summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
exit $status
