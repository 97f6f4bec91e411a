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
# Environment: BENCH_KEEP=1 keeps the temporary directory (and its daemon
# log); BENCH_PERF=FILE records the daemon with `perf record -g` for the
# whole run into FILE.
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
NOTIFY_SOCKET=$tmp/notify.sock "$daemon" --data "$tmp/data" --listen "127.0.0.1:$port" \
	--socket "$tmp/newsarchd.sock" 2>"$tmp/daemon.log" &
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
"$bench" --addr "127.0.0.1:$port" --server-pid "$pid" --data-dir "$tmp/data" "$@"
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
exit $rc
