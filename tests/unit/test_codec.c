/*
 * test_codec.c - stored records (daemon/codec.c): raw / zstd / zstd with a
 * dictionary, dictionary training, and corrupt records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "codec.h"
#include "mp.h"

#define MAX_RAW (1u << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const words[] = {
	"the", "government", "said", "on", "Tuesday", "that", "prices", "of", "oil", "rose",
	"percent", "in", "trading", "shares", "market", "analysts", "expected", "company",
	"minister", "Reuters", "billion", "dollars", "quarter", "profit", "bank", "rates",
	"year", "week", "New", "York", "London", "Tokyo", "officials", "talks", "agreement",
};
#define NWORDS (sizeof words / sizeof words[0])

/* Fills b with n bytes of compressible text. */
static void text(uint8_t *b, size_t n)
{
	size_t k = 0;
	while (k < n) {
		const char *w = words[rnd() % NWORDS];
		size_t wl = strlen(w);
		for (size_t i = 0; i < wl && k < n; i++)
			b[k++] = (uint8_t)w[i];
		if (k < n)
			b[k++] = ' ';
	}
}

/* An article-like msgpack map with a body of about body_len bytes. */
static size_t article(uint8_t *out, size_t cap, unsigned i, size_t body_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	char guid[64], title[128];
	snprintf(guid, sizeof guid, "https://news.example.com/story/%u", i * 7919u);
	uint8_t *body = malloc(body_len + 1);
	uint8_t tb[100];
	text(tb, 60);
	snprintf(title, sizeof title, "%.60s", (const char *)tb);
	text(body, body_len);
	msgpack_pack_map(&pk, 6);
	na_mp_pack_cstr(&pk, "guid");
	na_mp_pack_cstr(&pk, guid);
	na_mp_pack_cstr(&pk, "published");
	na_mp_pack_ts(&pk, (na_ts){ 1600000000 + (int64_t)i * 60, 0 });
	na_mp_pack_cstr(&pk, "title");
	na_mp_pack_cstr(&pk, title);
	na_mp_pack_cstr(&pk, "source");
	na_mp_pack_cstr(&pk, "Example Wire Service");
	na_mp_pack_cstr(&pk, "tags");
	msgpack_pack_array(&pk, 2);
	na_mp_pack_cstr(&pk, "economy");
	na_mp_pack_cstr(&pk, "markets");
	na_mp_pack_cstr(&pk, "body");
	na_mp_pack_str(&pk, (const char *)body, body_len);
	free(body);
	assert_true(sb.size <= cap);
	memcpy(out, sb.data, sb.size);
	size_t n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

/* Trains a dictionary on n article-like samples. */
static void train(unsigned n, size_t cap, bool quick, void **dict, size_t *dict_len)
{
	size_t total = (size_t)n * 2048;
	uint8_t *buf = malloc(total);
	size_t *sizes = malloc(sizeof *sizes * n);
	assert_non_null(buf);
	assert_non_null(sizes);
	size_t used = 0;
	for (unsigned i = 0; i < n; i++) {
		sizes[i] = article(buf + used, total - used, i, 200 + rnd() % 1200);
		used += sizes[i];
	}
	assert_int_equal(na_codec_train(buf, sizes, n, cap, quick, dict, dict_len), 0);
	assert_true(*dict_len > 0 && *dict_len <= cap);
	free(buf);
	free(sizes);
}

/* Encodes, checks the record's header, decodes, compares. Returns fmt. */
static int round_trip(na_codec *c, const uint8_t *raw, size_t n, size_t *rec_len)
{
	size_t bound = na_codec_bound(n);
	uint8_t *rec = malloc(bound);
	uint8_t *out = malloc(n ? n : 1);
	size_t len = 0, on = 0;
	assert_int_equal(na_codec_encode(c, raw, n, rec, &len), 0);
	assert_true(len > 0 && len <= bound);
	na_rec r;
	assert_int_equal(na_rec_parse(c, rec, len, &r), 0);
	assert_int_equal(r.raw_len, n);
	if (r.fmt == NA_REC_ZSTD_DICT)
		assert_int_equal(r.dict, na_codec_current_dict(c));
	/* decode into a buffer of exactly raw_len bytes (ASan: no overrun) */
	assert_int_equal(na_codec_decode(c, rec, len, out, n, &on), 0);
	assert_int_equal(on, n);
	if (n)
		assert_memory_equal(out, raw, n);
	/* a record never costs more than a raw one */
	assert_true(len <= n + 6);
	free(rec);
	free(out);
	if (rec_len)
		*rec_len = len;
	return r.fmt;
}

static const size_t sizes[] = { 0, 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096,
				16383, 16384, 65535, 65536, 100 * 1024 };

static void test_round_trips(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	uint8_t *raw = malloc(100 * 1024);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		text(raw, sizes[i]);
		int fmt = round_trip(c, raw, sizes[i], NULL);
		/* under 64 bytes: raw; from 64 up zstd when it pays, which it
		 * surely does for a kilobyte of text */
		if (sizes[i] < 64)
			assert_int_equal(fmt, NA_REC_RAW);
		else if (sizes[i] >= 1000)
			assert_int_equal(fmt, NA_REC_ZSTD);
	}
	/* with a dictionary in use, compressed records name it */
	void *dict;
	size_t dl;
	train(400, 16384, false, &dict, &dl);
	assert_int_equal(na_codec_add_dict(c, 1, dict, dl), 0);
	na_codec_use_dict(c, 1);
	assert_int_equal(na_codec_current_dict(c), 1);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		text(raw, sizes[i]);
		int fmt = round_trip(c, raw, sizes[i], NULL);
		if (sizes[i] < 64)
			assert_int_equal(fmt, NA_REC_RAW);
		else if (sizes[i] >= 1000)
			assert_int_equal(fmt, NA_REC_ZSTD_DICT);
		else
			assert_true(fmt == NA_REC_RAW || fmt == NA_REC_ZSTD_DICT);
	}
	/* records written before the dictionary still decode after it */
	na_codec_use_dict(c, 0);
	text(raw, 5000);
	assert_int_equal(round_trip(c, raw, 5000, NULL), NA_REC_ZSTD);
	free(dict);
	free(raw);
	na_codec_destroy(c);
}

static void test_small_and_random_stored_raw(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	uint8_t zeros[64] = { 0 };
	size_t len;
	/* 63 zero bytes would compress, but are not worth a frame */
	assert_int_equal(round_trip(c, zeros, 63, &len), NA_REC_RAW);
	assert_int_equal(len, 1 + 1 + 63);
	assert_int_equal(round_trip(c, zeros, 64, &len), NA_REC_ZSTD);
	assert_true(len < 64);
	/* random bytes do not compress: stored raw with a varint length */
	uint8_t *rnd_b = malloc(70000);
	for (size_t i = 0; i < 70000; i++)
		rnd_b[i] = (uint8_t)rnd();
	static const size_t rs[] = { 64, 100, 127, 128, 16383, 16384, 70000 };
	for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
		assert_int_equal(round_trip(c, rnd_b, rs[i], &len), NA_REC_RAW);
		size_t vl = rs[i] < 128 ? 1 : rs[i] < 16384 ? 2 : 3;
		assert_int_equal(len, 1 + vl + rs[i]);
	}
	/* the raw record layout, byte for byte */
	uint8_t rec[16];
	assert_int_equal(na_codec_encode(c, "abc", 3, rec, &len), 0);
	static const uint8_t want[] = { 0, 3, 'a', 'b', 'c' };
	assert_int_equal(len, sizeof want);
	assert_memory_equal(rec, want, sizeof want);
	free(rnd_b);
	na_codec_destroy(c);
}

static void test_dictionary_helps(void **state)
{
	(void)state;
	na_codec *plain, *withd, *withq;
	assert_int_equal(na_codec_create(3, MAX_RAW, &plain), 0);
	assert_int_equal(na_codec_create(3, MAX_RAW, &withd), 0);
	assert_int_equal(na_codec_create(3, MAX_RAW, &withq), 0);
	void *dict, *qdict;
	size_t dl, qdl;
	train(1000, 32768, false, &dict, &dl);
	/* the quick one-pass training (the first dictionary, writes waiting) */
	train(1000, 32768, true, &qdict, &qdl);
	assert_int_equal(na_codec_add_dict(withq, 1, qdict, qdl), 0);
	na_codec_use_dict(withq, 1);
	assert_int_equal(na_codec_add_dict(withd, 7, dict, dl), 0);
	assert_int_equal(na_codec_dict_size(withd, 7), dl);
	assert_int_equal(na_codec_dict_size(withd, 8), 0);
	assert_int_equal(na_codec_max_dict(withd), 7);
	na_codec_use_dict(withd, 7);
	/* held-out articles (other numbers) */
	size_t sum_plain = 0, sum_dict = 0, sum_quick = 0, sum_raw = 0;
	uint8_t *a = malloc(4096);
	for (unsigned i = 5000; i < 5200; i++) {
		size_t n = article(a, 4096, i, 300 + rnd() % 600);
		size_t lp, ld, lq;
		round_trip(plain, a, n, &lp);
		assert_int_equal(round_trip(withd, a, n, &ld), NA_REC_ZSTD_DICT);
		assert_int_equal(round_trip(withq, a, n, &lq), NA_REC_ZSTD_DICT);
		sum_plain += lp;
		sum_dict += ld;
		sum_quick += lq;
		sum_raw += n;
	}
	/* a trained dictionary must beat per-record compression clearly */
	assert_true(sum_dict < sum_plain);
	assert_true(sum_dict * 10 < sum_plain * 8);
	assert_true(sum_quick * 10 < sum_plain * 8);
	assert_true(sum_plain < sum_raw);

	/* a dictionary record cannot be read by a codec without it */
	size_t n = article(a, 4096, 1, 800);
	uint8_t *rec = malloc(na_codec_bound(n));
	uint8_t *out = malloc(n);
	size_t len, on;
	assert_int_equal(na_codec_encode(withd, a, n, rec, &len), 0);
	assert_int_equal(rec[0], NA_REC_ZSTD_DICT);
	assert_int_equal(rec[1] << 24 | rec[2] << 16 | rec[3] << 8 | rec[4], 7);
	assert_int_equal(na_codec_decode(plain, rec, len, out, n, &on), -EINVAL);
	/* ... nor with another dictionary id */
	rec[4] = 9;
	assert_int_equal(na_codec_decode(withd, rec, len, out, n, &on), -EINVAL);
	rec[1] = 0xff; /* beyond NA_MAX_DICTS */
	assert_int_equal(na_codec_decode(withd, rec, len, out, n, &on), -EINVAL);
	rec[1] = 0;
	rec[4] = 0; /* id 0 is never a dictionary */
	assert_int_equal(na_codec_decode(withd, rec, len, out, n, &on), -EINVAL);
	rec[4] = 7;
	assert_int_equal(na_codec_decode(withd, rec, len, out, n, &on), 0);
	assert_memory_equal(out, a, n);

	/* using an unknown id is ignored */
	na_codec_use_dict(withd, 99);
	assert_int_equal(na_codec_current_dict(withd), 7);
	na_codec_use_dict(withd, NA_MAX_DICTS + 1);
	assert_int_equal(na_codec_current_dict(withd), 7);

	free(rec);
	free(out);
	free(a);
	free(dict);
	free(qdict);
	na_codec_destroy(plain);
	na_codec_destroy(withd);
	na_codec_destroy(withq);
}

static void test_add_dict_errors(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	void *dict;
	size_t dl;
	train(300, 8192, false, &dict, &dl);
	assert_int_equal(na_codec_add_dict(c, 0, dict, dl), -EINVAL);
	assert_int_equal(na_codec_add_dict(c, NA_MAX_DICTS + 1, dict, dl), -EINVAL);
	assert_int_equal(na_codec_add_dict(c, 1, dict, 0), -EINVAL);
	assert_int_equal(na_codec_add_dict(c, 3, dict, dl), 0);
	assert_int_equal(na_codec_add_dict(c, 3, dict, dl), -EEXIST);
	assert_int_equal(na_codec_add_dict(c, NA_MAX_DICTS, dict, dl), 0);
	assert_int_equal(na_codec_max_dict(c), NA_MAX_DICTS);
	assert_int_equal(na_codec_add_dict(c, 2, dict, dl), 0);
	assert_int_equal(na_codec_max_dict(c), NA_MAX_DICTS);
	/* the codec keeps its own copy */
	memset(dict, 0, dl);
	free(dict);
	na_codec_use_dict(c, 3);
	uint8_t raw[2000];
	text(raw, sizeof raw);
	assert_int_equal(round_trip(c, raw, sizeof raw, NULL), NA_REC_ZSTD_DICT);
	/* training needs samples */
	size_t one = 10;
	void *d2 = NULL;
	size_t d2l = 0;
	assert_int_equal(na_codec_train(raw, &one, 1, 4096, false, &d2, &d2l), -EINVAL);
	assert_null(d2);
	assert_int_equal(na_codec_train(raw, &one, 1, 4096, true, &d2, &d2l), -EINVAL);
	assert_null(d2);
	na_codec_destroy(c);
}

/* A dictionary dropped (its transaction failed) and added again with the
 * same bytes, as a follower does when it retries: the codec takes the
 * dropped one back instead of keeping a copy per retry until it is
 * destroyed. (mallinfo2 reads glibc's heap; under ASan it reads zeros.) */
static void test_drop_and_add_dict_again(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	void *dict;
	size_t dl;
	train(300, 16384, false, &dict, &dl);
	uint8_t raw[2000];
	text(raw, sizeof raw);
	assert_int_equal(na_codec_add_dict(c, 1, dict, dl), 0);
	na_codec_use_dict(c, 1);
	assert_int_equal(round_trip(c, raw, sizeof raw, NULL), NA_REC_ZSTD_DICT);
	na_codec_drop_dict(c, 1);
	assert_int_equal(na_codec_current_dict(c), 0);
	assert_int_equal(na_codec_dict_size(c, 1), 0);
	assert_int_equal(na_codec_max_dict(c), 0);
	assert_int_equal(round_trip(c, raw, sizeof raw, NULL), NA_REC_ZSTD);
	size_t before = mallinfo2().uordblks;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(na_codec_add_dict(c, 1, dict, dl), 0);
		na_codec_drop_dict(c, 1);
	}
	size_t after = mallinfo2().uordblks;
	assert_true(after < before + (1u << 20));
	/* other bytes under the same id are a dictionary of their own */
	((uint8_t *)dict)[dl / 2] ^= 0x55;
	assert_int_equal(na_codec_add_dict(c, 1, dict, dl), 0);
	na_codec_use_dict(c, 1);
	assert_int_equal(round_trip(c, raw, sizeof raw, NULL), NA_REC_ZSTD_DICT);
	free(dict);
	na_codec_destroy(c);
}

static void test_limits(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, 1000, &c), 0);
	uint8_t raw[1001], rec[2000];
	size_t len;
	text(raw, sizeof raw);
	assert_int_equal(na_codec_encode(c, raw, 1001, rec, &len), -EINVAL);
	assert_int_equal(na_codec_encode(c, raw, 1000, rec, &len), 0);
	/* a record claiming more than max_raw is refused by the parser */
	uint8_t big[] = { 0, 0xe9, 0x07 }; /* raw_len 1001 */
	na_rec r;
	assert_int_equal(na_rec_parse(c, big, sizeof big, &r), -EINVAL);
	uint8_t ok[] = { 1, 0xe8, 0x07, 0 }; /* raw_len 1000 */
	assert_int_equal(na_rec_parse(c, ok, sizeof ok, &r), 0);
	assert_int_equal(r.raw_len, 1000);
	assert_int_equal(r.payload_len, 1);
	na_codec_destroy(c);
}

static void test_corrupt_records(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	void *dict;
	size_t dl;
	train(300, 8192, false, &dict, &dl);
	assert_int_equal(na_codec_add_dict(c, 1, dict, dl), 0);
	free(dict);
	uint8_t raw[3000], out[3000];
	size_t n = article(raw, sizeof raw, 42, 1500);
	uint8_t recs[3][4000];
	size_t lens[3];
	/* raw, zstd, zstd+dict */
	lens[0] = 0;
	recs[0][0] = NA_REC_RAW;
	recs[0][1] = (uint8_t)(0x80 | (n & 0x7f));
	recs[0][2] = (uint8_t)(n >> 7);
	memcpy(recs[0] + 3, raw, n);
	lens[0] = 3 + n;
	assert_int_equal(na_codec_encode(c, raw, n, recs[1], &lens[1]), 0);
	assert_int_equal(recs[1][0], NA_REC_ZSTD);
	na_codec_use_dict(c, 1);
	assert_int_equal(na_codec_encode(c, raw, n, recs[2], &lens[2]), 0);
	assert_int_equal(recs[2][0], NA_REC_ZSTD_DICT);
	size_t on;
	for (int f = 0; f < 3; f++) {
		assert_int_equal(na_codec_decode(c, recs[f], lens[f], out, sizeof out, &on), 0);
		assert_int_equal(on, n);
		assert_memory_equal(out, raw, n);
		/* truncated at every length: an error, never a crash */
		for (size_t len = 0; len < lens[f]; len++) {
			uint8_t *t = malloc(len ? len : 1);
			memcpy(t, recs[f], len);
			int rc = na_codec_decode(c, t, len, out, sizeof out, &on);
			if (rc != -EINVAL)
				fail_msg("format %d cut to %zu of %zu bytes: rc %d", f, len, lens[f], rc);
			free(t);
		}
		/* every byte flipped: an error, or exactly raw_len bytes (a frame
		 * without checksum may decode to other bytes) - never a crash */
		for (size_t i = 0; i < lens[f]; i++) {
			uint8_t *t = malloc(lens[f]);
			memcpy(t, recs[f], lens[f]);
			t[i] ^= 0x5a;
			on = 0;
			int rc = na_codec_decode(c, t, lens[f], out, sizeof out, &on);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc == 0) {
				na_rec r;
				assert_int_equal(na_rec_parse(c, t, lens[f], &r), 0);
				assert_int_equal(on, r.raw_len);
			}
			free(t);
		}
		/* raw_len off by one either way: refused */
		for (int d = -1; d <= 1; d += 2) {
			uint8_t t[4000];
			size_t h = f == 2 ? 5 : 1;
			size_t m = n + (size_t)d;
			memcpy(t, recs[f], h);
			t[h] = (uint8_t)(0x80 | (m & 0x7f));
			t[h + 1] = (uint8_t)(m >> 7);
			size_t vl = (recs[f][h + 1] & 0x80) ? 3 : 2;
			assert_int_equal(vl, 2);
			memcpy(t + h + 2, recs[f] + h + 2, lens[f] - h - 2);
			assert_int_equal(na_codec_decode(c, t, lens[f], out, sizeof out, &on), -EINVAL);
		}
		/* an output buffer smaller than raw_len */
		assert_int_equal(na_codec_decode(c, recs[f], lens[f], out, n - 1, &on), -EINVAL);
	}
	/* bad format bytes */
	for (int fmt = 3; fmt < 256; fmt += 17) {
		uint8_t t[4000];
		memcpy(t, recs[0], lens[0]);
		t[0] = (uint8_t)fmt;
		na_rec r;
		assert_int_equal(na_rec_parse(c, t, lens[0], &r), -EINVAL);
		assert_int_equal(na_codec_decode(c, t, lens[0], out, sizeof out, &on), -EINVAL);
	}
	/* varints: too long, unterminated, beyond 32 bits */
	static const struct { uint8_t b[12]; size_t n; } bad[] = {
		{ { 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, 7 },   /* 6 bytes */
		{ { 0, 0xff, 0xff, 0xff, 0xff, 0x7f }, 6 },         /* 2^35 - 1 */
		{ { 0, 0xff, 0xff, 0xff, 0xff, 0x10 }, 6 },         /* 2^32 + ... */
		{ { 0, 0x80 }, 2 },                                 /* unterminated */
		{ { 1, 0x80, 0x80 }, 3 },
		{ { 2, 0, 0, 0, 1, 0x80 }, 6 },
		{ { 2, 0, 0, 0, 1 }, 5 },                           /* no varint */
		{ { 0 }, 1 },
		{ { 0 }, 0 },
		{ { 0, 5, 'a', 'b' }, 4 },                          /* raw, short */
		{ { 0, 1, 'a', 'b' }, 4 },                          /* raw, long */
		{ { 1, 10, 0xde, 0xad }, 4 },                       /* not a frame */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t *t = malloc(bad[i].n ? bad[i].n : 1);
		memcpy(t, bad[i].b, bad[i].n);
		int rc = na_codec_decode(c, t, bad[i].n, out, sizeof out, &on);
		if (rc != -EINVAL)
			fail_msg("bad record %zu: rc %d", i, rc);
		free(t);
	}
	/* the empty article is a valid raw record */
	uint8_t empty[] = { 0, 0 };
	assert_int_equal(na_codec_decode(c, empty, 2, out, 0, &on), 0);
	assert_int_equal(on, 0);
	na_codec_destroy(c);
}

/* ---- blocks ----------------------------------------------------------- */

/*
 * Decoding next to a copy of the dictionary (codec.c keeps a few per
 * decoding context): many dictionaries of different sizes read in turns
 * (slots evicted and rebuilt), runs of one dictionary, a record too large
 * for the output space after the copy, a corrupt payload, a reset that
 * brings back an id with other content, and threads decoding at once.
 */
enum { MD_DICTS = 7, MD_PER = 12 };

typedef struct md_rec {
	uint8_t *raw, *rec;
	size_t n, len;
} md_rec;

static void md_check(na_codec *c, const md_rec *r)
{
	uint8_t *out = malloc(r->n);
	size_t on = 0;
	assert_non_null(out);
	assert_int_equal(na_codec_decode(c, r->rec, r->len, out, r->n, &on), 0);
	assert_int_equal(on, r->n);
	assert_memory_equal(out, r->raw, r->n);
	free(out);
}

static void md_encode(na_codec *c, md_rec *r, unsigned i, size_t body)
{
	r->raw = malloc(body + 4096);
	assert_non_null(r->raw);
	r->n = article(r->raw, body + 4096, i, body);
	r->rec = malloc(na_codec_bound(r->n));
	assert_non_null(r->rec);
	assert_int_equal(na_codec_encode(c, r->raw, r->n, r->rec, &r->len), 0);
}

typedef struct md_thread {
	na_codec *c;
	md_rec *recs;
	unsigned n, seed, bad;
} md_thread;

static void *md_thread_main(void *arg)
{
	md_thread *t = arg;
	uint64_t x = t->seed * 0x9e3779b97f4a7c15ULL + 1;
	uint8_t *out = malloc(256 * 1024);
	for (unsigned k = 0; k < 3000 && out; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		const md_rec *r = &t->recs[x % t->n];
		size_t on = 0;
		if (na_codec_decode(t->c, r->rec, r->len, out, r->n, &on) || on != r->n ||
		    memcmp(out, r->raw, r->n) != 0)
			t->bad++;
	}
	if (!out)
		t->bad++;
	free(out);
	return NULL;
}

static void test_many_dictionaries(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, MAX_RAW, &c), 0);
	md_rec recs[MD_DICTS * MD_PER];
	void *dicts[MD_DICTS];
	for (unsigned d = 0; d < MD_DICTS; d++) {
		size_t dl;
		/* sizes from 4 KiB to 64 KiB: slots are reused for larger ones */
		train(300 + 100 * d, (size_t)4096 << (d % 5), false, &dicts[d], &dl);
		assert_int_equal(na_codec_add_dict(c, d + 1, dicts[d], dl), 0);
		na_codec_use_dict(c, d + 1);
		for (unsigned i = 0; i < MD_PER; i++) {
			md_rec *r = &recs[d * MD_PER + i];
			md_encode(c, r, 1000 * d + i, 300 + rnd() % 1500);
			assert_int_equal(r->rec[0], NA_REC_ZSTD_DICT);
		}
	}
	/* in turns: every read a different dictionary from the last */
	for (unsigned round = 0; round < 6; round++)
		for (unsigned i = 0; i < MD_PER; i++)
			for (unsigned d = 0; d < MD_DICTS; d++)
				md_check(c, &recs[d * MD_PER + i]);
	/* runs of one dictionary, in an order unlike the turns above */
	for (unsigned d = MD_DICTS; d-- > 0;)
		for (unsigned i = 0; i < MD_PER; i++)
			md_check(c, &recs[d * MD_PER + i]);
	uint64_t prefixed, built;
	na_codec_decode_stats(c, &prefixed, &built);
	assert_true(built >= MD_DICTS);         /* every dictionary got a slot */
	assert_true(prefixed > MD_DICTS * MD_PER); /* and most reads used one */
	/* turns over more dictionaries than slots do not rebuild per read */
	assert_true(built * 4 < (uint64_t)7 * MD_DICTS * MD_PER);

	/* the same through a held context (a range page), and with none */
	na_dhold *h = na_codec_hold(c);
	assert_non_null(h);
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned i = 0; i < MD_DICTS * MD_PER; i++) {
			uint8_t *o = malloc(recs[i].n);
			size_t on = 0;
			assert_int_equal(na_codec_decode_held(c, k ? NULL : h, recs[i].rec, recs[i].len, o,
							      recs[i].n, &on), 0);
			assert_int_equal(on, recs[i].n);
			assert_memory_equal(o, recs[i].raw, on);
			free(o);
		}
	}
	na_codec_release(c, h);
	na_codec_release(c, NULL);

	/* an article larger than the space after the copy: the ordinary way */
	md_rec big;
	md_encode(c, &big, 99999, 100 * 1024);
	assert_int_equal(big.rec[0], NA_REC_ZSTD_DICT);
	md_check(c, &big);

	/* a corrupt payload fails (or decodes to other bytes) without reading
	 * or writing out of bounds; the record is fine again afterwards */
	md_rec *v = &recs[3 * MD_PER];
	uint8_t *copy = malloc(v->len), *out = malloc(v->n);
	for (size_t at = 6; at < v->len; at += 3) {
		memcpy(copy, v->rec, v->len);
		copy[at] ^= 0x5a;
		size_t on = 0;
		int rc = na_codec_decode(c, copy, v->len, out, v->n, &on);
		assert_true(rc == 0 || rc == -EINVAL);
		if (rc == 0)
			assert_int_equal(on, v->n);
	}
	free(copy);
	free(out);
	md_check(c, v);

	/* concurrent readers over every dictionary */
	md_thread th[4];
	pthread_t tid[4];
	for (unsigned i = 0; i < 4; i++) {
		th[i] = (md_thread){ .c = c, .recs = recs, .n = MD_DICTS * MD_PER, .seed = i + 1 };
		assert_int_equal(pthread_create(&tid[i], NULL, md_thread_main, &th[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(th[i].bad, 0);
	}

	/* a reset, then id 1 again with other content: no stale copy is used
	 * (dictionary 1 is read first, so the context used next holds it) */
	for (unsigned i = 0; i < MD_PER; i++)
		md_check(c, &recs[i]);
	na_codec_reset_dicts(c);
	void *nd;
	size_t ndl;
	train(500, 16384, false, &nd, &ndl);
	assert_int_equal(na_codec_add_dict(c, 1, nd, ndl), 0);
	na_codec_use_dict(c, 1);
	md_rec fresh[MD_PER];
	for (unsigned i = 0; i < MD_PER; i++) {
		md_encode(c, &fresh[i], 77000 + i, 400 + rnd() % 800);
		md_check(c, &fresh[i]);
	}
	/* records of the old dictionary 1 no longer decode to their bytes
	 * (a frame could in principle not refer to its dictionary at all, so
	 * this asks it of most of them, not all) */
	unsigned differ = 0;
	for (unsigned i = 0; i < MD_PER; i++) {
		uint8_t *o = malloc(recs[i].n);
		size_t on = 0;
		int rc = na_codec_decode(c, recs[i].rec, recs[i].len, o, recs[i].n, &on);
		differ += rc != 0 || memcmp(o, recs[i].raw, recs[i].n) != 0;
		free(o);
	}
	assert_true(differ * 2 > MD_PER);

	for (unsigned i = 0; i < MD_PER; i++) {
		free(fresh[i].raw);
		free(fresh[i].rec);
	}
	for (unsigned i = 0; i < MD_DICTS * MD_PER; i++) {
		free(recs[i].raw);
		free(recs[i].rec);
	}
	for (unsigned d = 0; d < MD_DICTS; d++)
		free(dicts[d]);
	free(nd);
	free(big.raw);
	free(big.rec);
	na_codec_destroy(c);
}

static void bkey(uint8_t *k, uint64_t t, uint64_t seq)
{
	for (int i = 0; i < 8; i++) {
		k[i] = (uint8_t)(t >> (56 - 8 * i));
		k[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
	}
}

/* n members with increasing keys (equal times with increasing seq, and
 * sequence numbers going down between times), text-like bodies. */
static uint8_t *make_members(na_bmember *m, uint32_t n, size_t *raw_len)
{
	size_t cap = (size_t)n * 400, used = 0;
	uint8_t *raw = malloc(cap);
	for (uint32_t i = 0; i < n; i++) {
		bkey(m[i].key, 0x8000000000000000ULL + (uint64_t)(i / 2) * 1000000, 1000 - i / 2 * 3 + i % 2);
		int l = snprintf((char *)raw + used, 400,
				 "article %u: the market said the government would act on prices, "
				 "the market said the government would act on rates %u", i, i * 7);
		m[i].len = (uint32_t)l;
		m[i].dead = i == 1;
		used += (size_t)l;
	}
	*raw_len = used;
	return raw;
}

static void test_block_round_trip(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, 1 << 20, &c), 0);
	na_codec_set_block_level(c, 6);
	enum { N = 40 };
	na_bmember m[N];
	size_t raw_len;
	uint8_t *raw = make_members(m, N, &raw_len);
	size_t cap = na_block_bound(N, raw_len);
	uint8_t *rec = malloc(cap);
	size_t len;
	assert_int_equal(na_block_encode(c, m, N, raw, raw_len, rec, &len), 0);
	assert_true(len < raw_len / 2); /* the members share most of their text */
	assert_true(na_rec_is_block(rec, len));
	na_block *b = malloc(sizeof *b);
	assert_int_equal(na_block_parse(c, rec, len, b), 0);
	assert_int_equal(b->n, N);
	assert_int_equal(b->live, N - 1);
	assert_int_equal(b->first_live, 0);
	assert_int_equal(b->last_live, N - 1);
	assert_int_equal(b->raw_len, raw_len);
	assert_int_equal(b->kind, NA_REC_ZSTD);
	uint8_t *out = malloc(raw_len);
	assert_int_equal(na_block_decode(c, b, out, raw_len), 0);
	assert_memory_equal(out, raw, raw_len);
	size_t off = 0;
	for (uint32_t i = 0; i < N; i++) {
		assert_memory_equal(b->m[i].key, m[i].key, 16);
		assert_int_equal(b->m[i].off, off);
		assert_int_equal(b->m[i].len, m[i].len);
		assert_int_equal(b->m[i].dead, i == 1);
		off += m[i].len;
	}
	/* a too small output buffer is refused */
	assert_int_equal(na_block_decode(c, b, out, raw_len - 1), -EINVAL);
	/* remark: kill member 0, keep the payload */
	bool dead[N] = { 0 };
	dead[0] = true;
	uint8_t *rec2 = malloc(na_block_bound(N, 0) + b->payload_len);
	size_t len2;
	assert_int_equal(na_block_remark(b, dead, rec2, &len2), 0);
	na_block *b2 = malloc(sizeof *b2);
	assert_int_equal(na_block_parse(c, rec2, len2, b2), 0);
	assert_int_equal(b2->live, N - 1);
	assert_int_equal(b2->first_live, 1);
	assert_false(b2->m[1].dead);
	memset(out, 0, raw_len);
	assert_int_equal(na_block_decode(c, b2, out, raw_len), 0);
	assert_memory_equal(out, raw, raw_len);
	/* all dead: refused */
	for (int i = 0; i < N; i++)
		dead[i] = true;
	assert_int_equal(na_block_remark(b, dead, rec2, &len2), -EINVAL);
	/* keys out of order, no live member, lengths not adding up: refused */
	na_bmember bad[3];
	memcpy(bad, m, sizeof bad);
	memcpy(bad[2].key, bad[0].key, 16);
	assert_int_equal(na_block_encode(c, bad, 3, raw, bad[0].len + bad[1].len + bad[2].len, rec2, &len2), -EINVAL);
	memcpy(bad, m, sizeof bad);
	bad[0].dead = bad[1].dead = bad[2].dead = true;
	assert_int_equal(na_block_encode(c, bad, 3, raw, bad[0].len + bad[1].len + bad[2].len, rec2, &len2), -EINVAL);
	memcpy(bad, m, sizeof bad);
	assert_int_equal(na_block_encode(c, bad, 3, raw, 5, rec2, &len2), -EINVAL);
	/* a single-record parser refuses a block */
	na_rec r;
	assert_int_not_equal(na_rec_parse(c, rec, len, &r), 0);
	free(rec2);
	free(b2);
	free(out);
	free(b);
	free(rec);
	free(raw);
	na_codec_destroy(c);
}

static void test_block_with_dictionary(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, 1 << 20, &c), 0);
	na_codec_set_block_level(c, 9);
	enum { N = 300 };
	na_bmember m[N];
	size_t raw_len;
	uint8_t *raw = make_members(m, N, &raw_len);
	size_t sizes[N];
	for (int i = 0; i < N; i++)
		sizes[i] = m[i].len;
	void *d;
	size_t dl;
	assert_int_equal(na_codec_train(raw, sizes, N, 4096, false, &d, &dl), 0);
	assert_int_equal(na_codec_add_dict(c, 7, d, dl), 0);
	na_codec_use_dict(c, 7);
	uint8_t *rec = malloc(na_block_bound(20, raw_len));
	size_t len, part = 0;
	for (int i = 0; i < 20; i++)
		part += m[i].len;
	assert_int_equal(na_block_encode(c, m, 20, raw, part, rec, &len), 0);
	na_block *b = malloc(sizeof *b);
	assert_int_equal(na_block_parse(c, rec, len, b), 0);
	assert_int_equal(b->kind, NA_REC_ZSTD_DICT);
	assert_int_equal(b->dict, 7);
	uint8_t *out = malloc(part);
	assert_int_equal(na_block_decode(c, b, out, part), 0);
	assert_memory_equal(out, raw, part);
	/* a codec without that dictionary cannot decode it, and says so */
	na_codec *c2;
	assert_int_equal(na_codec_create(3, 1 << 20, &c2), 0);
	assert_int_equal(na_block_parse(c2, rec, len, b), 0);
	assert_int_equal(na_block_decode(c2, b, out, part), -EINVAL);
	na_codec_destroy(c2);
	free(out);
	free(b);
	free(rec);
	free(d);
	free(raw);
	na_codec_destroy(c);
}

/* literal_compression: Huffman-coded literals (the default) make records
 * smaller than raw ones; records of either kind decode with either codec;
 * blocks are coded the same whatever the setting. */
static void test_literal_compression(void **state)
{
	(void)state;
	na_codec *fast, *small;
	assert_int_equal(na_codec_create(3, MAX_RAW, &fast), 0);
	assert_int_equal(na_codec_create(3, MAX_RAW, &small), 0);
	na_codec_set_literals(fast, false); /* small keeps the default */
	void *dict;
	size_t dl;
	train(1000, 32768, false, &dict, &dl);
	assert_int_equal(na_codec_add_dict(fast, 3, dict, dl), 0);
	assert_int_equal(na_codec_add_dict(small, 3, dict, dl), 0);
	na_codec_use_dict(fast, 3);
	na_codec_use_dict(small, 3);
	uint8_t *a = malloc(4096), *out = malloc(4096);
	uint8_t *rf = malloc(na_codec_bound(4096)), *rs = malloc(na_codec_bound(4096));
	size_t sum_fast = 0, sum_small = 0;
	for (unsigned i = 7000; i < 7200; i++) {
		size_t n = article(a, 4096, i, 300 + rnd() % 600), lf, ls, on;
		assert_int_equal(round_trip(fast, a, n, &lf), NA_REC_ZSTD_DICT);
		assert_int_equal(round_trip(small, a, n, &ls), NA_REC_ZSTD_DICT);
		sum_fast += lf;
		sum_small += ls;
		/* each decodes the other's records */
		assert_int_equal(na_codec_encode(fast, a, n, rf, &lf), 0);
		assert_int_equal(na_codec_encode(small, a, n, rs, &ls), 0);
		assert_int_equal(na_codec_decode(small, rf, lf, out, n, &on), 0);
		assert_int_equal(on, n);
		assert_memory_equal(out, a, n);
		assert_int_equal(na_codec_decode(fast, rs, ls, out, n, &on), 0);
		assert_int_equal(on, n);
		assert_memory_equal(out, a, n);
	}
	assert_true(sum_small < sum_fast);
	/* blocks: the same bytes either way */
	enum { N = 40 };
	na_bmember m[N];
	size_t raw_len;
	uint8_t *raw = make_members(m, N, &raw_len);
	uint8_t *bf = malloc(na_block_bound(N, raw_len)), *bs = malloc(na_block_bound(N, raw_len));
	size_t lbf, lbs;
	assert_int_equal(na_block_encode(fast, m, N, raw, raw_len, bf, &lbf), 0);
	assert_int_equal(na_block_encode(small, m, N, raw, raw_len, bs, &lbs), 0);
	assert_int_equal(lbf, lbs);
	assert_memory_equal(bf, bs, lbf);
	free(bf);
	free(bs);
	free(raw);
	free(rf);
	free(rs);
	free(a);
	free(out);
	free(dict);
	na_codec_destroy(fast);
	na_codec_destroy(small);
}

static void test_block_corrupt(void **state)
{
	(void)state;
	na_codec *c;
	assert_int_equal(na_codec_create(3, 1 << 20, &c), 0);
	enum { N = 12 };
	na_bmember m[N];
	size_t raw_len;
	uint8_t *raw = make_members(m, N, &raw_len);
	uint8_t *rec = malloc(na_block_bound(N, raw_len));
	size_t len;
	assert_int_equal(na_block_encode(c, m, N, raw, raw_len, rec, &len), 0);
	na_block *b = malloc(sizeof *b);
	uint8_t *out = malloc(raw_len);
	/* every truncation is refused by the parser or the decoder */
	for (size_t l = 0; l < len; l++)
		if (na_block_parse(c, rec, l, b) == 0)
			assert_int_not_equal(na_block_decode(c, b, out, raw_len), 0);
	/* hand-made headers */
	uint8_t h[64];
	size_t i = 0;
	h[i++] = NA_REC_BLOCK; h[i++] = NA_REC_RAW; h[i++] = 0; h[i++] = 0; h[i++] = 0; h[i++] = 0;
	size_t base = i;
	/* n = 0 */
	h[i++] = 0; h[i++] = 0; memset(h + i, 0, 16); i += 16;
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	/* n beyond the maximum */
	i = base; h[i++] = 0x81; h[i++] = 0x04; h[i++] = 0; memset(h + i, 0, 16); i += 16;
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	/* one member longer than the total */
	i = base; h[i++] = 1; h[i++] = 2; memset(h + i, 0, 16); i += 16; h[i++] = 3 << 1; h[i++] = 'a'; h[i++] = 'b';
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	/* two members whose keys do not increase (time delta 0, seq delta 0) */
	i = base; h[i++] = 2; h[i++] = 2; memset(h + i, 0, 16); h[i + 15] = 5; i += 16;
	h[i++] = 1 << 1; h[i++] = 1 << 1; h[i++] = 0; h[i++] = 0; h[i++] = 'a'; h[i++] = 'b';
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	/* ... going down (seq delta -1) */
	i -= 4; h[i++] = 0; h[i++] = 1; h[i++] = 'a'; h[i++] = 'b';
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	/* ... increasing (seq delta +1): valid */
	i -= 3; h[i++] = 2; h[i++] = 'a'; h[i++] = 'b';
	assert_int_equal(na_block_parse(c, h, i, b), 0);
	assert_int_equal(b->n, 2);
	/* all dead */
	h[base + 2 + 16] = 1 << 1 | 1;
	h[base + 2 + 16 + 1] = 1 << 1 | 1;
	assert_int_equal(na_block_parse(c, h, i, b), -EINVAL);
	h[base + 2 + 16] = 1 << 1;
	h[base + 2 + 16 + 1] = 1 << 1;
	/* a raw payload of the wrong length; a time delta that wraps */
	assert_int_equal(na_block_parse(c, h, i - 1, b), -EINVAL);
	memset(h + base + 2, 0xff, 8);
	h[base + 2 + 16 + 1] = 1 << 1;
	size_t j = base + 2 + 16 + 2;
	uint8_t wrap[] = { 1 << 1, 1 << 1, 0x01, 0x02, 'a', 'b' };
	memcpy(h + base + 2 + 16, wrap, sizeof wrap);
	assert_int_equal(na_block_parse(c, h, base + 2 + 16 + sizeof wrap, b), -EINVAL);
	(void)j;
	/* a dictionary id on a payload that says no dictionary, and the reverse */
	memcpy(h, rec, 6);
	h[5] = 1;
	uint8_t *copy = malloc(len);
	memcpy(copy, rec, len);
	copy[5] = 1;
	assert_int_equal(na_block_parse(c, copy, len, b), -EINVAL);
	copy[5] = 0;
	copy[1] = NA_REC_ZSTD_DICT;
	assert_int_equal(na_block_parse(c, copy, len, b), -EINVAL);
	/* random byte flips: refused or decoded, never a crash (ASan run) */
	uint32_t x = 12345;
	for (int round = 0; round < 3000; round++) {
		memcpy(copy, rec, len);
		for (int f = 0; f < 3; f++) {
			x = x * 1103515245u + 12345u;
			copy[(x >> 8) % len] ^= (uint8_t)(1u << ((x >> 4) & 7));
		}
		if (na_block_parse(c, copy, len, b) == 0 && b->raw_len <= raw_len)
			(void)na_block_decode(c, b, out, raw_len);
	}
	free(copy);
	free(out);
	free(b);
	free(rec);
	free(raw);
	na_codec_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_small_and_random_stored_raw),
		cmocka_unit_test(test_dictionary_helps),
		cmocka_unit_test(test_add_dict_errors),
		cmocka_unit_test(test_drop_and_add_dict_again),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_corrupt_records),
		cmocka_unit_test(test_many_dictionaries),
		cmocka_unit_test(test_block_round_trip),
		cmocka_unit_test(test_block_with_dictionary),
		cmocka_unit_test(test_block_corrupt),
		cmocka_unit_test(test_literal_compression),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
