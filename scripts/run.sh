#!/usr/bin/env bash
# Builds teleport-pagerduty and starts it.
#   - With a real configuration (TPD_CONFIG=path, or /etc/teleport-pagerduty.toml present), it runs
#     `teleport-pagerduty start -c <config>` in the foreground.
#   - Otherwise it runs the local demo: the bundled fake Teleport (gRPC, mTLS) and fake PagerDuty
#     (HTTPS) on loopback, a few access requests, and the controller handling them. Ctrl-C stops.
# Usage: scripts/run.sh        Environment: BUILD_DIR (default build-release), TPD_CONFIG
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-release}
"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target teleport-pagerduty
config=${TPD_CONFIG:-}
if [ -z "$config" ] && [ -f /etc/teleport-pagerduty.toml ]; then
	config=/etc/teleport-pagerduty.toml
fi
if [ -n "$config" ]; then
	exec "$build/teleport-pagerduty" start -c "$config"
fi
echo "No Teleport cluster configured (set TPD_CONFIG or create /etc/teleport-pagerduty.toml):"
echo "starting the local demo against the bundled fakes."
export TPD_BIN="$build/teleport-pagerduty" TPD_SOURCE_DIR="$root" TPD_BUILD_DIR="$build"
cd "$root/tests/e2e"
exec /usr/bin/python3 demo.py
