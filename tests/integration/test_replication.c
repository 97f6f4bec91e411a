/*
 * test_replication.c - log-shipping replication end to end, with real
 * newsarchd processes on loopback (each in its own temp dir): bootstrap by
 * snapshot, kill -9 of either side mid-way, log retention, link cuts
 * through a proxy, cascading and promotion, read-only followers, a follower
 * moved to another archive, synchronous writes, min_seq reads and the
 * change feed; a follower whose writer falls behind (its own pause in
 * reading is not the primary's silence) and one that fails after every
 * handshake (it backs off).
 *
 * Nothing here sleeps to synchronise: every wait is a bounded poll of an
 * observable condition (stats, a proxy counter, a thread's progress) with a
 * short nanosleep between polls.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "daemon.h"
#include "proxy.h"
#include "testrpc.h"

#define BASE_SEC 1500000000
#define WAIT_MS 90000 /* the longest any convergence may take (ASan included) */

/* ---- daemons and proxies owned by the running test --------------------- */

enum { NDAEMONS = 5 };
static na_test_daemon D[NDAEMONS];
static na_proxy *PROXY;
static char proxy_addr[64];

typedef struct ingest ingest;
static ingest *BG; /* a background writer, stopped by teardown if a test fails */
static void bg_stop(ingest *g);

static int setup(void **state)
{
	(void)state;
	memset(D, 0, sizeof D);
	PROXY = NULL;
	BG = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int rc = 0;
	/* test knobs a failed test may have left set (newsarchd(8), ENVIRONMENT) */
	unsetenv("NEWSARCHD_TEST_LINK_TIMEOUT_MS");
	unsetenv("NEWSARCHD_TEST_SNAPSHOT_STALL_MS");
	if (BG)
		bg_stop(BG);
	BG = NULL;
	na_proxy_stop(PROXY);
	PROXY = NULL;
	for (int i = 0; i < NDAEMONS; i++)
		if (D[i].dir[0] && na_test_daemon_cleanup(&D[i]) != 0)
			rc = -1;
	return rc;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The pause between two polls of a bounded wait loop. */
static void poll_pause(void)
{
	struct timespec ts = { 0, 5 * 1000000 };
	nanosleep(&ts, NULL);
}

/* Starts D[i] as a primary with extra arguments (NULL-ended). */
static void start_daemon(int i, ...)
{
	na_test_daemon *d = &D[i];
	memset(d, 0, sizeof *d);
	int n = 0;
	d->extra[n++] = "--train-min";
	d->extra[n++] = "1000";
	va_list ap;
	va_start(ap, i);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 30)
		d->extra[n++] = a;
	va_end(ap);
	d->extra[n] = NULL;
	assert_int_equal(na_test_daemon_start(d), 0);
}

/* Points D[i] (stopped) at a primary, a new one or its first, and starts
 * it again. */
static void refollow(int i, const char *addr)
{
	na_test_daemon *d = &D[i];
	int k = 0;
	bool set = false;
	for (; d->extra[k]; k++)
		if (strcmp(d->extra[k], "--follow") == 0) {
			d->extra[k + 1] = addr;
			set = true;
		}
	if (!set) {
		assert_true(k + 2 < 32);
		d->extra[k] = "--follow";
		d->extra[k + 1] = addr;
		d->extra[k + 2] = NULL;
	}
	assert_int_equal(na_test_daemon_restart(d), 0);
}

/* SIGTERM, and the daemon must exit 0. */
static void stop_clean(int i)
{
	int st = na_test_daemon_stop(&D[i]);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		FILE *f = fopen(D[i].log, "r");
		char line[1024];
		while (f && fgets(line, sizeof line, f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("daemon %d did not exit cleanly (status %d); log %s", i, st, D[i].log);
}

static void conn(int i, na_trpc *t)
{
	int fd = na_test_connect_tcp(&D[i]);
	assert_true(fd >= 0);
	na_trpc_init(t, fd);
	t->timeout_ms = 30000;
}

/* How many lines of a daemon's log contain needle. */
static int log_count(int i, const char *needle)
{
	FILE *f = fopen(D[i].log, "r");
	if (!f)
		return 0;
	char line[2048];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

#define SNAPSHOTS(i) log_count((i), "receiving a snapshot")

/* ---- articles ------------------------------------------------------------ */

typedef struct params {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} params;

static void p_init(params *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void p_free(params *p) { msgpack_sbuffer_destroy(&p->sb); }

static void guid_of(char *g, size_t n, const char *prefix, int i)
{
	snprintf(g, n, "%s-%07d", prefix, i);
}

/* A deterministic article: the same (prefix, i, body, v) packs the same
 * bytes. Variant v > 0 is a later edit of article i: another title and
 * body, and published v * 10^7 s later (so its key moves). */
static void pack_art_v(msgpack_packer *pk, const char *prefix, int i, int body_bytes, int v)
{
	static const char *const words[] = {
		"market", "council", "river", "season", "report", "budget", "storm", "harbour",
		"election", "museum", "railway", "festival", "court", "school", "vaccine", "bridge",
		"orchestra", "drought", "treaty", "satellite", "harvest", "strike", "airport", "forest",
		"minister", "league", "factory", "glacier", "summit", "archive", "census", "tunnel",
	};
	char g[48], title[96], body[4096];
	guid_of(g, sizeof g, prefix, i);
	uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)prefix[0] * 40503u ^ (uint32_t)v * 97u;
	snprintf(title, sizeof title, "%s %s number %d", words[x % 32], words[(x >> 5) % 32], i);
	size_t len = 0;
	if (body_bytes > (int)sizeof body - 32)
		body_bytes = (int)sizeof body - 32;
	while ((int)len < body_bytes) {
		x = x * 1103515245u + 12345u;
		len += (size_t)snprintf(body + len, sizeof body - len, "%s %u ", words[(x >> 16) % 32],
					(x >> 8) % 1000);
	}
	msgpack_pack_map(pk, 4);
	na_mp_pack_cstr(pk, "guid");
	na_mp_pack_cstr(pk, g);
	na_mp_pack_cstr(pk, "published");
	na_mp_pack_ts(pk, (na_ts){ BASE_SEC + i + (int64_t)v * 10000000, (uint32_t)(i % 1000) * 1000 });
	na_mp_pack_cstr(pk, "title");
	na_mp_pack_cstr(pk, title);
	na_mp_pack_cstr(pk, "body");
	na_mp_pack_str(pk, body, len);
}

static void pack_art(msgpack_packer *pk, const char *prefix, int i, int body_bytes)
{
	pack_art_v(pk, prefix, i, body_bytes, 0);
}

/* Checks a put_batch result array: every item created/updated/unchanged.
 * Returns NULL or a message (static). */
static const char *batch_error(const msgpack_object *err, const msgpack_object *res, uint32_t n)
{
	static char msg[300];
	if (err->type != MSGPACK_OBJECT_NIL) {
		const msgpack_object *m = na_obj_get(err, "message");
		snprintf(msg, sizeof msg, "put_batch failed: %.*s", m ? (int)m->via.str.size : 1,
			 m ? m->via.str.ptr : "?");
		return msg;
	}
	if (res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != n)
		return "put_batch: result is not an array of one result per article";
	for (uint32_t k = 0; k < n; k++) {
		const msgpack_object *it = &res->via.array.ptr[k];
		const msgpack_object *st = na_obj_get(it, "status");
		if (!st) {
			const msgpack_object *m = na_obj_get(na_obj_get(it, "error"), "message");
			snprintf(msg, sizeof msg, "put_batch item %u: %.*s", k, m ? (int)m->via.str.size : 1,
				 m ? m->via.str.ptr : "?");
			return msg;
		}
	}
	return NULL;
}

/* Writes articles [from, from+count) of prefix to D[i], pipelined put_batch
 * calls of `batch` articles, at most 4 in flight. */
static void ingest_sync(int i, const char *prefix, int from, int count, int body, int batch)
{
	na_trpc t;
	conn(i, &t);
	int sent = 0, inflight = 0;
	uint32_t sizes[64] = { 0 }, ids[64] = { 0 };
	while (sent < count || inflight > 0) {
		if (sent < count && inflight < 4) {
			int n = count - sent < batch ? count - sent : batch;
			params p;
			p_init(&p);
			msgpack_pack_array(&p.pk, (uint32_t)n);
			for (int k = 0; k < n; k++)
				pack_art(&p.pk, prefix, from + sent + k, body);
			uint32_t id = na_trpc_request(&t, "put_batch", 1, &p.sb);
			p_free(&p);
			assert_true(id != 0);
			ids[id % 64] = id;
			sizes[id % 64] = (uint32_t)n;
			sent += n;
			inflight++;
			continue;
		}
		msgpack_object o;
		assert_int_equal(na_trpc_read(&t, &o), 1);
		assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(o.via.array.size, 4);
		uint32_t id = (uint32_t)o.via.array.ptr[1].via.u64;
		assert_int_equal(ids[id % 64], id);
		const char *e = batch_error(&o.via.array.ptr[2], &o.via.array.ptr[3], sizes[id % 64]);
		if (e)
			fail_msg("%s", e);
		inflight--;
	}
	na_trpc_close(&t);
}

/* ---- a background writer (a thread; no cmocka calls in it) --------------- */

struct ingest {
	pthread_t thread;
	int port;
	char prefix[16];
	int batch, body, max_batches;
	atomic_bool stop;
	atomic_bool done;
	atomic_int acked_batches;  /* batches whose reply said OK */
	unsigned char *acked;      /* per batch: 1 once acknowledged */
	char error[300];           /* a reply that was not OK */
	bool conn_lost;
};

static void *bg_main(void *arg)
{
	ingest *g = arg;
	na_test_daemon tmp = { .port = g->port };
	int fd = na_test_connect_tcp(&tmp);
	if (fd < 0) {
		snprintf(g->error, sizeof g->error, "cannot connect");
		atomic_store(&g->done, true);
		return NULL;
	}
	na_trpc t;
	na_trpc_init(&t, fd);
	t.timeout_ms = 30000;
	uint32_t batch_of[64] = { 0 }, ids[64] = { 0 };
	int next = 0, inflight = 0;
	while ((next < g->max_batches && !atomic_load(&g->stop)) || inflight > 0) {
		if (next < g->max_batches && !atomic_load(&g->stop) && inflight < 4) {
			params p;
			p_init(&p);
			msgpack_pack_array(&p.pk, (uint32_t)g->batch);
			for (int k = 0; k < g->batch; k++)
				pack_art(&p.pk, g->prefix, next * g->batch + k, g->body);
			uint32_t id = na_trpc_request(&t, "put_batch", 1, &p.sb);
			p_free(&p);
			if (!id) {
				g->conn_lost = true;
				break;
			}
			ids[id % 64] = id;
			batch_of[id % 64] = (uint32_t)next;
			next++;
			inflight++;
			continue;
		}
		msgpack_object o;
		if (na_trpc_read(&t, &o) != 1) {
			g->conn_lost = true;
			break;
		}
		if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4)
			continue;
		uint32_t id = (uint32_t)o.via.array.ptr[1].via.u64;
		if (ids[id % 64] != id)
			continue;
		inflight--;
		const char *e = batch_error(&o.via.array.ptr[2], &o.via.array.ptr[3], (uint32_t)g->batch);
		if (e) {
			snprintf(g->error, sizeof g->error, "%s", e);
			continue;
		}
		g->acked[batch_of[id % 64]] = 1;
		atomic_fetch_add(&g->acked_batches, 1);
	}
	na_trpc_close(&t);
	atomic_store(&g->done, true);
	return NULL;
}

static ingest *bg_start(int i, const char *prefix, int batch, int body, int max_batches)
{
	ingest *g = calloc(1, sizeof *g);
	assert_non_null(g);
	g->port = D[i].port;
	snprintf(g->prefix, sizeof g->prefix, "%s", prefix);
	g->batch = batch;
	g->body = body;
	g->max_batches = max_batches;
	g->acked = calloc((size_t)max_batches, 1);
	assert_non_null(g->acked);
	assert_int_equal(pthread_create(&g->thread, NULL, bg_main, g), 0);
	BG = g;
	return g;
}

static void bg_stop(ingest *g)
{
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	free(g->acked);
	free(g);
	if (BG == g)
		BG = NULL;
}

/* Stops the writer; it must have had no failed reply. Returns batches acked. */
static int bg_finish(ingest *g, bool expect_conn)
{
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	int n = atomic_load(&g->acked_batches);
	char err[300];
	snprintf(err, sizeof err, "%s", g->error);
	bool lost = g->conn_lost;
	free(g->acked);
	free(g);
	BG = NULL;
	if (err[0])
		fail_msg("background writer: %s", err);
	if (expect_conn && lost)
		fail_msg("background writer lost its connection");
	return n;
}

/* Waits (bounded) until the writer has had n batches acknowledged. */
static void bg_wait_acked(ingest *g, int n)
{
	long long end = mono_ms() + WAIT_MS;
	for (int k = 0; k < 1000000 && mono_ms() < end; k++) {
		if (atomic_load(&g->acked_batches) >= n)
			return;
		if (atomic_load(&g->done))
			break;
		poll_pause();
	}
	fail_msg("background writer: %d of %d batches acknowledged (%s)",
		 atomic_load(&g->acked_batches), n, g->error);
}

/* ---- stats ----------------------------------------------------------------- */

typedef struct rstats {
	char role[16], history[40], state[16];
	uint64_t seq, articles, applied, primary_seq;
	bool has_repl;
	uint32_t nfollowers;
	struct {
		char state[16], kind[16];
		uint64_t acked;
	} fol[8];
} rstats;

static void copy_str(char *dst, size_t n, const msgpack_object *o)
{
	dst[0] = 0;
	if (o && o->type == MSGPACK_OBJECT_STR && o->via.str.size < n) {
		memcpy(dst, o->via.str.ptr, o->via.str.size);
		dst[o->via.str.size] = 0;
	}
}

static uint64_t u64_of(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

/* 0, or -1 when the daemon cannot be reached. */
static int get_stats(int i, rstats *s)
{
	memset(s, 0, sizeof *s);
	int fd = na_test_connect_tcp(&D[i]);
	if (fd < 0)
		return -1;
	na_trpc t;
	na_trpc_init(&t, fd);
	t.timeout_ms = 30000;
	msgpack_object err, res;
	int rc = na_trpc_call(&t, "stats", 0, NULL, &err, &res);
	if (rc != 1 || err.type != MSGPACK_OBJECT_NIL) {
		na_trpc_close(&t);
		return -1;
	}
	copy_str(s->role, sizeof s->role, na_obj_get(&res, "role"));
	copy_str(s->history, sizeof s->history, na_obj_get(&res, "history"));
	s->seq = u64_of(na_obj_get(&res, "seq"));
	s->articles = u64_of(na_obj_get(&res, "articles"));
	const msgpack_object *r = na_obj_get(&res, "replication");
	if (r && r->type == MSGPACK_OBJECT_MAP) {
		s->has_repl = true;
		copy_str(s->state, sizeof s->state, na_obj_get(r, "state"));
		s->applied = u64_of(na_obj_get(r, "applied_seq"));
		s->primary_seq = u64_of(na_obj_get(r, "primary_seq"));
	}
	const msgpack_object *f = na_obj_get(&res, "followers");
	if (f && f->type == MSGPACK_OBJECT_ARRAY) {
		s->nfollowers = f->via.array.size;
		for (uint32_t k = 0; k < f->via.array.size && k < 8; k++) {
			const msgpack_object *x = &f->via.array.ptr[k];
			copy_str(s->fol[k].state, sizeof s->fol[k].state, na_obj_get(x, "state"));
			copy_str(s->fol[k].kind, sizeof s->fol[k].kind, na_obj_get(x, "kind"));
			s->fol[k].acked = u64_of(na_obj_get(x, "acked_seq"));
		}
	}
	na_trpc_close(&t);
	return 0;
}

static void must_stats(int i, rstats *s)
{
	if (get_stats(i, s) != 0)
		fail_msg("stats of daemon %d failed", i);
}

/* An observer run on every poll of wait_caught_up (e.g. to check that a
 * follower never went back to a snapshot). */
typedef void (*observer)(const rstats *fs, void *arg);

/* Waits until follower f has applied everything primary p has, is
 * streaming, and agrees on seq, history and article count. */
static void wait_caught_up_obs(int p, int f, observer obs, void *arg)
{
	long long end = mono_ms() + WAIT_MS;
	rstats ps = { 0 }, fs = { 0 };
	for (int k = 0; k < 1000000 && mono_ms() < end; k++) {
		if (get_stats(p, &ps) == 0 && get_stats(f, &fs) == 0) {
			if (obs)
				obs(&fs, arg);
			if (strcmp(fs.state, "streaming") == 0 && fs.applied == ps.seq &&
			    fs.seq == ps.seq && fs.articles == ps.articles &&
			    strcmp(fs.history, ps.history) == 0)
				return;
		}
		poll_pause();
	}
	fail_msg("follower %d did not catch up with %d: primary seq %llu articles %llu history %s; "
		 "follower state %s applied %llu seq %llu articles %llu history %s",
		 f, p, (unsigned long long)ps.seq, (unsigned long long)ps.articles, ps.history, fs.state,
		 (unsigned long long)fs.applied, (unsigned long long)fs.seq,
		 (unsigned long long)fs.articles, fs.history);
}

static void wait_caught_up(int p, int f)
{
	wait_caught_up_obs(p, f, NULL, NULL);
}

/* ---- comparing two archives --------------------------------------------- */

/* One page of range (limit 1000, after cursor), re-packed into out (the
 * whole result: articles and next). Returns the number of articles; sets
 * *more and the cursor. */
static uint32_t range_page(na_trpc *t, uint8_t cursor[16], bool *have, msgpack_sbuffer *out)
{
	params p;
	p_init(&p);
	msgpack_pack_map(&p.pk, *have ? 2 : 1);
	na_mp_pack_cstr(&p.pk, "limit");
	msgpack_pack_int(&p.pk, 1000);
	if (*have) {
		na_mp_pack_cstr(&p.pk, "after");
		msgpack_pack_bin(&p.pk, 16);
		msgpack_pack_bin_body(&p.pk, cursor, 16);
	}
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "range", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	out->size = 0;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, res);
	const msgpack_object *arts = na_obj_get(&res, "articles");
	const msgpack_object *next = na_obj_get(&res, "next");
	assert_non_null(arts);
	assert_non_null(next);
	if (next->type == MSGPACK_OBJECT_BIN && next->via.bin.size == 16) {
		memcpy(cursor, next->via.bin.ptr, 16);
		*have = true;
	} else {
		*have = false;
	}
	return arts->via.array.size;
}

/* Scans both archives whole, page by page in step, and requires identical
 * bytes (articles, order and cursors). Returns the article count. */
static uint64_t compare_all(int a, int b)
{
	na_trpc ta, tb;
	conn(a, &ta);
	conn(b, &tb);
	uint8_t ca[16], cb[16];
	bool ha = false, hb = false;
	msgpack_sbuffer pa, pb;
	msgpack_sbuffer_init(&pa);
	msgpack_sbuffer_init(&pb);
	uint64_t total = 0;
	for (int page = 0; page < 1000000; page++) {
		uint32_t na = range_page(&ta, ca, &ha, &pa);
		uint32_t nb = range_page(&tb, cb, &hb, &pb);
		if (na != nb || pa.size != pb.size || memcmp(pa.data, pb.data, pa.size) != 0)
			fail_msg("daemons %d and %d differ on page %d (after %llu articles: %u vs %u)", a,
				 b, page, (unsigned long long)total, na, nb);
		total += na;
		if (!ha)
			break;
	}
	msgpack_sbuffer_destroy(&pa);
	msgpack_sbuffer_destroy(&pb);
	na_trpc_close(&ta);
	na_trpc_close(&tb);
	rstats sa, sb;
	must_stats(a, &sa);
	must_stats(b, &sb);
	assert_int_equal(sa.articles, total);
	assert_int_equal(sb.articles, total);
	return total;
}

/* get guid on D[i]: 1 found (and *bytes re-packed into out if given), 0 not found. */
static int get_guid(na_trpc *t, const char *guid, msgpack_sbuffer *out)
{
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, guid);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "get", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	if (err.type != MSGPACK_OBJECT_NIL) {
		char c[32];
		assert_string_equal(na_obj_code(&err, c, sizeof c), "NOT_FOUND");
		return 0;
	}
	if (out) {
		out->size = 0;
		msgpack_packer pk;
		msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, res);
	}
	return 1;
}

static void expect_code(const msgpack_object *err, const char *code, const char *needle)
{
	char c[32];
	const msgpack_object *m = na_obj_get(err, "message");
	char msg[600] = "";
	if (m && m->type == MSGPACK_OBJECT_STR)
		snprintf(msg, sizeof msg, "%.*s", (int)m->via.str.size, m->via.str.ptr);
	if (strcmp(na_obj_code(err, c, sizeof c), code) != 0)
		fail_msg("expected %s, got \"%s\" (%s)", code, c, msg);
	if (needle && !strstr(msg, needle))
		fail_msg("message \"%s\" does not mention \"%s\"", msg, needle);
}

/* ---- 1. bootstrap ---------------------------------------------------------- */

static void test_new_follower_converges_100k(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "boot", 0, 100000, 120, 1000);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 100000);
	rstats ps, fs;
	must_stats(1, &fs);
	assert_string_equal(fs.role, "follower");
	/* the primary sees its follower streaming, acknowledged up to its head */
	long long end = mono_ms() + WAIT_MS;
	for (int k = 0; k < 100000 && mono_ms() < end; k++) {
		must_stats(0, &ps);
		if (ps.nfollowers == 1 && ps.fol[0].acked == ps.seq)
			break;
		poll_pause();
	}
	assert_string_equal(ps.role, "primary");
	assert_int_equal(ps.nfollowers, 1);
	assert_string_equal(ps.fol[0].kind, "follower");
	assert_string_equal(ps.fol[0].state, "streaming");
	assert_int_equal(ps.fol[0].acked, ps.seq);
	assert_int_equal(SNAPSHOTS(1), 1);
}

/* ---- 2. kill -9 of the follower ------------------------------------------ */

/*
 * The kill during the snapshot is made deterministic with the proxy: it lets
 * only the first 2 MB the primary sends through and then stalls the link
 * (without closing it), so the follower holds part of the snapshot and
 * cannot finish it; we wait until it has committed some rows and kill it.
 */
static void test_follower_killed_in_snapshot_and_streaming(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "big", 0, 20000, 1000, 500);
	PROXY = na_proxy_start(D[0].port);
	assert_non_null(PROXY);
	na_proxy_set_budget(PROXY, 2 << 20);
	snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", na_proxy_port(PROXY));
	start_daemon(1, "--follow", proxy_addr, NULL);
	rstats fs = { 0 };
	long long end = mono_ms() + WAIT_MS;
	bool mid = false;
	for (int k = 0; k < 1000000 && mono_ms() < end && !mid; k++) {
		must_stats(1, &fs);
		mid = strcmp(fs.state, "snapshot") == 0 && fs.articles > 0 &&
		      na_proxy_forwarded(PROXY) >= (2 << 20);
		if (!mid)
			poll_pause();
	}
	if (!mid)
		fail_msg("follower never got part way into its snapshot (state %s, %llu articles)",
			 fs.state, (unsigned long long)fs.articles);
	assert_true(fs.articles < 20000);
	na_test_daemon_kill(&D[1]);
	/* it restarts with a partial copy: a new snapshot; this time a clean
	 * stop (SIGTERM, exit 0, no leak under ASan) part way through */
	long long before = na_proxy_forwarded(PROXY);
	na_proxy_set_budget(PROXY, 1 << 20);
	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	mid = false;
	end = mono_ms() + WAIT_MS;
	for (int k = 0; k < 1000000 && mono_ms() < end && !mid; k++) {
		must_stats(1, &fs);
		mid = strcmp(fs.state, "snapshot") == 0 && fs.articles > 0 &&
		      na_proxy_forwarded(PROXY) >= before + (1 << 20);
		if (!mid)
			poll_pause();
	}
	assert_true(mid);
	stop_clean(1);
	/* and once more, to the end */
	na_proxy_set_budget(PROXY, -1);
	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	wait_caught_up(0, 1);
	assert_int_equal(SNAPSHOTS(1), 3);
	assert_int_equal(compare_all(0, 1), 20000);

	/* now kill -9 while it streams a sustained ingest */
	rstats ps;
	must_stats(0, &ps);
	uint64_t base = ps.seq;
	ingest *g = bg_start(0, "live", 100, 300, 150);
	end = mono_ms() + WAIT_MS;
	bool streaming = false;
	for (int k = 0; k < 1000000 && mono_ms() < end && !streaming; k++) {
		must_stats(1, &fs);
		streaming = strcmp(fs.state, "streaming") == 0 && fs.applied > base + 1000;
		if (!streaming)
			poll_pause();
	}
	assert_true(streaming);
	assert_false(atomic_load(&g->done)); /* the ingest goes on */
	na_test_daemon_kill(&D[1]);
	bg_wait_acked(g, 60);
	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	bg_wait_acked(g, 150);
	int acked = bg_finish(g, true);
	assert_int_equal(acked, 150);
	wait_caught_up(0, 1);
	assert_int_equal(SNAPSHOTS(1), 3); /* resumed from its position */
	assert_int_equal(compare_all(0, 1), 20000 + 150 * 100);
}

/*
 * The snapshot is fuzzy: chunks are read in separate transactions while the
 * primary keeps writing. Here the proxy holds the snapshot part way (as
 * above) while the primary moves articles (an edit with a new published
 * time gives a new key), edits them in place, deletes some and re-creates
 * some of those; the follower must end up with exactly the primary's
 * content once the rest of the snapshot and the log have been applied.
 */
static void test_fuzzy_snapshot_with_changes(void **state)
{
	(void)state;
	const int n = 8000;
	start_daemon(0, NULL);
	ingest_sync(0, "fz", 0, n, 600, 500);
	PROXY = na_proxy_start(D[0].port);
	assert_non_null(PROXY);
	na_proxy_set_budget(PROXY, 1 << 20);
	snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", na_proxy_port(PROXY));
	start_daemon(1, "--follow", proxy_addr, NULL);
	rstats fs = { 0 };
	long long end = mono_ms() + WAIT_MS;
	bool mid = false;
	for (int k = 0; k < 1000000 && mono_ms() < end && !mid; k++) {
		must_stats(1, &fs);
		mid = strcmp(fs.state, "snapshot") == 0 && fs.articles > 0 &&
		      na_proxy_forwarded(PROXY) >= (1 << 20);
		if (!mid)
			poll_pause();
	}
	assert_true(mid);
	assert_true(fs.articles < (uint64_t)n);
	/* the follower's copy is partial: a plain get is refused, and a get
	 * waiting for the primary's position is held until the snapshot and
	 * the log are through, then answered */
	na_trpc tf;
	conn(1, &tf);
	msgpack_object err, res;
	char g0[48];
	guid_of(g0, sizeof g0, "fz", n - 1);
	{
		params p;
		p_init(&p);
		na_mp_pack_cstr(&p.pk, g0);
		assert_int_equal(na_trpc_call(&tf, "get", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		expect_code(&err, "UNAVAILABLE", "snapshot");
	}
	rstats ps0;
	must_stats(0, &ps0);
	uint32_t waiting;
	{
		params p;
		p_init(&p);
		na_mp_pack_cstr(&p.pk, g0);
		msgpack_pack_map(&p.pk, 2);
		na_mp_pack_cstr(&p.pk, "min_seq");
		msgpack_pack_uint64(&p.pk, ps0.seq);
		na_mp_pack_cstr(&p.pk, "timeout_ms");
		msgpack_pack_uint32(&p.pk, 60000);
		waiting = na_trpc_request(&tf, "get", 2, &p.sb);
		p_free(&p);
	}
	/* changes all over the key space, while the snapshot is held */
	na_trpc t;
	conn(0, &t);
	int deleted = 0;
	for (int pass = 1; pass <= 2; pass++) {
		params p;
		p_init(&p);
		int cnt = 0;
		for (int i = pass; i < n; i += 13)
			cnt++;
		msgpack_pack_array(&p.pk, (uint32_t)cnt);
		for (int i = pass; i < n; i += 13)
			pack_art_v(&p.pk, "fz", i, 600, pass == 1 ? 1 : 0); /* moved; edited in place */
		assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		const char *e = batch_error(&err, &res, (uint32_t)cnt);
		if (e)
			fail_msg("%s", e);
	}
	for (int i = 0; i < n; i += 17) {
		params p;
		p_init(&p);
		char guid[48];
		guid_of(guid, sizeof guid, "fz", i);
		na_mp_pack_cstr(&p.pk, guid);
		assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		deleted++;
	}
	/* some deleted ones come back, moved */
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 50);
	for (int k = 0; k < 50; k++)
		pack_art_v(&p.pk, "fz", k * 17 * 3, 600, 2);
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_null(batch_error(&err, &res, 50));
	na_trpc_close(&t);
	na_proxy_set_budget(PROXY, -1);
	tf.timeout_ms = WAIT_MS;
	assert_int_equal(na_trpc_wait(&tf, waiting, &err, &res), 1);
	if (err.type != MSGPACK_OBJECT_NIL)
		expect_code(&err, "none", NULL);
	assert_true(na_obj_streq(na_obj_get(&res, "guid"), g0));
	na_trpc_close(&tf);
	wait_caught_up(0, 1);
	assert_int_equal(SNAPSHOTS(1), 1);
	assert_int_equal(compare_all(0, 1), (uint64_t)(n - deleted + 50));
	/* and streamed changes of the same kinds */
	conn(0, &t);
	p_init(&p);
	msgpack_pack_array(&p.pk, 100);
	for (int k = 0; k < 100; k++)
		pack_art_v(&p.pk, "fz", k * 29 + 5, 600, 3);
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_null(batch_error(&err, &res, 100));
	for (int i = 3; i < 600; i += 31) {
		p_init(&p);
		char guid[48];
		guid_of(guid, sizeof guid, "fz", i);
		na_mp_pack_cstr(&p.pk, guid);
		assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	}
	na_trpc_close(&t);
	wait_caught_up(0, 1);
	compare_all(0, 1);
}

/* ---- 3. kill -9 of the primary ------------------------------------------- */

static void test_primary_killed_during_ingest(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "pre", 0, 2000, 200, 500);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	const int max_batches = 2000;
	ingest *g = bg_start(0, "ack", 50, 200, max_batches);
	bg_wait_acked(g, 40);
	na_test_daemon_kill(&D[0]);
	/* the writer sees its connection go; keep what it recorded */
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	BG = NULL;
	unsigned char *acked = g->acked;
	int nacked = atomic_load(&g->acked_batches);
	bool had_error = g->error[0] != 0;
	free(g);
	if (had_error) {
		free(acked);
		fail_msg("a write failed before the kill");
	}
	assert_true(nacked >= 40);
	assert_true(nacked < max_batches); /* the kill came during the ingest */
	assert_int_equal(na_test_daemon_restart(&D[0]), 0);
	/* every acknowledged write is on the primary, byte for byte */
	na_trpc t;
	conn(0, &t);
	msgpack_sbuffer got, want;
	msgpack_sbuffer_init(&got);
	msgpack_sbuffer_init(&want);
	int checked = 0;
	for (int b = 0; b < max_batches; b++) {
		if (!acked[b])
			continue;
		for (int k = 0; k < 50; k++) {
			char guid[48];
			guid_of(guid, sizeof guid, "ack", b * 50 + k);
			if (get_guid(&t, guid, &got) != 1) {
				free(acked);
				fail_msg("acknowledged article %s is missing after the crash", guid);
			}
			want.size = 0;
			msgpack_packer wp;
			msgpack_packer_init(&wp, &want, msgpack_sbuffer_write);
			pack_art(&wp, "ack", b * 50 + k, 200);
			/* re-pack the expected article the same way as the reply */
			msgpack_unpacked u;
			msgpack_unpacked_init(&u);
			size_t off = 0;
			assert_int_equal(msgpack_unpack_next(&u, want.data, want.size, &off),
					 MSGPACK_UNPACK_SUCCESS);
			msgpack_sbuffer w2;
			msgpack_sbuffer_init(&w2);
			msgpack_packer_init(&wp, &w2, msgpack_sbuffer_write);
			msgpack_pack_object(&wp, u.data);
			bool same = w2.size == got.size && memcmp(w2.data, got.data, got.size) == 0;
			msgpack_sbuffer_destroy(&w2);
			msgpack_unpacked_destroy(&u);
			if (!same) {
				free(acked);
				fail_msg("article %s differs after the crash", guid);
			}
			checked++;
		}
	}
	free(acked);
	msgpack_sbuffer_destroy(&got);
	msgpack_sbuffer_destroy(&want);
	na_trpc_close(&t);
	assert_int_equal(checked, nacked * 50);
	/* and the follower catches up with exactly the primary's content */
	wait_caught_up(0, 1);
	compare_all(0, 1);
	assert_int_equal(SNAPSHOTS(1), 1);
}

/* ---- 4. the log trimmed past a stopped follower -------------------------- */

static void test_trimmed_log_rebootstraps(void **state)
{
	(void)state;
	start_daemon(0, "--log-retention-bytes", "64K", NULL);
	ingest_sync(0, "keep", 0, 1000, 200, 500);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	assert_int_equal(SNAPSHOTS(1), 1);
	stop_clean(1);
	rstats ps;
	must_stats(0, &ps);
	uint64_t stopped_at = ps.seq;
	ingest_sync(0, "trim", 0, 6000, 200, 200);
	/* the entry right after the follower's position is gone: subscribing
	 * from there is refused */
	na_trpc t;
	conn(0, &t);
	params p;
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "seq");
	msgpack_pack_uint64(&p.pk, stopped_at);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "subscribe", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "NOT_FOUND", "outside the log");
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	wait_caught_up(0, 1);
	assert_int_equal(SNAPSHOTS(1), 2);
	assert_int_equal(compare_all(0, 1), 7000);
}

/* ---- 5. the link cut and restored ----------------------------------------- */

typedef struct watch {
	uint64_t max_articles;
	bool dropped, snapshot;
} watch;

static void watch_follower(const rstats *fs, void *arg)
{
	watch *w = arg;
	if (fs->articles < w->max_articles)
		w->dropped = true;
	if (fs->articles > w->max_articles)
		w->max_articles = fs->articles;
	if (strcmp(fs->state, "snapshot") == 0)
		w->snapshot = true;
}

static void test_link_cut_resumes_without_snapshot(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "cut0", 0, 2000, 300, 500);
	PROXY = na_proxy_start(D[0].port);
	assert_non_null(PROXY);
	snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", na_proxy_port(PROXY));
	start_daemon(1, "--follow", proxy_addr, NULL);
	wait_caught_up(0, 1);
	assert_int_equal(na_proxy_connections(PROXY), 1);
	watch w = { 0 };
	rstats fs, ps;
	must_stats(1, &fs);
	watch_follower(&fs, &w);

	ingest *g = bg_start(0, "cut1", 100, 300, 120);
	bg_wait_acked(g, 20);
	na_proxy_cut(PROXY);
	must_stats(0, &ps);
	uint64_t cut_at = ps.seq;
	/* the primary goes on while the follower is cut off */
	long long end = mono_ms() + WAIT_MS;
	bool behind = false;
	for (int k = 0; k < 1000000 && mono_ms() < end && !behind; k++) {
		must_stats(0, &ps);
		must_stats(1, &fs);
		watch_follower(&fs, &w);
		behind = ps.seq > cut_at + 2000 && fs.applied < ps.seq;
		if (!behind)
			poll_pause();
	}
	assert_true(behind);
	assert_string_equal(fs.role, "follower");
	na_proxy_resume(PROXY);
	bg_wait_acked(g, 120);
	assert_int_equal(bg_finish(g, true), 120);
	wait_caught_up_obs(0, 1, watch_follower, &w);
	assert_true(na_proxy_connections(PROXY) >= 2); /* it did reconnect */
	assert_false(w.snapshot);
	assert_false(w.dropped);
	assert_int_equal(SNAPSHOTS(1), 1);
	assert_int_equal(compare_all(0, 1), 2000 + 120 * 100);
}

/* ---- 5b. the follower's own pause is not the primary's silence ---------- */

/* An article whose body is body_bytes random letters and digits: it
 * compresses to about three quarters, so the stored archive is about as
 * large as the articles, which the snapshot below needs; and it is one word
 * too long to be indexed, which keeps the search index's work small. */
static void pack_noise_art(msgpack_packer *pk, const char *prefix, int i, int body_bytes)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static char body[65536];
	char g[48], title[64];
	guid_of(g, sizeof g, prefix, i);
	snprintf(title, sizeof title, "noise number %d", i);
	uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
	int len = body_bytes < (int)sizeof body ? body_bytes : (int)sizeof body;
	for (int k = 0; k < len; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		body[k] = set[(x >> 40) % 62];
	}
	msgpack_pack_map(pk, 4);
	na_mp_pack_cstr(pk, "guid");
	na_mp_pack_cstr(pk, g);
	na_mp_pack_cstr(pk, "published");
	na_mp_pack_ts(pk, (na_ts){ BASE_SEC + i, 0 });
	na_mp_pack_cstr(pk, "title");
	na_mp_pack_cstr(pk, title);
	na_mp_pack_cstr(pk, "body");
	na_mp_pack_str(pk, body, (size_t)len);
}

/* Writes noise articles [0, count) of prefix to D[i], batch at a time. */
static void ingest_noise(int i, const char *prefix, int count, int body, int batch)
{
	na_trpc t;
	conn(i, &t);
	for (int from = 0; from < count; from += batch) {
		int n = count - from < batch ? count - from : batch;
		params p;
		p_init(&p);
		msgpack_pack_array(&p.pk, (uint32_t)n);
		for (int k = 0; k < n; k++)
			pack_noise_art(&p.pk, prefix, from + k, body);
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		const char *e = batch_error(&err, &res, (uint32_t)n);
		if (e)
			fail_msg("%s", e);
	}
	na_trpc_close(&t);
}

/* Milliseconds of the day of a daemon log line ("YYYY-MM-DDTHH:MM:SS.mmmZ ..."),
 * -1 if it has no time. */
static long long log_line_ms(const char *line)
{
	int h, m, sec, ms;
	if (strlen(line) < 24 || sscanf(line + 11, "%2d:%2d:%2d.%3d", &h, &m, &sec, &ms) != 4)
		return -1;
	return ((h * 60LL + m) * 60 + sec) * 1000 + ms;
}

/* The longest time D[i]'s log shows between a "reading paused" line and
 * the "reading resumed" after it (needs --log-level debug); 0 if none. */
static long long longest_pause_ms(int i)
{
	FILE *f = fopen(D[i].log, "r");
	if (!f)
		return 0;
	char line[2048];
	long long since = -1, longest = 0;
	while (fgets(line, sizeof line, f)) {
		long long t = log_line_ms(line);
		if (t < 0)
			continue;
		if (strstr(line, "reading paused") && since < 0) {
			since = t;
		} else if (strstr(line, "reading resumed") && since >= 0) {
			long long d = t - since;
			if (d < 0)
				d += 86400000; /* across midnight */
			if (d > longest)
				longest = d;
			since = -1;
		}
	}
	fclose(f);
	return longest;
}

static void no_silence_drop(const rstats *fs, void *arg)
{
	(void)fs;
	int i = *(const int *)arg;
	if (log_count(i, "silent too long") > 0 || SNAPSHOTS(i) > 1)
		fail_msg("the follower dropped its link while it had paused reading itself (%d "
			 "snapshots begun; NA_TEST_KEEP=1 keeps its log)", SNAPSHOTS(i));
}

/*
 * When more than 32 MiB of applies wait, the follower stops reading from
 * its primary; the heartbeats then wait in the socket. That pause is the
 * follower's, not the primary's silence: the watchdog must not drop the
 * link (each drop during a snapshot began a new snapshot, so on a slow
 * disk the snapshot never finished). The test knobs make it quick and
 * certain: the watchdog's limit is 3 s (heartbeats come every second), and
 * the follower's writer stops for 8 s after the start of the snapshot while
 * the ~45 MB of rows arrive, so reading is paused for several seconds.
 * The follower uses the Unix socket: there the primary's socket buffer is
 * small, so its big snapshot writes always complete later, in a callback
 * that produces the next ones; over loopback TCP a write may go out whole
 * at once, and the primary then waits for the follower's next
 * acknowledgement, which the stalled writer holds back, before sending
 * more (so reading might never pause).
 */
static void test_paused_follower_is_not_silent_primary(void **state)
{
	(void)state;
	const int n = 2000;
	start_daemon(0, NULL);
	ingest_noise(0, "slow", n, 30000, 100);
	setenv("NEWSARCHD_TEST_LINK_TIMEOUT_MS", "3000", 1);
	setenv("NEWSARCHD_TEST_SNAPSHOT_STALL_MS", "8000", 1);
	start_daemon(1, "--log-level", "debug", "--follow", D[0].uaddr, NULL);
	unsetenv("NEWSARCHD_TEST_LINK_TIMEOUT_MS");
	unsetenv("NEWSARCHD_TEST_SNAPSHOT_STALL_MS");
	int follower = 1;
	wait_caught_up_obs(0, 1, no_silence_drop, &follower);
	assert_int_equal(SNAPSHOTS(1), 1);
	assert_int_equal(log_count(1, "silent too long"), 0);
	/* the premise: reading was paused for longer than the watchdog's limit */
	long long paused = longest_pause_ms(1);
	if (paused <= 3000)
		fail_msg("reading was paused for at most %lld ms, not longer than the watchdog's "
			 "3000 ms: this tested nothing", paused);
	assert_int_equal(compare_all(0, 1), n);
}

/* ---- 6. cascading and promotion ------------------------------------------ */

static void test_cascade_and_promote(void **state)
{
	(void)state;
	enum { P = 0, A = 1, B = 2, C = 3 };
	start_daemon(P, NULL);
	ingest_sync(P, "cas", 0, 3000, 200, 500);
	start_daemon(A, "--follow", D[P].addr, NULL);
	start_daemon(B, "--follow", D[A].addr, NULL);
	start_daemon(C, "--follow", D[P].addr, NULL);
	ingest_sync(P, "cas", 3000, 1000, 200, 100); /* while they bootstrap */
	wait_caught_up(P, A);
	wait_caught_up(A, B);
	wait_caught_up(P, C);
	wait_caught_up(P, B);
	assert_int_equal(compare_all(P, B), 4000);

	/* promote A */
	na_trpc t;
	conn(A, &t);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "promote", 0, NULL, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	char hist[40];
	copy_str(hist, sizeof hist, na_obj_get(&res, "history"));
	na_trpc_close(&t);
	rstats as, ps;
	must_stats(A, &as);
	must_stats(P, &ps);
	assert_string_equal(as.role, "primary");
	assert_string_equal(as.history, hist);
	assert_string_not_equal(as.history, ps.history);
	assert_int_equal(as.seq, ps.seq);

	/* the old primary's other follower moves to A */
	stop_clean(C);
	refollow(C, D[A].addr);
	ingest_sync(A, "new", 0, 500, 200, 100);
	wait_caught_up(A, C);
	wait_caught_up(A, B);
	assert_int_equal(compare_all(A, C), 4500);
	assert_int_equal(compare_all(A, B), 4500);
	assert_int_equal(SNAPSHOTS(C), 1);
	assert_int_equal(SNAPSHOTS(B), 1);
	/* A is writable now; its followers are not */
	conn(C, &t);
	params p;
	p_init(&p);
	pack_art(&p.pk, "new", 9999, 10);
	assert_int_equal(na_trpc_call(&t, "put", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "READONLY", D[A].addr);
	na_trpc_close(&t);

	/* the old primary took a write nobody has, then is pointed at A: it
	 * is re-bootstrapped from A (never merged), so that write is gone */
	conn(P, &t);
	p_init(&p);
	pack_art(&p.pk, "lost", 1, 100);
	assert_int_equal(na_trpc_call(&t, "put", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	na_trpc_close(&t);
	stop_clean(P);
	refollow(P, D[A].addr);
	wait_caught_up(A, P);
	assert_int_equal(SNAPSHOTS(P), 1);
	assert_int_equal(compare_all(A, P), 4500);
	conn(P, &t);
	assert_int_equal(get_guid(&t, "lost-0000001", NULL), 0);
	na_trpc_close(&t);
}

/* ---- 7. a follower is read-only ------------------------------------------ */

static void test_follower_rejects_writes(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "ro", 0, 10, 50, 10);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	na_trpc t;
	conn(1, &t);
	msgpack_object err, res;
	params p;
	p_init(&p);
	pack_art(&p.pk, "ro", 100, 50);
	assert_int_equal(na_trpc_call(&t, "put", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "READONLY", D[0].addr);
	p_init(&p);
	msgpack_pack_array(&p.pk, 2);
	pack_art(&p.pk, "ro", 101, 50);
	pack_art(&p.pk, "ro", 102, 50);
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "READONLY", D[0].addr);
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "ro-0000001");
	assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "READONLY", D[0].addr);
	/* nothing changed, and reads work */
	assert_int_equal(get_guid(&t, "ro-0000001", NULL), 1);
	assert_int_equal(get_guid(&t, "ro-0000100", NULL), 0);
	na_trpc_close(&t);
	assert_int_equal(compare_all(0, 1), 10);
}

/* A small map on both sides: batches of 1,000 go into the primary, the
 * follower takes them by snapshot and then by the log, with 4 batches in
 * flight. Near the limit, writes that add data must leave a reserve for
 * deletes (writer.c); nothing here comes close to it, so nothing may be
 * refused. */
static void test_small_maps(void **state)
{
	(void)state;
	start_daemon(0, "--map-size", "1M", "--max-map-size", "16M", NULL);
	ingest_sync(0, "sm", 0, 3000, 50, 1000);
	start_daemon(1, "--map-size", "1M", "--max-map-size", "16M", "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 3000);
	ingest_sync(0, "sm", 3000, 3000, 50, 1000);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 6000);
}

/*
 * A follower whose map cannot hold its primary's archive fails right after
 * every handshake (out of space). That must not become a reconnection
 * loop, each attempt costing the primary a handshake, its dictionaries and
 * a batch: no attempt makes progress, so the backoff keeps growing. The
 * follower connects through the proxy, which counts connections. The
 * backoff starts at 100 ms and doubles up to 5 s, each wait 50% to 150% of
 * it, so even attempts that failed at once could start at most 8
 * connections within 8 s of the first (waits of at least 50, 100, 200, 400,
 * 800, 1600 and 2500 ms); without the backoff it was about ten a second.
 */
static void test_failing_follower_backs_off(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "nsp", 0, 12000, 2000, 1000);
	PROXY = na_proxy_start(D[0].port);
	assert_non_null(PROXY);
	snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", na_proxy_port(PROXY));
	start_daemon(1, "--map-size", "1M", "--max-map-size", "4M", "--follow", proxy_addr, NULL);
	long long end = mono_ms() + WAIT_MS;
	for (int k = 0; k < 1000000 && na_proxy_connections(PROXY) < 1 && mono_ms() < end; k++)
		poll_pause();
	assert_true(na_proxy_connections(PROXY) >= 1);
	long long t0 = mono_ms();
	int n = na_proxy_connections(PROXY);
	for (int k = 0; k < 1000000 && n <= 12 && mono_ms() < t0 + 8000; k++) {
		poll_pause();
		n = na_proxy_connections(PROXY);
	}
	if (n > 12)
		fail_msg("the follower connected %d times within %lld ms", n, mono_ms() - t0);
	/* the attempts did fail (else this tested nothing), and the follower
	 * still answers */
	assert_true(n >= 2);
	assert_true(SNAPSHOTS(1) >= 2);
	rstats fs;
	must_stats(1, &fs);
	assert_string_equal(fs.role, "follower");
}

/* ---- 8. a follower moved to another archive ------------------------------ */

static void test_follower_of_other_archive(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	start_daemon(2, NULL);
	ingest_sync(0, "one", 0, 2500, 150, 500);
	ingest_sync(2, "two", 0, 1500, 150, 500);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 2500);
	stop_clean(1);
	refollow(1, D[2].addr);
	wait_caught_up(2, 1);
	assert_int_equal(compare_all(2, 1), 1500);
	assert_int_equal(SNAPSHOTS(1), 2);
	na_trpc t;
	conn(1, &t);
	assert_int_equal(get_guid(&t, "one-0000000", NULL), 0);
	assert_int_equal(get_guid(&t, "one-0002499", NULL), 0);
	assert_int_equal(get_guid(&t, "two-0001499", NULL), 1);
	na_trpc_close(&t);
	/* and it keeps following the new primary */
	ingest_sync(2, "two", 1500, 300, 150, 100);
	wait_caught_up(2, 1);
	assert_int_equal(compare_all(2, 1), 1800);
}

/* ---- 9. synchronous writes ------------------------------------------------- */

static void put_opts(na_trpc *t, const char *prefix, int i, uint32_t replicas, uint32_t timeout,
		     msgpack_object *err, msgpack_object *res)
{
	params p;
	p_init(&p);
	pack_art(&p.pk, prefix, i, 100);
	msgpack_pack_map(&p.pk, 2);
	na_mp_pack_cstr(&p.pk, "replicas");
	msgpack_pack_uint32(&p.pk, replicas);
	na_mp_pack_cstr(&p.pk, "timeout_ms");
	msgpack_pack_uint32(&p.pk, timeout);
	assert_int_equal(na_trpc_call(t, "put", 2, &p.sb, err, res), 1);
	p_free(&p);
}

static void test_sync_write_replicas(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "sw", 0, 100, 100, 100);
	start_daemon(1, "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	na_trpc tp, tf;
	conn(0, &tp);
	conn(1, &tf);
	msgpack_object err, res;
	for (int i = 1000; i < 1020; i++) {
		put_opts(&tp, "sw", i, 1, 10000, &err, &res);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		assert_true(na_obj_streq(na_obj_get(&res, "status"), "created"));
		assert_int_equal(u64_of(na_obj_get(&res, "replicas")), 1);
		assert_true(u64_of(na_obj_get(&res, "seq")) > 0);
		char guid[48];
		guid_of(guid, sizeof guid, "sw", i);
		if (get_guid(&tf, guid, NULL) != 1)
			fail_msg("%s was acknowledged by a replica but the follower has not got it", guid);
	}
	/* put_batch too */
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 3);
	for (int i = 2000; i < 2003; i++)
		pack_art(&p.pk, "sw", i, 100);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "replicas");
	msgpack_pack_uint32(&p.pk, 1);
	assert_int_equal(na_trpc_call(&tp, "put_batch", 2, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(u64_of(na_obj_get(&res, "replicas")), 1);
	assert_int_equal(get_guid(&tf, "sw-0002002", NULL), 1);
	na_trpc_close(&tf);

	/* no follower: the reply comes after the timeout and says 0 */
	stop_clean(1);
	rstats ps;
	long long end = mono_ms() + WAIT_MS;
	for (int k = 0; k < 100000 && mono_ms() < end; k++) {
		must_stats(0, &ps);
		if (ps.nfollowers == 0)
			break;
		poll_pause();
	}
	assert_int_equal(ps.nfollowers, 0);
	long long t0 = mono_ms();
	put_opts(&tp, "sw", 3000, 1, 300, &err, &res);
	long long took = mono_ms() - t0;
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(u64_of(na_obj_get(&res, "replicas")), 0);
	assert_true(na_obj_streq(na_obj_get(&res, "status"), "created"));
	if (took < 300 || took > 5000)
		fail_msg("a write waiting 300 ms for a replica took %lld ms", took);
	/* replicas 0 does not wait at all */
	put_opts(&tp, "sw", 3001, 0, 300, &err, &res);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	na_trpc_close(&tp);
}

/* ---- min_seq reads on a follower ------------------------------------------- */

static void test_min_seq_read(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	start_daemon(1, "--follow", D[0].uaddr, NULL); /* over the Unix socket */
	ingest_sync(0, "ms", 0, 50, 100, 50);
	na_trpc tp, tf;
	conn(0, &tp);
	conn(1, &tf);
	msgpack_object err, res;
	for (int i = 100; i < 130; i++) {
		params p;
		p_init(&p);
		pack_art(&p.pk, "ms", i, 2000);
		assert_int_equal(na_trpc_call(&tp, "put", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		uint64_t seq = u64_of(na_obj_get(&res, "seq"));
		char guid[48];
		guid_of(guid, sizeof guid, "ms", i);
		p_init(&p);
		na_mp_pack_cstr(&p.pk, guid);
		msgpack_pack_map(&p.pk, 2);
		na_mp_pack_cstr(&p.pk, "min_seq");
		msgpack_pack_uint64(&p.pk, seq);
		na_mp_pack_cstr(&p.pk, "timeout_ms");
		msgpack_pack_uint32(&p.pk, 20000);
		assert_int_equal(na_trpc_call(&tf, "get", 2, &p.sb, &err, &res), 1);
		p_free(&p);
		if (err.type != MSGPACK_OBJECT_NIL)
			expect_code(&err, "none", NULL);
		assert_true(na_obj_streq(na_obj_get(&res, "guid"), guid));
	}
	/* a position nobody reaches: TIMEOUT after timeout_ms */
	rstats ps;
	must_stats(0, &ps);
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "ms-0000100");
	msgpack_pack_map(&p.pk, 2);
	na_mp_pack_cstr(&p.pk, "min_seq");
	msgpack_pack_uint64(&p.pk, ps.seq + 1000);
	na_mp_pack_cstr(&p.pk, "timeout_ms");
	msgpack_pack_uint32(&p.pk, 200);
	assert_int_equal(na_trpc_call(&tf, "get", 2, &p.sb, &err, &res), 1);
	p_free(&p);
	expect_code(&err, "TIMEOUT", "min_seq");
	na_trpc_close(&tp);
	na_trpc_close(&tf);
}

/* ---- the change feed -------------------------------------------------------- */

/* Reads "log" notifications until n put entries arrived, in sequence
 * order without gaps; each must be one of the articles prefix-first ..
 * prefix-(first+n-1), decoded, byte for byte, each exactly once (pipelined
 * batches may commit in any order). */
static void read_feed(na_trpc *t, const char *prefix, int first, int n, uint64_t *last_seq)
{
	int got = 0;
	bool seen[256] = { false };
	assert_true(n <= 256);
	msgpack_sbuffer want;
	msgpack_sbuffer_init(&want);
	long long end = mono_ms() + 20000; /* heartbeats keep coming: bound the time too */
	for (int k = 0; k < 100000 && got < n && mono_ms() < end; k++) {
		msgpack_object o;
		assert_int_equal(na_trpc_read(t, &o), 1);
		assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
		if (o.via.array.size != 3 || o.via.array.ptr[0].via.u64 != 2)
			continue;
		if (na_obj_streq(&o.via.array.ptr[1], "heartbeat"))
			continue;
		assert_true(na_obj_streq(&o.via.array.ptr[1], "log"));
		const msgpack_object *params_ = &o.via.array.ptr[2];
		assert_true(params_->via.array.size >= 1);
		const msgpack_object *ents = &params_->via.array.ptr[0];
		for (uint32_t e = 0; e < ents->via.array.size; e++) {
			const msgpack_object *en = &ents->via.array.ptr[e];
			uint64_t seq = en->via.array.ptr[0].via.u64;
			assert_true(seq == *last_seq + 1);
			*last_seq = seq;
			if (!na_obj_streq(&en->via.array.ptr[1], "P"))
				continue; /* a new dictionary */
			assert_int_equal(en->via.array.size, 5);
			const msgpack_object *art = &en->via.array.ptr[4];
			assert_int_equal(art->type, MSGPACK_OBJECT_MAP);
			const msgpack_object *gg = na_obj_get(art, "guid");
			assert_non_null(gg);
			char guid[64], pfx[32];
			snprintf(guid, sizeof guid, "%.*s", (int)gg->via.str.size, gg->via.str.ptr);
			snprintf(pfx, sizeof pfx, "%s-", prefix);
			if (strncmp(guid, pfx, strlen(pfx)) != 0)
				fail_msg("feed entry %llu is %s", (unsigned long long)seq, guid);
			int idx = atoi(guid + strlen(pfx)) - first;
			if (idx < 0 || idx >= n || seen[idx])
				fail_msg("feed entry %llu: %s is unexpected or repeated",
					 (unsigned long long)seq, guid);
			seen[idx] = true;
			want.size = 0;
			msgpack_packer wp;
			msgpack_packer_init(&wp, &want, msgpack_sbuffer_write);
			pack_art(&wp, prefix, first + idx, 100);
			msgpack_unpacked u;
			msgpack_unpacked_init(&u);
			size_t off = 0;
			assert_int_equal(msgpack_unpack_next(&u, want.data, want.size, &off),
					 MSGPACK_UNPACK_SUCCESS);
			bool same = msgpack_object_equal(u.data, *art);
			msgpack_unpacked_destroy(&u);
			if (!same)
				fail_msg("feed entry %llu: %s differs from what was put",
					 (unsigned long long)seq, guid);
			got++;
		}
	}
	msgpack_sbuffer_destroy(&want);
	assert_int_equal(got, n);
}

static void test_subscribe_feed(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "old", 0, 20, 100, 20);
	rstats ps;
	must_stats(0, &ps);
	uint64_t from = ps.seq;
	ingest_sync(0, "feed", 0, 30, 100, 10);
	na_trpc t;
	conn(0, &t);
	params p;
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "seq");
	msgpack_pack_uint64(&p.pk, from);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "subscribe", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_true(na_obj_streq(na_obj_get(&res, "mode"), "stream"));
	uint64_t last = from;
	read_feed(&t, "feed", 0, 30, &last);
	/* live: later writes arrive too */
	ingest_sync(0, "feed", 30, 25, 100, 5);
	read_feed(&t, "feed", 30, 25, &last);
	must_stats(0, &ps);
	assert_int_equal(last, ps.seq);
	assert_int_equal(ps.nfollowers, 1);
	assert_string_equal(ps.fol[0].kind, "subscriber");
	/* a feed reader that never acknowledges is held back by its socket
	 * only: more than one window (20,000 entries) still arrives */
	ingest_sync(0, "many", 0, 25000, 20, 1000);
	must_stats(0, &ps);
	t.timeout_ms = 15000;
	long long end = mono_ms() + 20000;
	for (int k = 0; k < 1000000 && last < ps.seq; k++) {
		msgpack_object o;
		if (mono_ms() > end || na_trpc_read(&t, &o) != 1)
			fail_msg("the feed stalled at seq %llu of %llu", (unsigned long long)last,
				 (unsigned long long)ps.seq);
		if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 3 ||
		    !na_obj_streq(&o.via.array.ptr[1], "log"))
			continue;
		const msgpack_object *ents = &o.via.array.ptr[2].via.array.ptr[0];
		for (uint32_t e = 0; e < ents->via.array.size; e++) {
			uint64_t seq = ents->via.array.ptr[e].via.array.ptr[0].via.u64;
			assert_true(seq == last + 1);
			last = seq;
		}
	}
	assert_int_equal(last, ps.seq);
	na_trpc_close(&t);
}

/* ---- blocks -------------------------------------------------------------- */

/* Polls D[i]'s stats until background compaction is done and has packed
 * articles into blocks (fewer records than articles). Returns records. */
static uint64_t wait_compacted(int i)
{
	long long end = mono_ms() + WAIT_MS;
	uint64_t records = 0, articles = 0;
	bool compacting = true;
	for (int k = 0; k < 1000000 && mono_ms() < end; k++) {
		int fd = na_test_connect_tcp(&D[i]);
		assert_true(fd >= 0);
		na_trpc t;
		na_trpc_init(&t, fd);
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		const msgpack_object *c = na_obj_get(&res, "compacting");
		assert_non_null(c);
		compacting = c->type == MSGPACK_OBJECT_BOOLEAN && c->via.boolean;
		records = u64_of(na_obj_get(&res, "records"));
		articles = u64_of(na_obj_get(&res, "articles"));
		na_trpc_close(&t);
		if (!compacting && records < articles)
			return records;
		poll_pause();
	}
	fail_msg("daemon %d did not finish compacting: %llu records for %llu articles", i,
		 (unsigned long long)records, (unsigned long long)articles);
	return 0;
}

static void verify_ok(int i)
{
	na_trpc t;
	conn(i, &t);
	t.timeout_ms = 60000;
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "verify", 0, NULL, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(u64_of(na_obj_get(&res, "problems")), 0);
	na_trpc_close(&t);
}

/*
 * A primary that packed its articles into blocks bootstraps a follower by
 * snapshot (rows that are blocks), then, while the follower is down, takes
 * new articles (appended, and inside the time span of existing blocks),
 * replacements and deletes of articles in blocks, and compacts again: the
 * follower streams the log, whose articles now sit in the primary's blocks,
 * and ends identical.
 */
static void test_compacted_archive_replicates(void **state)
{
	(void)state;
	start_daemon(0, "--block-bytes", "16K", NULL);
	ingest_sync(0, "cmp", 0, 6000, 600, 500);
	/* blocks exist (wait_compacted checks there are fewer records than
	 * articles); how many is not asserted: under ASan one run in many
	 * ended its passes with a quarter or more of the articles still single
	 * (an open question about compaction racing with the end of an ingest) */
	uint64_t rec = wait_compacted(0);
	assert_true(rec < 6000);
	start_daemon(1, "--follow", D[0].addr, "--block-bytes", "16K", NULL);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 6000);
	verify_ok(1);
	stop_clean(1);

	ingest_sync(0, "mid", 0, 500, 300, 100);    /* same times as cmp-0..499 */
	ingest_sync(0, "new", 6000, 2000, 600, 500); /* after everything */
	na_trpc t;
	conn(0, &t);
	msgpack_object err, res;
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 100);
	for (int k = 0; k < 100; k++)
		pack_art_v(&p.pk, "cmp", 100 + k, 600, 1); /* replaced and moved */
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	const char *e = batch_error(&err, &res, 100);
	if (e)
		fail_msg("%s", e);
	for (int i = 1000; i < 1100; i++) {
		char guid[48];
		guid_of(guid, sizeof guid, "cmp", i);
		p_init(&p);
		na_mp_pack_cstr(&p.pk, guid);
		assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	}
	na_trpc_close(&t);
	wait_compacted(0);
	verify_ok(0);

	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 6000 + 500 + 2000 - 100);
	assert_int_equal(SNAPSHOTS(1), 1); /* it streamed */
	conn(1, &t);
	assert_int_equal(get_guid(&t, "cmp-0001050", NULL), 0);
	assert_int_equal(get_guid(&t, "cmp-0000150", NULL), 1);
	assert_int_equal(get_guid(&t, "new-0007999", NULL), 1);
	assert_int_equal(get_guid(&t, "mid-0000250", NULL), 1);
	na_trpc_close(&t);
	wait_compacted(1);
	verify_ok(1);
	assert_int_equal(compare_all(0, 1), 8400);
}

/* A snapshot goes out without waiting for acknowledgements while the
 * unacknowledged rows are under the window. The sender stops at its
 * output cap and relies on the write callback to go on; when the socket
 * took everything at once there was no callback, and a follower that had
 * nothing left to acknowledge waited. A peer that never acknowledges must
 * still get the whole (small) snapshot. */
static void test_snapshot_flows_without_acks(void **state)
{
	(void)state;
	start_daemon(0, "--output-queue-bytes", "64K", NULL);
	ingest_sync(0, "flow", 0, 3000, 1000, 1000);
	na_trpc t;
	conn(0, &t);
	params p;
	p_init(&p);
	msgpack_pack_map(&p.pk, 0);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "replicate", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_true(na_obj_streq(na_obj_get(&res, "mode"), "snapshot"));
	uint64_t rows = 0;
	bool ended = false;
	long long deadline = mono_ms() + 20000;
	t.timeout_ms = 20000;
	while (!ended && mono_ms() < deadline) {
		msgpack_object o;
		assert_int_equal(na_trpc_read(&t, &o), 1);
		if (o.via.array.size != 3 || o.via.array.ptr[0].via.u64 != 2)
			continue;
		const msgpack_object *m = &o.via.array.ptr[1];
		if (na_obj_streq(m, "rows"))
			rows += o.via.array.ptr[2].via.array.ptr[0].via.array.size;
		ended = na_obj_streq(m, "snapshot_end");
	}
	assert_true(ended);
	assert_int_equal(rows, 3000);
	na_trpc_close(&t);
}

/* A relaxed follower whose machine stopped with commits unsynced verifies
 * its archive at start; found damaged, it does not refuse to start like a
 * primary: it empties itself and takes a snapshot from its primary. */
static void test_damaged_follower_starts_over(void **state)
{
	(void)state;
	start_daemon(0, NULL);
	ingest_sync(0, "torn", 0, 2000, 300, 500);
	start_daemon(1, "--durability", "relaxed", "--follow", D[0].addr, NULL);
	wait_caught_up(0, 1);
	stop_clean(1);
	/* junk in place of one record, and the marker of an earlier boot */
	assert_int_equal(na_test_damage_article(D[1].data), 0);
	assert_int_equal(na_test_mark_unsynced_earlier_boot(D[1].data), 0);
	assert_int_equal(na_test_daemon_restart(&D[1]), 0);
	assert_int_equal(log_count(1, "a follower starts over"), 1);
	/* the damaged copy is kept aside, not removed */
	assert_int_equal(log_count(1, "the damaged archive is kept as"), 1);
	DIR *dir = opendir(D[1].data);
	assert_non_null(dir);
	bool aside = false;
	for (struct dirent *e; (e = readdir(dir));)
		aside |= strncmp(e->d_name, "data.mdb.damaged-", 17) == 0;
	closedir(dir);
	assert_true(aside);
	wait_caught_up(0, 1);
	assert_int_equal(compare_all(0, 1), 2000);
	verify_ok(1);
}

/* An optional argument runs only the tests matching it (cmocka's filter,
 * "*" wildcards allowed). */
int main(int argc, char **argv)
{
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_follower_converges_100k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compacted_archive_replicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follower_killed_in_snapshot_and_streaming, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fuzzy_snapshot_with_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_primary_killed_during_ingest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trimmed_log_rebootstraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_cut_resumes_without_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paused_follower_is_not_silent_primary, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cascade_and_promote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follower_rejects_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_maps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_follower_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follower_of_other_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_write_replicas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_seq_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_feed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_flows_without_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_follower_starts_over, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("replication", tests, NULL, NULL);
}
