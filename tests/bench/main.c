/*
 * main.c - newsarch-bench: load generator and report for newsarchd, in the
 * spirit of redis-benchmark and pgbench.
 *
 * Phases, in order (all against one running server, over loopback TCP):
 *   1. load and convert the corpus, scale it (before any timing);
 *   2. durable ingest: put_batch of --batch articles, --inflight batches
 *      in flight per connection; the articles are split in equal
 *      contiguous parts, one part per entry of --clients;
 *   3. stats: bytes per article on disk, compression ratio;
 *   4. per entry of --clients, for --seconds each: get by random guid with
 *      one request in flight (latency), get with --pipeline in flight
 *      (throughput), range of 100 from a random time, one in flight;
 *   5. server RSS with --idle-conns idle connections, then peak RSS.
 * One thread per connection; non-blocking sockets driven by poll; every
 * loop is bounded in requests and in time.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "rpc.h"

#define MAX_WINDOW 64            /* requests in flight per connection */
#define MAX_CLIENTS 256
#define MAX_CLIENT_SETS 8
#define MAX_RUNS 64
#define MAX_REQUESTS_PER_RUN 50000000ULL  /* per connection; msgids stay unique */
#define REPLY_TIMEOUT_MS 60000   /* no progress for this long: fail */
#define RANGE_LIMIT 100
#define DEFAULT_TARGET 400000
#define DEFAULT_SYNTHETIC 20000
#define DEFAULT_CORPUS "../shared/corpus/reuters21578.jsonl.zst"

/* ---- options --------------------------------------------------------- */

typedef struct opts {
	const char *addr;
	unsigned clients[MAX_CLIENT_SETS];
	unsigned nclients;
	unsigned scale;
	size_t articles;           /* 0: default target, no cap */
	double seconds;
	unsigned batch;
	unsigned inflight;
	unsigned pipeline;
	long server_pid;
	const char *corpus;
	bool force_synthetic;
	size_t synthetic;
	unsigned idle_conns;
	const char *data_dir;
	bool json;
	bool do_ingest, do_get, do_range, do_idle, do_search;
} opts;

/* ---- workloads ------------------------------------------------------- */

typedef enum wl_kind { WL_INGEST, WL_GET, WL_RANGE } wl_kind;

typedef struct shared {
	const bench_corpus *c;
	wl_kind kind;
	unsigned window;
	size_t batch;
	size_t first, last;        /* ingest: articles [first, last) */
	atomic_size_t next_batch;
	size_t nbatches;
	size_t n_ready;            /* reads: articles [0, n_ready) exist */
	uint64_t duration_ns;      /* reads: stop issuing after this; 0: none */
	uint64_t hard_ns;          /* fail after this */
	pthread_barrier_t barrier;
} shared;

typedef struct slot {
	bool used;
	uint32_t msgid;
	uint64_t t0;
	size_t first, n;           /* ingest: the batch */
} slot;

typedef struct worker {
	shared *sh;
	unsigned id;
	pthread_t th;
	bconn c;
	hist h;
	uint64_t rng;
	uint32_t seq;
	unsigned inflight;
	slot slots[MAX_WINDOW];
	uint64_t t_start, t_end;
	uint64_t requests, items, errors, item_errors, not_created, short_ranges, json_bytes;
	bool failed;
	char err[256];
	char first_error[256];
} worker;

typedef struct run_result {
	char name[64];
	wl_kind kind;
	unsigned clients, window;
	size_t first, last;
	uint64_t requests, items, errors, item_errors, not_created, short_ranges;
	uint64_t json_bytes, bytes_in, bytes_out;
	double secs, rate, items_rate, mb_s, p50_us, p99_us, p999_us, mean_us;
	char first_error[256];
	/* server CPU during the run: % of one core, whole process / loop thread */
	bool has_cpu;
	double srv_cpu_pct, loop_cpu_pct, srv_us_per_op;
	double load_before, load_after;
	/* target */
	bool has_target;
	double target;
	bool ok;
} run_result;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void wfail(worker *w, const char *fmt, const char *detail)
{
	if (!w->failed) {
		w->failed = true;
		snprintf(w->err, sizeof w->err, fmt, detail);
	}
}

static int free_slot(worker *w)
{
	for (unsigned i = 0; i < w->sh->window; i++)
		if (!w->slots[i].used)
			return (int)i;
	return -1;
}

/* Packs the next request of the workload into w->c; false when done. */
static bool produce(worker *w, unsigned si)
{
	shared *sh = w->sh;
	const bench_corpus *c = sh->c;
	slot *s = &w->slots[si];
	if (w->requests >= MAX_REQUESTS_PER_RUN)
		return false;
	uint32_t msgid = (w->seq++ << 6) | si;
	msgpack_packer pk;
	switch (sh->kind) {
	case WL_INGEST: {
		size_t b = atomic_fetch_add(&sh->next_batch, 1);
		if (b >= sh->nbatches)
			return false;
		size_t first = sh->first + b * sh->batch;
		size_t last = first + sh->batch < sh->last ? first + sh->batch : sh->last;
		bc_begin(&w->c, msgid, "put_batch", 1, &pk);
		msgpack_pack_array(&pk, (uint32_t)(last - first));
		w->c.ext = c->data + c->off[first];
		w->c.ext_len = c->off[last] - c->off[first];
		s->first = first;
		s->n = last - first;
		break;
	}
	case WL_GET: {
		size_t i = (size_t)(rng_next(&w->rng) % sh->n_ready);
		bc_begin(&w->c, msgid, "get", 1, &pk);
		na_mp_pack_str(&pk, (const char *)c->data + c->off[i] + c->guid_off[i], c->guid_len[i]);
		break;
	}
	case WL_RANGE: {
		size_t span = c->n > RANGE_LIMIT ? c->n - RANGE_LIMIT + 1 : 1;
		int64_t us = c->sorted_us[rng_next(&w->rng) % span];
		int64_t sec = us / 1000000, rem = us % 1000000;
		if (rem < 0) {
			rem += 1000000;
			sec--;
		}
		na_ts ts = { sec, (uint32_t)rem * 1000u };
		bc_begin(&w->c, msgid, "range", 1, &pk);
		msgpack_pack_map(&pk, 2);
		na_mp_pack_cstr(&pk, "from");
		na_mp_pack_ts(&pk, ts);
		na_mp_pack_cstr(&pk, "limit");
		msgpack_pack_uint32(&pk, RANGE_LIMIT);
		break;
	}
	}
	s->used = true;
	s->msgid = msgid;
	s->t0 = bench_now_ns();
	w->requests++;
	w->inflight++;
	return true;
}

static void note_error(worker *w, na_mp *r)
{
	if (w->first_error[0])
		return;
	uint32_t n;
	if (na_mp_map(r, &n))
		return;
	char code[32] = "?", msg[200] = "";
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *v;
		uint32_t kn, vn;
		if (na_mp_str(r, &k, &kn) || na_mp_str(r, &v, &vn))
			return;
		if (na_mp_streq(k, kn, "code"))
			snprintf(code, sizeof code, "%.*s", (int)(vn < 31 ? vn : 31), v);
		else if (na_mp_streq(k, kn, "message"))
			snprintf(msg, sizeof msg, "%.*s", (int)(vn < 199 ? vn : 199), v);
	}
	snprintf(w->first_error, sizeof w->first_error, "%s: %s", code, msg);
}

/* Checks one put_batch result array. */
static int check_batch(worker *w, na_mp *r, const slot *s)
{
	uint32_t n;
	if (na_mp_array(r, &n) || n != s->n)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t m;
		if (na_mp_map(r, &m))
			return -1;
		for (uint32_t j = 0; j < m; j++) {
			const char *k;
			uint32_t kn;
			if (na_mp_str(r, &k, &kn))
				return -1;
			if (na_mp_streq(k, kn, "error")) {
				w->item_errors++;
				note_error(w, r);
				if (r->err)
					return -1;
			} else if (na_mp_streq(k, kn, "status")) {
				const char *v;
				uint32_t vn;
				if (na_mp_str(r, &v, &vn))
					return -1;
				if (!na_mp_streq(v, vn, "created"))
					w->not_created++;
			} else if (na_mp_skip(r)) {
				return -1;
			}
		}
	}
	const bench_corpus *c = w->sh->c;
	for (size_t i = s->first; i < s->first + s->n; i++)
		w->json_bytes += c->json_len[i];
	w->items += n;
	return 0;
}

/* Walks a range result: every article is read through. */
static int check_range(worker *w, na_mp *r)
{
	uint32_t m;
	if (na_mp_map(r, &m))
		return -1;
	for (uint32_t j = 0; j < m; j++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(r, &k, &kn))
			return -1;
		if (na_mp_streq(k, kn, "articles")) {
			uint32_t n;
			if (na_mp_array(r, &n))
				return -1;
			for (uint32_t i = 0; i < n; i++) {
				uint32_t fields;
				if (na_mp_peek(r) != NA_MP_MAP || na_mp_map(r, &fields))
					return -1;
				for (uint32_t f = 0; f < 2 * fields; f++)
					if (na_mp_skip(r))
						return -1;
			}
			if (n != RANGE_LIMIT)
				w->short_ranges++;
			w->items += n;
		} else if (na_mp_skip(r)) {
			return -1;
		}
	}
	return 0;
}

static int handle_reply(worker *w, const uint8_t *msg, size_t len, uint64_t now)
{
	na_mp r;
	uint32_t id;
	bool is_err;
	if (bc_parse_reply(msg, len, &r, &id, &is_err))
		return -1;
	unsigned si = id & (MAX_WINDOW - 1);
	slot *s = &w->slots[si];
	if (si >= w->sh->window || !s->used || s->msgid != id)
		return -1;
	s->used = false;
	w->inflight--;
	hist_add(&w->h, now - s->t0);
	if (is_err) {
		w->errors++;
		note_error(w, &r);
		return 0;
	}
	switch (w->sh->kind) {
	case WL_INGEST:
		return check_batch(w, &r, s);
	case WL_GET:
		if (na_mp_peek(&r) != NA_MP_MAP)
			return -1;
		w->items++;
		return 0;
	case WL_RANGE:
		return check_range(w, &r);
	}
	return -1;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	shared *sh = w->sh;
	pthread_barrier_wait(&sh->barrier);
	w->t_start = bench_now_ns();
	uint64_t soft = sh->duration_ns ? w->t_start + sh->duration_ns : 0;
	uint64_t hard = w->t_start + sh->hard_ns;
	bool stopping = false;
	for (;;) {
		uint64_t now = bench_now_ns();
		if (now >= hard) {
			wfail(w, "%s", "the run exceeded its time bound");
			break;
		}
		if (soft && now >= soft)
			stopping = true;
		while (!stopping && !bc_sending(&w->c) && w->inflight < sh->window) {
			int si = free_slot(w);
			if (si < 0 || !produce(w, (unsigned)si)) {
				stopping = true;
				break;
			}
			if (bc_flush(&w->c)) {
				wfail(w, "write: %s", strerror(errno));
				goto out;
			}
		}
		if (stopping && w->inflight == 0)
			break;
		uint64_t left_ms = (hard - now) / 1000000u + 1;
		int timeout = left_ms < REPLY_TIMEOUT_MS ? (int)left_ms : REPLY_TIMEOUT_MS;
		if (bc_pump(&w->c, w->inflight > 0, timeout)) {
			wfail(w, errno == ETIMEDOUT ? "no reply within the timeout%s" : "connection: %s",
			      errno == ETIMEDOUT ? "" : strerror(errno));
			break;
		}
		const uint8_t *msg;
		size_t len;
		int rc;
		now = bench_now_ns();
		while ((rc = bc_reply(&w->c, &msg, &len)) == 1) {
			if (handle_reply(w, msg, len, now)) {
				wfail(w, "%s", "unexpected reply from the server");
				goto out;
			}
			w->t_end = now;
		}
		if (rc < 0) {
			wfail(w, "%s", "the server sent bytes that are not MessagePack");
			break;
		}
	}
out:
	if (!w->t_end)
		w->t_end = bench_now_ns();
	return NULL;
}

typedef struct bench {
	opts o;
	bench_corpus corpus;
	struct sockaddr_storage ss;
	socklen_t sslen;
	run_result runs[MAX_RUNS];
	unsigned nruns;
	size_t ingested;
	bool failed;
} bench;

static void say(const bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const bench *b, const char *fmt, ...)
{
	(void)b;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* ---- /proc ------------------------------------------------------------ */

typedef struct rss {
	bool ok;
	long vm_rss, vm_hwm, rss_anon, rss_file, rss_shmem; /* kB */
} rss;

static rss read_rss(long pid)
{
	rss r = { 0 };
	if (pid <= 0)
		return r;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return r;
	int lines = 0;
	while (lines++ < 200 && fgets(line, sizeof line, f)) {
		long v;
		if (sscanf(line, "VmRSS: %ld", &v) == 1) r.vm_rss = v;
		else if (sscanf(line, "VmHWM: %ld", &v) == 1) r.vm_hwm = v;
		else if (sscanf(line, "RssAnon: %ld", &v) == 1) r.rss_anon = v;
		else if (sscanf(line, "RssFile: %ld", &v) == 1) r.rss_file = v;
		else if (sscanf(line, "RssShmem: %ld", &v) == 1) r.rss_shmem = v;
	}
	fclose(f);
	r.ok = r.vm_rss > 0;
	return r;
}

/* CPU time (clock ticks) of the whole server and of its main thread, which
 * runs the event loop: tells whether the loop thread is the bottleneck
 * (cpu_sample is in bench.h). */
static bool stat_ticks(const char *path, uint64_t *ticks)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

cpu_sample bench_read_cpu(long pid)
{
	cpu_sample c = { 0 };
	if (pid <= 0)
		return c;
	char path[96];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if (!stat_ticks(path, &c.total))
		return c;
	snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", pid, pid);
	c.ok = stat_ticks(path, &c.loop);
	return c;
}

double bench_loadavg1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static int run_phase(bench *b, wl_kind kind, unsigned clients, unsigned window, size_t first,
		     size_t last, run_result *res)
{
	shared sh;
	memset(&sh, 0, sizeof sh);
	sh.c = &b->corpus;
	sh.kind = kind;
	sh.window = window;
	sh.batch = b->o.batch;
	sh.first = first;
	sh.last = last;
	sh.nbatches = kind == WL_INGEST ? (last - first + sh.batch - 1) / sh.batch : 0;
	atomic_init(&sh.next_batch, 0);
	sh.n_ready = b->ingested;
	sh.duration_ns = kind == WL_INGEST ? 0 : (uint64_t)(b->o.seconds * 1e9);
	/* ingest: a generous bound (1 ms per article, at least 10 minutes) */
	sh.hard_ns = kind == WL_INGEST ? (uint64_t)(600 + (last - first) / 1000) * 1000000000ULL
				       : sh.duration_ns + 120 * 1000000000ULL;
	worker *ws = calloc(clients, sizeof *ws);
	if (!ws) {
		say(b, "out of memory\n");
		return -1;
	}
	unsigned opened = 0;
	int rc = 0;
	for (; opened < clients; opened++) {
		worker *w = &ws[opened];
		w->sh = &sh;
		w->id = opened;
		w->rng = 0x62656e6368ULL * (opened + 1) + (uint64_t)kind * 7919 + (uint64_t)clients;
		if (bc_open(&w->c, &b->ss, b->sslen)) {
			say(b, "connect: %s\n", strerror(errno));
			rc = -1;
			break;
		}
	}
	unsigned started = 0;
	double load0 = bench_loadavg1();
	cpu_sample cpu0 = bench_read_cpu(b->o.server_pid);
	uint64_t wall0 = bench_now_ns();
	if (rc == 0) {
		pthread_barrier_init(&sh.barrier, NULL, clients);
		for (; started < clients; started++)
			if (pthread_create(&ws[started].th, NULL, worker_main, &ws[started])) {
				say(b, "cannot start a thread\n");
				break;
			}
		if (started < clients) {
			/* cannot happen in practice; the barrier would never open */
			say(b, "giving up\n");
			exit(1);
		}
		for (unsigned i = 0; i < started; i++)
			pthread_join(ws[i].th, NULL);
		pthread_barrier_destroy(&sh.barrier);
	}
	cpu_sample cpu1 = bench_read_cpu(b->o.server_pid);
	double wall = (double)(bench_now_ns() - wall0) / 1e9;
	memset(res, 0, sizeof *res);
	res->load_before = load0;
	res->load_after = bench_loadavg1();
	if (cpu0.ok && cpu1.ok && wall > 0) {
		double tck = (double)sysconf(_SC_CLK_TCK);
		res->has_cpu = true;
		res->srv_cpu_pct = 100.0 * (double)(cpu1.total - cpu0.total) / tck / wall;
		res->loop_cpu_pct = 100.0 * (double)(cpu1.loop - cpu0.loop) / tck / wall;
		res->srv_us_per_op = (double)(cpu1.total - cpu0.total) / tck * 1e6;
	}
	res->kind = kind;
	res->clients = clients;
	res->window = window;
	res->first = first;
	res->last = last;
	hist *h = calloc(1, sizeof *h);
	uint64_t t0 = UINT64_MAX, t1 = 0;
	for (unsigned i = 0; i < started; i++) {
		worker *w = &ws[i];
		if (w->failed) {
			say(b, "client %u: %s\n", i, w->err);
			rc = -1;
		}
		if (h)
			hist_merge(h, &w->h);
		if (w->t_start < t0)
			t0 = w->t_start;
		if (w->t_end > t1)
			t1 = w->t_end;
		res->requests += w->requests;
		res->items += w->items;
		res->errors += w->errors;
		res->item_errors += w->item_errors;
		res->not_created += w->not_created;
		res->short_ranges += w->short_ranges;
		res->json_bytes += w->json_bytes;
		res->bytes_in += w->c.bytes_in;
		res->bytes_out += w->c.bytes_out;
		if (!res->first_error[0] && w->first_error[0])
			memcpy(res->first_error, w->first_error, sizeof res->first_error);
	}
	for (unsigned i = 0; i < opened; i++)
		bc_close(&ws[i].c);
	free(ws);
	res->secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	if (res->secs > 0) {
		uint64_t done = kind == WL_INGEST ? res->items : res->requests - res->errors;
		res->rate = (double)done / res->secs;
		res->items_rate = (double)res->items / res->secs;
		res->mb_s = (kind == WL_INGEST ? (double)res->json_bytes : (double)res->bytes_in) /
			    res->secs / 1e6;
	}
	if (res->has_cpu) {
		uint64_t ops = kind == WL_INGEST ? res->items : res->requests;
		res->srv_us_per_op = ops ? res->srv_us_per_op / (double)ops : 0;
	}
	if (h) {
		res->p50_us = hist_quantile(h, 0.50) / 1e3;
		res->p99_us = hist_quantile(h, 0.99) / 1e3;
		res->p999_us = hist_quantile(h, 0.999) / 1e3;
		free(h);
	}
	if (res->errors || res->item_errors) {
		say(b, "  %" PRIu64 " errors; first: %s\n", res->errors + res->item_errors,
		    res->first_error);
		rc = -1;
	}
	return rc;
}

/* ---- stats ------------------------------------------------------------ */

typedef struct srv_stats {
	bool ok;
	uint64_t articles, raw_bytes, stored_bytes, page_bytes, map_used, map_size, dictionary,
		dictionary_bytes, connections;
	double ratio;
	bool compacting;       /* the server is still packing articles into blocks */
	bool indexing;         /* its search index does not cover the log yet */
} srv_stats;

/* Reads the "index" map of stats: whether the index lags the log. */
static bool index_behind(na_mp *r)
{
	uint32_t n;
	uint64_t lag = 0;
	bool ready = false;
	if (na_mp_map(r, &n))
		return false;
	for (uint32_t i = 0; i < n && r->err == 0; i++) {
		const char *k, *v;
		uint32_t kn, vn;
		if (na_mp_str(r, &k, &kn))
			return false;
		if (na_mp_streq(k, kn, "lag"))
			na_mp_u64(r, &lag);
		else if (na_mp_streq(k, kn, "state") && na_mp_str(r, &v, &vn) == 0)
			ready = na_mp_streq(v, vn, "ready");
		else
			na_mp_skip(r);
	}
	return !ready || lag > 0;
}

static srv_stats get_stats(bench *b)
{
	srv_stats st;
	memset(&st, 0, sizeof st);
	bconn c;
	if (bc_open(&c, &b->ss, b->sslen))
		return st;
	const uint8_t *msg;
	size_t len;
	if (bc_call(&c, 1, "stats", NULL, 0, 0, &msg, &len, 30000) == 1) {
		na_mp r;
		uint32_t id, n;
		bool e;
		if (bc_parse_reply(msg, len, &r, &id, &e) == 0 && !e && na_mp_map(&r, &n) == 0) {
			st.ok = true;
			for (uint32_t i = 0; i < n && r.err == 0; i++) {
				const char *k;
				uint32_t kn;
				if (na_mp_str(&r, &k, &kn))
					break;
				struct { const char *name; uint64_t *v; } u[] = {
					{ "articles", &st.articles }, { "raw_bytes", &st.raw_bytes },
					{ "stored_bytes", &st.stored_bytes }, { "page_bytes", &st.page_bytes },
					{ "map_used", &st.map_used }, { "map_size", &st.map_size },
					{ "dictionary", &st.dictionary },
					{ "dictionary_bytes", &st.dictionary_bytes },
					{ "connections", &st.connections },
				};
				bool done = false;
				for (size_t j = 0; j < sizeof u / sizeof u[0]; j++)
					if (na_mp_streq(k, kn, u[j].name)) {
						na_mp_u64(&r, u[j].v);
						done = true;
					}
				if (!done && na_mp_streq(k, kn, "ratio"))
					na_mp_f64(&r, &st.ratio);
				else if (!done && na_mp_streq(k, kn, "compacting"))
					na_mp_bool(&r, &st.compacting);
				else if (!done && na_mp_streq(k, kn, "index"))
					st.indexing = index_behind(&r);
				else if (!done)
					na_mp_skip(&r);
			}
			if (r.err)
				st.ok = false;
		}
	}
	bc_close(&c);
	return st;
}

/* ---- idle connections ---------------------------------------------- */

typedef struct idle_result {
	bool done;
	unsigned conns;
	rss before, after;
	uint64_t server_conns;
	char err[160];
} idle_result;

static void idle_test(bench *b, idle_result *ir)
{
	memset(ir, 0, sizeof *ir);
	unsigned n = b->o.idle_conns;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
		rlim_t want = n + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
			want = rl.rlim_max;
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < n + 16) {
		snprintf(ir->err, sizeof ir->err, "RLIMIT_NOFILE is %llu; need %u",
			 (unsigned long long)rl.rlim_cur, n + 16);
		return;
	}
	bconn *cs = calloc(n, sizeof *cs);
	if (!cs) {
		snprintf(ir->err, sizeof ir->err, "out of memory");
		return;
	}
	ir->before = read_rss(b->o.server_pid);
	unsigned opened = 0;
	for (; opened < n; opened++) {
		if (bc_open(&cs[opened], &b->ss, b->sslen)) {
			snprintf(ir->err, sizeof ir->err, "connection %u: %s", opened, strerror(errno));
			break;
		}
		msgpack_packer pk;
		bc_begin(&cs[opened], 1, "ping", 0, &pk);
		if (bc_flush(&cs[opened])) {
			snprintf(ir->err, sizeof ir->err, "ping %u: %s", opened, strerror(errno));
			opened++;
			break;
		}
	}
	/* every connection gets its pong (each bounded by the reply timeout) */
	unsigned ponged = 0;
	for (unsigned i = 0; i < opened && !ir->err[0]; i++) {
		uint64_t deadline = bench_now_ns() + 10000000000ULL;
		for (;;) {
			const uint8_t *msg;
			size_t len;
			int rc = bc_reply(&cs[i], &msg, &len);
			if (rc == 1) {
				ponged++;
				break;
			}
			if (rc < 0 || bench_now_ns() > deadline ||
			    bc_pump(&cs[i], true, 10000)) {
				snprintf(ir->err, sizeof ir->err, "no pong on connection %u", i);
				break;
			}
		}
	}
	if (!ir->err[0]) {
		srv_stats st = get_stats(b);
		ir->server_conns = st.connections;
		/* let the server settle (freeing per-request state) */
		usleep(200000);
		ir->after = read_rss(b->o.server_pid);
		ir->conns = ponged;
		ir->done = true;
	}
	for (unsigned i = 0; i < opened; i++)
		bc_close(&cs[i]);
	free(cs);
}

/* ---- report ----------------------------------------------------------- */

static const char *wl_name(wl_kind k)
{
	return k == WL_INGEST ? "ingest" : k == WL_GET ? "get" : "range";
}

static void fmt_num(char *buf, size_t cap, double v)
{
	/* thousands separators for readability */
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

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static void print_table(bench *b, const srv_stats *st, const idle_result *ir0,
			const idle_result *ir, const rss *end,
			const rss *start, long long data_file)
{
	const bench_corpus *c = &b->corpus;
	char n1[32], n2[32];
	fmt_num(n1, sizeof n1, (double)c->n);
	printf("\nnewsarch-bench: %s articles from %s\n", n1, c->source);
	printf("  %zu source articles x scale %u (copy k shifted by k x %lld s, guid suffix -k), "
	       "%.1f MB of source JSON; %d CPUs; server pid %ld\n",
	       c->base_n, c->scale, (long long)c->shift_sec, (double)c->json_bytes / 1e6, ncpus(),
	       b->o.server_pid);
	printf("\n%-26s %4s %5s %16s %7s %9s %9s %6s %6s %7s   %-16s %s\n", "workload", "conn",
	       "inflt", "rate", "MB/s", "p50 us", "p99 us", "srvCPU", "loop", "us/op", "target", "");
	for (unsigned i = 0; i < b->nruns; i++) {
		run_result *r = &b->runs[i];
		char rate[48], tgt[48] = "";
		fmt_num(n1, sizeof n1, r->rate);
		snprintf(rate, sizeof rate, "%s %s", n1, r->kind == WL_INGEST ? "art/s" : "q/s");
		if (r->has_target) {
			fmt_num(n2, sizeof n2, r->target);
			snprintf(tgt, sizeof tgt, ">= %s", n2);
		}
		char cpu[3][16] = { "-", "-", "-" };
		if (r->has_cpu) {
			snprintf(cpu[0], sizeof cpu[0], "%.0f%%", r->srv_cpu_pct);
			snprintf(cpu[1], sizeof cpu[1], "%.0f%%", r->loop_cpu_pct);
			snprintf(cpu[2], sizeof cpu[2], "%.1f", r->srv_us_per_op);
		}
		printf("%-26s %4u %5u %16s %7.1f %9.1f %9.1f %6s %6s %7s   %-16s %s\n", r->name,
		       r->clients, r->window, rate, r->mb_s, r->p50_us, r->p99_us, cpu[0], cpu[1],
		       cpu[2], tgt, r->has_target ? (r->ok ? "OK" : "MISS") : "");
	}
	printf("  rate: articles/s (ingest, durable: strict fsync) or queries/s; MB/s: source JSON "
	       "(ingest) or reply bytes (reads);\n  p50/p99: per request (a whole batch for ingest); "
	       "srvCPU/loop: server CPU during the run, whole process / event-loop thread, %% of one "
	       "core;\n  us/op: server CPU microseconds per article (ingest) or query. "
	       "Load average before the first run: %.2f\n\n", b->nruns ? b->runs[0].load_before : -1);
	if (st->ok && st->articles) {
		double per = (double)st->page_bytes / (double)st->articles;
		printf("%-34s %10.1f bytes/article   %-20s %s\n", "on disk (page_bytes / articles)", per,
		       "<= 400", per <= 400 ? "OK" : "MISS");
		printf("%-34s %10.1f bytes/article\n", "stored (stored_bytes / articles)",
		       (double)st->stored_bytes / (double)st->articles);
		printf("%-34s %10.1f bytes/article\n", "raw msgpack (raw_bytes / articles)",
		       (double)st->raw_bytes / (double)st->articles);
		printf("%-34s %10.1f bytes/article\n", "source JSON", (double)c->json_bytes / (double)c->n);
		printf("%-34s %10.2f (dictionary %" PRIu64 ", %" PRIu64 " bytes)\n",
		       "compression ratio (server)", st->ratio, st->dictionary, st->dictionary_bytes);
		printf("%-34s %10.1f bytes/article (map_used %.1f MB)\n", "map used / articles",
		       (double)st->map_used / (double)st->articles, (double)st->map_used / 1e6);
		if (data_file >= 0)
			printf("%-34s %10.1f bytes/article (%.1f MB allocated)\n", "data.mdb on disk",
			       (double)data_file / (double)st->articles, (double)data_file / 1e6);
		printf("%-34s %10" PRIu64 "\n", "articles (server)", st->articles);
	} else {
		printf("stats: not available\n");
	}
	if (ir0->done) {
		char lbl[64];
		double mib = (double)ir0->after.vm_rss / 1024.0;
		snprintf(lbl, sizeof lbl, "RSS, %u idle conns, fresh server", ir0->conns);
		printf("%-34s %10.1f MiB VmRSS      %-20s %s\n", lbl, mib, "<= 64 MiB",
		       mib <= 64 ? "OK" : "MISS");
		printf("%-34s anon %.1f MiB (before opening them: VmRSS %.1f MiB, anon %.1f MiB): "
		       "%.1f KiB anon per connection\n", "", (double)ir0->after.rss_anon / 1024,
		       (double)ir0->before.vm_rss / 1024, (double)ir0->before.rss_anon / 1024,
		       (double)(ir0->after.rss_anon - ir0->before.rss_anon) / (ir0->conns ? ir0->conns : 1));
	}
	if (ir->done) {
		double mib = (double)ir->after.vm_rss / 1024.0;
		char lbl[64];
		snprintf(lbl, sizeof lbl, "RSS, %u idle conns, after the runs", ir->conns);
		printf("%-34s %10.1f MiB VmRSS      %-20s %s\n", lbl,
		       mib, "<= 64 MiB", mib <= 64 ? "OK" : "MISS");
		printf("%-34s anon %.1f MiB, file %.1f MiB, shmem %.1f MiB; before opening them: "
		       "VmRSS %.1f MiB, anon %.1f MiB (%u connections, server counts %" PRIu64 ")\n",
		       "", (double)ir->after.rss_anon / 1024, (double)ir->after.rss_file / 1024,
		       (double)ir->after.rss_shmem / 1024, (double)ir->before.vm_rss / 1024,
		       (double)ir->before.rss_anon / 1024, ir->conns, ir->server_conns);
		printf("%-34s %10.1f KiB anon per idle connection\n", "",
		       (double)(ir->after.rss_anon - ir->before.rss_anon) / (ir->conns ? ir->conns : 1));
	} else if (b->o.idle_conns && b->o.do_idle) {
		printf("idle connections: %s\n", ir->err[0] ? ir->err : "not measured (no --server-pid)");
	}
	if (end->ok)
		printf("%-34s %10.1f MiB VmHWM (at start: VmRSS %.1f MiB)\n", "server peak RSS",
		       (double)end->vm_hwm / 1024, (double)start->vm_rss / 1024);
	printf("\n");
}

static json_t *rss_json(const rss *r)
{
	if (!r->ok)
		return json_null();
	return json_pack("{sI sI sI sI sI}", "vm_rss_kb", (json_int_t)r->vm_rss, "vm_hwm_kb",
			 (json_int_t)r->vm_hwm, "rss_anon_kb", (json_int_t)r->rss_anon, "rss_file_kb",
			 (json_int_t)r->rss_file, "rss_shmem_kb", (json_int_t)r->rss_shmem);
}

static void print_json(bench *b, const srv_stats *st, const idle_result *ir0,
		       const idle_result *ir, const rss *end,
		       const rss *start, long long data_file, bool all_ok,
		       const bench_search_result *sr)
{
	const bench_corpus *c = &b->corpus;
	json_t *root = json_object();
	json_object_set_new(root, "corpus",
			    json_pack("{ss sI sI sI sI sb sI}", "source", c->source, "articles",
				      (json_int_t)c->n, "base_articles", (json_int_t)c->base_n, "scale",
				      (json_int_t)c->scale, "json_bytes", (json_int_t)c->json_bytes,
				      "synthetic", c->synthetic, "shift_seconds",
				      (json_int_t)c->shift_sec));
	json_object_set_new(root, "cpus", json_integer(ncpus()));
	json_t *runs = json_array();
	for (unsigned i = 0; i < b->nruns; i++) {
		run_result *r = &b->runs[i];
		json_t *o = json_pack("{ss ss sI sI sf sf sf sf sf sf sf sI sI sI sI sI}", "name", r->name,
				      "workload", wl_name(r->kind), "clients", (json_int_t)r->clients,
				      "in_flight", (json_int_t)r->window, "seconds", r->secs, "rate",
				      r->rate, "items_per_s", r->items_rate, "mb_per_s", r->mb_s,
				      "p50_us", r->p50_us, "p99_us", r->p99_us, "p999_us", r->p999_us,
				      "requests", (json_int_t)r->requests, "items", (json_int_t)r->items,
				      "errors", (json_int_t)(r->errors + r->item_errors), "not_created",
				      (json_int_t)r->not_created, "short_ranges",
				      (json_int_t)r->short_ranges);
		if (r->kind == WL_INGEST) {
			json_object_set_new(o, "first_article", json_integer((json_int_t)r->first));
			json_object_set_new(o, "last_article", json_integer((json_int_t)r->last));
		}
		if (r->has_cpu) {
			json_object_set_new(o, "server_cpu_pct", json_real(r->srv_cpu_pct));
			json_object_set_new(o, "loop_thread_cpu_pct", json_real(r->loop_cpu_pct));
			json_object_set_new(o, "server_cpu_us_per_op", json_real(r->srv_us_per_op));
		}
		json_object_set_new(o, "loadavg_before", json_real(r->load_before));
		json_object_set_new(o, "loadavg_after", json_real(r->load_after));
		if (r->has_target) {
			json_object_set_new(o, "target", json_real(r->target));
			json_object_set_new(o, "ok", json_boolean(r->ok));
		}
		json_array_append_new(runs, o);
	}
	json_object_set_new(root, "runs", runs);
	if (st->ok && st->articles) {
		json_t *s = json_pack("{sI sI sI sI sI sI sf sI sf sf}", "articles",
				      (json_int_t)st->articles, "raw_bytes", (json_int_t)st->raw_bytes,
				      "stored_bytes", (json_int_t)st->stored_bytes, "page_bytes",
				      (json_int_t)st->page_bytes, "map_used", (json_int_t)st->map_used,
				      "dictionary", (json_int_t)st->dictionary, "ratio", st->ratio,
				      "dictionary_bytes", (json_int_t)st->dictionary_bytes,
				      "page_bytes_per_article",
				      (double)st->page_bytes / (double)st->articles,
				      "stored_bytes_per_article",
				      (double)st->stored_bytes / (double)st->articles);
		json_object_set_new(s, "target_page_bytes_per_article", json_integer(400));
		json_object_set_new(s, "ok", json_boolean((double)st->page_bytes / (double)st->articles <= 400));
		if (data_file >= 0)
			json_object_set_new(s, "data_file_bytes", json_integer(data_file));
		json_object_set_new(root, "storage", s);
	}
	if (ir->done) {
		json_t *o = json_pack("{sI sI so so}", "connections", (json_int_t)ir->conns,
				      "server_connections", (json_int_t)ir->server_conns, "before",
				      rss_json(&ir->before), "after", rss_json(&ir->after));
		json_object_set_new(o, "target_mib", json_integer(64));
		json_object_set_new(o, "ok", json_boolean(ir->after.vm_rss <= 64 * 1024));
		json_object_set_new(root, "idle", o);
	}
	if (ir0->done) {
		json_t *o = json_pack("{sI so so}", "connections", (json_int_t)ir0->conns, "before",
				      rss_json(&ir0->before), "after", rss_json(&ir0->after));
		json_object_set_new(o, "ok", json_boolean(ir0->after.vm_rss <= 64 * 1024));
		json_object_set_new(root, "idle_fresh", o);
	}
	if (sr && sr->done) {
		json_t *rows = json_array();
		for (unsigned i = 0; i < sr->nrows; i++) {
			const bench_search_row *w = &sr->rows[i];
			json_array_append_new(rows, json_pack("{ss sI sf sf sf sf}", "name", w->name,
							      "queries", (json_int_t)w->queries, "rate",
							      w->rate, "p50_us", w->p50_us, "p99_us",
							      w->p99_us, "mean_total", w->mean_total));
		}
		json_t *o = json_pack("{so sI sI sI sI sf sf}", "queries", rows, "articles",
				      (json_int_t)sr->articles, "index_docs", (json_int_t)sr->index_docs,
				      "index_bytes", (json_int_t)sr->index_bytes, "stored_bytes",
				      (json_int_t)sr->stored_bytes, "index_rate", sr->index_rate,
				      "catchup_s", sr->catchup_s);
		json_object_set_new(o, "index_bytes_per_article",
				    json_real(sr->articles ? (double)sr->index_bytes / (double)sr->articles : 0));
		json_object_set_new(root, "search", o);
	}
	json_object_set_new(root, "server_rss_start", rss_json(start));
	json_object_set_new(root, "server_rss_end", rss_json(end));
	json_object_set_new(root, "all_ok", json_boolean(all_ok));
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(root);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: newsarch-bench [options]\n"
		"  --addr HOST:PORT     server (loopback only; default " NA_DEFAULT_ADDR ")\n"
		"  --corpus FILE        JSON lines, plain or .zst (default " DEFAULT_CORPUS
		" if present, else synthetic)\n"
		"  --synthetic N        generate N base articles (~1 KB) instead (default corpus: %d)\n"
		"  --scale N            copies of the corpus (default: enough for %d articles)\n"
		"  --articles N         at most N articles (also the target when --scale is not given)\n"
		"  --clients LIST       client connections per run, e.g. 1,4 (default 1,4)\n"
		"  --seconds S          duration of each read workload (default 5)\n"
		"  --batch N            articles per put_batch (default 1000)\n"
		"  --inflight N         put_batch requests in flight per connection (default 4)\n"
		"  --pipeline N         gets in flight per connection for the pipelined run "
		"(default 32; 0: skip)\n"
		"  --idle-conns N       idle connections for the RSS measurement (default 1000; 0: skip)\n"
		"  --server-pid PID     server process, for RSS from /proc/PID/status\n"
		"  --data-dir DIR       server data directory, to report the data file size\n"
		"  --json               machine-readable output on stdout\n"
		"  --workloads LIST     any of ingest,get,range,search,idle (default all); without ingest\n"
		"                       the server must already hold the same articles\n"
		"helpers for tests/bench/run.sh:\n"
		"  newsarch-bench --free-port            print a free TCP port on 127.0.0.1\n"
		"  newsarch-bench --wait-ready PATH [S]  bind NOTIFY_SOCKET PATH, wait S s for READY=1\n"
		"  newsarch-bench --now-ns               print CLOCK_MONOTONIC in nanoseconds\n"
		"  newsarch-bench --repl MODE [options]  replication: load, wait-streaming, catchup, lag\n"
		"                                        (--repl MODE --help lists the options)\n"
		"  newsarch-bench --time-import ROWS ADDR SERVER_PID TIMEOUT_S -- CMD ARGS...\n"
		"                                        time a CLI import, append its row to ROWS\n"
		"  newsarch-bench --add-row ROWS NAME REASON   a row for a skipped measurement\n"
		"  newsarch-bench --report ROWS MAIN_OUTPUT [--json]  the main table with ROWS in it\n"
		"  newsarch-bench --peer MODE [options]  Redis/PostgreSQL side of make bench-compare\n"
		"                                        (--peer MODE --help lists the options)\n",
		DEFAULT_SYNTHETIC, DEFAULT_TARGET);
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *e;
	errno = 0;
	unsigned long v = strtoul(s, &e, 10);
	if (errno || e == s || *e || *s == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}


/* ---- helpers for run.sh ---------------------------------------------- */

/* Prints a free TCP port on 127.0.0.1. */
static int helper_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("newsarch-bench: free port");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

/* Binds a datagram socket at path (the NOTIFY_SOCKET of a daemon about to
 * start), and waits at most `seconds` for READY=1. Exit status 0 when it
 * came. The socket file is removed on the way out. */
static int helper_wait_ready(const char *path, const char *secs)
{
	unsigned long seconds = 60;
	if (secs && parse_ulong(secs, 1, 3600, &seconds)) {
		fprintf(stderr, "newsarch-bench: bad timeout \"%s\"\n", secs);
		return 2;
	}
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof un.sun_path) {
		fprintf(stderr, "newsarch-bench: socket path too long: %s\n", path);
		return 2;
	}
	memcpy(un.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof un) != 0) {
		perror("newsarch-bench: notify socket");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	int rc = 1;
	uint64_t deadline = bench_now_ns() + (uint64_t)seconds * 1000000000ULL;
	for (;;) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		char buf[4096];
		ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
		if (got <= 0)
			continue;
		buf[got] = 0;
		/* READY=1 as a whole line of the datagram */
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			if (strcmp(line, "READY=1") == 0)
				rc = 0;
		if (rc == 0)
			break;
	}
	close(fd);
	unlink(path);
	if (rc)
		fprintf(stderr, "newsarch-bench: no READY=1 within %lu s\n", seconds);
	return rc;
}

static int parse_opts(int argc, char **argv, opts *o)
{
	memset(o, 0, sizeof *o);
	o->addr = NA_DEFAULT_ADDR;
	o->clients[0] = 1;
	o->clients[1] = 4;
	o->nclients = 2;
	o->seconds = 5;
	o->batch = 1000;
	o->inflight = 4;
	o->pipeline = 32;
	o->idle_conns = 1000;
	o->synthetic = DEFAULT_SYNTHETIC;
	o->do_ingest = o->do_get = o->do_range = o->do_idle = o->do_search = true;
	enum { O_ADDR = 1, O_CORPUS, O_SYNTH, O_SCALE, O_ARTICLES, O_CLIENTS, O_SECONDS, O_BATCH,
	       O_INFLIGHT, O_PIPELINE, O_IDLE, O_PID, O_DATADIR, O_JSON, O_WORKLOADS, O_HELP };
	static const struct option lo[] = {
		{ "addr", required_argument, NULL, O_ADDR },
		{ "corpus", required_argument, NULL, O_CORPUS },
		{ "synthetic", required_argument, NULL, O_SYNTH },
		{ "scale", required_argument, NULL, O_SCALE },
		{ "articles", required_argument, NULL, O_ARTICLES },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "pipeline", required_argument, NULL, O_PIPELINE },
		{ "idle-conns", required_argument, NULL, O_IDLE },
		{ "server-pid", required_argument, NULL, O_PID },
		{ "data-dir", required_argument, NULL, O_DATADIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "workloads", required_argument, NULL, O_WORKLOADS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	unsigned long v;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case O_ADDR: o->addr = optarg; break;
		case O_CORPUS: o->corpus = optarg; break;
		case O_SYNTH:
			o->force_synthetic = true;
			if (optarg) {
				if (parse_ulong(optarg, 1, BENCH_MAX_BASE, &v))
					goto bad;
				o->synthetic = v;
			}
			break;
		case O_SCALE:
			if (parse_ulong(optarg, 1, 100000, &v))
				goto bad;
			o->scale = (unsigned)v;
			break;
		case O_ARTICLES:
			if (parse_ulong(optarg, 1, BENCH_MAX_ARTICLES, &v))
				goto bad;
			o->articles = v;
			break;
		case O_CLIENTS: {
			o->nclients = 0;
			const char *p = optarg;
			while (*p) {
				char *e;
				unsigned long n = strtoul(p, &e, 10);
				if (e == p || n < 1 || n > MAX_CLIENTS || o->nclients >= MAX_CLIENT_SETS ||
				    (*e && *e != ','))
					goto bad;
				o->clients[o->nclients++] = (unsigned)n;
				p = *e ? e + 1 : e;
			}
			if (o->nclients == 0)
				goto bad;
			break;
		}
		case O_SECONDS: {
			char *e;
			double s = strtod(optarg, &e);
			if (*e || !(s > 0 && s <= 3600))
				goto bad;
			o->seconds = s;
			break;
		}
		case O_BATCH:
			if (parse_ulong(optarg, 1, NA_MAX_BATCH_DEFAULT, &v))
				goto bad;
			o->batch = (unsigned)v;
			break;
		case O_INFLIGHT:
			if (parse_ulong(optarg, 1, MAX_WINDOW, &v))
				goto bad;
			o->inflight = (unsigned)v;
			break;
		case O_PIPELINE:
			if (parse_ulong(optarg, 0, MAX_WINDOW, &v))
				goto bad;
			o->pipeline = (unsigned)v;
			break;
		case O_IDLE:
			if (parse_ulong(optarg, 0, 100000, &v))
				goto bad;
			o->idle_conns = (unsigned)v;
			break;
		case O_PID:
			if (parse_ulong(optarg, 1, 1ul << 30, &v))
				goto bad;
			o->server_pid = (long)v;
			break;
		case O_DATADIR: o->data_dir = optarg; break;
		case O_JSON: o->json = true; break;
		case O_WORKLOADS: {
			o->do_ingest = o->do_get = o->do_range = o->do_idle = o->do_search = false;
			const char *p = optarg;
			while (*p) {
				size_t n = strcspn(p, ",");
				if (n == 6 && !strncmp(p, "ingest", 6)) o->do_ingest = true;
				else if (n == 3 && !strncmp(p, "get", 3)) o->do_get = true;
				else if (n == 5 && !strncmp(p, "range", 5)) o->do_range = true;
				else if (n == 4 && !strncmp(p, "idle", 4)) o->do_idle = true;
				else if (n == 6 && !strncmp(p, "search", 6)) o->do_search = true;
				else goto bad;
				p += n;
				if (*p == ',')
					p++;
			}
			break;
		}
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		continue;
bad:
		fprintf(stderr, "newsarch-bench: bad value for --%s: \"%s\"\n", lo[ch - 1].name, optarg);
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "newsarch-bench: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	return 0;
}

static void add_target(run_result *r, double target)
{
	r->has_target = true;
	r->target = target;
	r->ok = r->rate >= target;
}

int main(int argc, char **argv)
{
	static bench b;
	if (argc == 2 && strcmp(argv[1], "--free-port") == 0)
		return helper_free_port();
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "--wait-ready") == 0)
		return helper_wait_ready(argv[2], argc == 4 ? argv[3] : NULL);
	if (argc == 2 && strcmp(argv[1], "--now-ns") == 0) {
		printf("%" PRIu64 "\n", bench_now_ns());
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--repl") == 0)
		return bench_repl_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--time-import") == 0)
		return bench_time_import(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--report") == 0)
		return bench_report(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--add-row") == 0)
		return bench_add_row(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--peer") == 0)
		return bench_peer_main(argc, argv);
	if (parse_opts(argc, argv, &b.o))
		return 2;
	char err[512];
	if (bc_resolve(b.o.addr, &b.ss, &b.sslen, err, sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return 2;
	}
	const char *path = b.o.corpus;
	if (!path && !b.o.force_synthetic && access(DEFAULT_CORPUS, R_OK) == 0)
		path = DEFAULT_CORPUS;
	if (b.o.force_synthetic)
		path = NULL;
	say(&b, "loading %s ...\n", path ? path : "synthetic articles");
	uint64_t t = bench_now_ns();
	size_t target = b.o.articles ? b.o.articles : DEFAULT_TARGET;
	if (bench_corpus_load(&b.corpus, path, b.o.synthetic, b.o.scale, target, b.o.articles, err,
			      sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return 1;
	}
	say(&b, "  %zu articles (%zu x %u), %.1f MB JSON -> %.1f MB msgpack in %.1f s\n", b.corpus.n,
	    b.corpus.base_n, b.corpus.scale, (double)b.corpus.json_bytes / 1e6,
	    (double)b.corpus.len / 1e6, (double)(bench_now_ns() - t) / 1e9);

	/* the server answers? */
	{
		bconn c;
		const uint8_t *msg;
		size_t len;
		if (bc_open(&c, &b.ss, b.sslen) ||
		    bc_call(&c, 1, "ping", NULL, 0, 0, &msg, &len, 10000) != 1) {
			fprintf(stderr, "newsarch-bench: no server at %s: %s\n", b.o.addr, strerror(errno));
			bc_close(&c);
			bench_corpus_free(&b.corpus);
			return 1;
		}
		bc_close(&c);
	}
	rss start = read_rss(b.o.server_pid);
	srv_stats st0 = get_stats(&b);
	if (st0.ok && st0.articles && b.o.do_ingest)
		say(&b, "warning: the server already holds %" PRIu64 " articles\n", st0.articles);

	/* idle connections on the fresh server: what connections alone cost */
	idle_result ir0;
	memset(&ir0, 0, sizeof ir0);
	if (b.o.do_idle && b.o.idle_conns && b.o.server_pid) {
		say(&b, "idle: %u connections to the fresh server ...\n", b.o.idle_conns);
		idle_test(&b, &ir0);
		if (!ir0.done)
			say(&b, "  %s\n", ir0.err);
	}

	/* ingest: equal contiguous parts, one per client count */
	size_t first = 0;
	if (!b.o.do_ingest) {
		if (!st0.ok || st0.articles < b.corpus.n) {
			fprintf(stderr, "newsarch-bench: without the ingest workload the server must hold "
				"the %zu articles already (it has %" PRIu64 ")\n", b.corpus.n, st0.articles);
			bench_corpus_free(&b.corpus);
			return 1;
		}
		b.ingested = b.corpus.n;
	}
	uint64_t ingest_t0 = b.o.do_ingest ? bench_now_ns() : 0;
	for (unsigned i = 0; i < b.o.nclients && b.nruns < MAX_RUNS && b.o.do_ingest; i++) {
		size_t last = i + 1 == b.o.nclients ? b.corpus.n
						    : b.corpus.n * (i + 1) / b.o.nclients;
		run_result *r = &b.runs[b.nruns++];
		say(&b, "ingest: articles %zu..%zu, %u client(s), %u x %u in flight each ...\n", first,
		    last, b.o.clients[i], b.o.inflight, b.o.batch);
		if (run_phase(&b, WL_INGEST, b.o.clients[i], b.o.inflight, first, last, r))
			b.failed = true;
		snprintf(r->name, sizeof r->name, "ingest, put_batch %u", b.o.batch);
		add_target(r, 100000);
		say(&b, "  %.0f articles/s, %.1f MB/s JSON, batch p50 %.0f us p99 %.0f us\n", r->rate,
		    r->mb_s, r->p50_us, r->p99_us);
		b.ingested = last;
		first = last;
		if (b.failed)
			break;
	}
	uint64_t ingest_t1 = b.o.do_ingest ? bench_now_ns() : 0;
	/* search: the index catching up with the ingest, then query latency */
	static bench_search_result sr;
	if (b.o.do_search && !b.failed && b.ingested) {
		say(&b, "search: waiting for the index, then %.1f s per query kind ...\n", b.o.seconds);
		if (bench_search(&b.ss, b.sslen, &b.corpus, ingest_t0, ingest_t1, b.o.seconds, &sr))
			say(&b, "  %s\n", sr.err);
		else
			say(&b, "  index %.1f bytes/article, %.0f articles/s indexed\n",
			    sr.articles ? (double)sr.index_bytes / (double)sr.articles : 0.0, sr.index_rate);
	}
	srv_stats st = get_stats(&b);
	if (st.ok && (st.compacting || st.indexing)) {
		/* bytes on disk are measured once background compaction and the
		 * search index caught up (polled every 100 ms, at most 10
		 * minutes) */
		double t0 = (double)bench_now_ns() / 1e9, waited;
		while (st.ok && (st.compacting || st.indexing) &&
		       (double)bench_now_ns() / 1e9 - t0 < 600) {
			struct timespec ts = { 0, 100000000 };
			nanosleep(&ts, NULL);
			st = get_stats(&b);
		}
		waited = (double)bench_now_ns() / 1e9 - t0;
		say(&b, "compaction and indexing caught up %.1f s after the ingest ended\n", waited);
	}
	if (st.ok)
		say(&b, "stats: %" PRIu64 " articles, page_bytes %" PRIu64 ", ratio %.2f\n",
		    st.articles, st.page_bytes, st.ratio);

	for (unsigned i = 0; i < b.o.nclients && !b.failed && b.ingested; i++) {
		unsigned cl = b.o.clients[i];
		struct { wl_kind k; unsigned win; const char *name; } wl[] = {
			{ WL_GET, 1, "get by guid" },
			{ WL_GET, b.o.pipeline, "get by guid, pipelined" },
			{ WL_RANGE, 1, "range 100 (full articles)" },
		};
		for (size_t j = 0; j < sizeof wl / sizeof wl[0] && b.nruns < MAX_RUNS; j++) {
			if (wl[j].win == 0 || (wl[j].k == WL_GET && !b.o.do_get) ||
			    (wl[j].k == WL_RANGE && !b.o.do_range))
				continue;
			run_result *r = &b.runs[b.nruns++];
			say(&b, "%s: %u client(s), %u in flight each, %.1f s ...\n", wl[j].name, cl,
			    wl[j].win, b.o.seconds);
			if (run_phase(&b, wl[j].k, cl, wl[j].win, 0, 0, r))
				b.failed = true;
			snprintf(r->name, sizeof r->name, "%s", wl[j].name);
			if (wl[j].k == WL_GET && wl[j].win == 1 && cl == 1)
				add_target(r, 20000);
			if (wl[j].k == WL_GET && wl[j].win == 1 && cl == 4)
				add_target(r, 45000);
			if (wl[j].k == WL_RANGE && cl == 1)
				add_target(r, 5000);
			say(&b, "  %.0f q/s, p50 %.1f us, p99 %.1f us%s\n", r->rate, r->p50_us, r->p99_us,
			    r->short_ranges ? " (some ranges were short)" : "");
		}
	}

	idle_result ir;
	memset(&ir, 0, sizeof ir);
	if (b.o.do_idle && b.o.idle_conns && b.o.server_pid && !b.failed) {
		say(&b, "idle: %u connections ...\n", b.o.idle_conns);
		idle_test(&b, &ir);
		if (!ir.done)
			say(&b, "  %s\n", ir.err);
	}
	rss end = read_rss(b.o.server_pid);
	long long data_file = -1;
	if (b.o.data_dir) {
		char p[1024];
		struct stat sb;
		snprintf(p, sizeof p, "%s/data.mdb", b.o.data_dir);
		if (stat(p, &sb) == 0)
			data_file = (long long)sb.st_blocks * 512;
	}
	bool all_ok = !b.failed;
	for (unsigned i = 0; i < b.nruns; i++)
		if (b.runs[i].has_target && !b.runs[i].ok)
			all_ok = false;
	if (b.o.json)
		print_json(&b, &st, &ir0, &ir, &end, &start, data_file, all_ok, &sr);
	else
		print_table(&b, &st, &ir0, &ir, &end, &start, data_file);
	if (!b.o.json && b.o.do_search)
		bench_search_print(&sr);
	bench_corpus_free(&b.corpus);
	if (b.failed) {
		fprintf(stderr, "newsarch-bench: FAILED (see the messages above)\n");
		return 1;
	}
	return 0;
}
