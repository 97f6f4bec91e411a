/*
 * search.c - newsarch-bench: full-text search.
 *
 * Right after the ingest it measures how long the server's indexer needs
 * to cover everything written (stats "index"), hence the indexing rate
 * (articles / time from the start of the ingest until the index covered
 * its last write: the indexer runs during the ingest), and the index size
 * (index.bytes, pages of the index tables) per article and as a share of
 * the stored article bytes. Then, at one client, the latency of searches
 * (newest first, limit 20) for a single term, two terms (AND), a phrase,
 * and two terms within a one-month window, each over a fixed list of
 * queries for the Reuters corpus, for bench_search_seconds each.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc.h"

typedef struct ixstat {
	bool ok;
	uint64_t seq, ix_seq, articles, stored_bytes, page_bytes, ix_bytes, ix_docs;
} ixstat;

static ixstat read_stats(bconn *c)
{
	ixstat s;
	memset(&s, 0, sizeof s);
	const uint8_t *msg;
	size_t len;
	if (bc_call(c, 1, "stats", NULL, 0, 0, &msg, &len, 30000) != 1)
		return s;
	na_mp r;
	uint32_t id, n;
	bool e;
	if (bc_parse_reply(msg, len, &r, &id, &e) || e || na_mp_map(&r, &n))
		return s;
	for (uint32_t i = 0; i < n && !r.err; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return s;
		if (na_mp_streq(k, kn, "seq"))
			na_mp_u64(&r, &s.seq);
		else if (na_mp_streq(k, kn, "articles"))
			na_mp_u64(&r, &s.articles);
		else if (na_mp_streq(k, kn, "stored_bytes"))
			na_mp_u64(&r, &s.stored_bytes);
		else if (na_mp_streq(k, kn, "page_bytes"))
			na_mp_u64(&r, &s.page_bytes);
		else if (na_mp_streq(k, kn, "index") && na_mp_peek(&r) == NA_MP_MAP) {
			uint32_t m;
			na_mp_map(&r, &m);
			for (uint32_t j = 0; j < m && !r.err; j++) {
				const char *ik;
				uint32_t ikn;
				if (na_mp_str(&r, &ik, &ikn))
					return s;
				if (na_mp_streq(ik, ikn, "seq"))
					na_mp_u64(&r, &s.ix_seq);
				else if (na_mp_streq(ik, ikn, "bytes"))
					na_mp_u64(&r, &s.ix_bytes);
				else if (na_mp_streq(ik, ikn, "articles"))
					na_mp_u64(&r, &s.ix_docs);
				else
					na_mp_skip(&r);
			}
		} else {
			na_mp_skip(&r);
		}
	}
	s.ok = !r.err;
	return s;
}

static const char *const singles[] = {
	"oil", "bank", "trade", "dollar", "wheat", "coffee", "gold", "profit", "shares",
	"tonnes", "government", "january", "japan", "sugar", "copper", "opec",
};
static const char *const pairs[] = {
	"oil prices", "bank rates", "trade deficit", "wheat exports", "coffee quota",
	"gold mine", "share offer", "crude oil", "japan trade", "sugar production",
	"dollar yen", "interest rate",
};
static const char *const phrases[] = {
	"\"interest rates\"", "\"trade deficit\"", "\"central bank\"", "\"crude oil\"",
	"\"net profit\"", "\"stock exchange\"", "\"money supply\"", "\"world bank\"",
};

typedef struct qset {
	const char *name;
	const char *const *q;
	size_t n;
	bool month;
} qset;

static int one_search(bconn *c, uint32_t id, const char *q, bool month, int64_t lo_us, int64_t hi_us,
		      uint64_t *rng, uint64_t *total)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, month ? 4 : 2);
	na_mp_pack_cstr(&pk, "q");
	na_mp_pack_cstr(&pk, q);
	na_mp_pack_cstr(&pk, "limit");
	msgpack_pack_uint32(&pk, 20);
	if (month) {
		/* a random 30-day window inside the corpus' time span */
		int64_t span = hi_us - lo_us - 30LL * 86400 * 1000000;
		*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
		int64_t from = lo_us + (span > 0 ? (int64_t)((*rng >> 11) % (uint64_t)span) : 0);
		na_mp_pack_cstr(&pk, "from");
		msgpack_pack_int64(&pk, from / 1000000);
		na_mp_pack_cstr(&pk, "to");
		msgpack_pack_int64(&pk, from / 1000000 + 30 * 86400);
	}
	const uint8_t *msg;
	size_t len;
	int rc = bc_call(c, id, "search", sb.data, sb.size, 1, &msg, &len, 30000);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 1)
		return -1;
	na_mp r;
	uint32_t rid, n;
	bool e;
	if (bc_parse_reply(msg, len, &r, &rid, &e) || e || na_mp_map(&r, &n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return -1;
		if (na_mp_streq(k, kn, "total"))
			na_mp_u64(&r, total);
		else if (na_mp_skip(&r))
			return -1;
	}
	return 0;
}

int bench_search(const struct sockaddr_storage *ss, socklen_t sslen, const bench_corpus *corp,
		 uint64_t ingest_t0, uint64_t ingest_t1, double seconds, bench_search_result *out)
{
	memset(out, 0, sizeof *out);
	bconn c;
	if (bc_open(&c, ss, sslen)) {
		snprintf(out->err, sizeof out->err, "search: cannot connect: %s", strerror(errno));
		return -1;
	}
	/* the index catches up */
	ixstat st;
	uint64_t deadline = bench_now_ns() + 1800ull * 1000000000u;
	for (;;) {
		st = read_stats(&c);
		if (!st.ok) {
			snprintf(out->err, sizeof out->err, "search: stats failed");
			bc_close(&c);
			return -1;
		}
		if (st.ix_seq >= st.seq)
			break;
		if (bench_now_ns() > deadline) {
			snprintf(out->err, sizeof out->err, "search: the index did not catch up in 30 min");
			bc_close(&c);
			return -1;
		}
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL); /* polling a server statistic, not synchronising a test */
	}
	uint64_t t = bench_now_ns();
	out->catchup_s = ingest_t1 ? (double)(t - ingest_t1) / 1e9 : 0;
	out->index_rate = ingest_t0 && t > ingest_t0 ? (double)st.ix_docs / ((double)(t - ingest_t0) / 1e9) : 0;
	out->articles = st.articles;
	out->index_docs = st.ix_docs;
	out->index_bytes = st.ix_bytes;
	out->stored_bytes = st.stored_bytes;
	out->page_bytes = st.page_bytes;

	int64_t lo = corp->n ? corp->sorted_us[0] : 0, hi = corp->n ? corp->sorted_us[corp->n - 1] : 0;
	const qset sets[] = {
		{ "search: one term", singles, sizeof singles / sizeof *singles, false },
		{ "search: two terms (AND)", pairs, sizeof pairs / sizeof *pairs, false },
		{ "search: phrase", phrases, sizeof phrases / sizeof *phrases, false },
		{ "search: two terms, 1 month", pairs, sizeof pairs / sizeof *pairs, true },
	};
	uint64_t rng = 42;
	uint32_t id = 2;
	for (size_t si = 0; si < sizeof sets / sizeof *sets; si++) {
		bench_search_row *row = &out->rows[out->nrows++];
		snprintf(row->name, sizeof row->name, "%s", sets[si].name);
		hist h;
		memset(&h, 0, sizeof h);
		uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), total = 0;
		size_t k = 0;
		while (bench_now_ns() < end || k < sets[si].n) {
			uint64_t q0 = bench_now_ns(), tot = 0;
			if (one_search(&c, id++, sets[si].q[k % sets[si].n], sets[si].month, lo, hi, &rng, &tot)) {
				snprintf(out->err, sizeof out->err, "search: query \"%s\" failed",
					 sets[si].q[k % sets[si].n]);
				bc_close(&c);
				return -1;
			}
			hist_add(&h, bench_now_ns() - q0);
			total += tot;
			k++;
		}
		row->queries = k;
		row->rate = (double)k / ((double)(bench_now_ns() - t0) / 1e9);
		row->p50_us = hist_quantile(&h, 0.50) / 1e3;
		row->p99_us = hist_quantile(&h, 0.99) / 1e3;
		row->mean_total = (double)total / (double)k;
	}
	bc_close(&c);
	out->done = true;
	return 0;
}

void bench_search_print(const bench_search_result *r)
{
	if (!r->done) {
		printf("search: %s\n\n", r->err[0] ? r->err : "not measured");
		return;
	}
	printf("%-34s %9s %9s %9s %12s   %s\n", "search (1 client, limit 20)", "q/s", "p50 us",
	       "p99 us", "avg total", "target");
	for (unsigned i = 0; i < r->nrows; i++) {
		const bench_search_row *w = &r->rows[i];
		bool two = strstr(w->name, "two terms (AND)") != NULL;
		printf("%-34s %9.0f %9.1f %9.1f %12.0f   %s\n", w->name, w->rate, w->p50_us, w->p99_us,
		       w->mean_total, two ? (w->p99_us <= 20000 ? "p99 <= 20 ms OK" : "p99 <= 20 ms MISS") : "");
	}
	double per = r->articles ? (double)r->index_bytes / (double)r->articles : 0;
	double share = r->stored_bytes ? 100.0 * (double)r->index_bytes / (double)r->stored_bytes : 0;
	printf("%-34s %10.1f bytes/article (%.1f%% of stored_bytes) %-10s %s\n",
	       "index (index.bytes / articles)", per, share, "<= 50%", share <= 50 ? "OK" : "MISS");
	printf("%-34s %10.0f articles/s (%" PRIu64 " indexed; caught up %.1f s after the ingest)\n",
	       "indexing rate", r->index_rate, r->index_docs, r->catchup_s);
	printf("\n");
}
