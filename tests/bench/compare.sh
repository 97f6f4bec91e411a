#!/bin/sh
# tests/bench/compare.sh BUILD_DIR [options]: `make bench-compare`.
#
# newsarchd, Redis and PostgreSQL side by side on the same scaled corpus, in
# one run, on this machine. As root it first installs what is missing
# (redis-server, redis-tools, postgresql, postgresql-contrib; jq) with
# apt-get. Every server runs on 127.0.0.1 on a free port with its data in a
# temporary directory, and every server this script started is stopped by
# its PID on exit, failure, Ctrl-C or TERM (trap). Nothing else is touched.
#
# Options (make variables in brackets):
#   --corpus FILE   JSON lines, plain or .zst (default ../shared/corpus/
#                   reuters21578.jsonl.zst next to the repository) [CORPUS]
#   --scale N       copies of the corpus, dates and guids shifted (default 20) [SCALE]
#   --rounds N      rounds; each runs every system once, in a rotated order,
#                   after a sync (the last system's dirty pages written, so
#                   its writeback does not land on the next one's fsyncs)
#                   (default 3) [ROUNDS]
#   --seconds S     duration of each read run and of each search kind
#                   (default 5) [READ_SECONDS]
#   --lag-seconds S duration of the replica lag run (default 10) [LAG_SECONDS]
#   --systems LIST  any of newsarchd,redis,postgres (default all) [SYSTEMS]
#   --follower-durability strict|relaxed
#                   the newsarchd follower's durability in W5 (default
#                   relaxed: a sync once a second, as the Redis replica's
#                   AOF everysec) [FOLLOWER_DURABILITY]
#   --out FILE      also write the table there
# Quick mode while developing:
#   make bench-compare SCALE=1 ROUNDS=1 READ_SECONDS=2 LAG_SECONDS=3
#
# Workloads (per system, per round; servers are fresh each round, except
# that PostgreSQL keeps its cluster and gets a fresh table):
#   W1 durable ingest of the whole scaled corpus, one connection:
#      newsarchd put_batch 1000 x 64 in flight (fsync before each reply;
#      a deep pipeline, as redis-cli --pipe and COPY are);
#      Redis `redis-cli --pipe` of SET guid <article> + ZADD pub <µs> guid
#      (AOF appendfsync everysec); PostgreSQL \copy into the indexed table
#      (one transaction, synchronous_commit on).
#   W2 the next 100 articles from a random article's time, fully read, at
#      1 and 4 clients (one request in flight each): newsarch-bench range;
#      Redis EVALSHA of ZRANGEBYSCORE+MGET; pgbench script
#      (WHERE published >= t ORDER BY published LIMIT 100).
#   W3 get by a random guid, 1 and 4 clients: newsarch-bench get; Redis GET
#      (newsarch-bench --peer redis-get); pgbench (WHERE guid = ...).
#   W4 bytes on disk per article: newsarchd LMDB pages in use; Redis the
#      AOF directory after BGREWRITEAOF; PostgreSQL pg_total_relation_size
#      (heap + TOAST + indexes) after VACUUM ANALYZE. RAM per article:
#      Redis used_memory growth; newsarchd anonymous RSS.
#   W5 a fresh replica catching up the whole archive (newsarchd --follow,
#      snapshot; Redis replicaof full sync, counted until its AOF is written)
#      and replica lag p99 while 5,000 articles/s (batches of 50) go in
#      (newsarchd: once the follower's search index has caught up too).
#      Both replicas sync once a second (newsarchd follower durability
#      relaxed, Redis AOF everysec); the primaries are as in W1.
#      PostgreSQL replication is not measured.
#   W6 full-text search at 1 client, newest first, limit 20, for the query
#      lists of tests/bench/search.c: one term, two terms (AND), a phrase,
#      two terms within a random 30-day window; p50 and p99 latency, and
#      the index bytes per article. newsarchd: newsarch-bench's search
#      workload (after its indexer has caught up). PostgreSQL: a stored
#      generated tsvector column (setweight of title A, summary B, body C,
#      text search config 'simple': lower-casing, no stemming, no stop
#      words, which is what newsarchd does for articles without a language)
#      with a GIN index, added after W1-W4; pgbench scripts with
#      to_tsquery / phraseto_tsquery, one per query, chosen at random, with
#      per-transaction logs (--log) for the quantiles; index bytes are
#      pg_relation_size of the GIN index / articles.
# The table: median of the rounds, min-max, and each median's ratio to
# newsarchd's.
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
cli=$bdir/newsarch

corpus=${CORPUS:-}
scale=${SCALE:-20}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_RUN:-5}
lag_secs=${LAG_SECONDS:-10}
systems=${SYSTEMS:-newsarchd,redis,postgres}
fdur=${FOLLOWER_DURABILITY:-relaxed}
outfile=""
while [ $# -gt 0 ]; do
	case $1 in
	--corpus) corpus=$2; shift 2 ;;
	--scale) scale=$2; shift 2 ;;
	--follower-durability) fdur=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--seconds) secs=$2; shift 2 ;;
	--lag-seconds) lag_secs=$2; shift 2 ;;
	--systems) systems=$2; shift 2 ;;
	--out) outfile=$2; shift 2 ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
	esac
done
for v in "$scale" "$rounds"; do
	case $v in
	''|*[!0-9]*|0) echo "compare.sh: --scale and --rounds take a positive integer" >&2; exit 2 ;;
	esac
done
case $fdur in
strict|relaxed) ;;
*) echo "compare.sh: --follower-durability takes strict or relaxed" >&2; exit 2 ;;
esac
for v in "$secs" "$lag_secs"; do
	case $v in
	''|*[!0-9.]*) echo "compare.sh: --seconds and --lag-seconds take a number" >&2; exit 2 ;;
	esac
done
if [ -z "$corpus" ] && [ -r "$root/../shared/corpus/reuters21578.jsonl.zst" ]; then
	corpus=$root/../shared/corpus/reuters21578.jsonl.zst
fi
if [ -n "$corpus" ]; then
	[ -r "$corpus" ] || { echo "compare.sh: cannot read $corpus" >&2; exit 2; }
	copt="--corpus $corpus"
else
	echo "compare.sh: no corpus file; using 20,000 generated articles per copy" >&2
	copt="--synthetic 20000"
fi
for f in "$daemon" "$bench"; do
	[ -x "$f" ] || { echo "compare.sh: $f is missing; run make first" >&2; exit 2; }
done
has() { case ",$systems," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- dependencies -------------------------------------------------------
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
need=""
command -v jq >/dev/null 2>&1 || need="$need jq"
if has redis; then
	command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
	command -v redis-cli >/dev/null 2>&1 || need="$need redis-tools"
fi
if has postgres; then
	if [ -z "$pgbin" ] || [ ! -x "$pgbin/pg_ctl" ] || [ ! -x "$pgbin/pgbench" ]; then
		need="$need postgresql postgresql-contrib"
	fi
fi
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "compare.sh: missing:$need (run as root to install them with apt-get)" >&2
		exit 2
	fi
	echo "compare.sh: installing$need ..." >&2
	# Debian starts services on install where it can; keep them from starting
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >&2
	arc=$?
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	[ $arc -eq 0 ] || { echo "compare.sh: apt-get failed" >&2; exit 1; }
	pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
pguser=""
if has postgres; then
	if [ "$(id -u)" = 0 ]; then
		# postgres refuses to run as root
		if id postgres >/dev/null 2>&1; then pguser=postgres; else pguser=nobody; fi
	fi
fi

# ---- servers: started here, stopped by PID --------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/newsarch-compare.XXXXXX") || exit 1
chmod 711 "$tmp"
pids=""      # our children and the postmaster
waiter=""

# waits at most $2 tenths of a second for process $1 to be gone
gone() {
	g_n=0
	while kill -0 "$1" 2>/dev/null && [ "$g_n" -lt "$2" ]; do
		g_st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
		[ "$g_st" = Z ] && break
		sleep 0.1
		g_n=$((g_n + 1))
	done
	[ "$g_n" -lt "$2" ]
}
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null
	if ! gone "$1" 600; then
		echo "compare.sh: pid $1 did not stop within 60 s; killing it" >&2
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	sp_left=""
	for sp_p in $pids; do [ "$sp_p" = "$1" ] || sp_left="$sp_left $sp_p"; done
	pids=$sp_left
}
cleanup() {
	if [ -n "$waiter" ]; then kill "$waiter" 2>/dev/null; wait "$waiter" 2>/dev/null; fi
	for c_p in $pids; do stop_pid "$c_p"; done
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "compare.sh: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "compare.sh: $*" >&2; exit 1; }
port() { "$bench" --free-port || fail "no free port"; }
now_ns() { "$bench" --now-ns; }

# start_newsarchd DIR PORT [options]: sets $started
start_newsarchd() {
	mkdir -p "$1" || return 1
	sd_d=$1; sd_pt=$2; shift 2
	"$bench" --wait-ready "$sd_d/notify.sock" 120 &
	waiter=$!
	sd_n=0
	while [ ! -S "$sd_d/notify.sock" ]; do
		sd_n=$((sd_n + 1))
		{ [ "$sd_n" -gt 200 ] || ! kill -0 "$waiter" 2>/dev/null; } && return 1
		sleep 0.05
	done
	NOTIFY_SOCKET=$sd_d/notify.sock "$daemon" --data "$sd_d/data" --listen "127.0.0.1:$sd_pt" "$@" \
		2>>"$sd_d/daemon.log" &
	started=$!
	pids="$pids $started"
	wait "$waiter"
	sd_r=$?
	waiter=""
	[ $sd_r -eq 0 ] || { tail -n 20 "$sd_d/daemon.log" >&2; return 1; }
}

# start_redis DIR PORT [options]: sets $started
start_redis() {
	mkdir -p "$1" || return 1
	sd_d=$1; sd_pt=$2; shift 2
	redis-server --bind 127.0.0.1 --port "$sd_pt" --dir "$sd_d" --daemonize no \
		--save "" --appendonly yes --appendfsync everysec --protected-mode yes \
		--repl-diskless-sync yes --repl-diskless-sync-delay 0 \
		--logfile "$sd_d/redis.log" "$@" &
	started=$!
	pids="$pids $started"
	sd_n=0
	# PONG, not LOADING
	until [ "$(redis-cli -p "$sd_pt" ping 2>/dev/null)" = PONG ]; do
		sd_n=$((sd_n + 1))
		{ [ "$sd_n" -gt 200 ] || ! kill -0 "$started" 2>/dev/null; } && return 1
		sleep 0.05
	done
}
rcli() { redis-cli -p "$rport" "$@"; }
rinfo() { redis-cli -p "$1" info "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

pgport=""
pgpid=""
psql_() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres -d postgres "$@"; }
start_postgres() {
	pgdir=$tmp/pg
	mkdir -p "$pgdir" && chown "${pguser:-$(id -un)}" "$pgdir" && chmod 700 "$pgdir" || return 1
	pgport=$(port)
	asuser() { if [ -n "$pguser" ]; then runuser -u "$pguser" -- "$@"; else "$@"; fi; }
	asuser "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
		>"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; return 1; }
	mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)
	sb_mb=$((mem_kb / 1024 / 8)); [ "$sb_mb" -gt 4096 ] && sb_mb=4096
	cat >>"$pgdir/data/postgresql.conf" <<EOF
# make bench-compare: an archive server tuned the usual way
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$pgdir'
max_connections = 50
shared_buffers = ${sb_mb}MB
effective_cache_size = $((mem_kb / 1024 / 2))MB
maintenance_work_mem = 512MB
work_mem = 16MB
wal_level = replica
wal_compression = lz4
wal_buffers = 64MB
max_wal_size = 16GB
min_wal_size = 1GB
checkpoint_timeout = 30min
checkpoint_completion_target = 0.9
synchronous_commit = on
fsync = on
full_page_writes = on
default_toast_compression = lz4
random_page_cost = 1.1
effective_io_concurrency = 200
jit = off
autovacuum = on
logging_collector = off
EOF
	asuser "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 120 start \
		>/dev/null 2>&1 || { tail -n 20 "$pgdir/server.log" >&2; return 1; }
	pgpid=$(head -n 1 "$pgdir/data/postmaster.pid")
	pids="$pids $pgpid"
	psql_ <<'EOF'
CREATE TABLE bench_keys (i int PRIMARY KEY, guid text NOT NULL);
CREATE TABLE bench_times (i int PRIMARY KEY, t timestamptz NOT NULL);
EOF
	psql_ -c "\\copy bench_keys FROM '$tmp/pg.keys'" &&
		psql_ -c "\\copy bench_times FROM '$tmp/pg.times'" &&
		psql_ -c "VACUUM ANALYZE bench_keys" && psql_ -c "VACUUM ANALYZE bench_times"
}

# ---- the corpus in every system's format ----------------------------------
echo "compare.sh: corpus $copt x $scale, $rounds round(s), reads ${secs} s, lag ${lag_secs} s" >&2
exp=$("$bench" --peer export $copt --scale "$scale" --out "$tmp") || fail "export failed"
narticles=$(echo "$exp" | sed -n 's/.*articles=\([0-9]*\).*/\1/p')
echo "compare.sh: $exp" >&2
res=$tmp/results
: >"$res"
# put ROUND SYSTEM METRIC VALUE
put() { [ -n "$4" ] && echo "$1 $2 $3 $4" >>"$res"; }

if has postgres; then
	start_postgres || fail "PostgreSQL did not start"
	echo "compare.sh: PostgreSQL pid $pgpid on 127.0.0.1:$pgport ($("$pgbin/postgres" --version))" >&2
	cat >"$tmp/get.sql" <<EOF
\\set i random(1, $narticles)
SELECT guid, published, title, body, rest FROM articles WHERE guid = (SELECT guid FROM bench_keys WHERE i = :i);
EOF
	span=$((narticles > 100 ? narticles - 99 : 1))
	cat >"$tmp/range.sql" <<EOF
\\set i random(1, $span)
SELECT guid, published, title, body, rest FROM articles WHERE published >= (SELECT t FROM bench_times WHERE i = :i) ORDER BY published LIMIT 100;
EOF
fi

# ---- one round of one system ---------------------------------------------
round_newsarchd() {
	r=$1
	d=$tmp/na$r
	p=$(port)
	start_newsarchd "$d" "$p" || fail "newsarchd did not start"
	npid=$started
	"$bench" --addr "127.0.0.1:$p" --server-pid "$npid" --data-dir "$d/data" $copt \
		--scale "$scale" --clients 1 --inflight 64 --workloads ingest --idle-conns 0 --json \
		>"$d/ingest.json" 2>"$d/bench.log" || fail "newsarchd ingest failed (see $d/bench.log)"
	put "$r" newsarchd ingest "$(jq '.runs[0].items_per_s' "$d/ingest.json")"
	put "$r" newsarchd disk "$(jq '.storage.page_bytes_per_article' "$d/ingest.json")"
	put "$r" newsarchd ram "$(jq ".server_rss_end.rss_anon_kb * 1024 / $narticles" "$d/ingest.json")"
	"$bench" --addr "127.0.0.1:$p" --server-pid "$npid" $copt --scale "$scale" --clients 1,4 \
		--workloads get,range,search --pipeline 0 --idle-conns 0 --seconds "$secs" --json \
		>"$d/reads.json" 2>>"$d/bench.log" || fail "newsarchd reads failed (see $d/bench.log)"
	for c in 1 4; do
		put "$r" newsarchd "get$c" "$(jq ".runs[] | select(.workload==\"get\" and .clients==$c and .in_flight==1) | .rate" "$d/reads.json")"
		put "$r" newsarchd "range$c" "$(jq ".runs[] | select(.workload==\"range\" and .clients==$c) | .rate" "$d/reads.json")"
	done
	# W6: search rows in the order of tests/bench/search.c
	for q in 0 1 2 3; do
		put "$r" newsarchd "s${q}p50" "$(jq ".search.queries[$q].p50_us // empty" "$d/reads.json")"
		put "$r" newsarchd "s${q}p99" "$(jq ".search.queries[$q].p99_us // empty" "$d/reads.json")"
	done
	echo "  newsarchd: search matches per query on average: $(jq -r '[.search.queries[]?.mean_total | floor] | map(tostring) | join(" ")' "$d/reads.json")" >&2
	put "$r" newsarchd ixbytes "$(jq '.search.index_bytes_per_article // empty' "$d/reads.json")"
	# W5: a fresh follower catches up, then lag under steady ingest
	fp=$(port)
	t0=$(now_ns)
	start_newsarchd "$d/f" "$fp" --follow "127.0.0.1:$p" --durability "$fdur" || fail "follower did not start"
	fpid=$started
	"$bench" --repl catchup --addr "127.0.0.1:$p" --follower-addr "127.0.0.1:$fp" \
		--follower-pid "$fpid" --since-ns "$t0" --rows "$d/rows" --label catchup \
		2>>"$d/bench.log" || fail "newsarchd catch-up failed"
	# the lag is measured in the steady state: once the follower has also
	# built its search index from the snapshot (a 2-vCPU machine has no
	# core to spare for that and the lag run at once)
	i=0
	while [ $i -lt 600 ]; do
		st=$("$cli" -s "127.0.0.1:$fp" stats --json 2>/dev/null | jq -r '.index.state + " " + (.index.lag | tostring)')
		[ "$st" = "ready 0" ] && break
		sleep 0.5
		i=$((i + 1))
	done
	[ "$st" = "ready 0" ] || echo "compare.sh: the follower's index did not catch up in 300 s ($st)" >&2
	"$bench" --repl lag --addr "127.0.0.1:$p" --follower-addr "127.0.0.1:$fp" \
		--server-pid "$npid" --follower-pid "$fpid" $copt --rate 5000 --batch 50 \
		--seconds "$lag_secs" --rows "$d/rows" --label lag \
		2>>"$d/bench.log" || echo "compare.sh: newsarchd lag run reported a problem (see $d/bench.log)" >&2
	put "$r" newsarchd catchup "$(awk -F'\t' '$1=="catchup"{gsub(/[^0-9]/,"",$4); print $4}' "$d/rows")"
	put "$r" newsarchd lag "$(awk -F'\t' '$1=="lag"{print $7 / 1000}' "$d/rows")"
	stop_pid "$fpid"
	stop_pid "$npid"
	grep -E 'error' "$d/daemon.log" "$d/f/daemon.log" 2>/dev/null | grep -v -E 'primary closed|connection reset' | head -n 5 >&2
	[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$d/data" "$d/f/data"
}

round_redis() {
	r=$1
	d=$tmp/redis$r
	rport=$(port)
	start_redis "$d" "$rport" || fail "redis-server did not start"
	rpid=$started
	mem0=$(rinfo "$rport" memory used_memory)
	t0=$(now_ns)
	out=$(redis-cli -p "$rport" --pipe <"$tmp/redis.resp" 2>&1) || fail "redis-cli --pipe: $out"
	t1=$(now_ns)
	echo "$out" | grep -q 'errors: 0' || fail "redis-cli --pipe: $out"
	put "$r" redis ingest "$(awk "BEGIN{printf \"%.0f\", $narticles / (($t1 - $t0) / 1e9)}")"
	mem1=$(rinfo "$rport" memory used_memory)
	put "$r" redis ram "$(awk "BEGIN{printf \"%.0f\", ($mem1 - $mem0) / $narticles}")"
	rcli bgrewriteaof >/dev/null
	n=0
	sleep 0.2
	while [ "$(rinfo "$rport" persistence aof_rewrite_in_progress)" != 0 ] ||
		[ "$(rinfo "$rport" persistence aof_rewrite_scheduled)" != 0 ]; do
		n=$((n + 1)); [ "$n" -gt 6000 ] && fail "Redis AOF rewrite did not finish"
		sleep 0.1
	done
	sleep 1.2  # the everysec fsync of the tail
	aof=$(du -sb "$d/appendonlydir" | cut -f1)
	put "$r" redis disk "$(awk "BEGIN{printf \"%.0f\", $aof / $narticles}")"
	for c in 1 4; do
		o=$("$bench" --peer redis-get --addr "127.0.0.1:$rport" $copt --scale "$scale" \
			--clients $c --seconds "$secs") || fail "redis get failed"
		put "$r" redis "get$c" "$(echo "$o" | sed -n 's/^rate=\([0-9]*\).*/\1/p')"
		o=$("$bench" --peer redis-range --addr "127.0.0.1:$rport" $copt --scale "$scale" \
			--clients $c --seconds "$secs") || fail "redis range failed"
		put "$r" redis "range$c" "$(echo "$o" | sed -n 's/^rate=\([0-9]*\).*/\1/p')"
	done
	# W5: a fresh replica (durable like the primary) does a full sync
	fport=$(port)
	t0=$(now_ns)
	start_redis "$d/replica" "$fport" --replicaof 127.0.0.1 "$rport" \
		--notify-keyspace-events Kz || fail "the Redis replica did not start"
	fpid=$started
	o=$("$bench" --peer redis-catchup --addr "127.0.0.1:$rport" --replica "127.0.0.1:$fport" \
		--since-ns "$t0" --wait-aof) || fail "the Redis replica did not catch up"
	echo "  redis catch-up: $o" >&2
	put "$r" redis catchup "$(echo "$o" | sed -n 's/^rate=\([0-9]*\).*/\1/p')"
	o=$("$bench" --peer redis-lag --addr "127.0.0.1:$rport" --replica "127.0.0.1:$fport" \
		$copt --offset "$narticles" --rate 5000 --batch 50 --seconds "$lag_secs") ||
		echo "compare.sh: redis lag run reported a problem" >&2
	echo "  redis lag: $o" >&2
	put "$r" redis lag "$(echo "$o" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')"
	stop_pid "$fpid"
	stop_pid "$rpid"
	[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$d"
}

pgbench_tps() {
	"$pgbin/pgbench" -n -M prepared -h 127.0.0.1 -p "$pgport" -U postgres -c "$2" -j "$2" \
		-T "$secs" -f "$1" postgres 2>&1 | tee -a "$tmp/pgbench.log" |
		sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' | cut -d. -f1
}

# W6 query lists: the same as tests/bench/search.c (keep them in step)
pg_singles="oil bank trade dollar wheat coffee gold profit shares tonnes government january japan sugar copper opec"
pg_pairs="oil:prices bank:rates trade:deficit wheat:exports coffee:quota gold:mine share:offer crude:oil japan:trade sugar:production dollar:yen interest:rate"
pg_phrases="interest:rates trade:deficit central:bank crude:oil net:profit stock:exchange money:supply world:bank"

# pg_search_scripts LO HI: one pgbench script per query, $tmp/pgs/KIND.N.sql
# (KIND 0 one term, 1 two terms, 2 phrase, 3 two terms in a 30-day window
# starting at a random second in [LO, HI - 30 days])
pg_search_scripts() {
	rm -rf "$tmp/pgs" && mkdir -p "$tmp/pgs" || return 1
	sel="SELECT guid, published, title, body, rest FROM articles WHERE tsv @@"
	hi30=$(($2 - 30 * 86400)); [ "$hi30" -gt "$1" ] || hi30=$(($1 + 1))
	n=0
	for w in $pg_singles; do
		n=$((n + 1))
		echo "$sel to_tsquery('simple', '$w') ORDER BY published DESC LIMIT 20;" >"$tmp/pgs/0.$n.sql"
	done
	n=0
	for w in $pg_pairs; do
		n=$((n + 1))
		a=${w%%:*}; b=${w#*:}
		echo "$sel to_tsquery('simple', '$a & $b') ORDER BY published DESC LIMIT 20;" >"$tmp/pgs/1.$n.sql"
		{
			printf '\\set f random(%s, %s)\n' "$1" "$hi30"
			echo "$sel to_tsquery('simple', '$a & $b') AND published >= to_timestamp(:f) AND published <= to_timestamp(:f + 2592000) ORDER BY published DESC LIMIT 20;"
		} >"$tmp/pgs/3.$n.sql"
	done
	n=0
	for w in $pg_phrases; do
		n=$((n + 1))
		echo "$sel phraseto_tsquery('simple', '${w%%:*} ${w#*:}') ORDER BY published DESC LIMIT 20;" >"$tmp/pgs/2.$n.sql"
	done
}

# pgbench_lat KIND: 1 client for $secs over KIND's scripts (one picked at
# random per query); prints "p50_us p99_us" from the per-transaction log
pgbench_lat() {
	pl_args=""
	for f in "$tmp/pgs/$1".*.sql; do pl_args="$pl_args -f $f"; done
	rm -f "$tmp/pgs/log$1".*
	"$pgbin/pgbench" -n -M prepared -h 127.0.0.1 -p "$pgport" -U postgres -c 1 -j 1 \
		-T "$secs" $pl_args --log --log-prefix="$tmp/pgs/log$1" postgres \
		>>"$tmp/pgbench.log" 2>&1 || return 1
	# per-transaction log: client, transaction, latency µs, script, epoch s, µs
	cat "$tmp/pgs/log$1".* | awk '{ print $3 }' | sort -n | awk '
		{ v[NR] = $1 }
		END {
			if (!NR) exit 1
			i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
			print v[i50], v[i99]
		}'
}

round_postgres() {
	r=$1
	psql_ <<'EOF' || fail "PostgreSQL: cannot create the table"
DROP TABLE IF EXISTS articles;
CREATE TABLE articles (
	guid text PRIMARY KEY,
	published timestamptz NOT NULL,
	title text NOT NULL,
	body text,
	rest jsonb NOT NULL
);
CREATE INDEX articles_published ON articles (published);
CHECKPOINT;
EOF
	t0=$(now_ns)
	psql_ -c "\\copy articles FROM '$tmp/pg.copy'" || fail "PostgreSQL COPY failed"
	t1=$(now_ns)
	put "$r" postgres ingest "$(awk "BEGIN{printf \"%.0f\", $narticles / (($t1 - $t0) / 1e9)}")"
	psql_ -c "VACUUM ANALYZE articles" || fail "VACUUM failed"
	sz=$(psql_ -A -t -c "SELECT pg_total_relation_size('articles')")
	put "$r" postgres disk "$(awk "BEGIN{printf \"%.0f\", $sz / $narticles}")"
	for c in 1 4; do
		put "$r" postgres "get$c" "$(pgbench_tps "$tmp/get.sql" $c)"
		put "$r" postgres "range$c" "$(pgbench_tps "$tmp/range.sql" $c)"
	done
	# W6: the full-text index, added now so that W1-W4 stay as they were
	t0=$(now_ns)
	psql_ <<'EOF' || fail "PostgreSQL: cannot build the full-text index"
ALTER TABLE articles ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
	setweight(to_tsvector('simple', title), 'A') ||
	setweight(to_tsvector('simple', coalesce(rest->>'summary', '')), 'B') ||
	setweight(to_tsvector('simple', coalesce(body, '')), 'C')) STORED;
CREATE INDEX articles_tsv ON articles USING gin (tsv);
VACUUM ANALYZE articles;
EOF
	t1=$(now_ns)
	echo "  postgres: tsvector column + GIN index built in $(awk "BEGIN{printf \"%.1f\", ($t1 - $t0) / 1e9}") s" >&2
	sz=$(psql_ -A -t -c "SELECT pg_relation_size('articles_tsv')")
	put "$r" postgres ixbytes "$(awk "BEGIN{printf \"%.1f\", $sz / $narticles}")"
	span=$(psql_ -A -t -F ' ' -c "SELECT extract(epoch FROM min(published))::bigint, extract(epoch FROM max(published))::bigint FROM articles")
	pg_search_scripts $span || fail "cannot write the search scripts"
	# a check that both sides find the same: matches per query, averaged
	# over each kind's list (newsarchd's is its "total")
	for q in 0 1 2; do
		cnt=$(sed -n 's/^SELECT .* WHERE \(tsv @@ .*\) ORDER BY.*/SELECT count(*) FROM articles WHERE \1;/p' \
			"$tmp/pgs/$q".*.sql | psql_ -A -t | awk '{ s += $1 } END { if (NR) printf "%.0f", s / NR }')
		echo "  postgres: search kind $q: $cnt matches per query on average" >&2
	done
	for q in 0 1 2 3; do
		lat=$(pgbench_lat $q) || fail "PostgreSQL search run $q failed (see $tmp/pgbench.log)"
		put "$r" postgres "s${q}p50" "${lat% *}"
		put "$r" postgres "s${q}p99" "${lat#* }"
	done
}

# ---- rounds, the systems in a rotated order ----------------------------------
list=""
for s in newsarchd redis postgres; do has $s && list="$list $s"; done
nsys=$(echo $list | wc -w)
rnd=1
while [ "$rnd" -le "$rounds" ]; do
	k=$(( (rnd - 1) % nsys ))
	order=$(echo $list $list | tr ' ' '\n' | sed -n "$((k + 1)),$((k + nsys))p" | tr '\n' ' ')
	for s in $order; do
		echo "compare.sh: round $rnd/$rounds: $s ..." >&2
		sync
		"round_$s" "$rnd"
	done
	rnd=$((rnd + 1))
done

# ---- the table -------------------------------------------------------------
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
{
	echo "make bench-compare: $narticles articles ($copt x $scale; corpus path shortened), $rounds round(s),"
	echo "reads ${secs} s each, one request in flight per client; $(nproc) CPUs ($cpu),"
	echo "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "$("$daemon" --version 2>/dev/null | head -n 1) | $(redis-server --version 2>/dev/null | cut -d' ' -f1-3) | $("$pgbin/postgres" --version 2>/dev/null)"
	echo
	awk -v systems="$list" '
	function med(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function fmt(v) { return v >= 100 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v) }
	{ k = $2 SUBSEP $3; n[k]++; v[k, n[k]] = $4 }
	END {
		nm = split("ingest range1 range4 get1 get4 disk ram catchup lag s0p50 s0p99 s1p50 s1p99 s2p50 s2p99 s3p50 s3p99 ixbytes", ms, " ")
		name["ingest"] = "W1 durable ingest, articles/s"
		name["range1"] = "W2 range of 100, 1 client, q/s"
		name["range4"] = "W2 range of 100, 4 clients, q/s"
		name["get1"] = "W3 get by guid, 1 client, q/s"
		name["get4"] = "W3 get by guid, 4 clients, q/s"
		name["disk"] = "W4 bytes on disk per article"
		name["ram"] = "W4 bytes of RAM per article"
		name["catchup"] = "W5 replica catch-up, articles/s"
		name["lag"] = "W5 replica lag p99, ms"
		name["s0p50"] = "W6 search 1 term, p50 us"
		name["s0p99"] = "W6 search 1 term, p99 us"
		name["s1p50"] = "W6 search AND of 2, p50 us"
		name["s1p99"] = "W6 search AND of 2, p99 us"
		name["s2p50"] = "W6 search phrase, p50 us"
		name["s2p99"] = "W6 search phrase, p99 us"
		name["s3p50"] = "W6 AND, 30-day window, p50 us"
		name["s3p99"] = "W6 AND, 30-day window, p99 us"
		name["ixbytes"] = "W6 search index bytes/article"
		lower["disk"] = lower["ram"] = lower["lag"] = 1
		for (m = 10; m <= nm; m++) lower[ms[m]] = 1
		ns = split(systems, sy, " ")
		printf "%-42s", "workload (median, min-max, ratio)"
		for (s = 1; s <= ns; s++) printf " | %-30s", sy[s]
		printf "\n%s", "------------------------------------------"
		for (s = 1; s <= ns; s++) printf "-|-%s", "------------------------------"
		printf "\n"
		for (m = 1; m <= nm; m++) {
			me = ms[m]
			printf "%-42s", name[me] (lower[me] ? " (lower wins)" : "")
			base = ""
			k = "newsarchd" SUBSEP me
			if (n[k]) { for (i = 1; i <= n[k]; i++) b[i] = v[k, i]; base = med(b, n[k]) }
			for (s = 1; s <= ns; s++) {
				k = sy[s] SUBSEP me
				if (!n[k]) { printf " | %-30s", "-"; continue }
				lo = hi = v[k, 1]
				for (i = 1; i <= n[k]; i++) { a[i] = v[k, i]; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
				md = med(a, n[k])
				cell = fmt(md)
				if (n[k] > 1) cell = cell " (" fmt(lo) "-" fmt(hi) ")"
				if (base != "" && base > 0 && sy[s] != "newsarchd") cell = cell sprintf(" x%.2f", md / base)
				printf " | %-30s", cell
			}
			printf "\n"
		}
	}' "$res"
	echo
	echo "xN: the median divided by newsarchd's median (above 1 on a 'lower wins' row, or below 1"
	echo "elsewhere, means newsarchd leads). Redis W1 is AOF everysec (up to 1 s of writes can be"
	echo "lost); newsarchd and PostgreSQL acknowledge after fsync. W5: the newsarchd follower runs"
	echo "with durability $fdur (relaxed: fsync once a second, as the Redis replica's AOF everysec)."
} >"$tmp/table"
sed "s|$root/../shared/corpus/|../shared/corpus/|g" "$tmp/table"
[ -n "$outfile" ] && sed "s|$root/../shared/corpus/|../shared/corpus/|g" "$tmp/table" >"$outfile"
exit 0
