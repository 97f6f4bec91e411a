/*
 * test_posting.c - the posting chunk codec and term keys: round trips,
 * sizes, and refusal of every malformed chunk (truncations, bit flips).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "index.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void test_round_trip(void **s)
{
	(void)s;
	uint32_t d[NA_POST_CHUNK_MAX], d2[NA_POST_CHUNK_MAX];
	uint16_t tf[NA_POST_CHUNK_MAX], tf2[NA_POST_CHUNK_MAX];
	uint8_t buf[NA_POST_CHUNK_MAX * 9 + 16];
	for (int iter = 0; iter < 2000; iter++) {
		uint32_t n = 1 + rnd(NA_POST_CHUNK_MAX);
		uint32_t base = rnd(1u << 30), cur = base;
		uint32_t gap = 1 + rnd(iter % 3 == 0 ? 3 : iter % 3 == 1 ? 300 : 1u << 20);
		for (uint32_t i = 0; i < n; i++) {
			cur += i == 0 ? rnd(2) : 1 + rnd(gap);
			d[i] = cur;
			tf[i] = (uint16_t)(rnd(4) ? 1 : 1 + rnd(65535));
		}
		size_t len = na_post_encode(buf, sizeof buf, base, d, tf, n);
		assert_true(len > 0);
		uint32_t got;
		assert_int_equal(na_post_decode(buf, len, base, d2, tf2, NA_POST_CHUNK_MAX, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(d, d2, n * sizeof *d);
		assert_memory_equal(tf, tf2, n * sizeof *tf);
		assert_int_equal(na_post_count(buf, len), n);
		/* too small a buffer: 0, never an overflow */
		assert_int_equal(na_post_encode(buf, len - 1, base, d, tf, n), 0);
		/* every truncation is refused */
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(na_post_decode(buf, cut, base, d2, tf2, NA_POST_CHUNK_MAX, &got), -1);
		/* and a smaller capacity */
		if (n > 1)
			assert_int_equal(na_post_decode(buf, len, base, d2, tf2, n - 1, &got), -1);
		/* no postings, or a tf of 0: refused */
		assert_int_equal(na_post_encode(buf, sizeof buf, base, d, tf, 0), 0);
	}
}

static void test_size(void **s)
{
	(void)s;
	/* dense postings with tf 1 cost the bits of their gaps: 128 docids
	 * 3 apart are 127 gaps of 2 bits, plus the count, first gap and width */
	uint32_t d[128];
	uint16_t tf[128];
	for (int i = 0; i < 128; i++) {
		d[i] = 1000 + (uint32_t)i * 3;
		tf[i] = 1;
	}
	uint8_t buf[2048];
	assert_int_equal(na_post_encode(buf, sizeof buf, 1000, d, tf, 128), 2 + 1 + 1 + 32);
	/* one posting of a rare term: two bytes */
	assert_int_equal(na_post_encode(buf, sizeof buf, 1000, d, tf, 1), 2);
}

static void test_refuses_bad_input(void **s)
{
	(void)s;
	uint32_t d[4] = { 5, 5, 6, 7 }, d2[8];
	uint16_t tf[4] = { 1, 1, 1, 1 }, tf2[8];
	uint8_t buf[64];
	uint32_t n;
	/* docids must ascend strictly and not start below the base */
	assert_int_equal(na_post_encode(buf, sizeof buf, 0, d, tf, 4), 0);
	assert_int_equal(na_post_encode(buf, sizeof buf, 7, d + 2, tf, 2), 0);
	/* no postings, a width over 32, gaps cut short, a tf bitmap with no bit
	 * set, trailing bytes, a docid past 2^32, a count beyond the bytes, a
	 * varint that never ends */
	static const uint8_t empty[] = { 0, 0 };
	static const uint8_t wide[] = { 4, 0, 33, 0, 0, 0, 0, 0 };
	static const uint8_t short_gaps[] = { 6, 0, 8, 1 };
	static const uint8_t no_tf[] = { 3, 0, 0 };
	static const uint8_t trailing[] = { 2, 0, 9 };
	static const uint8_t wrap[] = { 4, 0, 32, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t count_lie[] = { 10, 0, 1 };
	static const uint8_t endless[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
	assert_int_equal(na_post_decode(empty, sizeof empty, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(wide, sizeof wide, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(short_gaps, sizeof short_gaps, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(no_tf, sizeof no_tf, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(trailing, sizeof trailing, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(wrap, sizeof wrap, 1, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(count_lie, sizeof count_lie, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_decode(endless, sizeof endless, 0, d2, tf2, 8, &n), -1);
	assert_int_equal(na_post_count(endless, sizeof endless), -1);
	/* and the well-formed neighbours of some of them */
	static const uint8_t one[] = { 2, 0 };
	static const uint8_t two[] = { 4, 5, 0 };
	assert_int_equal(na_post_decode(one, sizeof one, 7, d2, tf2, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(d2[0], 7);
	assert_int_equal(na_post_decode(two, sizeof two, 7, d2, tf2, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(d2[0], 12);
	assert_int_equal(d2[1], 13);
	/* random bytes never crash and never report more than the capacity */
	for (int i = 0; i < 20000; i++) {
		uint8_t r[32];
		size_t len = rnd(sizeof r);
		for (size_t k = 0; k < len; k++)
			r[k] = (uint8_t)rnd(256);
		if (na_post_decode(r, len, rnd(100), d2, tf2, 8, &n) == 0)
			assert_true(n <= 8);
	}
}

static void test_term_keys(void **s)
{
	(void)s;
	uint8_t k[NA_IX_TERMKEY_MAX];
	size_t n = na_ix_term_key(k, NA_IXF_TEXT, "en", "run", 3);
	assert_int_equal(n, 6);
	assert_memory_equal(k, "wenrun", 6);
	n = na_ix_term_key(k, NA_IXF_TITLE, "", "run", 3);
	assert_memory_equal(k, "T--run", 6);
	n = na_ix_term_key(k, NA_IXF_AUTHOR, "en", "jane doe", 8);
	assert_int_equal(n, 9);
	assert_memory_equal(k, "ajane doe", 9);
	char big[NA_EXACT_MAX + 50];
	memset(big, 'x', sizeof big);
	assert_int_equal(na_ix_term_key(k, NA_IXF_TAG, "", big, sizeof big), 1 + NA_EXACT_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_refuses_bad_input),
		cmocka_unit_test(test_term_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
