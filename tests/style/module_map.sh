#!/bin/sh
# module_map.sh - fails naming each file of src/ that the README's module map ("Hacking") lacks.
missing=0
for f in $(git ls-files 'src/*.c' 'src/*.h'); do
	if ! grep -qF "\`$f\`" README.md; then
		echo "README.md module map lacks $f (add it to the table under \"Hacking\")"
		missing=1
	fi
done
exit $missing
