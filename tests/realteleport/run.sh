#!/usr/bin/env bash
# run.sh MAJOR TESTFILE [pytest args...] - runs one real-teleport test file against the pinned
# Teleport of that major version (15, ...). Builds the binaries first if they are not cached
# (scripts/teleport.sh); exits 77 (ctest: skipped) when Go >= 1.22 is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
major=${1:?usage: run.sh MAJOR TESTFILE [pytest args]}
file=${2:?usage: run.sh MAJOR TESTFILE [pytest args]}
shift 2
envs=$("$root/scripts/teleport.sh" --print-env "$major")
rc=$?
[ $rc -eq 0 ] || exit $rc
eval "$envs"
var=TPD_TELEPORT_BIN_$major
export TPD_TELEPORT_BIN=${!var}
export TPD_SOURCE_DIR=${TPD_SOURCE_DIR:-$root}
cd "$here"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rs "$here/$file" "$@"
