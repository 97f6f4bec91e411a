/*
 * test_search.c - full-text search against a real newsarchd, checked
 * against a brute-force scan of the same articles.
 *
 * The test generates articles (pseudo-words from syllables, some with
 * accents and capitals, English inflections for the stemmer, several
 * languages, authors, tags, sources, sections; publication times in random
 * order so docid order and time order differ) and queries over them: every
 * operator, field filters, time windows, the three orders, pagination by
 * cursor with small pages. For each query the expected answer is computed
 * by scanning the test's own copy of the live articles with na_search_match
 * (the reference semantics, unit-tested separately in test_search_match.c)
 * and compared with what the daemon returns: the same articles in the same
 * order (newest/oldest), the same set without duplicates (relevance).
 * Then the same after deletes and replacements, on a follower, after an
 * online reindex and after a restart; once more with the primary's
 * articles compacted into blocks; and malformed queries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <lmdb.h>
#include <msgpack.h>

#include "daemon.h"
#include "newsarch.h"
#include "query.h"
#include "search.h"

#define NART 400
#define NQ 90

typedef struct art {
	char guid[32];
	int64_t sec;          /* unique per live article */
	na_article *a;        /* NULL: deleted */
} art;

static art A[NART];
static na_test_daemon P, F;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static na_analyzer *AN;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const words[] = {
	"cocoa", "coffee", "copper", "crude", "market", "markets", "marketing", "bank",
	"banks", "banking", "rate", "rates", "rating", "running", "runs", "run",
	"Café", "CAFE", "école", "Zürich", "naïve", "garçon", "tokyo", "東京",
	"grain", "wheat", "harvest", "strike", "strikes", "strong", "dollar", "yen",
	"oil", "opec", "ship", "shipping", "export", "exports", "exported", "price",
	"prices", "u.s.", "e-mail", "co-op", "1987", "4.5", "twenty", "trade",
};
#define NWORDS (sizeof words / sizeof words[0])
static const char *const authors[] = { "Jane Doe", "John Smith", "Zoë Brontë", "li wei", "Ana-María" };
static const char *const tags[] = { "commodities", "Energy", "FX", "grain", "metals" };
static const char *const sources[] = { "Reuters", "AP", "Agence France-Presse" };
static const char *const sections[] = { "Business", "World News", "Markets" };
static const char *const langs[] = { "en", "fr", "de", "", "xx", "en-GB" };

static void sentence(char *out, size_t cap, unsigned n)
{
	size_t o = 0;
	out[0] = 0;
	for (unsigned i = 0; i < n; i++) {
		const char *w = words[rnd(NWORDS)];
		int k = snprintf(out + o, cap - o, "%s%s%s", i ? (rnd(7) ? " " : ", ") : "", w,
				 rnd(11) == 0 ? "." : "");
		if (k < 0 || (size_t)k >= cap - o)
			break;
		o += (size_t)k;
	}
}

static na_article *make(const char *guid, int64_t sec)
{
	na_article_builder *b;
	na_article *a = NULL;
	char title[256], body[2048], summary[512];
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", guid, strlen(guid)), 0);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ sec, 0 }), 0);
	sentence(title, sizeof title, 2 + rnd(5));
	assert_int_equal(na_article_builder_set_str(b, "title", title, strlen(title)), 0);
	sentence(body, sizeof body, 10 + rnd(40));
	assert_int_equal(na_article_builder_set_str(b, "body", body, strlen(body)), 0);
	if (rnd(3) == 0) {
		sentence(summary, sizeof summary, 4 + rnd(8));
		assert_int_equal(na_article_builder_set_str(b, "summary", summary, strlen(summary)), 0);
	}
	const char *l = langs[rnd(6)];
	if (l[0])
		assert_int_equal(na_article_builder_set_str(b, "language", l, strlen(l)), 0);
	for (unsigned i = rnd(3); i > 0; i--) {
		const char *au = authors[rnd(5)];
		assert_int_equal(na_article_builder_add_author(b, au, strlen(au)), 0);
	}
	for (unsigned i = rnd(3); i > 0; i--) {
		const char *t = tags[rnd(5)];
		assert_int_equal(na_article_builder_add_tag(b, t, strlen(t)), 0);
	}
	if (rnd(4)) {
		const char *s = sources[rnd(3)];
		assert_int_equal(na_article_builder_set_str(b, "source", s, strlen(s)), 0);
	}
	if (rnd(2)) {
		const char *s = sections[rnd(3)];
		assert_int_equal(na_article_builder_set_str(b, "section", s, strlen(s)), 0);
	}
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	return a;
}

static na_client *connect_to(const na_test_daemon *d)
{
	na_client *c = NULL;
	char err[256];
	if (na_client_connect_ex(d->addr, NULL, &c, err, sizeof err))
		fail_msg("connect %s: %s", d->addr, err);
	return c;
}

/* ---- queries ----------------------------------------------------------- */

static void word_of_article(char *out, size_t cap)
{
	/* a few consecutive words of some live article's body: a phrase that
	 * exists */
	for (;;) {
		const art *x = &A[rnd(NART)];
		if (!x->a)
			continue;
		const char *body;
		size_t n;
		if (na_article_get_body(x->a, &body, &n))
			continue;
		size_t start = rnd((uint32_t)n);
		while (start > 0 && body[start - 1] != ' ')
			start--;
		size_t end = start, spaces = 0, want = 1 + rnd(3);
		while (end < n && !(body[end] == ' ' && ++spaces == want))
			end++;
		size_t o = 0;
		for (size_t i = start; i < end && o + 1 < cap; i++)
			if (body[i] != '"')
				out[o++] = body[i];
		out[o] = 0;
		if (o)
			return;
	}
}

static void gen_query(char *q, size_t cap)
{
	char a[256];
	const char *w1 = words[rnd(NWORDS)], *w2 = words[rnd(NWORDS)], *w3 = words[rnd(NWORDS)];
	switch (rnd(16)) {
	case 0: snprintf(q, cap, "%s", w1); break;
	case 1: snprintf(q, cap, "%s %s", w1, w2); break;
	case 2: snprintf(q, cap, "%s OR %s", w1, w2); break;
	case 3: snprintf(q, cap, "%s -%s", w1, w2); break;
	case 4: word_of_article(a, sizeof a); snprintf(q, cap, "\"%s\"", a); break;
	case 5: snprintf(q, cap, "%.3s*", w1); break;
	case 6: snprintf(q, cap, "title:%s", w1); break;
	case 7: snprintf(q, cap, "author:\"%s\"", authors[rnd(5)]); break;
	case 8: snprintf(q, cap, "tag:%s %s", tags[rnd(5)], rnd(2) ? w1 : ""); break;
	case 9: snprintf(q, cap, "source:\"%s\" OR section:\"%s\"", sources[rnd(3)], sections[rnd(3)]); break;
	case 10: snprintf(q, cap, "(%s OR %s) %s", w1, w2, w3); break;
	case 11: word_of_article(a, sizeof a); snprintf(q, cap, "%s -\"%s\"", w1, a); break;
	case 12: snprintf(q, cap, "%s AND (%s OR -%s %s)", w1, w2, w3, w1); break;
	case 13: snprintf(q, cap, "author:jan* OR tag:e*"); break;
	case 14: word_of_article(a, sizeof a); snprintf(q, cap, "title:\"%s\" OR \"%s\"", a, w1); break;
	default: snprintf(q, cap, "%s %s -%s", w1, w2, w3); break;
	}
}

/* ---- comparing --------------------------------------------------------- */

typedef struct hit {
	int64_t sec;
	const char *guid;
} hit;

static int cmp_hit_new(const void *a, const void *b)
{
	const hit *x = a, *y = b;
	return x->sec < y->sec ? 1 : x->sec > y->sec ? -1 : 0;
}

static int cmp_guid(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Expected hits (newest first) into out; returns the count. */
static size_t brute(const na_query *q, bool has_from, int64_t from, bool has_to, int64_t to,
		    hit *out)
{
	size_t n = 0;
	for (size_t i = 0; i < NART; i++) {
		if (!A[i].a)
			continue;
		if ((has_from && A[i].sec < from) || (has_to && A[i].sec >= to))
			continue;
		const uint8_t *raw;
		size_t len;
		na_article_bytes(A[i].a, &raw, &len);
		int m = na_search_match(AN, q, raw, len);
		assert_true(m >= 0);
		if (m)
			out[n++] = (hit){ A[i].sec, A[i].guid };
	}
	qsort(out, n, sizeof *out, cmp_hit_new);
	return n;
}

static int count_token(const na_token *t, void *arg)
{
	(void)t;
	(*(unsigned *)arg)++;
	return 0;
}

/* Whether the index answers q exactly (search.c): no leaf of the text
 * fields analyses into several words (a phrase, "e-mail"). Then "total" is
 * exact in relevance order, which scans the whole window. */
static bool query_exact(const na_query *q)
{
	for (uint32_t i = 0; i < q->n; i++) {
		const na_qnode *nd = &q->node[i];
		if (nd->kind > NA_Q_PREFIX || nd->kind == NA_Q_PREFIX || nd->field >= NA_F_AUTHOR)
			continue;
		unsigned n = 0;
		assert_int_equal(na_analyze(AN, nd->text, nd->len, "", 0, 0, count_token, &n), 0);
		if (n > 1)
			return false;
	}
	return true;
}

static uint64_t run_checks(na_client *c, uint64_t min_seq, unsigned nq, const char *where)
{
	static hit exp[NART];
	static char *got[NART + 1];
	uint64_t checked = 0;
	for (unsigned qi = 0; qi < nq; qi++) {
		char qs[600];
		gen_query(qs, sizeof qs);
		na_query q;
		char err[256];
		if (na_query_parse(qs, strlen(qs), AN, &q, err, sizeof err)) {
			/* some generated queries are invalid on purpose (a word
			 * with no letters after a minus...): the server must say
			 * so too */
			na_search_opts o = { .query = qs, .min_seq = min_seq };
			na_search *it;
			const na_article *a;
			assert_int_equal(na_search_open(c, &o, &it), 0);
			assert_int_equal(na_search_next(it, &a), NA_EBADREQ);
			na_search_close(it);
			continue;
		}
		bool hf = rnd(3) == 0, ht = rnd(3) == 0;
		int64_t from = 500000000 + (int64_t)rnd(60000000), to = from + (int64_t)rnd(40000000);
		if (!hf)
			from = 0;
		na_time tf = { from, 0 }, tt = { to, 0 };
		size_t ne = brute(&q, hf, from, ht, to, exp);
		for (int order = 0; order < 3; order++) {
			na_search_opts o = { .query = qs, .limit = 1 + rnd(9), .order = (na_search_order)order,
					     .from = hf ? &tf : NULL, .to = ht ? &tt : NULL,
					     .min_seq = min_seq, .timeout_ms = 60000 };
			if (rnd(4) == 0) {
				static const char *const fl[] = { "guid", "published" };
				o.fields = fl;
				o.nfields = 2;
			}
			na_search *it;
			const na_article *a;
			assert_int_equal(na_search_open(c, &o, &it), 0);
			size_t n = 0;
			int rc;
			while ((rc = na_search_next(it, &a)) == 1) {
				if (n >= NART)
					fail_msg("%s: query [%s] returned more than %d articles", where, qs, NART);
				const char *g;
				size_t gl;
				na_time pt;
				assert_int_equal(na_article_get_guid(a, &g, &gl), 0);
				assert_int_equal(na_article_get_published(a, &pt), 0);
				got[n] = strndup(g, gl);
				if (order != 2) {
					size_t k = order == 0 ? n : ne - 1 - n;
					if (n >= ne || strcmp(got[n], exp[k].guid) != 0)
						fail_msg("%s: query [%s] order %d: hit %zu is %s, expected %s (%zu expected)",
							 where, qs, order, n, got[n], n < ne ? exp[k].guid : "nothing", ne);
				}
				n++;
			}
			if (rc != 0)
				fail_msg("%s: query [%s]: %s", where, qs, na_client_errmsg(c));
			/* relevance scans the whole window: without phrases its total
			 * is exact, deleted and replaced versions not counted */
			if (order == 2 && query_exact(&q) && na_search_total(it) != ne)
				fail_msg("%s: query [%s] relevance: total %llu, expected %zu", where, qs,
					 (unsigned long long)na_search_total(it), ne);
			na_search_close(it);
			if (n != ne)
				fail_msg("%s: query [%s] order %d: %zu hits, expected %zu", where, qs, order, n, ne);
			if (order == 2) {
				const char *eg[NART];
				for (size_t i = 0; i < ne; i++)
					eg[i] = exp[i].guid;
				qsort(eg, ne, sizeof *eg, cmp_guid);
				qsort(got, n, sizeof *got, cmp_guid);
				for (size_t i = 0; i < n; i++)
					if (strcmp(eg[i], got[i]) != 0 || (i && strcmp(got[i - 1], got[i]) == 0))
						fail_msg("%s: query [%s] relevance: hit set differs at %zu (%s vs %s)",
							 where, qs, i, got[i], eg[i]);
			}
			for (size_t i = 0; i < n; i++)
				free(got[i]);
			checked++;
		}
		na_query_free(&q);
	}
	return checked;
}

/* ---- the test ------------------------------------------------------------ */

static uint64_t put_all(na_client *c, size_t from, size_t to)
{
	uint64_t seq = 0;
	for (size_t i = from; i < to; i++) {
		na_put_result r;
		assert_int_equal(na_put(c, A[i].a, &r), 0);
		if (r.seq > seq)
			seq = r.seq;
	}
	return seq;
}

static int64_t unique_sec(void)
{
	for (;;) {
		int64_t s = 500000000 + (int64_t)rnd(100000000);
		bool dup = false;
		for (size_t i = 0; i < NART; i++)
			if (A[i].a && A[i].sec == s)
				dup = true;
		if (!dup)
			return s;
	}
}

/* stats value of a boolean / unsigned key (false / 0 when absent) */
static uint64_t stat_u64(const na_server_stats *st, const char *key)
{
	const uint8_t *v;
	size_t n;
	if (na_server_stats_find(st, key, &v, &n) || n == 0)
		return 0;
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	uint64_t r = 0;
	if (msgpack_unpack_next(&u, (const char *)v, n, NULL) == MSGPACK_UNPACK_SUCCESS) {
		if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			r = u.data.via.u64;
		else if (u.data.type == MSGPACK_OBJECT_BOOLEAN)
			r = u.data.via.boolean;
	}
	msgpack_unpacked_destroy(&u);
	return r;
}

/* index.<key> of the server's stats (an unsigned integer; 0 if absent). */
static uint64_t index_stat(na_client *c, const char *key)
{
	na_server_stats *st;
	assert_int_equal(na_stats(c, &st), 0);
	const uint8_t *v;
	size_t n;
	uint64_t r = 0;
	assert_int_equal(na_server_stats_find(st, "index", &v, &n), 0);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)v, n, NULL), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < u.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
		    memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 &&
		    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			r = kv->val.via.u64;
	}
	msgpack_unpacked_destroy(&u);
	na_server_stats_free(st);
	return r;
}

/* With compaction on: waits (bounded) until the background compactor has
 * finished and packed articles into blocks, so searches read through them. */
static void wait_compacted(na_client *c)
{
	for (int k = 0; k < 20000; k++) {
		na_server_stats *st;
		assert_int_equal(na_stats(c, &st), 0);
		uint64_t records = stat_u64(st, "records"), compacting = stat_u64(st, "compacting");
		uint64_t articles = st->articles;
		na_server_stats_free(st);
		if (!compacting && records < articles)
			return;
		struct timespec ts = { 0, 5000000 }; /* poll interval, not a sync */
		nanosleep(&ts, NULL);
	}
	fail_msg("compaction did not finish");
}

static bool with_blocks;

static void test_search_vs_brute_force(void **state)
{
	(void)state;
	assert_int_equal(na_analyzer_new(&AN), 0);
	memset(&P, 0, sizeof P);
	if (with_blocks) {
		P.extra[0] = "--block-bytes";
		P.extra[1] = "8K";
	} else {
		/* small segments, so queries cross many sealed and merged
		 * ones */
		P.extra[0] = "--index-segment";
		P.extra[1] = "16";
	}
	assert_int_equal(na_test_daemon_start(&P), 0);
	for (size_t i = 0; i < NART; i++) {
		snprintf(A[i].guid, sizeof A[i].guid, "g%zu", i);
		A[i].sec = unique_sec();
		A[i].a = make(A[i].guid, A[i].sec);
	}
	na_client *c = connect_to(&P);
	uint64_t seq = put_all(c, 0, NART);
	if (with_blocks)
		wait_compacted(c);
	uint64_t checked = run_checks(c, seq, NQ, "primary");

	/* deletes and replacements */
	for (size_t i = 0; i < NART; i += 7) {
		uint64_t dseq;
		int deleted;
		assert_int_equal(na_delete(c, A[i].guid, strlen(A[i].guid), &deleted, &dseq), 0);
		assert_int_equal(deleted, 1);
		na_article_free(A[i].a);
		A[i].a = NULL;
		seq = dseq > seq ? dseq : seq;
	}
	for (size_t i = 3; i < NART; i += 9) {
		if (!A[i].a)
			continue;
		na_article_free(A[i].a);
		A[i].a = NULL;
		A[i].sec = unique_sec();
		A[i].a = make(A[i].guid, A[i].sec);
		na_put_result r;
		assert_int_equal(na_put(c, A[i].a, &r), 0);
		seq = r.seq > seq ? r.seq : seq;
	}
	checked += run_checks(c, seq, NQ, "after deletes and replacements");

	/* a follower builds its own index from what it applies */
	memset(&F, 0, sizeof F);
	F.extra[0] = "--follow";
	F.extra[1] = P.addr;
	F.extra[2] = "--index-segment";
	F.extra[3] = with_blocks ? "8192" : "32";
	assert_int_equal(na_test_daemon_start(&F), 0);
	na_client *fc = connect_to(&F);
	checked += run_checks(fc, seq, NQ / 2, "follower");
	/* and keeps it up to date while streaming */
	for (size_t i = 5; i < NART; i += 11) {
		if (!A[i].a)
			continue;
		na_article_free(A[i].a);
		A[i].sec = unique_sec();
		A[i].a = make(A[i].guid, A[i].sec);
		na_put_result r;
		assert_int_equal(na_put(c, A[i].a, &r), 0);
		seq = r.seq > seq ? r.seq : seq;
	}
	checked += run_checks(fc, seq, NQ / 2, "follower, streaming");
	na_client_close(fc);

	/* online rebuild: while it runs the index covers nothing, so min_seq
	 * waits for the end */
	assert_int_equal(na_reindex(c), 0);
	checked += run_checks(c, seq, NQ / 2, "after reindex");

	/* the index survives a restart */
	na_client_close(c);
	assert_int_equal(na_test_daemon_stop(&P), 0);
	assert_int_equal(na_test_daemon_restart(&P), 0);
	c = connect_to(&P);
	checked += run_checks(c, seq, NQ / 3, "after restart");
	/* the searches above crossed sealed and merged segments (16 of 16
	 * articles each merge into one of 256) */
	uint64_t segs = index_stat(c, "segments"), merged = index_stat(c, "merged");
	uint64_t docs = index_stat(c, "articles");
	if (with_blocks) {
		assert_int_equal(segs, 0);
	} else {
		assert_true(merged >= 1);
		assert_true(segs > merged);
		assert_true((segs - merged) * 16 + merged * 256 <= docs);
	}
	print_message("%llu searches compared with the brute-force scan\n", (unsigned long long)checked);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&F), 0);
	assert_int_equal(na_test_daemon_cleanup(&P), 0);
	for (size_t i = 0; i < NART; i++)
		na_article_free(A[i].a);
	na_analyzer_free(AN);
}

/* The same with the primary packing its articles into compressed blocks
 * (block_bytes): hits, deletes and replacements inside blocks, reindex. */
static void test_search_over_blocks(void **state)
{
	with_blocks = true;
	rng = 0x2545f4914f6cdd1dull;
	test_search_vs_brute_force(state);
	with_blocks = false;
}

static void test_bad_queries(void **state)
{
	(void)state;
	na_test_daemon d = { 0 };
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_client *c = connect_to(&d);
	static const struct { const char *q, *want; } bad[] = {
		{ "", "empty query" },
		{ "   ", "empty query" },
		{ "\"unterminated", "position 0: unterminated phrase" },
		{ "cocoa (oil", "position 6: unbalanced" },
		{ "cocoa)", "position 5: unbalanced" },
		{ "-cocoa", "position 0: a group of terms needs at least one" },
		{ "cocoa OR", "position 6: OR needs a term after it" },
		{ "OR cocoa", "position 0: OR needs a term before it" },
		{ "colour:red", "position 0: unknown field \"colour\"" },
		{ "title:", "position 0: title: needs a value" },
		{ "*", "position 0: a lone \"*\"" },
		{ "cocoa --", "position 7: \"-\" has no letters" },
		{ "()", "position 0: empty parentheses" },
		{ "a OR -b", "position 5: a group of terms needs" },
		{ "e-ma*", "position 0: a prefix must be a single word" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		na_search_opts o = { .query = bad[i].q };
		na_search *it;
		const na_article *a;
		assert_int_equal(na_search_open(c, &o, &it), 0);
		int rc = na_search_next(it, &a);
		if (rc != NA_EBADREQ || !strstr(na_client_errmsg(c), bad[i].want))
			fail_msg("query [%s]: got %d \"%s\", expected BAD_REQUEST with \"%s\"", bad[i].q, rc,
				 na_client_errmsg(c), bad[i].want);
		na_search_close(it);
	}
	/* a cursor of another order, and a bad raw request */
	const uint8_t *res;
	size_t rlen;
	static const uint8_t no_q[] = { 0x91, 0x80 }; /* [{}] */
	assert_int_equal(na_call_raw(c, "search", no_q, sizeof no_q, &res, &rlen), NA_EBADREQ);
	assert_non_null(strstr(na_client_errmsg(c), "q: the query is required"));
	/* the server keeps serving */
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

/* An article with one distinctive word in its body. */
static na_article *make_with_word(const char *guid, int64_t sec, const char *word)
{
	na_article_builder *b;
	na_article *a = NULL;
	char body[256];
	snprintf(body, sizeof body, "markets were calm until %s arrived", word);
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", guid, strlen(guid)), 0);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ sec, 0 }), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", "a quiet day", 11), 0);
	assert_int_equal(na_article_builder_set_str(b, "body", body, strlen(body)), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	return a;
}

/* Hits of q (at most 10), waiting for min_seq (at most timeout_ms) when it
 * is not 0. */
static int hits_of(na_client *c, const char *q, uint64_t min_seq, uint32_t timeout_ms)
{
	na_search_opts o = { .query = q, .min_seq = min_seq, .timeout_ms = timeout_ms };
	na_search *it;
	const na_article *a;
	assert_int_equal(na_search_open(c, &o, &it), 0);
	int n = 0, rc;
	while (n < 10 && (rc = na_search_next(it, &a)) == 1)
		n++;
	if (n < 10 && rc != 0)
		fail_msg("search [%s] min_seq %llu: %d %s", q, (unsigned long long)min_seq, rc,
			 na_client_errmsg(c));
	na_search_close(it);
	return n;
}

/* index.state as a string (stats) into out. */
static void index_state(na_client *c, char *out, size_t cap)
{
	na_server_stats *st;
	assert_int_equal(na_stats(c, &st), 0);
	const uint8_t *v;
	size_t n;
	assert_int_equal(na_server_stats_find(st, "index", &v, &n), 0);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)v, n, NULL), MSGPACK_UNPACK_SUCCESS);
	out[0] = 0;
	for (uint32_t i = 0; u.data.type == MSGPACK_OBJECT_MAP && i < u.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 5 &&
		    memcmp(kv->key.via.str.ptr, "state", 5) == 0 && kv->val.type == MSGPACK_OBJECT_STR)
			snprintf(out, cap, "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
	}
	msgpack_unpacked_destroy(&u);
	na_server_stats_free(st);
}

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Waits (bounded) until the indexer has caught up and is idle, so the next
 * write is one it lets gather. */
static void wait_index_ready(na_client *c)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char st[32];
	for (;;) {
		index_state(c, st, sizeof st);
		if (strcmp(st, "ready") == 0 && index_stat(c, "lag") == 0)
			return;
		if (ms_since(&t0) > 30000)
			fail_msg("the index did not catch up in 30 s (state %s)", st);
		nanosleep(&(struct timespec){ 0, 5 * 1000000L }, NULL);
	}
}

/* index_refresh_ms: once caught up, the indexer lets new writes gather that
 * long. The daemon runs with 4 s: a write stays out of plain searches for
 * longer than the 1 s default (so the option is really read), then shows
 * up without anyone asking (the wait ends); a search with min_seq has its
 * write indexed at once (its 2 s timeout is shorter than the interval). */
static void test_index_refresh(void **state)
{
	(void)state;
	na_test_daemon d = { 0 };
	d.extra[0] = "--index-refresh-ms";
	d.extra[1] = "4000";
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_client *c = connect_to(&d);
	na_article *a1 = make_with_word("refresh-1", 700000000, "zyzzyvafrond");
	na_article *a2 = make_with_word("refresh-2", 700000100, "quokkabramble");
	na_article *a3 = make_with_word("refresh-3", 700000200, "wombatquill");
	na_article *a4 = make_with_word("refresh-4", 700000300, "pangolinsleet");
	na_put_result r1, r2, r3, r4;
	assert_int_equal(na_put(c, a1, &r1), 0);
	assert_int_equal(hits_of(c, "zyzzyvafrond", r1.seq, 2000), 1);
	wait_index_ready(c);
	assert_int_equal(na_put(c, a2, &r2), 0);
	/* not searchable, and still behind, for 1.5 s of watching */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		assert_int_equal(hits_of(c, "quokkabramble", 0, 0), 0);
		assert_true(index_stat(c, "lag") >= 1);
		nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
	} while (ms_since(&t0) < 1500);
	/* then indexed once the interval is over, without being asked */
	while (hits_of(c, "quokkabramble", 0, 0) == 0) {
		if (ms_since(&t0) > 60000)
			fail_msg("a write was still not indexed 60 s later (interval 4 s)");
		nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
	}
	/* and a search that asks has its write indexed at once */
	wait_index_ready(c);
	assert_int_equal(na_put(c, a3, &r3), 0);
	assert_int_equal(hits_of(c, "wombatquill", r3.seq, 2000), 1);
	assert_int_equal(index_stat(c, "lag"), 0);
	/* a search for a seq that never comes times out, and then stops
	 * hurrying the indexer: the interval applies again */
	na_search_opts far = { .query = "wombatquill", .min_seq = r3.seq + 1000000, .timeout_ms = 100 };
	na_search *it;
	const na_article *a;
	assert_int_equal(na_search_open(c, &far, &it), 0);
	assert_int_equal(na_search_next(it, &a), NA_ETIMEOUT);
	na_search_close(it);
	wait_index_ready(c);
	assert_int_equal(na_put(c, a4, &r4), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		assert_int_equal(hits_of(c, "pangolinsleet", 0, 0), 0);
		nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
	} while (ms_since(&t0) < 1500);
	na_article_free(a1);
	na_article_free(a2);
	na_article_free(a3);
	na_article_free(a4);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

/* The tid of pid's thread named name, or 0. */
static pid_t thread_named(pid_t pid, const char *name)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	pid_t found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char cp[320], comm[32] = "";
		snprintf(cp, sizeof cp, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		FILE *f = fopen(cp, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof comm, f)) {
			comm[strcspn(comm, "\n")] = 0;
			if (strcmp(comm, name) == 0)
				found = (pid_t)atoi(e->d_name);
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/*
 * The indexer thread (found by its name) runs at nice 10, so the writer,
 * the loop and the workers get the CPU first; every other thread of the
 * daemon keeps the nice value it started with, and a search waiting for a
 * write still gets it.
 */
static void test_indexer_scheduling(void **state)
{
	(void)state;
	na_test_daemon d = { 0 };
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_client *c = connect_to(&d);
	wait_index_ready(c);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t tid;
	int policy;
	for (;;) {
		tid = thread_named(d.pid, "na-index");
		policy = tid ? sched_getscheduler(tid) : -1;
		if (tid && getpriority(PRIO_PROCESS, (id_t)tid) >= 10)
			break;
		if (ms_since(&t0) > 30000)
			fail_msg("indexer thread %d: not at nice 10", (int)tid);
		nanosleep(&(struct timespec){ 0, 5 * 1000000L }, NULL);
	}
	assert_int_equal(policy, SCHED_OTHER);
	/* every other thread of the daemon runs at the normal class, at the
	 * nice value it inherited from this process */
	int own = getpriority(PRIO_PROCESS, 0);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)d.pid);
	DIR *dir = opendir(path);
	assert_non_null(dir);
	struct dirent *e;
	unsigned others = 0;
	while ((e = readdir(dir))) {
		pid_t t = (pid_t)atoi(e->d_name);
		if (t <= 0 || t == tid)
			continue;
		assert_int_equal(sched_getscheduler(t), SCHED_OTHER);
		assert_int_equal(getpriority(PRIO_PROCESS, (id_t)t), own);
		others++;
	}
	closedir(dir);
	assert_true(others >= 1);
	/* and a search that waits for a write still gets it at once */
	na_article *a = make_with_word("sched-1", 700001000, "okapitremble");
	na_put_result r;
	assert_int_equal(na_put(c, a, &r), 0);
	assert_int_equal(hits_of(c, "okapitremble", r.seq, 10000), 1);
	na_article_free(a);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

/* Sets or deletes (v NULL) a meta entry, and optionally creates a table,
 * in the LMDB environment at dir, as an older version would have left it. */
static void poke_env(const char *dir, const char *name, const void *v, size_t vl,
		     const char *table)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	MDB_val k = { strlen(name), (void *)name }, val = { vl, (void *)v };
	if (v)
		assert_int_equal(mdb_put(txn, meta, &k, &val, 0), 0);
	else
		assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	if (table) {
		MDB_dbi t;
		assert_int_equal(mdb_dbi_open(txn, table, MDB_CREATE, &t), 0);
		assert_int_equal(mdb_put(txn, t, &k, &val, 0), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Whether the environment at dir has a table of that name. */
static bool env_has_table(const char *dir, const char *table)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi t;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	int rc = mdb_dbi_open(txn, table, 0, &t);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	assert_true(rc == 0 || rc == MDB_NOTFOUND);
	return rc == 0;
}

/* Restarts the stopped primary, checks searches against the brute force
 * and that the index rebuilt `rebuilt` articles on the way, and stops it. */
static void restart_and_check(uint64_t seq, uint64_t rebuilt, const char *label)
{
	assert_int_equal(na_test_daemon_restart(&P), 0);
	na_client *c = connect_to(&P);
	run_checks(c, seq, NQ / 8, label);
	assert_int_equal(index_stat(c, "rebuilt"), rebuilt);
	na_client_close(c);
	assert_int_equal(na_test_daemon_stop(&P), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* An index the daemon cannot trust is rebuilt when it starts, and answers
 * exactly afterwards: one written before segments existed (no ix_segshift
 * in its meta), tables an older version kept inside the archive's own
 * environment (dropped), an index directory that is gone (a backup
 * restored: backups copy the articles only), an index with commits not
 * synced when the machine went down (its marker names another boot; a
 * process killed on the same boot keeps its index), and an index built
 * for other articles (the archive's ix_epoch moved on, as a follower's
 * snapshot does). */
static void test_index_rebuilt_when_stale(void **state)
{
	(void)state;
	assert_int_equal(na_analyzer_new(&AN), 0);
	rng = 0x7c5d3a1b9e2f4d6cull;
	memset(&P, 0, sizeof P);
	assert_int_equal(na_test_daemon_start(&P), 0);
	for (size_t i = 0; i < NART; i++) {
		snprintf(A[i].guid, sizeof A[i].guid, "old%zu", i);
		A[i].sec = unique_sec();
		A[i].a = make(A[i].guid, A[i].sec);
	}
	na_client *c = connect_to(&P);
	/* a new index starts with a rebuild of what the archive holds: let it
	 * finish on the empty archive, or a busy machine may have it scan the
	 * first articles put (correct, but then "rebuilt" is not 0) */
	wait_index_ready(c);
	uint64_t seq = put_all(c, 0, NART);
	run_checks(c, seq, NQ / 8, "before the downgrade");
	assert_int_equal(index_stat(c, "rebuilt"), 0);
	na_client_close(c);
	assert_int_equal(na_test_daemon_stop(&P), 0);

	/* an index without its segment size, and old index tables in the
	 * archive's environment */
	char ixdir[600];
	snprintf(ixdir, sizeof ixdir, "%s/index", P.data);
	poke_env(ixdir, "ix_segshift", NULL, 0, NULL);
	uint8_t junk[8] = { 0 };
	poke_env(P.data, "ix_seq", junk, 8, "ixpost");
	assert_true(env_has_table(P.data, "ixpost"));
	restart_and_check(seq, NART, "after rebuilding an index from before segments");
	assert_false(env_has_table(P.data, "ixpost"));

	/* the index directory is gone */
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", ixdir);
	assert_int_equal(system(cmd), 0);
	restart_and_check(seq, NART, "after rebuilding a missing index");

	/* killed with index commits not yet synced: the page cache kept
	 * them (same boot), so nothing is rebuilt */
	assert_int_equal(na_test_daemon_restart(&P), 0);
	c = connect_to(&P);
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
	na_test_daemon_kill(&P);
	char mark[700], boot[64] = "";
	snprintf(mark, sizeof mark, "%s/unsynced", ixdir);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	assert_non_null(f);
	assert_non_null(fgets(boot, sizeof boot, f));
	fclose(f);
	boot[strcspn(boot, "\n")] = 0;
	write_file(mark, boot);
	restart_and_check(seq, 0, "after a kill");

	/* the machine went down with index commits not yet synced: the
	 * marker names another boot, and the index is rebuilt */
	write_file(mark, "00000000-0000-0000-0000-000000000000");
	restart_and_check(seq, NART, "after a reboot with an unsynced index");
	assert_int_equal(access(mark, F_OK), -1); /* a clean stop syncs */

	/* built for other articles */
	uint8_t epoch[8] = { 0, 0, 0, 0, 0, 0, 0, 99 };
	poke_env(P.data, "ix_epoch", epoch, 8, NULL);
	restart_and_check(seq, NART, "after rebuilding an index of other articles");
	assert_int_equal(na_test_daemon_cleanup(&P), 0);
	for (size_t i = 0; i < NART; i++)
		na_article_free(A[i].a);
	na_analyzer_free(AN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_search_vs_brute_force),
		cmocka_unit_test(test_search_over_blocks),
		cmocka_unit_test(test_bad_queries),
		cmocka_unit_test(test_index_refresh),
		cmocka_unit_test(test_indexer_scheduling),
		cmocka_unit_test(test_index_rebuilt_when_stale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
