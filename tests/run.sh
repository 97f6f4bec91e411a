#!/bin/sh
# Runs every test binary of a build and records pass/fail counts, or sums
# recorded results. Usage:
#   tests/run.sh --build DIR --results FILE   run DIR/tests/*/*, write FILE
#   tests/run.sh --summary FILE...            print "N passed, N failed"
set -u
mode=""; build=""; results=""
case "${1:-}" in
--build) build=$2; results=$4 ;;
--summary) shift; mode=summary ;;
*) echo "usage: tests/run.sh --build DIR --results FILE | --summary FILE..." >&2; exit 2 ;;
esac

if [ "$mode" = summary ]; then
	p=0; f=0
	for r in "$@"; do
		if [ ! -f "$r" ]; then echo "missing results: $r" >&2; f=$((f + 1)); continue; fi
		while read -r kind n; do
			case $kind in passed) p=$((p + n)) ;; failed) f=$((f + n)) ;; esac
		done < "$r"
	done
	echo "$p passed, $f failed"
	[ "$f" -eq 0 ]
	exit
fi

export NEWSARCHD="$PWD/$build/newsarchd"
export NEWSARCH="$PWD/$build/newsarch"
export NEWSARCH_BUILD="$PWD/$build"
export NEWSARCH_SRC="$PWD"
unset NEWSARCH_ADDR
: > "$results"
tp=0; tf=0
for t in $(find "$build/tests" -type f -perm -u+x 2>/dev/null | sort); do
	name=${t#"$build"/tests/}
	log="$t.log"
	"$t" > "$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
	p=${p:-0}; f=${f:-0}
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	tp=$((tp + p)); tf=$((tf + f))
	if [ "$f" -gt 0 ]; then
		echo "FAIL $name ($p passed, $f failed, exit $rc); log: $log"
		tail -n 40 "$log" | sed 's/^/    /'
	else
		echo "ok   $name ($p passed)"
	fi
done
echo "passed $tp" >> "$results"
echo "failed $tf" >> "$results"
echo "$build: $tp passed, $tf failed"
[ "$tf" -eq 0 ]
