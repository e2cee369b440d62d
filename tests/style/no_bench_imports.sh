#!/bin/sh
# no_bench_imports.sh - tests depend on the shared test library (tests/lib/tpdtest), never on the
# benchmarks: fails naming each Python file under tests/ that imports bench/ or benchlib.
cd "$(dirname "$0")/../.." || exit 2
hits=$(git grep -n -E '(import|from) benchlib|sys\.path.*bench' -- 'tests/*.py')
if [ -n "$hits" ]; then
	echo "tests must not import bench/ (move what they share into tests/lib/tpdtest):"
	echo "$hits"
	exit 1
fi
