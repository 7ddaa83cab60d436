#!/bin/sh
# Usage: check-fragment.sh FRAGMENT CONFIG
# Fails (exit 1) naming every option of FRAGMENT whose value in the resolved CONFIG differs:
# `CONFIG_X=v` must appear verbatim; `# CONFIG_X is not set` must be "not set" or absent
# (kconfig omits symbols whose dependencies are unmet, which also means "n").
set -eu
frag=$1 cfg=$2 bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		name=${line%%=*}
		if ! grep -qxF -- "$line" "$cfg"; then
			got=$(grep -E "^(# )?$name[= ]" "$cfg" || echo "absent")
			echo "unresolved: requested '$line', got '$got'" >&2
			bad=1
		fi ;;
	"# CONFIG_"*" is not set")
		name=${line#\# }; name=${name%% *}
		if grep -q "^$name=" "$cfg"; then
			echo "unresolved: requested '$line', got '$(grep "^$name=" "$cfg")'" >&2
			bad=1
		fi ;;
	esac
done < "$frag"
[ $bad = 0 ] && echo "all options of $frag resolved as requested"
exit $bad
