/*
 * repl.c - newsarch-bench: replication and CLI import measurements, and the
 * helpers tests/bench/run.sh uses to put their rows into the report.
 *
 * run.sh starts and stops every daemon; the modes here only talk to them
 * over loopback TCP and append one row per measurement to a rows file
 * (tab-separated fields, see add_row). At the end `--report` splices those
 * rows into the table the main run printed.
 *
 *   --repl load            put_batch N articles (copies [offset, offset+N) of
 *                          the corpus) into --addr, one connection, --inflight
 *                          batches in flight: the primary's own ingest rate;
 *                          prints the rate (articles/s) on stdout
 *   --repl wait-streaming  wait until the follower at --follower-addr streams
 *                          and has applied the primary's seq
 *   --repl catchup         poll the follower's stats every 5 ms until its
 *                          applied_seq reaches the primary's seq; the time
 *                          counts from --since-ns (the follower's launch)
 *   --repl lag             a writer puts --batch articles every batch/rate s on
 *                          the primary (absolute schedule, monotonic clock); a
 *                          subscriber on the FOLLOWER notes when each seq
 *                          arrives; lag per batch = arrival of its highest seq
 *                          - the primary's reply
 *   --time-import          runs `newsarch ... import FILE` and times it
 *   --report, --add-row    the table
 *
 * Every loop is bounded in iterations and time.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "rpc.h"

#define POLL_MS 5                   /* stats polling interval */
#define REPLY_TIMEOUT_MS 60000      /* no reply for this long: fail */
#define MAX_LAG_BATCHES 1000000u
#define MAX_WINDOW 64
#define SETTLE_MS 500               /* wait-streaming: let the snapshot end commit */
#define ROW_FIELDS 13
#define MAX_ROWS 64
#define MAX_LINES 100000

/* ---- options ----------------------------------------------------------- */

typedef struct ropts {
	const char *mode;
	const char *addr, *follower_addr, *corpus, *rows, *label, *note;
	bool synthetic;
	size_t nsynth;
	unsigned scale;
	size_t articles;
	bool have_offset;
	size_t offset;
	unsigned batch, inflight;
	double seconds, rate, timeout, target, target_ms;
	long server_pid, follower_pid;
	uint64_t since_ns;
} ropts;

static int parse_num(const char *s, double min, double max, double *out)
{
	char *e;
	errno = 0;
	double v = strtod(s, &e);
	if (errno || e == s || *e || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

/* ---- rows ---------------------------------------------------------------- */

static void clean_field(char *s)
{
	for (; *s; s++)
		if (*s == '\t' || *s == '\n' || *s == '\r')
			*s = ' ';
}

/* Appends one row: name conn inflt rate MB/s p50us p99us srvCPU loop us/op
 * target verdict note (fields may be "" or "-"). */
static void add_row(const char *path, const char *const f[ROW_FIELDS])
{
	if (!path)
		return;
	FILE *o = fopen(path, "a");
	if (!o) {
		fprintf(stderr, "newsarch-bench: %s: %s\n", path, strerror(errno));
		return;
	}
	for (int i = 0; i < ROW_FIELDS; i++) {
		char buf[1024];
		snprintf(buf, sizeof buf, "%s", f[i] ? f[i] : "");
		clean_field(buf);
		fprintf(o, "%s%s", i ? "\t" : "", buf);
	}
	fputc('\n', o);
	fclose(o);
}

static void fmt_int(char *buf, size_t cap, double v)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.0f", v);
	size_t len = strlen(tmp), o = 0;
	for (size_t i = 0; i < len && o + 2 < cap; i++) {
		buf[o++] = tmp[i];
		size_t left = len - i - 1;
		if (left && left % 3 == 0 && tmp[i] != '-')
			buf[o++] = ',';
	}
	buf[o] = 0;
}

/* ---- stats --------------------------------------------------------------- */

typedef struct rstat {
	bool ok;
	uint64_t seq, articles;
	bool follower;                 /* "replication" is a map */
	char state[24];
	uint64_t applied, primary_seq, lag_entries;
	double lag_seconds;
	unsigned followers_streaming;  /* primary: followers in state "streaming" */
} rstat;

static void copy_str(char *dst, size_t cap, const char *s, uint32_t n)
{
	size_t k = n < cap - 1 ? n : cap - 1;
	memcpy(dst, s, k);
	dst[k] = 0;
}

static int parse_followers(na_mp *r, rstat *st)
{
	uint32_t n;
	if (na_mp_array(r, &n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t m;
		bool streaming = false, follower = false;
		if (na_mp_map(r, &m))
			return -1;
		for (uint32_t j = 0; j < m; j++) {
			const char *k, *v;
			uint32_t kn, vn;
			if (na_mp_str(r, &k, &kn))
				return -1;
			if ((na_mp_streq(k, kn, "state") || na_mp_streq(k, kn, "kind")) &&
			    na_mp_peek(r) == NA_MP_STR) {
				if (na_mp_str(r, &v, &vn))
					return -1;
				if (na_mp_streq(v, vn, "streaming"))
					streaming = true;
				if (na_mp_streq(v, vn, "follower"))
					follower = true;
			} else if (na_mp_skip(r)) {
				return -1;
			}
		}
		if (streaming && follower)
			st->followers_streaming++;
	}
	return 0;
}

static int parse_replication(na_mp *r, rstat *st)
{
	if (na_mp_peek(r) == NA_MP_NIL)
		return na_mp_nil(r);
	uint32_t m;
	if (na_mp_map(r, &m))
		return -1;
	st->follower = true;
	for (uint32_t j = 0; j < m; j++) {
		const char *k, *v;
		uint32_t kn, vn;
		if (na_mp_str(r, &k, &kn))
			return -1;
		if (na_mp_streq(k, kn, "state")) {
			if (na_mp_str(r, &v, &vn))
				return -1;
			copy_str(st->state, sizeof st->state, v, vn);
		} else if (na_mp_streq(k, kn, "applied_seq")) {
			if (na_mp_u64(r, &st->applied))
				return -1;
		} else if (na_mp_streq(k, kn, "primary_seq")) {
			if (na_mp_u64(r, &st->primary_seq))
				return -1;
		} else if (na_mp_streq(k, kn, "lag_entries")) {
			if (na_mp_u64(r, &st->lag_entries))
				return -1;
		} else if (na_mp_streq(k, kn, "lag_seconds")) {
			if (na_mp_f64(r, &st->lag_seconds))
				return -1;
		} else if (na_mp_skip(r)) {
			return -1;
		}
	}
	return 0;
}

/* One stats call on an open connection. 0, or -1 (connection or reply). */
static int stats_call(bconn *c, uint32_t *id, rstat *st, int timeout_ms)
{
	memset(st, 0, sizeof *st);
	const uint8_t *msg;
	size_t len;
	uint32_t my = ++*id;
	if (bc_call(c, my, "stats", NULL, 0, 0, &msg, &len, timeout_ms) != 1)
		return -1;
	na_mp r;
	uint32_t got, n;
	bool e;
	if (bc_parse_reply(msg, len, &r, &got, &e) || e || na_mp_map(&r, &n))
		return -1;
	for (uint32_t i = 0; i < n && r.err == 0; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return -1;
		int rc = 0;
		if (na_mp_streq(k, kn, "seq"))
			rc = na_mp_u64(&r, &st->seq);
		else if (na_mp_streq(k, kn, "articles"))
			rc = na_mp_u64(&r, &st->articles);
		else if (na_mp_streq(k, kn, "replication"))
			rc = parse_replication(&r, st);
		else if (na_mp_streq(k, kn, "followers"))
			rc = parse_followers(&r, st);
		else
			rc = na_mp_skip(&r);
		if (rc)
			return -1;
	}
	st->ok = r.err == 0;
	return st->ok ? 0 : -1;
}

/* Connects, retrying every POLL_MS until deadline (a daemon may still be
 * starting). */
static int open_retry(bconn *c, const struct sockaddr_storage *ss, socklen_t sl, uint64_t deadline)
{
	for (unsigned tries = 0; tries < 1000000; tries++) {
		if (bc_open(c, ss, sl) == 0)
			return 0;
		if (bench_now_ns() >= deadline)
			return -1;
		usleep(POLL_MS * 1000);
	}
	return -1;
}

static int resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
	char err[256];
	if (!addr) {
		fprintf(stderr, "newsarch-bench: an address is missing\n");
		return -1;
	}
	if (bc_resolve(addr, ss, sl, err, sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return -1;
	}
	return 0;
}

/* Stats of the server at addr on a fresh connection. */
static int stats_once(const char *addr, rstat *st)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	bconn c;
	uint32_t id = 0;
	if (resolve(addr, &ss, &sl) || bc_open(&c, &ss, sl))
		return -1;
	int rc = stats_call(&c, &id, st, 30000);
	bc_close(&c);
	return rc;
}

/* ---- put_batch replies ------------------------------------------------------ */

typedef struct batch_out {
	uint64_t maxseq, created, errors;
	char first_error[200];
} batch_out;

/* Reads a put_batch result array of `expect` items. */
static int parse_batch(na_mp *r, uint32_t expect, batch_out *o)
{
	uint32_t n;
	if (na_mp_array(r, &n) || n != expect)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t m;
		if (na_mp_map(r, &m))
			return -1;
		for (uint32_t j = 0; j < m; j++) {
			const char *k, *v;
			uint32_t kn, vn;
			if (na_mp_str(r, &k, &kn))
				return -1;
			if (na_mp_streq(k, kn, "seq")) {
				uint64_t s;
				if (na_mp_u64(r, &s))
					return -1;
				if (s > o->maxseq)
					o->maxseq = s;
			} else if (na_mp_streq(k, kn, "status")) {
				if (na_mp_str(r, &v, &vn))
					return -1;
				if (na_mp_streq(v, vn, "created"))
					o->created++;
			} else if (na_mp_streq(k, kn, "error")) {
				o->errors++;
				if (!o->first_error[0])
					snprintf(o->first_error, sizeof o->first_error, "item %u failed", i);
				if (na_mp_skip(r))
					return -1;
			} else if (na_mp_skip(r)) {
				return -1;
			}
		}
	}
	return r->err ? -1 : 0;
}

static void pack_batch(bconn *c, uint32_t msgid, const bench_corpus *corp, size_t first,
		       size_t last)
{
	msgpack_packer pk;
	bc_begin(c, msgid, "put_batch", 1, &pk);
	msgpack_pack_array(&pk, (uint32_t)(last - first));
	c->ext = corp->data + corp->off[first];
	c->ext_len = corp->off[last] - corp->off[first];
}

/* A poll timeout is fine here; anything else is an error. */
static int pump_ok(bconn *c, bool want_read, int timeout_ms)
{
	if (bc_pump(c, want_read, timeout_ms) == 0)
		return 0;
	return errno == ETIMEDOUT ? 0 : -1;
}

/* ---- load ------------------------------------------------------------------ */

static int load_corpus(const ropts *o, bench_corpus *c, size_t total, unsigned scale)
{
	char err[512];
	const char *path = o->synthetic ? NULL : o->corpus;
	uint64_t t = bench_now_ns();
	if (bench_corpus_load(c, path, o->nsynth, scale, total, total, err, sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return -1;
	}
	fprintf(stderr, "  corpus: %zu articles (%zu x %u) from %s in %.1f s\n", c->n, c->base_n,
		c->scale, c->source, (double)(bench_now_ns() - t) / 1e9);
	return 0;
}

static int mode_load(const ropts *o)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (resolve(o->addr, &ss, &sl))
		return 2;
	bench_corpus corp;
	size_t off = o->have_offset ? o->offset : 0;
	/* --articles N: exactly N after the offset; else --scale copies */
	if (!o->articles && off) {
		fprintf(stderr, "newsarch-bench: --repl load with --offset needs --articles\n");
		return 2;
	}
	if (load_corpus(o, &corp, o->articles ? off + o->articles : 0, o->articles ? 0 : o->scale))
		return 1;
	if (off >= corp.n) {
		fprintf(stderr, "newsarch-bench: offset %zu is past the corpus (%zu)\n", off, corp.n);
		bench_corpus_free(&corp);
		return 1;
	}
	size_t first = off, last = corp.n, n = last - first;
	unsigned batch = o->batch, window = o->inflight;
	size_t nb = (n + batch - 1) / batch;
	bconn c;
	if (bc_open(&c, &ss, sl)) {
		fprintf(stderr, "newsarch-bench: connect %s: %s\n", o->addr, strerror(errno));
		bench_corpus_free(&corp);
		return 1;
	}
	struct { bool used; uint32_t msgid; size_t b; } slots[MAX_WINDOW];
	memset(slots, 0, sizeof slots);
	batch_out out;
	memset(&out, 0, sizeof out);
	cpu_sample cpu0 = bench_read_cpu(o->server_pid);
	double load0 = bench_loadavg1();
	uint64_t t0 = bench_now_ns();
	uint64_t hard = t0 + (uint64_t)(600 + n / 1000) * 1000000000ULL;
	uint64_t last_progress = t0;
	size_t next = 0, done = 0;
	unsigned inflight = 0;
	uint32_t seqno = 0;
	int rc = 0;
	while (done < nb) {
		uint64_t now = bench_now_ns();
		if (now >= hard || now - last_progress > (uint64_t)REPLY_TIMEOUT_MS * 1000000u) {
			fprintf(stderr, "newsarch-bench: load: no progress in time\n");
			rc = 1;
			break;
		}
		while (next < nb && inflight < window && !bc_sending(&c)) {
			unsigned si = 0;
			while (si < window && slots[si].used)
				si++;
			uint32_t id = (++seqno << 6) | si;
			size_t a = first + next * batch, z = a + batch < last ? a + batch : last;
			pack_batch(&c, id, &corp, a, z);
			slots[si].used = true;
			slots[si].msgid = id;
			slots[si].b = next;
			next++;
			inflight++;
			if (bc_flush(&c)) {
				rc = 1;
				break;
			}
		}
		if (rc || pump_ok(&c, inflight > 0, 1000)) {
			fprintf(stderr, "newsarch-bench: load: connection: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		const uint8_t *msg;
		size_t len;
		int got;
		while ((got = bc_reply(&c, &msg, &len)) == 1) {
			na_mp r;
			uint32_t id;
			bool e;
			unsigned si;
			if (bc_parse_reply(msg, len, &r, &id, &e) || (si = id & (MAX_WINDOW - 1)) >= window ||
			    !slots[si].used || slots[si].msgid != id) {
				got = -1;
				break;
			}
			size_t a = first + slots[si].b * batch, z = a + batch < last ? a + batch : last;
			slots[si].used = false;
			inflight--;
			done++;
			last_progress = bench_now_ns();
			if (e) {
				out.errors += z - a;
				continue;
			}
			if (parse_batch(&r, (uint32_t)(z - a), &out)) {
				got = -1;
				break;
			}
		}
		if (got < 0) {
			fprintf(stderr, "newsarch-bench: load: unexpected reply\n");
			rc = 1;
			break;
		}
	}
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	cpu_sample cpu1 = bench_read_cpu(o->server_pid);
	bc_close(&c);
	double rate = secs > 0 ? (double)out.created / secs : 0;
	double mb = 0;
	for (size_t i = first; i < last; i++)
		mb += corp.json_len[i];
	fprintf(stderr, "  load: %" PRIu64 " of %zu articles created in %.2f s: %.0f articles/s%s\n",
		out.created, n, secs, rate, out.errors ? " (with errors)" : "");
	if (out.errors || out.created != n) {
		fprintf(stderr, "newsarch-bench: load: %" PRIu64 " errors, %" PRIu64 " created of %zu\n",
			out.errors, out.created, n);
		rc = 1;
	}
	char f[ROW_FIELDS][640];
	memset(f, 0, sizeof f);
	snprintf(f[0], sizeof f[0], "%s", o->label ? o->label : "primary ingest (load)");
	snprintf(f[1], sizeof f[1], "1");
	snprintf(f[2], sizeof f[2], "%u", window);
	char num[48];
	fmt_int(num, sizeof num, rate);
	snprintf(f[3], sizeof f[3], "%s art/s", num);
	snprintf(f[4], sizeof f[4], "%.1f", secs > 0 ? mb / secs / 1e6 : 0);
	snprintf(f[5], sizeof f[5], "-");
	snprintf(f[6], sizeof f[6], "-");
	snprintf(f[7], sizeof f[7], "-");
	snprintf(f[8], sizeof f[8], "-");
	snprintf(f[9], sizeof f[9], "-");
	if (cpu0.ok && cpu1.ok && secs > 0) {
		double tck = (double)sysconf(_SC_CLK_TCK);
		snprintf(f[7], sizeof f[7], "%.0f%%", 100.0 * (double)(cpu1.total - cpu0.total) / tck / secs);
		snprintf(f[8], sizeof f[8], "%.0f%%", 100.0 * (double)(cpu1.loop - cpu0.loop) / tck / secs);
		snprintf(f[9], sizeof f[9], "%.1f",
			 n ? (double)(cpu1.total - cpu0.total) / tck * 1e6 / (double)n : 0);
	}
	snprintf(f[10], sizeof f[10], "(reference)");
	snprintf(f[11], sizeof f[11], "%s", rc ? "FAIL" : "");
	snprintf(f[12], sizeof f[12], "%zu articles, batch %u, %.2f s; load average %.2f; %s", n,
		 batch, secs, load0, o->note ? o->note : "");
	const char *fp[ROW_FIELDS];
	for (int i = 0; i < ROW_FIELDS; i++)
		fp[i] = f[i];
	add_row(o->rows, fp);
	printf("%.0f\n", rc ? 0.0 : rate);
	bench_corpus_free(&corp);
	return rc;
}

/* ---- wait-streaming, catchup ---------------------------------------------------- */

/* Polls the follower until its applied_seq reaches `target` (and, with
 * want_streaming, its state is "streaming" and the primary lists it so).
 * Returns 0 and *t_done, or -1 on timeout. */
static int poll_follower(const ropts *o, const struct sockaddr_storage *fss, socklen_t fsl,
			 uint64_t target, uint64_t deadline, uint64_t *t_done, rstat *last,
			 uint64_t *t_first)
{
	bconn c;
	uint32_t id = 0;
	bool open = false;
	memset(last, 0, sizeof *last);
	int rc = -1;
	for (unsigned it = 0; it < 100000000u; it++) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			break;
		if (!open) {
			if (open_retry(&c, fss, fsl, deadline))
				break;
			open = true;
		}
		rstat st;
		if (stats_call(&c, &id, &st, 10000)) {
			/* the follower may restart; reconnect */
			bc_close(&c);
			open = false;
			usleep(POLL_MS * 1000);
			continue;
		}
		*last = st;
		if (t_first && !*t_first)
			*t_first = bench_now_ns();
		if (st.follower && st.applied >= target) {
			*t_done = bench_now_ns();
			rc = 0;
			break;
		}
		(void)o;
		usleep(POLL_MS * 1000);
	}
	if (open)
		bc_close(&c);
	return rc;
}

static int mode_wait_streaming(const ropts *o)
{
	struct sockaddr_storage fss;
	socklen_t fsl;
	if (resolve(o->follower_addr, &fss, &fsl))
		return 2;
	uint64_t deadline = bench_now_ns() + (uint64_t)(o->timeout * 1e9);
	rstat p;
	if (stats_once(o->addr, &p)) {
		fprintf(stderr, "newsarch-bench: no stats from the primary %s\n", o->addr);
		return 1;
	}
	uint64_t t;
	rstat f;
	for (unsigned it = 0; it < 1000000u; it++) {
		if (poll_follower(o, &fss, fsl, p.seq, deadline, &t, &f, NULL)) {
			fprintf(stderr, "newsarch-bench: the follower did not reach seq %" PRIu64
				" (state %s, applied %" PRIu64 ")\n", p.seq, f.state, f.applied);
			return 1;
		}
		rstat q;
		if (strcmp(f.state, "streaming") == 0 && stats_once(o->addr, &q) == 0 &&
		    q.followers_streaming > 0)
			break;
		if (bench_now_ns() >= deadline) {
			fprintf(stderr, "newsarch-bench: the follower is not streaming (state %s)\n",
				f.state);
			return 1;
		}
		usleep(POLL_MS * 1000);
	}
	/* the follower says "streaming" as soon as the snapshot's end arrives;
	 * give the commit of that end a moment before anyone stops it */
	usleep(SETTLE_MS * 1000);
	fprintf(stderr, "  follower %s streams at seq %" PRIu64 "\n", o->follower_addr, f.applied);
	return 0;
}

static int mode_catchup(const ropts *o)
{
	struct sockaddr_storage fss;
	socklen_t fsl;
	if (resolve(o->follower_addr, &fss, &fsl))
		return 2;
	uint64_t start = o->since_ns ? o->since_ns : bench_now_ns();
	double load0 = bench_loadavg1();
	rstat p;
	if (stats_once(o->addr, &p)) {
		fprintf(stderr, "newsarch-bench: no stats from the primary %s\n", o->addr);
		return 1;
	}
	uint64_t deadline = bench_now_ns() + (uint64_t)(o->timeout * 1e9);
	uint64_t t_done = 0, t_first = 0;
	rstat f;
	int rc = poll_follower(o, &fss, fsl, p.seq, deadline, &t_done, &f, &t_first);
	double secs = rc == 0 ? (double)(t_done - start) / 1e9 : 0;
	cpu_sample cpu = bench_read_cpu(o->follower_pid);
	rstat fa;
	bool counted = rc == 0 && stats_once(o->follower_addr, &fa) == 0;
	double rate = secs > 0 ? (double)p.articles / secs : 0;
	if (rc)
		fprintf(stderr, "newsarch-bench: catch-up: the follower did not reach seq %" PRIu64
			" within %.0f s (state %s, applied %" PRIu64 ")\n", p.seq, o->timeout, f.state,
			f.applied);
	else
		fprintf(stderr, "  catch-up: %" PRIu64 " articles (seq %" PRIu64 ") in %.2f s: %.0f "
			"articles/s; the follower holds %" PRIu64 "\n", p.articles, p.seq, secs, rate,
			counted ? fa.articles : 0);
	bool mismatch = counted && fa.articles != p.articles;
	char f_[ROW_FIELDS][640];
	memset(f_, 0, sizeof f_);
	char num[48];
	snprintf(f_[0], sizeof f_[0], "%s", o->label ? o->label : "repl catch-up");
	snprintf(f_[1], sizeof f_[1], "1");
	snprintf(f_[2], sizeof f_[2], "-");
	fmt_int(num, sizeof num, rate);
	snprintf(f_[3], sizeof f_[3], "%s", rc ? "timeout" : num);
	if (!rc)
		strncat(f_[3], " art/s", sizeof f_[3] - strlen(f_[3]) - 1);
	for (int i = 4; i <= 9; i++)
		snprintf(f_[i], sizeof f_[i], "-");
	if (cpu.ok && secs > 0) {
		/* the follower was started for this measurement: its whole life */
		double tck = (double)sysconf(_SC_CLK_TCK);
		snprintf(f_[7], sizeof f_[7], "%.0f%%", 100.0 * (double)cpu.total / tck / secs);
		snprintf(f_[8], sizeof f_[8], "%.0f%%", 100.0 * (double)cpu.loop / tck / secs);
		snprintf(f_[9], sizeof f_[9], "%.1f",
			 p.articles ? (double)cpu.total / tck * 1e6 / (double)p.articles : 0);
	}
	bool ok = rc == 0 && !mismatch;
	if (o->target > 0) {
		fmt_int(num, sizeof num, o->target);
		snprintf(f_[10], sizeof f_[10], ">= %s", num);
		snprintf(f_[11], sizeof f_[11], "%s", !ok ? "FAIL" : rate >= o->target ? "OK" : "MISS");
	} else {
		snprintf(f_[10], sizeof f_[10], "-");
		snprintf(f_[11], sizeof f_[11], "%s", ok ? "" : "FAIL");
	}
	snprintf(f_[12], sizeof f_[12],
		 "%" PRIu64 " articles / seq %" PRIu64 " in %.2f s from the follower's launch (its "
		 "first stats answer after %.3f s)%s; follower CPU over its life; load average %.2f; %s",
		 p.articles, p.seq, secs, t_first > start ? (double)(t_first - start) / 1e9 : 0.0,
		 mismatch ? " BUT THE FOLLOWER HOLDS ANOTHER ARTICLE COUNT" : "", load0,
		 o->note ? o->note : "");
	const char *fp[ROW_FIELDS];
	for (int i = 0; i < ROW_FIELDS; i++)
		fp[i] = f_[i];
	add_row(o->rows, fp);
	return ok ? 0 : 1;
}

/* ---- lag ------------------------------------------------------------------------- */

typedef struct lagsub {
	bconn c;
	uint64_t base;                /* subscribed from this seq */
	uint64_t *arrival;            /* [seq - base - 1]: ns, 0 = not yet */
	size_t cap;
	uint64_t seen_max, entries, beyond, notifications;
	_Atomic uint64_t target;      /* stop once seen_max reaches it (0: not known yet) */
	_Atomic uint64_t give_up_ns;  /* stop at this time (0: not set) */
	uint64_t hard_ns;
	bool failed;
	char err[200];
} lagsub;

static void sub_ack(lagsub *s)
{
	if (bc_sending(&s->c))
		return; /* the previous ack is still going out; the next one covers it */
	msgpack_packer pk;
	bc_begin_notify(&s->c, "ack", 1, &pk);
	msgpack_pack_uint64(&pk, s->seen_max);
	bc_flush(&s->c);
}

/* One message on the subscription: a "log" notification is noted. */
static int sub_message(lagsub *s, const uint8_t *msg, size_t len, uint64_t now)
{
	na_mp r;
	na_mp_init(&r, msg, len);
	uint32_t n, np, ne;
	uint64_t type;
	const char *m;
	uint32_t mn;
	if (na_mp_array(&r, &n) || na_mp_u64(&r, &type))
		return -1;
	if (type != NA_RPC_NOTIFY)
		return 0;
	if (n != 3 || na_mp_str(&r, &m, &mn) || na_mp_array(&r, &np))
		return -1;
	if (!na_mp_streq(m, mn, "log"))
		return 0;
	if (np < 1 || na_mp_array(&r, &ne))
		return -1;
	s->notifications++;
	for (uint32_t i = 0; i < ne; i++) {
		uint32_t an;
		uint64_t seq;
		if (na_mp_array(&r, &an) || an < 1 || na_mp_u64(&r, &seq))
			return -1;
		for (uint32_t j = 1; j < an; j++)
			if (na_mp_skip(&r))
				return -1;
		s->entries++;
		if (seq > s->seen_max)
			s->seen_max = seq;
		if (seq <= s->base)
			continue;
		uint64_t idx = seq - s->base - 1;
		if (idx >= s->cap) {
			s->beyond++;
			continue;
		}
		if (!s->arrival[idx])
			s->arrival[idx] = now;
	}
	return r.err ? -1 : 0;
}

static void *sub_main(void *arg)
{
	lagsub *s = arg;
	for (unsigned it = 0; it < 100000000u; it++) {
		uint64_t now = bench_now_ns();
		uint64_t target = atomic_load(&s->target), give_up = atomic_load(&s->give_up_ns);
		if (target && s->seen_max >= target)
			break;
		if (now >= s->hard_ns || (give_up && now >= give_up)) {
			if (!target || s->seen_max < target) {
				s->failed = true;
				snprintf(s->err, sizeof s->err,
					 "the subscriber saw seq %" PRIu64 ", waited for %" PRIu64,
					 s->seen_max, target);
			}
			break;
		}
		if (pump_ok(&s->c, true, 20)) {
			s->failed = true;
			snprintf(s->err, sizeof s->err, "subscription: %s", strerror(errno));
			break;
		}
		now = bench_now_ns();
		const uint8_t *msg;
		size_t len;
		int rc;
		uint64_t before = s->seen_max;
		while ((rc = bc_reply(&s->c, &msg, &len)) == 1)
			if (sub_message(s, msg, len, now)) {
				rc = -1;
				break;
			}
		if (rc < 0) {
			s->failed = true;
			snprintf(s->err, sizeof s->err, "malformed message on the subscription");
			break;
		}
		if (s->seen_max != before)
			sub_ack(s);
	}
	return NULL;
}

typedef struct lagbatch {
	uint64_t t_due, t_sent, t_reply, maxseq;
	bool replied, failed;
} lagbatch;

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int mode_lag(const ropts *o)
{
	struct sockaddr_storage pss, fss;
	socklen_t psl, fsl;
	if (resolve(o->addr, &pss, &psl) || resolve(o->follower_addr, &fss, &fsl))
		return 2;
	unsigned batch = o->batch;
	double period_s = (double)batch / o->rate;
	size_t nb = (size_t)(o->seconds / period_s + 0.5);
	if (nb < 1 || nb > MAX_LAG_BATCHES) {
		fprintf(stderr, "newsarch-bench: lag: %zu batches is out of range\n", nb);
		return 2;
	}
	uint64_t period_ns = (uint64_t)(period_s * 1e9);
	rstat p;
	if (stats_once(o->addr, &p)) {
		fprintf(stderr, "newsarch-bench: no stats from the primary %s\n", o->addr);
		return 1;
	}
	size_t off = o->have_offset ? o->offset : (size_t)p.articles;
	size_t need = nb * batch;
	bench_corpus corp;
	if (load_corpus(o, &corp, off + need, 0))
		return 1;
	if (corp.n < off + need) {
		fprintf(stderr, "newsarch-bench: lag: the corpus has %zu articles, need %zu\n", corp.n,
			off + need);
		bench_corpus_free(&corp);
		return 1;
	}
	int ret = 1;
	lagbatch *bs = calloc(nb, sizeof *bs);
	lagsub *s = calloc(1, sizeof *s);
	bconn w;
	bool w_open = false, s_open = false, s_started = false;
	pthread_t th;
	if (!bs || !s)
		goto out;
	/* the follower first catches up with what is there */
	rstat f;
	uint64_t t_ready;
	if (poll_follower(o, &fss, fsl, p.seq, bench_now_ns() + 120000000000ULL, &t_ready, &f,
			  NULL)) {
		fprintf(stderr, "newsarch-bench: lag: the follower did not reach seq %" PRIu64 "\n", p.seq);
		goto out;
	}
	/* subscribe to the follower from its current position */
	uint32_t sid = 0;
	rstat fs;
	if (bc_open(&s->c, &fss, fsl)) {
		fprintf(stderr, "newsarch-bench: lag: connect %s: %s\n", o->follower_addr, strerror(errno));
		goto out;
	}
	s_open = true;
	if (stats_call(&s->c, &sid, &fs, 10000)) {
		fprintf(stderr, "newsarch-bench: lag: no stats from the follower\n");
		goto out;
	}
	s->base = fs.seq;
	{
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		na_mp_pack_cstr(&pk, "seq");
		msgpack_pack_uint64(&pk, s->base);
		const uint8_t *msg;
		size_t len;
		int rc = bc_call(&s->c, ++sid, "subscribe", sb.data, sb.size, 1, &msg, &len, 10000);
		msgpack_sbuffer_destroy(&sb);
		na_mp r;
		uint32_t id;
		bool e;
		if (rc != 1 || bc_parse_reply(msg, len, &r, &id, &e) || e) {
			fprintf(stderr, "newsarch-bench: lag: subscribe on the follower failed\n");
			goto out;
		}
	}
	s->cap = need * 2 + 4096; /* articles plus any dictionary entries */
	s->arrival = calloc(s->cap, sizeof *s->arrival);
	if (!s->arrival)
		goto out;
	s->hard_ns = bench_now_ns() + (uint64_t)((o->seconds + 120) * 1e9);
	atomic_init(&s->target, 0);
	atomic_init(&s->give_up_ns, 0);
	if (pthread_create(&th, NULL, sub_main, s)) {
		fprintf(stderr, "newsarch-bench: cannot start a thread\n");
		goto out;
	}
	s_started = true;
	if (bc_open(&w, &pss, psl)) {
		fprintf(stderr, "newsarch-bench: lag: connect %s: %s\n", o->addr, strerror(errno));
		goto out;
	}
	w_open = true;
	fprintf(stderr, "  lag: %zu batches of %u every %.1f ms (%.0f articles/s) for %.1f s; "
		"subscribed to the follower from seq %" PRIu64 "\n", nb, batch, period_s * 1e3,
		o->rate, o->seconds, s->base);
	cpu_sample pc0 = bench_read_cpu(o->server_pid), fc0 = bench_read_cpu(o->follower_pid);
	double load0 = bench_loadavg1();
	uint64_t t0 = bench_now_ns() + 20000000u; /* the first batch in 20 ms */
	uint64_t hard = t0 + (uint64_t)((o->seconds + 60) * 1e9);
	size_t next = 0, replied = 0;
	unsigned inflight = 0, max_inflight = 0;
	uint64_t created = 0, errors = 0, late_sends = 0;
	hist wh;
	memset(&wh, 0, sizeof wh);
	bool wfail = false;
	while (replied < nb) {
		uint64_t now = bench_now_ns();
		if (now >= hard) {
			fprintf(stderr, "newsarch-bench: lag: the writer ran out of time\n");
			wfail = true;
			break;
		}
		while (next < nb && now >= t0 + next * period_ns && !bc_sending(&w) &&
		       inflight < MAX_WINDOW) {
			pack_batch(&w, (uint32_t)next + 1, &corp, off + next * batch, off + (next + 1) * batch);
			bs[next].t_due = t0 + next * period_ns;
			bs[next].t_sent = now;
			if (now - bs[next].t_due > period_ns)
				late_sends++;
			next++;
			inflight++;
			if (inflight > max_inflight)
				max_inflight = inflight;
			if (bc_flush(&w)) {
				wfail = true;
				break;
			}
			now = bench_now_ns();
		}
		if (wfail)
			break;
		int timeout = 100;
		if (next < nb) {
			uint64_t due = t0 + next * period_ns;
			timeout = due > now ? (int)((due - now + 999999) / 1000000) : 0;
		}
		if (inflight == 0 && !bc_sending(&w)) {
			/* nothing to read or write: sleep until the next batch is due */
			if (next < nb) {
				uint64_t due = t0 + next * period_ns;
				struct timespec ts = { (time_t)(due / 1000000000u), (long)(due % 1000000000u) };
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
			continue;
		}
		if (pump_ok(&w, inflight > 0, timeout)) {
			fprintf(stderr, "newsarch-bench: lag: writer connection: %s\n", strerror(errno));
			wfail = true;
			break;
		}
		now = bench_now_ns();
		const uint8_t *msg;
		size_t len;
		int rc;
		while ((rc = bc_reply(&w, &msg, &len)) == 1) {
			na_mp r;
			uint32_t id;
			bool e;
			if (bc_parse_reply(msg, len, &r, &id, &e) || id < 1 || id > next ||
			    bs[id - 1].replied) {
				rc = -1;
				break;
			}
			lagbatch *b = &bs[id - 1];
			b->replied = true;
			b->t_reply = now;
			inflight--;
			replied++;
			hist_add(&wh, now - b->t_sent);
			batch_out bo;
			memset(&bo, 0, sizeof bo);
			if (e || parse_batch(&r, batch, &bo) || bo.errors) {
				b->failed = true;
				errors++;
				continue;
			}
			b->maxseq = bo.maxseq;
			created += bo.created;
		}
		if (rc < 0) {
			fprintf(stderr, "newsarch-bench: lag: unexpected reply from the primary\n");
			wfail = true;
			break;
		}
	}
	uint64_t t_end = bench_now_ns();
	uint64_t top = 0;
	for (size_t i = 0; i < nb; i++)
		if (bs[i].replied && !bs[i].failed && bs[i].maxseq > top)
			top = bs[i].maxseq;
	atomic_store(&s->give_up_ns, bench_now_ns() + 15000000000ULL);
	atomic_store(&s->target, top ? top : 1);
	pthread_join(th, NULL);
	s_started = false;
	cpu_sample pc1 = bench_read_cpu(o->server_pid), fc1 = bench_read_cpu(o->follower_pid);
	/* lags */
	hist lh;
	memset(&lh, 0, sizeof lh);
	uint64_t missing = 0, negative = 0, maxlag = 0;
	for (size_t i = 0; i < nb; i++) {
		lagbatch *b = &bs[i];
		if (!b->replied || b->failed || b->maxseq <= s->base)
			continue;
		uint64_t idx = b->maxseq - s->base - 1;
		uint64_t at = idx < s->cap ? s->arrival[idx] : 0;
		if (!at) {
			missing++;
			continue;
		}
		uint64_t lag = 0;
		if (at < b->t_reply)
			negative++;
		else
			lag = at - b->t_reply;
		if (lag > maxlag)
			maxlag = lag;
		hist_add(&lh, lag);
	}
	double wsecs = (double)(t_end - t0) / 1e9;
	double wrate = wsecs > 0 ? (double)created / wsecs : 0;
	double p50 = hist_quantile(&lh, 0.50), p99 = hist_quantile(&lh, 0.99);
	fprintf(stderr, "  lag: %" PRIu64 " articles acknowledged in %.2f s (%.0f/s), %" PRIu64
		" batch errors; follower lag p50 %.2f ms, p99 %.2f ms, max %.2f ms over %" PRIu64
		" batches (%" PRIu64 " arrived before the reply, %" PRIu64 " never arrived)\n",
		created, wsecs, wrate, errors, ms((uint64_t)p50), ms((uint64_t)p99), ms(maxlag),
		lh.count, negative, missing);
	if (s->failed)
		fprintf(stderr, "  subscriber: %s\n", s->err);
	bool ok = !wfail && !s->failed && errors == 0 && missing == 0 && lh.count == nb;
	char f_[ROW_FIELDS][640];
	memset(f_, 0, sizeof f_);
	char num[48];
	snprintf(f_[0], sizeof f_[0], "%s", o->label ? o->label : "repl lag, steady ingest");
	snprintf(f_[1], sizeof f_[1], "1+1");
	snprintf(f_[2], sizeof f_[2], "%u", max_inflight);
	fmt_int(num, sizeof num, wrate);
	snprintf(f_[3], sizeof f_[3], "%s art/s", num);
	snprintf(f_[4], sizeof f_[4], "-");
	snprintf(f_[5], sizeof f_[5], "%.1f", p50 / 1e3);
	snprintf(f_[6], sizeof f_[6], "%.1f", p99 / 1e3);
	snprintf(f_[7], sizeof f_[7], "-");
	snprintf(f_[8], sizeof f_[8], "-");
	snprintf(f_[9], sizeof f_[9], "-");
	char cpu_note[160] = "";
	if (pc0.ok && pc1.ok && fc0.ok && fc1.ok && wsecs > 0) {
		double tck = (double)sysconf(_SC_CLK_TCK);
		snprintf(f_[7], sizeof f_[7], "%.0f%%", 100.0 * (double)(fc1.total - fc0.total) / tck / wsecs);
		snprintf(f_[8], sizeof f_[8], "%.0f%%", 100.0 * (double)(fc1.loop - fc0.loop) / tck / wsecs);
		snprintf(f_[9], sizeof f_[9], "%.1f",
			 created ? (double)(fc1.total - fc0.total) / tck * 1e6 / (double)created : 0);
		snprintf(cpu_note, sizeof cpu_note, "; CPU follower %.0f%%, primary %.0f%% (loop %.0f%%)",
			 100.0 * (double)(fc1.total - fc0.total) / tck / wsecs,
			 100.0 * (double)(pc1.total - pc0.total) / tck / wsecs,
			 100.0 * (double)(pc1.loop - pc0.loop) / tck / wsecs);
	}
	snprintf(f_[10], sizeof f_[10], "p99 < %.0f ms", o->target_ms);
	snprintf(f_[11], sizeof f_[11], "%s", !ok ? "FAIL" : p99 / 1e6 < o->target_ms ? "OK" : "MISS");
	snprintf(f_[12], sizeof f_[12],
		 "%zu batches of %u every %.0f ms for %.1f s; lag = arrival of the batch's last seq at a "
		 "subscriber on the follower - the primary's reply; max %.1f ms, %" PRIu64
		 " arrived before the reply (counted as 0), %" PRIu64 " missing; put_batch p50 %.1f ms p99 %.1f ms; "
		 "%" PRIu64 " sends over one period late%s; load average %.2f",
		 nb, batch, period_s * 1e3, o->seconds, ms(maxlag), negative, missing,
		 hist_quantile(&wh, 0.5) / 1e6, hist_quantile(&wh, 0.99) / 1e6, late_sends, cpu_note,
		 load0);
	const char *fp[ROW_FIELDS];
	for (int i = 0; i < ROW_FIELDS; i++)
		fp[i] = f_[i];
	add_row(o->rows, fp);
	ret = ok ? 0 : 1;
out:
	if (s_started) {
		atomic_store(&s->give_up_ns, 1);
		pthread_join(th, NULL);
	}
	if (w_open)
		bc_close(&w);
	if (s) {
		if (s_open)
			bc_close(&s->c);
		free(s->arrival);
	}
	free(s);
	free(bs);
	bench_corpus_free(&corp);
	return ret;
}

/* ---- --repl option parsing ---------------------------------------------------- */

static void repl_usage(FILE *f)
{
	fprintf(f,
		"usage: newsarch-bench --repl MODE [options]\n"
		"  MODE: load | wait-streaming | catchup | lag\n"
		"  --addr HOST:PORT           the primary\n"
		"  --follower-addr HOST:PORT  the follower\n"
		"  --server-pid PID           the primary's pid (CPU)\n"
		"  --follower-pid PID         the follower's pid (CPU)\n"
		"  --corpus FILE | --synthetic N\n"
		"  --scale N                  load: copies of the corpus (default 5)\n"
		"  --articles N               load: exactly N articles instead\n"
		"  --offset N                 first corpus article to put (load: 0; lag: the\n"
		"                             primary's article count)\n"
		"  --batch N --inflight N     load: 1000 x 4; lag: batch 50\n"
		"  --rate R --seconds S       lag: articles/s (5000) and duration (10)\n"
		"  --target-ms MS             lag: the p99 target (50)\n"
		"  --since-ns T               catchup: count from this CLOCK_MONOTONIC time\n"
		"  --target RATE              catchup: the rate to reach (articles/s)\n"
		"  --timeout S                wait/catchup bound (default 300)\n"
		"  --rows FILE --label NAME --note TEXT\n");
}

int bench_repl_main(int argc, char **argv)
{
	/* argv[0] = program, argv[1] = "--repl", argv[2] = MODE */
	if (argc < 3) {
		repl_usage(stderr);
		return 2;
	}
	ropts o;
	memset(&o, 0, sizeof o);
	o.mode = argv[2];
	o.addr = NA_DEFAULT_ADDR;
	o.scale = 5;
	o.nsynth = 20000;
	o.rate = 5000;
	o.seconds = 10;
	o.timeout = 300;
	o.target_ms = 50;
	o.inflight = 4;
	bool lag = strcmp(o.mode, "lag") == 0;
	o.batch = lag ? 50 : 1000;
	enum { O_ADDR = 1, O_FADDR, O_SPID, O_FPID, O_CORPUS, O_SYNTH, O_SCALE, O_ARTICLES, O_OFFSET,
	       O_BATCH, O_INFLIGHT, O_RATE, O_SECONDS, O_TMS, O_SINCE, O_TARGET, O_TIMEOUT, O_ROWS,
	       O_LABEL, O_NOTE, O_HELP };
	static const struct option lo[] = {
		{ "addr", required_argument, NULL, O_ADDR },
		{ "follower-addr", required_argument, NULL, O_FADDR },
		{ "server-pid", required_argument, NULL, O_SPID },
		{ "follower-pid", required_argument, NULL, O_FPID },
		{ "corpus", required_argument, NULL, O_CORPUS },
		{ "synthetic", required_argument, NULL, O_SYNTH },
		{ "scale", required_argument, NULL, O_SCALE },
		{ "articles", required_argument, NULL, O_ARTICLES },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "rate", required_argument, NULL, O_RATE },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "target-ms", required_argument, NULL, O_TMS },
		{ "since-ns", required_argument, NULL, O_SINCE },
		{ "target", required_argument, NULL, O_TARGET },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "rows", required_argument, NULL, O_ROWS },
		{ "label", required_argument, NULL, O_LABEL },
		{ "note", required_argument, NULL, O_NOTE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	optind = 1;
	int ch;
	double v;
	while ((ch = getopt_long(argc - 2, argv + 2, "", lo, NULL)) != -1) {
		switch (ch) {
		case O_ADDR: o.addr = optarg; break;
		case O_FADDR: o.follower_addr = optarg; break;
		case O_SPID:
			if (parse_num(optarg, 1, 1 << 30, &v)) goto bad;
			o.server_pid = (long)v;
			break;
		case O_FPID:
			if (parse_num(optarg, 1, 1 << 30, &v)) goto bad;
			o.follower_pid = (long)v;
			break;
		case O_CORPUS: o.corpus = optarg; break;
		case O_SYNTH:
			if (parse_num(optarg, 1, BENCH_MAX_BASE, &v)) goto bad;
			o.synthetic = true;
			o.nsynth = (size_t)v;
			break;
		case O_SCALE:
			if (parse_num(optarg, 1, 100000, &v)) goto bad;
			o.scale = (unsigned)v;
			break;
		case O_ARTICLES:
			if (parse_num(optarg, 1, BENCH_MAX_ARTICLES, &v)) goto bad;
			o.articles = (size_t)v;
			break;
		case O_OFFSET:
			if (parse_num(optarg, 0, BENCH_MAX_ARTICLES, &v)) goto bad;
			o.offset = (size_t)v;
			o.have_offset = true;
			break;
		case O_BATCH:
			if (parse_num(optarg, 1, NA_MAX_BATCH_DEFAULT, &v)) goto bad;
			o.batch = (unsigned)v;
			break;
		case O_INFLIGHT:
			if (parse_num(optarg, 1, MAX_WINDOW, &v)) goto bad;
			o.inflight = (unsigned)v;
			break;
		case O_RATE:
			if (parse_num(optarg, 1, 10000000, &o.rate)) goto bad;
			break;
		case O_SECONDS:
			if (parse_num(optarg, 0.1, 3600, &o.seconds)) goto bad;
			break;
		case O_TMS:
			if (parse_num(optarg, 0.001, 3600000, &o.target_ms)) goto bad;
			break;
		case O_SINCE:
			if (parse_num(optarg, 0, 1e19, &v)) goto bad;
			o.since_ns = (uint64_t)v;
			break;
		case O_TARGET:
			if (parse_num(optarg, 0, 1e12, &o.target)) goto bad;
			break;
		case O_TIMEOUT:
			if (parse_num(optarg, 0.1, 86400, &o.timeout)) goto bad;
			break;
		case O_ROWS: o.rows = optarg; break;
		case O_LABEL: o.label = optarg; break;
		case O_NOTE: o.note = optarg; break;
		case O_HELP: repl_usage(stdout); return 0;
		default: repl_usage(stderr); return 2;
		}
		continue;
bad:
		fprintf(stderr, "newsarch-bench: bad value for --%s: \"%s\"\n", lo[ch - 1].name, optarg);
		return 2;
	}
	if (optind < argc - 2) {
		fprintf(stderr, "newsarch-bench: unexpected argument \"%s\"\n", argv[2 + optind]);
		return 2;
	}
	if (!o.synthetic && !o.corpus && (lag || !strcmp(o.mode, "load"))) {
		fprintf(stderr, "newsarch-bench: --repl %s needs --corpus FILE or --synthetic N\n", o.mode);
		return 2;
	}
	if ((lag || !strcmp(o.mode, "catchup") || !strcmp(o.mode, "wait-streaming")) &&
	    !o.follower_addr) {
		fprintf(stderr, "newsarch-bench: --repl %s needs --follower-addr\n", o.mode);
		return 2;
	}
	if (!strcmp(o.mode, "load"))
		return mode_load(&o);
	if (!strcmp(o.mode, "wait-streaming"))
		return mode_wait_streaming(&o);
	if (!strcmp(o.mode, "catchup"))
		return mode_catchup(&o);
	if (lag)
		return mode_lag(&o);
	fprintf(stderr, "newsarch-bench: unknown --repl mode \"%s\"\n", o.mode);
	repl_usage(stderr);
	return 2;
}

/* ---- --time-import --------------------------------------------------------------- */

/* newsarch-bench --time-import ROWS ADDR SERVER_PID TIMEOUT_S -- CMD ARGS...
 * Runs CMD (the CLI import), its stdout through a pipe (echoed to stderr),
 * and times it from fork to exit. */
int bench_time_import(int argc, char **argv)
{
	if (argc < 8 || strcmp(argv[6], "--") != 0) {
		fprintf(stderr, "usage: newsarch-bench --time-import ROWS ADDR SERVER_PID TIMEOUT_S -- "
				"CMD ARGS...\n");
		return 2;
	}
	const char *rows = argv[2], *addr = argv[3];
	double pid_d = 0, timeout = 0;
	if (parse_num(argv[4], 0, 1 << 30, &pid_d) || parse_num(argv[5], 1, 86400, &timeout)) {
		fprintf(stderr, "newsarch-bench: --time-import: bad SERVER_PID or TIMEOUT_S\n");
		return 2;
	}
	long spid = (long)pid_d;
	rstat s0;
	bool have0 = stats_once(addr, &s0) == 0;
	int pfd[2];
	if (pipe(pfd)) {
		perror("newsarch-bench: pipe");
		return 1;
	}
	double load0 = bench_loadavg1();
	cpu_sample c0 = bench_read_cpu(spid);
	uint64_t t0 = bench_now_ns();
	pid_t child = fork();
	if (child < 0) {
		perror("newsarch-bench: fork");
		return 1;
	}
	if (child == 0) {
		close(pfd[0]);
		dup2(pfd[1], 1);
		close(pfd[1]);
		execvp(argv[7], argv + 7);
		fprintf(stderr, "newsarch-bench: %s: %s\n", argv[7], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	char out[65536];
	size_t olen = 0;
	uint64_t deadline = t0 + (uint64_t)(timeout * 1e9);
	bool killed = false, eof = false;
	int status = 0;
	for (unsigned it = 0; it < 100000000u; it++) {
		uint64_t now = bench_now_ns();
		if (now >= deadline && !killed) {
			fprintf(stderr, "newsarch-bench: %s did not finish within %.0f s; killing it\n",
				argv[7], timeout);
			kill(child, SIGKILL);
			killed = true;
		}
		if (eof)
			break;
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int pr = poll(&p, 1, 100);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		char buf[4096];
		ssize_t got = read(pfd[0], buf, sizeof buf);
		if (got <= 0) {
			eof = true;
			continue;
		}
		fwrite(buf, 1, (size_t)got, stderr);
		size_t take = (size_t)got < sizeof out - 1 - olen ? (size_t)got : sizeof out - 1 - olen;
		memcpy(out + olen, buf, take);
		olen += take;
	}
	close(pfd[0]);
	/* the pipe closed: the child is exiting; bounded wait for it */
	pid_t w = 0;
	for (unsigned it = 0; it < 100000u && w == 0; it++) {
		w = waitpid(child, &status, WNOHANG);
		if (w == 0) {
			if (bench_now_ns() >= deadline && !killed) {
				kill(child, SIGKILL);
				killed = true;
			}
			usleep(1000);
		}
	}
	if (w == 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	uint64_t t1 = bench_now_ns();
	cpu_sample c1 = bench_read_cpu(spid);
	out[olen] = 0;
	double secs = (double)(t1 - t0) / 1e9;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	unsigned long long n = 0, created = 0, updated = 0, unchanged = 0, rejected = 0;
	double cli_s = 0, cli_rate = 0;
	const char *line = strstr(out, " articles in ");
	while (line && line > out && line[-1] != '\n')
		line--;
	bool parsed = line && sscanf(line, "%llu articles in %lf s (%lf/s): created %llu / updated %llu"
				    " / unchanged %llu / rejected %llu", &n, &cli_s, &cli_rate, &created,
				    &updated, &unchanged, &rejected) == 7;
	rstat s1;
	bool have1 = stats_once(addr, &s1) == 0;
	uint64_t stored = have0 && have1 ? s1.articles - s0.articles : 0;
	bool ok = !killed && code == 0 && parsed && have1 && stored == created && created == n;
	double rate = parsed && secs > 0 ? (double)n / secs : 0;
	fprintf(stderr, "  CLI import: %llu articles in %.2f s wall: %.0f articles/s (the CLI says "
		"%.0f/s); the server holds %" PRIu64 " new articles; exit %d\n", n, secs, rate,
		cli_rate, stored, code);
	char f[ROW_FIELDS][640];
	memset(f, 0, sizeof f);
	char num[48];
	snprintf(f[0], sizeof f[0], "CLI import (end to end)");
	snprintf(f[1], sizeof f[1], "1");
	snprintf(f[2], sizeof f[2], "-");
	fmt_int(num, sizeof num, rate);
	snprintf(f[3], sizeof f[3], "%s art/s", num);
	for (int i = 4; i <= 9; i++)
		snprintf(f[i], sizeof f[i], "-");
	if (c0.ok && c1.ok && secs > 0) {
		double tck = (double)sysconf(_SC_CLK_TCK);
		snprintf(f[7], sizeof f[7], "%.0f%%", 100.0 * (double)(c1.total - c0.total) / tck / secs);
		snprintf(f[8], sizeof f[8], "%.0f%%", 100.0 * (double)(c1.loop - c0.loop) / tck / secs);
		snprintf(f[9], sizeof f[9], "%.1f", n ? (double)(c1.total - c0.total) / tck * 1e6 / (double)n : 0);
	}
	snprintf(f[10], sizeof f[10], "-");
	snprintf(f[11], sizeof f[11], "%s", ok ? "" : "FAIL");
	snprintf(f[12], sizeof f[12],
		 "`newsarch import` of the corpus file into a fresh daemon, fork to exit %.2f s (file "
		 "decode, JSON conversion, strict fsync); the CLI's own timer: %.2f s, %.0f/s; created "
		 "%llu / updated %llu / unchanged %llu / rejected %llu; server holds %" PRIu64
		 " new; exit %d; load average %.2f",
		 secs, cli_s, cli_rate, created, updated, unchanged, rejected, stored, code, load0);
	const char *fp[ROW_FIELDS];
	for (int i = 0; i < ROW_FIELDS; i++)
		fp[i] = f[i];
	add_row(rows, fp);
	return ok ? 0 : 1;
}

/* ---- --add-row, --report --------------------------------------------------------- */

/* newsarch-bench --add-row ROWS NAME REASON: a measurement that did not run */
int bench_add_row(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: newsarch-bench --add-row ROWS NAME REASON\n");
		return 2;
	}
	const char *f[ROW_FIELDS] = { argv[3], "-", "-", "skipped", "-", "-", "-", "-", "-", "-", "-",
				      "", argv[4] };
	add_row(argv[2], f);
	return 0;
}

typedef struct lines {
	char **v;
	size_t n;
} lines;

static int read_lines(const char *path, lines *l)
{
	memset(l, 0, sizeof *l);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	l->v = calloc(MAX_LINES, sizeof *l->v);
	if (!l->v) {
		fclose(f);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	while (l->n < MAX_LINES && (got = getline(&line, &cap, f)) >= 0) {
		if (got > 0 && line[got - 1] == '\n')
			line[got - 1] = 0;
		l->v[l->n] = strdup(line);
		if (!l->v[l->n])
			break;
		l->n++;
	}
	free(line);
	fclose(f);
	return 0;
}

static void free_lines(lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* Splits a row into its fields (in place). */
static int split_row(char *s, char *f[ROW_FIELDS])
{
	int n = 0;
	f[n++] = s;
	for (char *p = s; *p && n < ROW_FIELDS; p++)
		if (*p == '\t') {
			*p = 0;
			f[n++] = p + 1;
		}
	for (int i = n; i < ROW_FIELDS; i++)
		f[i] = (char *)"";
	return n;
}

static void print_row(char *const f[ROW_FIELDS])
{
	printf("%-26s %4s %5s %16s %7s %9s %9s %6s %6s %7s   %-16s %s\n", f[0], f[1], f[2], f[3],
	       f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]);
}

static void print_notes(lines *rows)
{
	printf("  replication and CLI import rows: separate daemons (default settings, strict "
	       "durability) started by run.sh after the runs above;\n  srvCPU/loop/us/op: the "
	       "follower's CPU (catch-up, lag) or the importing daemon's (CLI); lag p50/p99 in the "
	       "us columns.\n");
	for (size_t i = 0; i < rows->n; i++) {
		char *f[ROW_FIELDS];
		char *copy = strdup(rows->v[i]);
		if (!copy)
			continue;
		split_row(copy, f);
		if (f[12][0])
			printf("  - %s: %s\n", f[0], f[12]);
		free(copy);
	}
	printf("\n");
}

/* newsarch-bench --report ROWS MAIN_OUTPUT [--json]: prints the main run's
 * output with the rows in its table (before the legend), or, for --json, the
 * main document followed by {"extras": [...]}. */
int bench_report(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: newsarch-bench --report ROWS MAIN_OUTPUT [--json]\n");
		return 2;
	}
	bool json = argc == 5 && strcmp(argv[4], "--json") == 0;
	lines rows, main_out;
	if (read_lines(argv[2], &rows))
		memset(&rows, 0, sizeof rows);
	if (read_lines(argv[3], &main_out))
		memset(&main_out, 0, sizeof main_out);
	if (json) {
		for (size_t i = 0; i < main_out.n; i++)
			printf("%s\n", main_out.v[i]);
		json_t *arr = json_array();
		static const char *const names[ROW_FIELDS] = {
			"name", "connections", "in_flight", "rate", "mb_per_s", "p50_us", "p99_us",
			"server_cpu", "loop_cpu", "cpu_us_per_article", "target", "verdict", "note" };
		for (size_t i = 0; i < rows.n; i++) {
			char *f[ROW_FIELDS];
			split_row(rows.v[i], f);
			json_t *o = json_object();
			for (int k = 0; k < ROW_FIELDS; k++)
				json_object_set_new(o, names[k], json_string(f[k]));
			json_array_append_new(arr, o);
		}
		json_t *root = json_pack("{so}", "extras", arr);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(root);
		free_lines(&rows);
		free_lines(&main_out);
		return 0;
	}
	size_t anchor = main_out.n;
	for (size_t i = 0; i < main_out.n; i++)
		if (strncmp(main_out.v[i], "  rate: articles/s", 18) == 0) {
			anchor = i;
			break;
		}
	for (size_t i = 0; i < anchor; i++)
		printf("%s\n", main_out.v[i]);
	if (anchor == main_out.n && rows.n)
		printf("\n%-26s %4s %5s %16s %7s %9s %9s %6s %6s %7s   %-16s %s\n", "workload", "conn",
		       "inflt", "rate", "MB/s", "p50 us", "p99 us", "srvCPU", "loop", "us/op", "target", "");
	/* a copy per row: print_notes splits again */
	for (size_t i = 0; i < rows.n; i++) {
		char *copy = strdup(rows.v[i]);
		if (!copy)
			continue;
		char *f[ROW_FIELDS];
		split_row(copy, f);
		print_row(f);
		free(copy);
	}
	/* the main legend (up to its blank line), then ours */
	size_t i = anchor;
	for (; i < main_out.n && main_out.v[i][0]; i++)
		printf("%s\n", main_out.v[i]);
	if (rows.n)
		print_notes(&rows);
	else if (i < main_out.n)
		printf("\n");
	for (i = i < main_out.n ? i + 1 : i; i < main_out.n; i++)
		printf("%s\n", main_out.v[i]);
	free_lines(&rows);
	free_lines(&main_out);
	return 0;
}
