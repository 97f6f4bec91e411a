/*
 * corpus.c - newsarch-bench: JSON lines -> msgpack articles, scaled.
 *
 * Every line goes through the CLI's JSON -> msgpack mapping (client/cli/
 * json.c), so the bench sends exactly what `newsarch import` would. Copies
 * are then made by rewriting two fields of the encoded map (guid and
 * published) and copying every other value's bytes as they are. All of this
 * happens before any timing starts.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "rpc.h"
#include "../../client/cli/json.h"
#include "../../client/cli/timefmt.h"

/* ---- growable byte buffer with a hard cap --------------------------- */

typedef struct gbuf {
	uint8_t *p;
	size_t len, cap, max;
} gbuf;

static int gbuf_reserve(gbuf *b, size_t more)
{
	if (more > b->max || b->len > b->max - more)
		return -1;
	if (b->cap - b->len >= more)
		return 0;
	size_t want = b->cap ? b->cap : 65536;
	while (want - b->len < more)
		want = want > b->max / 2 ? b->max : want * 2;
	uint8_t *n = realloc(b->p, want);
	if (!n)
		return -1;
	b->p = n;
	b->cap = want;
	return 0;
}

static int gbuf_put(gbuf *b, const void *p, size_t n)
{
	if (gbuf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* msgpack packer callback writing into a gbuf */
static int gbuf_write(void *data, const char *p, size_t n)
{
	return gbuf_put(data, p, n);
}

/* ---- the base articles ---------------------------------------------- */

typedef struct base {
	msgpack_sbuffer mp;     /* articles end to end */
	size_t *off;            /* n + 1 */
	uint32_t *json_len;
	size_t n, cap;
	uint64_t json_bytes;
	na_ts tmin, tmax;
	char *err;
	size_t errcap;
	unsigned long lineno;
} base;

/* Finds guid and published in an encoded article. */
static int article_fields(const uint8_t *p, size_t len, const char **g, uint32_t *gn, na_ts *ts)
{
	na_mp r;
	na_mp_init(&r, p, len);
	uint32_t n;
	bool have_g = false, have_t = false;
	if (na_mp_map(&r, &n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return -1;
		if (na_mp_streq(k, kn, "guid")) {
			if (na_mp_str(&r, g, gn))
				return -1;
			have_g = true;
		} else if (na_mp_streq(k, kn, "published")) {
			if (na_mp_ts(&r, ts))
				return -1;
			have_t = true;
		} else if (na_mp_skip(&r)) {
			return -1;
		}
	}
	return have_g && have_t && r.err == 0 ? 0 : -1;
}

static bool ts_less(na_ts a, na_ts b)
{
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec);
}

static int base_add(base *b, const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return 0; /* blank line */
	if (b->n >= BENCH_MAX_BASE) {
		snprintf(b->err, b->errcap, "more than %u lines", BENCH_MAX_BASE);
		return -1;
	}
	if (b->n + 1 >= b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 32768;
		size_t *no = realloc(b->off, nc * sizeof *no);
		if (!no)
			goto oom;
		b->off = no;
		uint32_t *nj = realloc(b->json_len, nc * sizeof *nj);
		if (!nj)
			goto oom;
		b->json_len = nj;
		b->cap = nc;
	}
	char e[512];
	size_t start = b->mp.size;
	int rc = na_json_article_from_text(line, len, &b->mp, e, sizeof e);
	if (rc) {
		snprintf(b->err, b->errcap, "line %lu: %s", b->lineno, e);
		return -1;
	}
	const char *g;
	uint32_t gn;
	na_ts ts;
	if (article_fields((const uint8_t *)b->mp.data + start, b->mp.size - start, &g, &gn, &ts)) {
		snprintf(b->err, b->errcap, "line %lu: converted article lacks guid/published", b->lineno);
		return -1;
	}
	if (b->n == 0 || ts_less(ts, b->tmin))
		b->tmin = ts;
	if (b->n == 0 || ts_less(b->tmax, ts))
		b->tmax = ts;
	b->off[b->n] = start;
	b->json_len[b->n] = (uint32_t)(len + 1);
	b->json_bytes += len + 1;
	b->n++;
	b->off[b->n] = b->mp.size;
	return 0;
oom:
	snprintf(b->err, b->errcap, "out of memory");
	return -1;
}

/* Splits a byte stream into lines (bounded); calls base_add per line. */
typedef struct liner {
	gbuf partial;
	base *b;
} liner;

static int liner_feed(liner *l, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (l->partial.len + take > BENCH_MAX_LINE) {
			snprintf(l->b->err, l->b->errcap, "line %lu is longer than %u bytes",
				 l->b->lineno + 1, BENCH_MAX_LINE);
			return -1;
		}
		if (!nl) {
			if (gbuf_put(&l->partial, p, take)) {
				snprintf(l->b->err, l->b->errcap, "out of memory");
				return -1;
			}
			return 0;
		}
		l->b->lineno++;
		int rc;
		if (l->partial.len) {
			if (gbuf_put(&l->partial, p, take)) {
				snprintf(l->b->err, l->b->errcap, "out of memory");
				return -1;
			}
			rc = base_add(l->b, (const char *)l->partial.p, l->partial.len);
			l->partial.len = 0;
		} else {
			rc = base_add(l->b, (const char *)p, take);
		}
		if (rc)
			return rc;
		p += take + 1;
		n -= take + 1;
	}
	return 0;
}

static int liner_end(liner *l)
{
	if (l->partial.len == 0)
		return 0;
	l->b->lineno++;
	int rc = base_add(l->b, (const char *)l->partial.p, l->partial.len);
	l->partial.len = 0;
	return rc;
}

static int read_file(base *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(b->err, b->errcap, "%s: %s", path, strerror(errno));
		return -1;
	}
	liner l = { .partial = { .max = BENCH_MAX_LINE + 1 }, .b = b };
	size_t inc = ZSTD_DStreamInSize(), outc = ZSTD_DStreamOutSize();
	uint8_t *in = malloc(inc), *out = malloc(outc);
	ZSTD_DCtx *dctx = NULL;
	int rc = -1;
	if (!in || !out) {
		snprintf(b->err, b->errcap, "out of memory");
		goto done;
	}
	size_t got = fread(in, 1, inc, f);
	bool zst = got >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd;
	if (zst && !(dctx = ZSTD_createDCtx())) {
		snprintf(b->err, b->errcap, "out of memory");
		goto done;
	}
	size_t zret = 0;
	while (got > 0) {
		if (!zst) {
			if (liner_feed(&l, in, got))
				goto done;
		} else {
			ZSTD_inBuffer ib = { in, got, 0 };
			while (ib.pos < ib.size) {
				ZSTD_outBuffer ob = { out, outc, 0 };
				zret = ZSTD_decompressStream(dctx, &ob, &ib);
				if (ZSTD_isError(zret)) {
					snprintf(b->err, b->errcap, "%s: zstd: %s", path,
						 ZSTD_getErrorName(zret));
					goto done;
				}
				if (liner_feed(&l, out, ob.pos))
					goto done;
			}
		}
		got = fread(in, 1, inc, f);
	}
	if (ferror(f)) {
		snprintf(b->err, b->errcap, "%s: read error", path);
		goto done;
	}
	if (zst && zret != 0) {
		snprintf(b->err, b->errcap, "%s: truncated zstd stream", path);
		goto done;
	}
	rc = liner_end(&l);
done:
	ZSTD_freeDCtx(dctx);
	free(in);
	free(out);
	free(l.partial.p);
	fclose(f);
	return rc;
}

/* ---- synthetic articles --------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static const char *const words[] = {
	"market", "shares", "company", "said", "the", "of", "and", "to", "in", "a", "for",
	"billion", "million", "dlrs", "pct", "year", "quarter", "profit", "loss", "net",
	"bank", "rate", "rates", "trade", "exports", "imports", "oil", "prices", "crude",
	"government", "minister", "official", "agreement", "talks", "results", "sales",
	"dividend", "stock", "offer", "tender", "acquisition", "merger", "board", "analysts",
	"expected", "growth", "inflation", "currency", "dollar", "yen", "interest", "debt",
	"budget", "deficit", "surplus", "production", "output", "demand", "supply", "grain",
	"wheat", "corn", "coffee", "sugar", "gold", "silver", "copper", "week", "month",
	"increase", "decrease", "rose", "fell", "from", "with", "on", "at", "by", "its", "was",
	"will", "would", "has", "had", "is", "be", "this", "that", "an", "as", "which", "it",
};
#define NWORDS (sizeof words / sizeof words[0])
static const char *const topics[] = { "earn", "acq", "money-fx", "grain", "crude", "trade",
				      "interest", "ship", "wheat", "corn" };
static const char *const places[] = { "usa", "uk", "japan", "canada", "west-germany",
				      "france", "brazil", "australia", "china", "belgium" };

static int put_words(gbuf *g, uint64_t *rng, size_t target, bool caps, bool paragraphs)
{
	size_t col = 0, start = g->len;
	while (g->len - start < target) {
		const char *w = words[rng_next(rng) % NWORDS];
		char tmp[32];
		size_t wl = strlen(w);
		for (size_t i = 0; i < wl; i++)
			tmp[i] = caps ? (char)(w[i] >= 'a' && w[i] <= 'z' ? w[i] - 32 : w[i]) : w[i];
		if (g->len > start) {
			if (paragraphs && col > 60) {
				/* a line break; every 8th one starts a paragraph */
				const char *brk = rng_next(rng) % 8 == 0 ? "\\n    " : "\\n";
				if (gbuf_put(g, brk, strlen(brk)))
					return -1;
				col = 0;
			} else if (gbuf_put(g, " ", 1)) {
				return -1;
			}
		}
		if (gbuf_put(g, tmp, wl))
			return -1;
		col += wl + 1;
	}
	return 0;
}

static int put_str(gbuf *g, const char *s)
{
	return gbuf_put(g, s, strlen(s));
}

/* Articles shaped like newswire items: ~1 KB JSON on average, a long tail. */
static int make_synthetic(base *b, size_t n)
{
	uint64_t rng = 0x6e65777361726368ULL;
	gbuf g = { .max = BENCH_MAX_LINE };
	na_ts t = { 1577836800, 0 }; /* 2020-01-01 */
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		g.len = 0;
		t.sec += (int64_t)(rng_next(&rng) % 600);
		t.nsec = (uint32_t)(rng_next(&rng) % 1000) * 1000000u;
		char ts[NA_RFC3339_BUFSZ], num[64];
		if (na_rfc3339_format(t, ts, sizeof ts) < 0)
			return -1;
		/* body length: log-normal, median ~500 bytes, 8% empty */
		double u1 = rng_unit(&rng), u2 = rng_unit(&rng);
		double z = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-12)) * cos(2 * M_PI * u2);
		size_t body = rng_next(&rng) % 100 < 8 ? 0 : (size_t)fmin(13000.0, exp(6.2 + 0.9 * z));
		snprintf(num, sizeof num, "%zu", i + 1);
		rc |= put_str(&g, "{\"guid\":\"synthetic:");
		rc |= put_str(&g, num);
		rc |= put_str(&g, "\",\"published\":\"");
		rc |= put_str(&g, ts);
		rc |= put_str(&g, "\",\"title\":\"");
		rc |= put_words(&g, &rng, 20 + rng_next(&rng) % 50, true, false);
		rc |= put_str(&g, "\",\"dateline\":\"NEW YORK, Jan 1\",\"body\":\"");
		rc |= put_words(&g, &rng, body, false, true);
		rc |= put_str(&g, "\",\"topics\":[");
		unsigned nt = (unsigned)(rng_next(&rng) % 3);
		for (unsigned k = 0; k < nt; k++) {
			rc |= put_str(&g, k ? ",\"" : "\"");
			rc |= put_str(&g, topics[rng_next(&rng) % 10]);
			rc |= put_str(&g, "\"");
		}
		rc |= put_str(&g, "],\"places\":[\"");
		rc |= put_str(&g, places[rng_next(&rng) % 10]);
		rc |= put_str(&g, "\"],\"source\":\"Synthetic\"}");
		if (rc) {
			snprintf(b->err, b->errcap, "out of memory");
			break;
		}
		b->lineno++;
		rc = base_add(b, (const char *)g.p, g.len);
	}
	free(g.p);
	return rc;
}

/* ---- scaling ------------------------------------------------------- */

/* Writes copy k of article a (shifted, guid suffixed) into out. */
static int rewrite(gbuf *out, const uint8_t *a, size_t alen, unsigned k, int64_t shift,
		   uint32_t *guid_off, uint16_t *guid_len)
{
	na_mp r;
	na_mp_init(&r, a, alen);
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, gbuf_write);
	size_t start = out->len;
	uint32_t n;
	if (na_mp_map(&r, &n) || msgpack_pack_map(&pk, n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *kraw = r.p;
		const char *key;
		uint32_t kn;
		if (na_mp_str(&r, &key, &kn) || gbuf_put(out, kraw, (size_t)(r.p - kraw)))
			return -1;
		if (na_mp_streq(key, kn, "guid")) {
			const char *g;
			uint32_t gn;
			char sfx[16];
			int sl = k ? snprintf(sfx, sizeof sfx, "-%u", k) : 0;
			if (na_mp_str(&r, &g, &gn) || gn + (uint32_t)sl > NA_MAX_GUID_BYTES)
				return -1;
			if (msgpack_pack_str(&pk, gn + (size_t)sl))
				return -1;
			*guid_off = (uint32_t)(out->len - start);
			*guid_len = (uint16_t)(gn + (uint32_t)sl);
			if (gbuf_put(out, g, gn) || gbuf_put(out, sfx, (size_t)sl))
				return -1;
		} else if (na_mp_streq(key, kn, "published")) {
			na_ts ts;
			if (na_mp_ts(&r, &ts))
				return -1;
			ts.sec += (int64_t)k * shift;
			if (ts.sec > NA_TS_MAX_SEC || na_mp_pack_ts(&pk, ts))
				return -1;
		} else {
			const uint8_t *v;
			size_t vn;
			if (na_mp_raw(&r, &v, &vn) || gbuf_put(out, v, vn))
				return -1;
		}
	}
	return r.err ? -1 : 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int bench_corpus_load(bench_corpus *c, const char *path, size_t synthetic, unsigned scale,
		      size_t target, size_t cap, char *err, size_t errcap)
{
	memset(c, 0, sizeof *c);
	base b = { .err = err, .errcap = errcap };
	msgpack_sbuffer_init(&b.mp);
	int rc;
	if (path) {
		rc = read_file(&b, path);
		snprintf(c->source, sizeof c->source, "%s", path);
	} else {
		rc = make_synthetic(&b, synthetic);
		snprintf(c->source, sizeof c->source, "synthetic (%zu articles)", synthetic);
		c->synthetic = true;
	}
	if (rc == 0 && b.n == 0) {
		snprintf(err, errcap, "%s: no articles", c->source);
		rc = -1;
	}
	if (rc)
		goto out;
	if (scale == 0)
		scale = (unsigned)((target + b.n - 1) / b.n);
	if (scale == 0)
		scale = 1;
	size_t total = b.n * (size_t)scale;
	if (total / scale != b.n || total > BENCH_MAX_ARTICLES) {
		snprintf(err, errcap, "%zu articles x scale %u is more than %u", b.n, scale,
			 BENCH_MAX_ARTICLES);
		rc = -1;
		goto out;
	}
	if (cap && total > cap)
		total = cap;
	c->base_n = b.n;
	c->scale = scale;
	c->base_json_bytes = b.json_bytes;
	c->shift_sec = (b.tmax.sec - b.tmin.sec) + 1 + 86400;
	c->off = malloc((total + 1) * sizeof *c->off);
	c->json_len = malloc(total * sizeof *c->json_len);
	c->guid_off = malloc(total * sizeof *c->guid_off);
	c->guid_len = malloc(total * sizeof *c->guid_len);
	c->sorted_us = malloc(total * sizeof *c->sorted_us);
	/* each copy grows by the guid suffix and maybe a larger timestamp */
	gbuf out = { .max = (size_t)1 << 40 };
	if (!c->off || !c->json_len || !c->guid_off || !c->guid_len || !c->sorted_us ||
	    gbuf_reserve(&out, b.mp.size * ((total + b.n - 1) / b.n) + total * 24)) {
		free(out.p);
		snprintf(err, errcap, "out of memory for %zu articles", total);
		rc = -1;
		goto out;
	}
	size_t i = 0;
	for (unsigned k = 0; k < scale && i < total; k++) {
		for (size_t j = 0; j < b.n && i < total; j++, i++) {
			c->off[i] = out.len;
			const uint8_t *a = (const uint8_t *)b.mp.data + b.off[j];
			size_t alen = b.off[j + 1] - b.off[j];
			if (rewrite(&out, a, alen, k, c->shift_sec, &c->guid_off[i], &c->guid_len[i])) {
				free(out.p);
				snprintf(err, errcap, "cannot scale article %zu (copy %u): out of memory or "
					 "time beyond year 9999", j, k);
				rc = -1;
				goto out;
			}
			const char *g;
			uint32_t gn;
			na_ts ts;
			if (article_fields(out.p + c->off[i], out.len - c->off[i], &g, &gn, &ts)) {
				free(out.p);
				snprintf(err, errcap, "scaled article %zu is malformed", i);
				rc = -1;
				goto out;
			}
			c->sorted_us[i] = ts.sec * 1000000 + ts.nsec / 1000;
			uint32_t extra = k ? (uint32_t)snprintf(NULL, 0, "-%u", k) : 0;
			c->json_len[i] = b.json_len[j] + extra;
			c->json_bytes += c->json_len[i];
		}
	}
	c->n = total;
	c->off[total] = out.len;
	c->data = out.p;
	c->len = out.len;
	c->cap = out.cap;
	qsort(c->sorted_us, total, sizeof *c->sorted_us, cmp_i64);
out:
	msgpack_sbuffer_destroy(&b.mp);
	free(b.off);
	free(b.json_len);
	if (rc)
		bench_corpus_free(c);
	return rc;
}

void bench_corpus_free(bench_corpus *c)
{
	free(c->data);
	free(c->off);
	free(c->json_len);
	free(c->guid_off);
	free(c->guid_len);
	free(c->sorted_us);
	memset(c, 0, sizeof *c);
}
