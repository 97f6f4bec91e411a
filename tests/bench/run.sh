#!/bin/sh
# tests/bench/run.sh BUILD_DIR [newsarch-bench options...]
#
# `make bench` runs this after building. It builds nothing. It starts a fresh
# newsarchd (default settings, strict durability) on a free loopback port in
# a temporary directory, waits for its READY=1 on a NOTIFY_SOCKET, runs
# newsarch-bench against it, and always stops that daemon by its PID and
# removes the directory (trap on exit, Ctrl-C and TERM). The Reuters corpus
# is used when ../shared/corpus/reuters21578.jsonl.zst exists next to the
# repository, unless the options name a corpus or ask for --synthetic.
#
# After that run (its daemon stopped), it measures, each time on fresh
# daemons in their own directories under the temporary one:
#   - CLI import: `newsarch -s ADDR import FILE` of the corpus file into a
#     fresh daemon, timed from fork to exit (skipped, with the reason in the
#     table, when there is no corpus file);
#   - replication, catch-up by snapshot: a primary loaded with N articles
#     (the corpus x 5 by default), then an empty follower started; the time
#     from its launch until its applied_seq equals the primary's seq;
#   - replication, catch-up by the log: an empty follower of an empty primary
#     (it adopts the primary's history), stopped; N articles put into the
#     primary; the follower restarted on its data: it streams the log;
#   - replication lag under steady ingest (on that pair): 50 articles every
#     10 ms for 10 s, lag = arrival at a subscriber on the follower - the
#     primary's reply.
# Their rows go into the main run's table (newsarch-bench --report).
#
# Environment: BENCH_KEEP=1 keeps the temporary directory (and its daemon
# log); BENCH_PERF=FILE records the daemon with `perf record -g` for the
# whole run into FILE. BENCH_EXTRAS=0 skips the CLI import and replication
# measurements; BENCH_REPL_ARTICLES=N loads N articles into the primaries
# (default: the corpus x 5); BENCH_LAG_SECONDS (10) and BENCH_LAG_RATE
# (5000 articles/s) shape the lag run. BENCH_DAEMON_ARGS adds flags to the
# main run's daemon (e.g. "--block-bytes 32K" to measure compaction).
set -u

build=${1:-build}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in
/*) bdir=$build ;;
*) bdir=$root/$build ;;
esac
daemon=$bdir/newsarchd
bench=$bdir/newsarch-bench
for f in "$daemon" "$bench"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f is missing; run make first" >&2
		exit 2
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/newsarch-bench.XXXXXX") || exit 1
pid=""
waiter=""
perfpid=""
xpids=""    # the daemons of the extra measurements; stopped by PID on exit
reported=0

# Waits at most $2 tenths of a second for process $1 (our child) to exit.
wait_exit() {
	n=0
	while [ -d "/proc/$1" ] && [ "$n" -lt "$2" ]; do
		state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
		[ "$state" = Z ] && break
		sleep 0.1
		n=$((n + 1))
	done
	[ "$n" -lt "$2" ]
}

stop_daemon() {
	[ -n "$pid" ] || return 0
	status=0
	kill -TERM "$pid" 2>/dev/null
	if ! wait_exit "$pid" 300; then
		echo "run.sh: newsarchd (pid $pid) did not stop within 30 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	status=$?
	pid=""
	return $status
}

# Stops one extra daemon by its PID (TERM, at most 30 s, then KILL) and
# forgets it. Returns its exit status.
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_exit "$1" 300; then
		echo "run.sh: newsarchd (pid $1) did not stop within 30 s; killing it" >&2
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	sp_status=$?
	sp_left=""
	for p in $xpids; do
		[ "$p" = "$1" ] || sp_left="$sp_left $p"
	done
	xpids=$sp_left
	return $sp_status
}

# start_daemon DIR PORT [newsarchd options...]: a newsarchd with its data in
# DIR/data and its log in DIR/daemon.log, on 127.0.0.1:PORT; waits for its
# READY=1. Sets $started to its PID. Returns non-zero if it did not start.
start_daemon() {
	sd_dir=$1
	sd_port=$2
	shift 2
	mkdir -p "$sd_dir" || return 1
	"$bench" --wait-ready "$sd_dir/notify.sock" 60 &
	waiter=$!
	sd_n=0
	while [ ! -S "$sd_dir/notify.sock" ]; do
		sd_n=$((sd_n + 1))
		if [ "$sd_n" -gt 100 ] || ! kill -0 "$waiter" 2>/dev/null; then
			echo "run.sh: the readiness listener did not start" >&2
			return 1
		fi
		sleep 0.05
	done
	NOTIFY_SOCKET=$sd_dir/notify.sock "$daemon" --data "$sd_dir/data" \
		--listen "127.0.0.1:$sd_port" "$@" 2>>"$sd_dir/daemon.log" &
	started=$!
	xpids="$xpids $started"
	wait "$waiter"
	sd_ready=$?
	waiter=""
	if [ "$sd_ready" -ne 0 ]; then
		echo "run.sh: newsarchd in $sd_dir did not become ready; its log:" >&2
		tail -n 20 "$sd_dir/daemon.log" >&2
		return 1
	fi
	return 0
}

cleanup() {
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid" 2>/dev/null
		wait_exit "$perfpid" 600 || kill -KILL "$perfpid" 2>/dev/null
		wait "$perfpid" 2>/dev/null
		perfpid=""
	fi
	if [ -n "$waiter" ]; then
		kill "$waiter" 2>/dev/null
		wait "$waiter" 2>/dev/null
		waiter=""
	fi
	stop_daemon
	for p in $xpids; do
		stop_pid "$p"
	done
	# interrupted before the report: the main run's table at least
	if [ "$reported" = 0 ] && [ -s "$tmp/main.out" ]; then
		cat "$tmp/main.out"
	fi
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "run.sh: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$("$bench" --free-port) || exit 1

# the readiness listener first, then the daemon that notifies it
"$bench" --wait-ready "$tmp/notify.sock" 60 &
waiter=$!
n=0
while [ ! -S "$tmp/notify.sock" ]; do
	n=$((n + 1))
	if [ "$n" -gt 100 ] || ! kill -0 "$waiter" 2>/dev/null; then
		echo "run.sh: the readiness listener did not start" >&2
		exit 1
	fi
	sleep 0.05
done
# shellcheck disable=SC2086 # BENCH_DAEMON_ARGS is a list of flags
NOTIFY_SOCKET=$tmp/notify.sock "$daemon" --data "$tmp/data" --listen "127.0.0.1:$port" \
	--socket "$tmp/newsarchd.sock" ${BENCH_DAEMON_ARGS:-} 2>"$tmp/daemon.log" &
pid=$!
wait "$waiter"
ready=$?
waiter=""
if [ "$ready" -ne 0 ]; then
	echo "run.sh: newsarchd did not become ready; its log:" >&2
	cat "$tmp/daemon.log" >&2
	exit 1
fi

want_corpus=1
for a in "$@"; do
	case $a in
	--corpus|--corpus=*|--synthetic|--synthetic=*) want_corpus=0 ;;
	esac
done
default_corpus=$root/../shared/corpus/reuters21578.jsonl.zst
if [ "$want_corpus" = 1 ] && [ -r "$default_corpus" ]; then
	set -- --corpus "$default_corpus" "$@"
fi

if [ -n "${BENCH_PERF:-}" ]; then
	perf record -g -p "$pid" -o "$BENCH_PERF" >/dev/null 2>"$tmp/perf.log" &
	perfpid=$!
fi

echo "run.sh: newsarchd pid $pid on 127.0.0.1:$port, data in $tmp/data" >&2
# the table goes out at the end, with the extra rows in it
"$bench" --addr "127.0.0.1:$port" --server-pid "$pid" --data-dir "$tmp/data" "$@" \
	>"$tmp/main.out"
rc=$?

if [ -n "$perfpid" ]; then
	kill -INT "$perfpid" 2>/dev/null
	wait_exit "$perfpid" 600 || kill -KILL "$perfpid" 2>/dev/null
	wait "$perfpid" 2>/dev/null
	perfpid=""
fi
if ! stop_daemon; then
	echo "run.sh: newsarchd did not exit cleanly; its log:" >&2
	tail -n 40 "$tmp/daemon.log" >&2
	[ "$rc" -eq 0 ] && rc=1
fi
warnings=$(grep -c -E 'warn|error' "$tmp/daemon.log" 2>/dev/null)
if [ "${warnings:-0}" -gt 0 ]; then
	echo "run.sh: the daemon logged $warnings warning/error lines:" >&2
	grep -E 'warn|error' "$tmp/daemon.log" | head -n 10 >&2
fi

# ---- CLI import and replication, on fresh daemons ------------------------
rows=$tmp/rows
: >"$rows"
json=0
xcorpus=""
xsynth=""
prev=""
for a in "$@"; do
	case $prev in
	--corpus) xcorpus=$a ;;
	--synthetic) xsynth=$a ;;
	esac
	case $a in
	--json) json=1 ;;
	--corpus=*) xcorpus=${a#--corpus=} ;;
	--synthetic=*) xsynth=${a#--synthetic=} ;;
	esac
	prev=$a
done
if [ -z "$xcorpus" ] && [ -z "$xsynth" ] && [ -r "$default_corpus" ]; then
	xcorpus=$default_corpus
fi
if [ -n "$xsynth" ] || [ -z "$xcorpus" ]; then
	copt=--synthetic
	carg=${xsynth:-20000}
else
	copt=--corpus
	carg=$xcorpus
fi
if [ -n "${BENCH_REPL_ARTICLES:-}" ]; then
	sopt=--articles
	sarg=$BENCH_REPL_ARTICLES
else
	sopt=--scale
	sarg=5
fi
xfail=0
# removes data directories as soon as they are done with (unless BENCH_KEEP)
xclean() {
	[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$@"
}
# the daemons' warnings, except the ones these runs cause on purpose
xwarnings() {
	xw=$(grep -E 'warn|error' "$1" 2>/dev/null | grep -v -E 'primary closed the connection|connection reset' | head -n 5)
	if [ -n "$xw" ]; then
		echo "run.sh: $1 has warning/error lines:" >&2
		echo "$xw" >&2
	fi
}

if [ "${BENCH_EXTRAS:-1}" != 0 ]; then
	cli=$bdir/newsarch
	# CLI import
	if [ -n "$xsynth" ]; then
		echo "run.sh: CLI import skipped: --synthetic was asked for (it imports a corpus file)" >&2
		"$bench" --add-row "$rows" "CLI import (end to end)" \
			"skipped: --synthetic was asked for; the CLI import needs a corpus file"
	elif [ -z "$xcorpus" ] || [ ! -r "$xcorpus" ]; then
		echo "run.sh: CLI import skipped: no corpus file ($default_corpus is missing)" >&2
		"$bench" --add-row "$rows" "CLI import (end to end)" \
			"skipped: no corpus file (../shared/corpus/reuters21578.jsonl.zst is missing)"
	elif [ ! -x "$cli" ]; then
		echo "run.sh: CLI import skipped: $cli is missing" >&2
		"$bench" --add-row "$rows" "CLI import (end to end)" "skipped: build/newsarch is missing"
	else
		xport=$("$bench" --free-port) || exit 1
		if start_daemon "$tmp/x-import" "$xport"; then
			ipid=$started
			echo "run.sh: CLI import into newsarchd pid $ipid on 127.0.0.1:$xport ..." >&2
			"$bench" --time-import "$rows" "127.0.0.1:$xport" "$ipid" 900 -- \
				"$cli" -s "127.0.0.1:$xport" import "$xcorpus" || xfail=1
			stop_pid "$ipid" || xfail=1
			xwarnings "$tmp/x-import/daemon.log"
		else
			xfail=1
		fi
		xclean "$tmp/x-import/data"
	fi

	# replication 1: catch-up from empty by a snapshot
	p1=$("$bench" --free-port) || exit 1
	f1=$("$bench" --free-port) || exit 1
	if start_daemon "$tmp/x-p1" "$p1"; then
		p1pid=$started
		echo "run.sh: replication, snapshot: primary pid $p1pid on 127.0.0.1:$p1; loading ..." >&2
		prate=$("$bench" --repl load --addr "127.0.0.1:$p1" --server-pid "$p1pid" \
			"$copt" "$carg" "$sopt" "$sarg" --rows "$rows" \
			--label "repl: primary ingest (1)" --note "the snapshot run's primary") || xfail=1
		t0=$("$bench" --now-ns)
		if start_daemon "$tmp/x-f1" "$f1" --follow "127.0.0.1:$p1"; then
			f1pid=$started
			"$bench" --repl catchup --addr "127.0.0.1:$p1" --follower-addr "127.0.0.1:$f1" \
				--follower-pid "$f1pid" --since-ns "$t0" --target "${prate:-0}" --rows "$rows" \
				--label "repl: catch-up, snapshot" \
				--note "target: the primary's own ingest rate (1)" || xfail=1
			stop_pid "$f1pid" || xfail=1
			xwarnings "$tmp/x-f1/daemon.log"
		else
			xfail=1
		fi
		stop_pid "$p1pid" || xfail=1
		xwarnings "$tmp/x-p1/daemon.log"
	else
		xfail=1
	fi
	xclean "$tmp/x-p1/data" "$tmp/x-f1/data"

	# replication 2: catch-up by the log, then lag under steady ingest
	p2=$("$bench" --free-port) || exit 1
	f2=$("$bench" --free-port) || exit 1
	if start_daemon "$tmp/x-p2" "$p2"; then
		p2pid=$started
		echo "run.sh: replication, log: primary pid $p2pid on 127.0.0.1:$p2" >&2
		f2ok=0
		if start_daemon "$tmp/x-f2" "$f2" --follow "127.0.0.1:$p2"; then
			f2pid=$started
			"$bench" --repl wait-streaming --addr "127.0.0.1:$p2" \
				--follower-addr "127.0.0.1:$f2" --timeout 60 && f2ok=1
			stop_pid "$f2pid" || f2ok=0
		fi
		if [ "$f2ok" = 1 ]; then
			prate=$("$bench" --repl load --addr "127.0.0.1:$p2" --server-pid "$p2pid" \
				"$copt" "$carg" "$sopt" "$sarg" --rows "$rows" \
				--label "repl: primary ingest (2)" \
				--note "the log run's primary, its follower stopped") || xfail=1
			logl=$(wc -l <"$tmp/x-f2/daemon.log")
			t0=$("$bench" --now-ns)
			if start_daemon "$tmp/x-f2" "$f2" --follow "127.0.0.1:$p2"; then
				f2pid=$started
				"$bench" --repl catchup --addr "127.0.0.1:$p2" --follower-addr "127.0.0.1:$f2" \
					--follower-pid "$f2pid" --since-ns "$t0" --target "${prate:-0}" \
					--rows "$rows" --label "repl: catch-up, log" \
					--note "target: the primary's own ingest rate (2)" || xfail=1
				# it must have streamed the log, not taken a snapshot
				if tail -n "+$((logl + 1))" "$tmp/x-f2/daemon.log" | grep -q 'receiving a snapshot'; then
					echo "run.sh: the restarted follower took a SNAPSHOT instead of the log" >&2
					tab=$(printf '\t')
					sed "s/^repl: catch-up, log$tab/repl: catch-up, log (SNAPSHOT)$tab/" "$rows" \
						>"$rows.new" && mv "$rows.new" "$rows"
					xfail=1
				fi
				echo "run.sh: replication lag under steady ingest ..." >&2
				"$bench" --repl lag --addr "127.0.0.1:$p2" --follower-addr "127.0.0.1:$f2" \
					--server-pid "$p2pid" --follower-pid "$f2pid" "$copt" "$carg" \
					--rate "${BENCH_LAG_RATE:-5000}" --batch 50 \
					--seconds "${BENCH_LAG_SECONDS:-10}" --target-ms 50 --rows "$rows" \
					--label "repl: lag, steady ingest" || xfail=1
				stop_pid "$f2pid" || xfail=1
			else
				xfail=1
			fi
		else
			echo "run.sh: the follower of the empty primary did not start streaming" >&2
			"$bench" --add-row "$rows" "repl: catch-up, log" "failed: no streaming follower"
			xfail=1
		fi
		xwarnings "$tmp/x-f2/daemon.log"
		stop_pid "$p2pid" || xfail=1
		xwarnings "$tmp/x-p2/daemon.log"
	else
		xfail=1
	fi
	xclean "$tmp/x-p2/data" "$tmp/x-f2/data"
	if [ "$xfail" != 0 ]; then
		echo "run.sh: some of the CLI import / replication measurements failed (see above)" >&2
		[ "$rc" -eq 0 ] && rc=1
	fi
fi

reported=1
if [ "$json" = 1 ]; then
	"$bench" --report "$rows" "$tmp/main.out" --json || cat "$tmp/main.out" "$rows"
else
	"$bench" --report "$rows" "$tmp/main.out" || cat "$tmp/main.out" "$rows"
fi
exit $rc
