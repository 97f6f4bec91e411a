/*
 * fuzz_record.c - libFuzzer target: stored records. Random bytes go to
 * na_rec_parse and na_codec_decode (a codec with one trained dictionary,
 * id 1, registered), and are also encoded and decoded back. The same bytes
 * also go to the block parser and decoder, and are cut into members of a
 * block that is encoded, parsed and decoded back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)
#define MAX_RAW (1u << 20)

static na_codec *codec;

/* Deterministic article-like samples to train the dictionary on. */
static void init(void)
{
	static const char *const words[] = { "guid", "published", "title", "body", "the", "market",
					     "said", "Reuters", "percent", "government", "of" };
	enum { N = 300 };
	size_t sizes[N], used = 0;
	uint8_t *buf = malloc(N * 600);
	uint32_t x = 1;
	for (int i = 0; i < N; i++) {
		size_t start = used;
		buf[used++] = 0x84;
		int len = snprintf((char *)buf + used, 64, "\xa4guid\xb0urn:example:%06d", i);
		used += (size_t)len;
		while (used - start < 300 + (size_t)(i % 200)) {
			x = x * 1103515245u + 12345u;
			const char *w = words[(x >> 16) % (sizeof words / sizeof words[0])];
			size_t wl = strlen(w);
			memcpy(buf + used, w, wl);
			used += wl;
			buf[used++] = ' ';
		}
		sizes[i] = used - start;
	}
	CHECK(na_codec_create(3, MAX_RAW, &codec) == 0);
	void *dict;
	size_t dl;
	CHECK(na_codec_train(buf, sizes, N, 4096, false, &dict, &dl) == 0);
	CHECK(na_codec_add_dict(codec, 1, dict, dl) == 0);
	free(dict);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!codec)
		init();
	/* 1: the input as a record */
	uint8_t *rec = malloc(size ? size : 1);
	memcpy(rec, data, size);
	na_rec r;
	int prc = na_rec_parse(codec, rec, size, &r);
	size_t on = 0;
	if (prc == 0) {
		CHECK(r.fmt >= 0 && r.fmt <= 2 && r.raw_len <= MAX_RAW);
		CHECK(r.payload >= rec && r.payload + r.payload_len == rec + size);
		uint8_t *out = malloc(r.raw_len ? r.raw_len : 1);
		int rc = na_codec_decode(codec, rec, size, out, r.raw_len, &on);
		CHECK(rc == 0 || rc == -22 /* EINVAL */);
		if (rc == 0)
			CHECK(on == r.raw_len);
		free(out);
	} else {
		uint8_t out[64];
		CHECK(na_codec_decode(codec, rec, size, out, sizeof out, &on) != 0);
	}
	free(rec);

	/* 1b: the input as a block */
	static na_block blk;
	if (na_block_parse(codec, data, size, &blk) == 0) {
		CHECK(blk.n >= 1 && blk.n <= NA_BLOCK_MAX_MEMBERS && blk.live >= 1 && blk.raw_len <= MAX_RAW);
		uint64_t sum = 0;
		for (uint32_t i = 0; i < blk.n; i++) {
			CHECK(blk.m[i].off == sum);
			sum += blk.m[i].len;
			if (i)
				CHECK(memcmp(blk.m[i - 1].key, blk.m[i].key, 16) < 0);
		}
		CHECK(sum == blk.raw_len);
		uint8_t *out = malloc(blk.raw_len ? blk.raw_len : 1);
		int rc = na_block_decode(codec, &blk, out, blk.raw_len);
		CHECK(rc == 0 || rc == -22);
		free(out);
	}

	/* 1c: the input cut into members of a block, round trip */
	if (size >= 1 && size <= MAX_RAW) {
		static na_bmember m[NA_BLOCK_MAX_MEMBERS];
		uint32_t n = (uint32_t)(data[0] % 16) + 1;
		size_t left = size, part = size / n;
		for (uint32_t i = 0; i < n; i++) {
			memset(m[i].key, 0, 16);
			m[i].key[7] = (uint8_t)i; /* increasing times */
			m[i].key[15] = (uint8_t)(data[i % size]);
			m[i].len = (uint32_t)(i + 1 == n ? left : part);
			m[i].dead = i > 0 && (data[i % size] & 1);
			left -= m[i].len;
		}
		uint8_t *enc = malloc(na_block_bound(n, size));
		size_t el = 0;
		CHECK(na_block_encode(codec, m, n, data, size, enc, &el) == 0);
		CHECK(na_block_parse(codec, enc, el, &blk) == 0 && blk.n == n && blk.raw_len == size);
		uint8_t *dec = malloc(size);
		CHECK(na_block_decode(codec, &blk, dec, size) == 0 && memcmp(dec, data, size) == 0);
		free(enc);
		free(dec);
	}

	/* 2: the input as an article, with and without the dictionary */
	if (size <= MAX_RAW) {
		na_codec_use_dict(codec, size & 1);
		size_t bound = na_codec_bound(size);
		uint8_t *enc = malloc(bound);
		size_t el = 0;
		CHECK(na_codec_encode(codec, data, size, enc, &el) == 0);
		CHECK(el <= bound && el <= size + 6);
		uint8_t *dec = malloc(size ? size : 1);
		CHECK(na_codec_decode(codec, enc, el, dec, size, &on) == 0);
		CHECK(on == size && memcmp(dec, data, size) == 0);
		free(enc);
		free(dec);
	}
	return 0;
}
