#!/usr/bin/env bash
# ThreadSanitizer run: builds with -DTPD_SANITIZE=thread in its own folder and runs the unit,
# integration and end-to-end tests under it (every thread of ours: controller workers, watcher,
# housekeeper, leader election, status server, identity pump, PagerDuty and Teleport clients).
# Fails on a failing test or on any ThreadSanitizer report, including one from a child process
# whose exit status a test does not check (reports also go to <build>/tsan-reports/).
# Suppressions (third-party libraries only): tests/tsan.supp.
# Usage: scripts/tsan.sh [extra ctest args]
# Environment: TSAN_BUILD_DIR (default build-tsan), TPD_SKIP_DEPS=1 to skip scripts/deps.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TSAN_BUILD_DIR:-$root/build-tsan}
[ -n "${TPD_SKIP_DEPS:-}" ] || "$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DTPD_SANITIZE=thread -DTPD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2
reports="$build/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
status=0
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 \
	-R '^(unit/|identity/routing_grpc$|teleport/fake_integration$|pagerduty/integration$|status/(endpoints|hostile)$|e2e/(upstream_suite|recovery)$)' \
	"$@" || status=$?
if compgen -G "$reports/*" >/dev/null; then
	echo "tsan: ThreadSanitizer reports:" >&2
	cat "$reports"/* >&2
	status=1
fi
exit $status
