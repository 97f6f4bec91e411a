/*
 * test_search_index.c - the indexer (daemon/index.c) and na_search_run
 * (daemon/search.c) on a real archive, without a daemon: articles go in
 * through the writer (na_writer_apply_now), the indexer thread builds the
 * index, and searches run on the test's thread.
 *
 * Covers what a daemon test cannot make happen on purpose: a rebuild's scan
 * commit that fails once (the filesystem looked full), a search with
 * min_seq that runs while a rebuild it did not wait for is under way, the
 * relevance candidate cap (made small), and "total" after deletes and
 * replacements, and the cap on the index terms of one query.
 *
 * Fault injection, in the style of test_store.c: this binary's statvfs
 * reports the index's filesystem full when told to, so na_store_ix_room
 * refuses the commit and the indexer takes its wait-for-space path.
 * Waits are on the indexer's notify callback (a condition variable, with a
 * deadline), never sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <msgpack.h>

#include "article.h"
#include "codec.h"
#include "index.h"
#include "key.h"
#include "mp.h"
#include "search.h"
#include "store.h"
#include "writer.h"

#define SEGMENT 16 /* docids per index segment: a rebuild's scan commits 16 at a time */

/* ---- fault injection: the index's filesystem looks full ---------------- */

enum { FAULT_NONE, FAULT_SCAN_CHUNK1, FAULT_ALL };
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fcv = PTHREAD_COND_INITIALIZER;
static int fault;              /* under fmu */
static int faults_hit;         /* under fmu */
static na_indexer *fault_ix;   /* under fmu: FAULT_SCAN_CHUNK1 reads its stats */

/* na_store_ix_room asks about DIR/index/unsynced, or DIR/index when that
 * marker does not exist. */
static bool index_path(const char *p)
{
	size_t n = strlen(p);
	return (n >= 15 && strcmp(p + n - 15, "/index/unsynced") == 0) ||
	       (n >= 6 && strcmp(p + n - 6, "/index") == 0);
}

int statvfs(const char *restrict path, struct statvfs *restrict buf)
{
	static int (*real)(const char *restrict, struct statvfs *restrict);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "statvfs");
	int rc = real(path, buf);
	if (rc != 0 || !index_path(path))
		return rc;
	pthread_mutex_lock(&fmu);
	bool fail = false;
	if (fault == FAULT_SCAN_CHUNK1) {
		/* the commit of the rebuild's second scan chunk: the first
		 * chunk (SEGMENT articles) is in and its segment sealed */
		while (!fault_ix)
			pthread_cond_wait(&fcv, &fmu); /* until the test has the indexer */
		na_ixstats st;
		na_indexer_stats(fault_ix, &st);
		fail = st.state == NA_IX_REBUILDING && st.scanned == SEGMENT && st.sealed == 1;
		if (fail)
			fault = FAULT_NONE; /* once */
	} else if (fault == FAULT_ALL) {
		fail = true;
	}
	if (fail) {
		buf->f_bavail = 0;
		faults_hit++;
		pthread_cond_broadcast(&fcv);
	}
	pthread_mutex_unlock(&fmu);
	return rc;
}

static void set_fault(int f, na_indexer *ix)
{
	pthread_mutex_lock(&fmu);
	fault = f;
	fault_ix = ix;
	faults_hit = 0;
	pthread_cond_broadcast(&fcv);
	pthread_mutex_unlock(&fmu);
}

static struct timespec deadline(int sec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += sec;
	return ts;
}

/* Waits (at most 60 s) until a fault was injected. */
static void wait_fault(void)
{
	struct timespec ts = deadline(60);
	pthread_mutex_lock(&fmu);
	int rc = 0;
	while (faults_hit == 0 && rc == 0)
		rc = pthread_cond_timedwait(&fcv, &fmu, &ts);
	int hit = faults_hit;
	pthread_mutex_unlock(&fmu);
	if (!hit)
		fail_msg("the indexer never reached the faulty commit");
}

/* ---- the archive, the writer and the indexer ---------------------------- */

typedef struct fx {
	char dir[512];
	na_store store;
	na_writer w;
	na_indexer *ix;
	na_analyzer *an;
	uint64_t seq;                  /* the last write's */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t covered;              /* under mu: the last position notified */
} fx;

static void on_index(void *arg, uint64_t seq)
{
	fx *f = arg;
	pthread_mutex_lock(&f->mu);
	f->covered = seq;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	const char *t = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/na-six-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	na_store_opts o = { .dir = f->dir, .map_size = 64u << 20, .max_map_size = 1u << 30,
			    .relaxed = true, .level = 3, .max_article = 1 << 20,
			    .index_segment = SEGMENT, .index_refresh_ms = 0 };
	const char *msg = "";
	int rc = na_store_open(&f->store, &o, &msg);
	if (rc) {
		fprintf(stderr, "na_store_open: %d %s\n", rc, msg);
		return -1;
	}
	if (na_writer_start(&f->w, &f->store, NULL, false) || na_analyzer_new(&f->an))
		return -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	set_fault(FAULT_NONE, NULL);
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	fx *f = *state;
	set_fault(FAULT_NONE, NULL);
	na_indexer_stop(f->ix);
	na_writer_stop(&f->w);
	na_store_close(&f->store);
	na_analyzer_free(f->an);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void start_indexer(fx *f)
{
	assert_int_equal(na_indexer_start(&f->store, on_index, f, &f->ix), 0);
}

/* Waits (at most 60 s) until the index covers seq. */
static void wait_covered(fx *f, uint64_t seq)
{
	na_indexer_kick(f->ix, f->seq); /* no writer hook here: tell it */
	struct timespec ts = deadline(60);
	pthread_mutex_lock(&f->mu);
	int rc = 0;
	while (f->covered < seq && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	uint64_t got = f->covered;
	pthread_mutex_unlock(&f->mu);
	if (got < seq)
		fail_msg("the index covers %llu after 60 s, not %llu", (unsigned long long)got,
			 (unsigned long long)seq);
}

static void put(fx *f, const char *guid, int64_t sec, const char *body)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	na_mp_pack_cstr(&pk, "guid");
	na_mp_pack_cstr(&pk, guid);
	na_mp_pack_cstr(&pk, "published");
	na_mp_pack_ts(&pk, (na_ts){ sec, 0 });
	na_mp_pack_cstr(&pk, "title");
	na_mp_pack_cstr(&pk, "news");
	na_mp_pack_cstr(&pk, "body");
	na_mp_pack_cstr(&pk, body);
	na_mp r;
	na_article_info info;
	char err[256];
	na_mp_init(&r, sb.data, sb.size);
	if (na_article_check(&r, &info, "test", err, sizeof err))
		fail_msg("bad test article: %s", err);
	uint8_t *rec = malloc(na_codec_bound(sb.size));
	size_t rec_len;
	assert_int_equal(na_codec_encode(f->store.codec, sb.data, sb.size, rec, &rec_len), 0);
	na_witem it = { .rec = rec, .rec_len = rec_len, .raw = info.raw, .raw_len = info.raw_len,
			.guid = info.guid, .guid_len = info.guid_len,
			.micros = na_ts_micros(info.published) };
	na_wjob job = { .op = NA_WOP_PUT, .n = 1, .items = &it };
	assert_int_equal(na_writer_apply_now(&f->w, &job), 0);
	assert_true(it.seq > 0);
	f->seq = it.seq;
	free(rec);
	msgpack_sbuffer_destroy(&sb);
}

static void del(fx *f, const char *guid)
{
	na_witem it = { .guid = guid, .guid_len = (uint32_t)strlen(guid) };
	na_wjob job = { .op = NA_WOP_DELETE, .n = 1, .items = &it };
	assert_int_equal(na_writer_apply_now(&f->w, &job), 0);
	assert_true(it.seq > 0);
	f->seq = it.seq;
}

/* A u64 of the index meta as committed (the indexer's own counters move
 * only after its notify callback has run). */
static uint64_t ixmeta(fx *f, const char *name)
{
	MDB_txn *t;
	uint64_t v = 0;
	assert_int_equal(na_store_ixbegin(&f->store, &t), 0);
	assert_int_equal(na_ixmeta_get_u64(&f->store, t, name, &v), 0);
	na_store_ixend(&f->store, t);
	return v;
}

/* ---- searching ----------------------------------------------------------- */

#define MAXHITS 1000

typedef struct sres {
	int rc;
	char err[300];
	size_t n;
	char guid[MAXHITS][24];
	uint64_t total;
	uint8_t next[NA_SEARCH_CURSOR_MAX];
	size_t nextlen;  /* 0: no next page */
} sres;

typedef struct sopt {
	const char *q;
	na_order order;
	uint32_t limit;
	uint64_t min_seq;
	uint32_t max_candidates;
	const sres *after;   /* the previous page */
} sopt;

static void search(fx *f, const sopt *o, sres *r)
{
	memset(r, 0, sizeof *r);
	na_search_q sq = { .q = o->q, .qlen = strlen(o->q), .limit = o->limit ? o->limit : 20,
			   .order = o->order, .min_seq = o->min_seq,
			   .max_candidates = o->max_candidates };
	if (o->after) {
		assert_true(o->after->nextlen > 0);
		sq.has_after = true;
		memcpy(sq.after, o->after->next, o->after->nextlen);
		sq.after_len = o->after->nextlen;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	r->rc = na_search_run(&f->store, f->an, &sq, &pk, r->err, sizeof r->err);
	if (r->rc) {
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	na_mp m;
	na_mp_init(&m, sb.data, sb.size);
	uint32_t nk;
	assert_int_equal(na_mp_map(&m, &nk), 0);
	for (uint32_t i = 0; i < nk; i++) {
		const char *k;
		uint32_t kn;
		assert_int_equal(na_mp_str(&m, &k, &kn), 0);
		if (na_mp_streq(k, kn, "articles")) {
			uint32_t na;
			assert_int_equal(na_mp_array(&m, &na), 0);
			assert_true(na <= MAXHITS);
			for (uint32_t j = 0; j < na; j++) {
				uint32_t nf;
				assert_int_equal(na_mp_map(&m, &nf), 0);
				for (uint32_t x = 0; x < nf; x++) {
					const char *fk, *fv;
					uint32_t fkn, fvn;
					assert_int_equal(na_mp_str(&m, &fk, &fkn), 0);
					if (na_mp_streq(fk, fkn, "guid")) {
						assert_int_equal(na_mp_str(&m, &fv, &fvn), 0);
						snprintf(r->guid[r->n], sizeof r->guid[r->n], "%.*s", (int)fvn, fv);
					} else {
						assert_int_equal(na_mp_skip(&m), 0);
					}
				}
				r->n++;
			}
		} else if (na_mp_streq(k, kn, "total")) {
			assert_int_equal(na_mp_u64(&m, &r->total), 0);
		} else if (na_mp_peek(&m) == NA_MP_NIL) {
			assert_int_equal(na_mp_nil(&m), 0);
		} else {
			const uint8_t *b;
			uint32_t bn;
			assert_int_equal(na_mp_bin(&m, &b, &bn), 0);
			assert_true(bn <= sizeof r->next);
			memcpy(r->next, b, bn);
			r->nextlen = bn;
		}
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Every page of o's search, its guids sorted into out (at most MAXHITS);
 * returns how many. *total: the first page's. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static size_t all_pages(fx *f, sopt o, char (*out)[24], uint64_t *total)
{
	static sres page[2];
	size_t n = 0;
	int cur = 0;
	o.after = NULL;
	for (int k = 0;; k++) {
		search(f, &o, &page[cur]);
		if (page[cur].rc)
			fail_msg("[%s]: %d %s", o.q, page[cur].rc, page[cur].err);
		if (k == 0 && total)
			*total = page[cur].total;
		for (size_t i = 0; i < page[cur].n; i++) {
			assert_true(n < MAXHITS);
			memcpy(out[n++], page[cur].guid[i], 24);
		}
		if (!page[cur].nextlen)
			break;
		assert_true(k < MAXHITS);
		o.after = &page[cur];
		cur ^= 1;
	}
	qsort(out, n, sizeof *out, cmp_str);
	for (size_t i = 1; i < n; i++)
		if (strcmp(out[i - 1], out[i]) == 0)
			fail_msg("[%s]: %s returned twice", o.q, out[i]);
	return n;
}

/* ---- tests ------------------------------------------------------------------ */

/*
 * A rebuild whose scan chunk fails to commit (here: the filesystem looks
 * full, the indexer's designed wait-for-space path) reads that chunk again:
 * every article is indexed, and searchable. The scan's position used to
 * stay past the failed chunk, so its articles were never indexed (and the
 * log replay skipped them as covered) while the rebuild reported itself
 * done.
 */
static void test_rebuild_survives_failed_commit(void **state)
{
	fx *f = *state;
	enum { N = 200 };
	for (int i = 0; i < N; i++) {
		char g[24], body[128];
		snprintf(g, sizeof g, "a%03d", i);
		snprintf(body, sizeof body, "zebra crossing number w%03d", i);
		put(f, g, 600000000 + i, body);
	}
	/* a new index is built from the articles: a scan, SEGMENT a chunk */
	set_fault(FAULT_SCAN_CHUNK1, NULL);
	start_indexer(f);
	set_fault(FAULT_SCAN_CHUNK1, f->ix);
	wait_covered(f, f->seq);
	pthread_mutex_lock(&fmu);
	assert_int_equal(faults_hit, 1);
	pthread_mutex_unlock(&fmu);
	assert_int_equal(ixmeta(f, "ix_next"), N);
	static char got[MAXHITS][24];
	uint64_t total;
	size_t n = all_pages(f, (sopt){ .q = "zebra", .limit = 1000 }, got, &total);
	assert_int_equal(n, N);
	assert_int_equal(total, N);
	for (int i = 0; i < N; i++) {
		char g[24];
		snprintf(g, sizeof g, "a%03d", i);
		assert_string_equal(got[i], g);
	}
	/* each article by a word of its own */
	for (int i = 0; i < N; i++) {
		char q[16];
		snprintf(q, sizeof q, "w%03d", i);
		sres r;
		search(f, &(sopt){ .q = q }, &r);
		assert_int_equal(r.rc, 0);
		if (r.n != 1)
			fail_msg("[%s]: %zu hits", q, r.n);
	}
}

/*
 * A search with min_seq that was found covered when it arrived, but runs
 * on an index a reindex has dropped meanwhile, answers TIMEOUT's
 * -ETIMEDOUT (the wait it asked for cannot be met) instead of the partial
 * index's hits. Without min_seq, it answers from what is indexed, as
 * documented. Once the rebuild is done, both answer in full.
 */
static void test_min_seq_search_during_rebuild(void **state)
{
	fx *f = *state;
	enum { N = 60 };
	for (int i = 0; i < N; i++) {
		char g[24];
		snprintf(g, sizeof g, "b%03d", i);
		put(f, g, 600000000 + i, "giraffe neck");
	}
	start_indexer(f);
	wait_covered(f, f->seq);
	sres r;
	search(f, &(sopt){ .q = "giraffe", .limit = 100, .min_seq = f->seq }, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, N);

	/* the reindex drops the index; its scan then waits for space */
	pthread_mutex_lock(&f->mu);
	f->covered = 0;
	pthread_mutex_unlock(&f->mu);
	set_fault(FAULT_ALL, NULL);
	na_indexer_reindex(f->ix);
	wait_fault();
	search(f, &(sopt){ .q = "giraffe", .limit = 100, .min_seq = f->seq }, &r);
	if (r.rc != -ETIMEDOUT)
		fail_msg("a search with min_seq on a rebuilding index: rc %d, %zu hits (%s)", r.rc, r.n,
			 r.err);
	assert_non_null(strstr(r.err, "min_seq"));
	assert_non_null(strstr(r.err, "rebuilt"));
	/* without min_seq: what is indexed so far (nothing yet) */
	search(f, &(sopt){ .q = "giraffe", .limit = 100 }, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 0);

	set_fault(FAULT_NONE, NULL);
	wait_covered(f, f->seq);
	search(f, &(sopt){ .q = "giraffe", .limit = 100, .min_seq = f->seq }, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, N);
	assert_int_equal(r.total, N);
}

/*
 * "total" is exact when the search visits the whole window and the query
 * has no phrase: it counts the articles that still exist, not the deleted
 * or replaced versions the index still holds until a reindex.
 */
static void test_total_counts_live_versions(void **state)
{
	fx *f = *state;
	for (int i = 0; i < 10; i++) {
		char g[24], body[64];
		snprintf(g, sizeof g, "h%d", i);
		snprintf(body, sizeof body, "common t%d", i);
		put(f, g, 600000000 + i, body);
	}
	start_indexer(f);
	wait_covered(f, f->seq);
	del(f, "h5");
	del(f, "h6");
	put(f, "h8", 600000100, "common t9 replaced");
	wait_covered(f, f->seq);
	assert_int_equal(ixmeta(f, "ix_dead"), 3); /* still in the index */

	static const struct {
		const char *q;
		size_t n;
	} cases[] = {
		{ "t5 OR t6 OR t7", 1 },
		{ "t5 OR t6", 0 },
		{ "t8", 0 },
		{ "t9", 2 },
		{ "common", 8 },
		{ "comm*", 8 },
		{ "common -t9", 6 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int order = 0; order < 3; order++) {
			sres r;
			search(f, &(sopt){ .q = cases[i].q, .order = (na_order)order }, &r);
			assert_int_equal(r.rc, 0);
			if (r.n != cases[i].n || r.total != cases[i].n)
				fail_msg("[%s] order %d: %zu hits, total %llu; expected %zu", cases[i].q, order,
					 r.n, (unsigned long long)r.total, cases[i].n);
		}
	}
	/* page by page: every page counts the whole window, the versions gone
	 * before the cursor too */
	for (int order = 0; order < 3; order++) {
		sres page[2];
		int cur = 0;
		size_t pages = 0;
		sopt o = { .q = "common", .order = (na_order)order, .limit = 1 };
		for (;;) {
			search(f, &o, &page[cur]);
			assert_int_equal(page[cur].rc, 0);
			if (page[cur].total != 8)
				fail_msg("order %d page %zu: total %llu, expected 8", order, pages,
					 (unsigned long long)page[cur].total);
			pages++;
			if (!page[cur].nextlen)
				break;
			o.after = &page[cur];
			cur ^= 1;
		}
		assert_int_equal(pages, 8);
	}
}

/*
 * Relevance keeps a bounded number of candidates (made 4 here). The
 * better-scored ones that fail the phrase check (both words, but apart)
 * must not push the real matches out: every match is found, page after
 * page.
 */
static void test_relevance_phrase_over_candidate_cap(void **state)
{
	fx *f = *state;
	/* the matches first (lower docids), each with the phrase once in a
	 * long text: low scores */
	for (int i = 0; i < 3; i++) {
		char g[24];
		snprintf(g, sizeof g, "m%d", i);
		put(f, g, 600000000 + i,
		    "alpha beta and then a long story about other things entirely, one two three "
		    "four five six seven eight nine ten eleven twelve thirteen fourteen fifteen");
	}
	/* then many with both words often, never next to each other */
	for (int i = 0; i < 12; i++) {
		char g[24];
		snprintf(g, sizeof g, "x%02d", i);
		put(f, g, 600000100 + i, "alpha gamma beta alpha gamma beta alpha gamma beta");
	}
	start_indexer(f);
	wait_covered(f, f->seq);
	static char got[MAXHITS][24];
	for (uint32_t limit = 1; limit <= 3; limit++) {
		uint64_t total;
		size_t n = all_pages(f,
				     (sopt){ .q = "\"alpha beta\"", .order = NA_ORDER_RELEVANCE, .limit = limit,
					     .max_candidates = 4 },
				     got, &total);
		if (n != 3)
			fail_msg("limit %u: %zu matches, expected 3", limit, n);
		for (size_t i = 0; i < 3; i++) {
			char g[24];
			snprintf(g, sizeof g, "m%zu", i);
			assert_string_equal(got[i], g);
		}
	}
	/* words, not a phrase: all 15, by existence alone */
	uint64_t total;
	size_t n = all_pages(f,
			     (sopt){ .q = "alpha beta", .order = NA_ORDER_RELEVANCE, .limit = 2,
				     .max_candidates = 4 },
			     got, &total);
	assert_int_equal(n, 15);
	assert_int_equal(total, 15);
}

/*
 * One query may look up at most NA_SEARCH_MAX_TERMS index terms in all:
 * ORed prefixes that each stay under the per-prefix limit but together
 * expand past it are a BAD_REQUEST naming the limit. A prefix whose terms
 * are in many segments counts each term once.
 */
static void test_query_term_cap(void **state)
{
	fx *f = *state;
	/* 1000 words under each of pa, pb, pc, pd, pe: 20 articles of 50 */
	static char body[16384];
	for (int i = 0; i < 100; i++) {
		size_t o = 0;
		for (int k = 0; k < 50; k++)
			o += (size_t)snprintf(body + o, sizeof body - o, "p%c%04d ", 'a' + i / 20,
					      (i % 20) * 50 + k);
		char g[24];
		snprintf(g, sizeof g, "p%03d", i);
		put(f, g, 600000000 + i, body);
	}
	/* the same 1000 words in each of 40 articles: in several segments */
	size_t o = 0;
	for (int k = 0; k < 1000; k++)
		o += (size_t)snprintf(body + o, sizeof body - o, "sh%04d ", k);
	for (int i = 0; i < 40; i++) {
		char g[24];
		snprintf(g, sizeof g, "s%03d", i);
		put(f, g, 600001000 + i, body);
	}
	start_indexer(f);
	wait_covered(f, f->seq);
	assert_true(ixmeta(f, "ix_sealed") >= 3);

	sres r;
	for (int order = 0; order < 3; order++) {
		search(f, &(sopt){ .q = "pa* OR pb* OR pc* OR pd* OR pe*", .order = (na_order)order }, &r);
		if (r.rc != -EINVAL)
			fail_msg("5000 terms: rc %d, %zu hits (total %llu)", r.rc, r.n,
				 (unsigned long long)r.total);
		char lim[16];
		snprintf(lim, sizeof lim, "%d", NA_SEARCH_MAX_TERMS);
		assert_non_null(strstr(r.err, lim));
		assert_non_null(strstr(r.err, "index terms"));
	}
	/* 4000 terms: under the limit */
	search(f, &(sopt){ .q = "pa* OR pb* OR pc* OR pd*", .order = NA_ORDER_RELEVANCE, .limit = 100 },
	       &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 80);
	assert_int_equal(r.total, 80);
	/* 1000 distinct terms, each in several segments: under the
	 * per-prefix limit of 1024 */
	for (int order = 0; order < 3; order++) {
		search(f, &(sopt){ .q = "sh*", .order = (na_order)order, .limit = 100 }, &r);
		if (r.rc)
			fail_msg("sh*: %d %s", r.rc, r.err);
		assert_int_equal(r.n, 40);
		assert_int_equal(r.total, 40);
	}
	/* and the per-prefix limit still holds */
	search(f, &(sopt){ .q = "p*" }, &r);
	assert_int_equal(r.rc, -EINVAL);
	assert_non_null(strstr(r.err, "matches more than 1024 terms"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rebuild_survives_failed_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_seq_search_during_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total_counts_live_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relevance_phrase_over_candidate_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_term_cap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
