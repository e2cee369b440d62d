#!/bin/sh
# layers.sh - fails naming each include that breaks the layering of src/ (README "Hacking"):
# base uses nothing of ours; config, teleport, pagerduty and core use base (and themselves);
# runtime uses everything but app; app uses everything. A module's layer is the folder of its .c.
cd "$(dirname "$0")/../.." || exit 2
bad=0
allowed() { # allowed FROM TO
	[ "$1" = "$2" ] && return 0
	case $1 in
	base) return 1 ;;
	config | teleport | pagerduty | core) [ "$2" = base ] ;;
	runtime) [ "$2" != app ] ;;
	app) return 0 ;;
	*) return 1 ;;
	esac
}
for f in $(git ls-files 'src/*.c' 'src/*.h'); do
	from=$(echo "$f" | cut -d/ -f2)
	for mod in $(sed -n 's/^#include "tpd\/\([a-z_]*\)\.h".*/\1/p' "$f"); do
		src=$(git ls-files "src/*/$mod.c" | head -n 1)
		if [ -z "$src" ]; then
			echo "$f includes tpd/$mod.h, which no src/<layer>/$mod.c implements"
			bad=1
			continue
		fi
		to=$(echo "$src" | cut -d/ -f2)
		if ! allowed "$from" "$to"; then
			echo "$f includes tpd/$mod.h: layer $from may not use layer $to"
			bad=1
		fi
	done
done
exit $bad
