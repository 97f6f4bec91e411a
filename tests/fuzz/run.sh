#!/bin/sh
# Runs libFuzzer targets, up to JOBS at a time, each for SECONDS seconds, and
# records how many ran clean and how many crashed. Usage:
#   tests/fuzz/run.sh DIR SECONDS JOBS TARGET...
# DIR is the fuzz build directory: seeds are read from DIR/seeds/<target>,
# new inputs kept in DIR/corpus/<target>, crashes written to DIR/crashes/,
# each target's output to DIR/logs/<target>.log and the counts to
# DIR/test-results (`passed N` / `failed N`). Every target runs even when
# another crashed; the exit status is non-zero when any did.
set -u
dir=$1; secs=$2; jobs=$3; shift 3
mkdir -p "$dir/crashes" "$dir/logs" "$dir/status"
rm -f "$dir"/status/*

one() {
	t=$1; n=${t##*/}
	mkdir -p "$dir/corpus/$n"
	if "$t" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$dir/crashes/$n-" \
		"$dir/corpus/$n" "$dir/seeds/$n" > "$dir/logs/$n.log" 2>&1; then
		echo ok > "$dir/status/$n"
	else
		echo fail > "$dir/status/$n"
	fi
}

# a simple pool: start up to $jobs targets, wait for the batch, go on
set -- "$@"
while [ $# -gt 0 ]; do
	i=0
	while [ $i -lt "$jobs" ] && [ $# -gt 0 ]; do
		echo "== ${1##*/} ($secs s)"
		one "$1" &
		shift; i=$((i + 1))
	done
	wait
done

p=0; f=0
for s in "$dir"/status/*; do
	n=${s##*/}
	# libFuzzer's final stats: executions and coverage reached
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/logs/$n.log" | tail -n 1)
	cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' "$dir/logs/$n.log" | tail -n 1)
	if [ "$(cat "$s")" = ok ]; then
		p=$((p + 1)); echo "ok   $n: ${execs:-?} execs, cov ${cov:-?}"
	else
		f=$((f + 1)); echo "FAIL $n: see $dir/crashes/$n-* and $dir/logs/$n.log"
		tail -n 30 "$dir/logs/$n.log" | sed 's/^/    /'
	fi
done
printf 'passed %d\nfailed %d\n' $p $f > "$dir/test-results"
echo "fuzz: $p passed, $f failed"
[ $f -eq 0 ]
