/*
 * test_key.c - 16-byte time-ordered article keys (daemon/key.c) and the
 * SipHash-2-4 of the guid index (daemon/hash.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"
#include "key.h"
#include "rpc.h"

#define US 1000000LL

/* Increasing microsecond values, from the extremes through 1970. */
static const int64_t times[] = {
	INT64_MIN,
	INT64_MIN + 1,
	NA_TS_MIN_SEC * US,            /* 0001-01-01 */
	NA_TS_MIN_SEC * US + 1,
	-2208988800LL * US,            /* 1900-01-01 */
	-86400LL * US,
	-US - 1,
	-US,
	-256,
	-255,
	-2,
	-1,
	0,
	1,
	255,
	256,
	US,
	1700000000LL * US,
	NA_TS_MAX_SEC * US,            /* 9999-12-31T23:59:59 */
	NA_TS_MAX_SEC * US + 999999,
	INT64_MAX - 1,
	INT64_MAX,
};
#define NT (sizeof times / sizeof times[0])

static void test_key_order_is_time_order(void **state)
{
	(void)state;
	static const uint64_t seqs[] = { 0, 1, 255, 1ULL << 32, UINT64_MAX };
	for (size_t i = 0; i < NT; i++)
		for (size_t j = 0; j < NT; j++)
			for (size_t a = 0; a < 5; a++)
				for (size_t b = 0; b < 5; b++) {
					na_key ki, kj;
					na_key_make(&ki, times[i], seqs[a]);
					na_key_make(&kj, times[j], seqs[b]);
					int c = memcmp(ki.b, kj.b, NA_KEY_BYTES);
					/* time decides first, sequence second */
					int want = times[i] < times[j] ? -1 : times[i] > times[j] ? 1
						 : seqs[a] < seqs[b] ? -1 : seqs[a] > seqs[b] ? 1 : 0;
					if ((c < 0 ? -1 : c > 0 ? 1 : 0) != want)
						fail_msg("key(%lld,%llu) vs key(%lld,%llu): memcmp %d",
							 (long long)times[i], (unsigned long long)seqs[a],
							 (long long)times[j], (unsigned long long)seqs[b], c);
				}
}

static void test_key_before_1970(void **state)
{
	(void)state;
	na_key before, epoch, after;
	na_key_make(&before, -1, UINT64_MAX);
	na_key_make(&epoch, 0, 0);
	na_key_make(&after, 1, 0);
	assert_true(memcmp(before.b, epoch.b, NA_KEY_BYTES) < 0);
	assert_true(memcmp(epoch.b, after.b, NA_KEY_BYTES) < 0);
	/* the layout: sign bit flipped, big-endian */
	static const uint8_t epoch_b[16] = { 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(epoch.b, epoch_b, 16);
	na_key k;
	na_key_make(&k, -1, 0x0102030405060708ULL);
	static const uint8_t m1[16] = { 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(k.b, m1, 16);
}

static void test_key_equal_times_by_seq(void **state)
{
	(void)state;
	static const uint64_t seqs[] = { 0, 1, 2, 255, 256, 65536, 1ULL << 40, UINT64_MAX - 1,
					 UINT64_MAX };
	for (size_t t = 0; t < NT; t++)
		for (size_t i = 0; i + 1 < sizeof seqs / sizeof seqs[0]; i++) {
			na_key a, b;
			na_key_make(&a, times[t], seqs[i]);
			na_key_make(&b, times[t], seqs[i + 1]);
			assert_true(memcmp(a.b, b.b, NA_KEY_BYTES) < 0);
		}
	/* the largest sequence of one microsecond sorts before the next one */
	na_key a, b;
	na_key_make(&a, 5, UINT64_MAX);
	na_key_make(&b, 6, 0);
	assert_true(memcmp(a.b, b.b, NA_KEY_BYTES) < 0);
}

static void test_key_round_trip(void **state)
{
	(void)state;
	static const uint64_t seqs[] = { 0, 1, 0x8000000000000000ULL, UINT64_MAX };
	for (size_t t = 0; t < NT; t++)
		for (size_t s = 0; s < 4; s++) {
			na_key k;
			na_key_make(&k, times[t], seqs[s]);
			assert_true(na_key_micros(&k) == times[t]);
			assert_true(na_key_seq(&k) == seqs[s]);
		}
	na_key f;
	na_key_floor(&f, -42);
	assert_true(na_key_micros(&f) == -42);
	assert_int_equal(na_key_seq(&f), 0);

	uint8_t b[8];
	na_be64_put(b, 0x0102030405060708ULL);
	static const uint8_t want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(b, want, 8);
	assert_true(na_be64_get(b) == 0x0102030405060708ULL);
	na_be64_put(b, UINT64_MAX);
	assert_true(na_be64_get(b) == UINT64_MAX);
}

static void test_ts_micros_floor(void **state)
{
	(void)state;
	static const struct { na_ts ts; int64_t micros; } cases[] = {
		{ { 0, 0 }, 0 },
		{ { 0, 999 }, 0 },                  /* below a microsecond: floor */
		{ { 0, 1000 }, 1 },
		{ { 0, 1999 }, 1 },
		{ { 1, 500000000 }, 1500000 },
		{ { -1, 0 }, -1000000 },
		{ { -1, 1 }, -1000000 },            /* -0.999999999 s -> -1000000 us */
		{ { -1, 999 }, -1000000 },
		{ { -1, 1000 }, -999999 },
		{ { -1, 500000000 }, -500000 },
		{ { -1, 999999999 }, -1 },          /* -1 ns -> floor is -1 us */
		{ { -2, 999999 }, -1999001 },
		{ { NA_TS_MIN_SEC, 0 }, NA_TS_MIN_SEC * US },
		{ { NA_TS_MIN_SEC, 1500 }, NA_TS_MIN_SEC * US + 1 },
		{ { NA_TS_MAX_SEC, 999999999 }, NA_TS_MAX_SEC * US + 999999 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t got = na_ts_micros(cases[i].ts);
		if (got != cases[i].micros)
			fail_msg("na_ts_micros(%lld s, %u ns) = %lld, want %lld",
				 (long long)cases[i].ts.sec, cases[i].ts.nsec, (long long)got,
				 (long long)cases[i].micros);
	}
	/* a later timestamp never gets a smaller key */
	na_ts prev = { -3, 0 };
	for (int64_t ns = 0; ns < 6000000000LL; ns += 999983) {
		na_ts cur = { -3 + ns / 1000000000, (uint32_t)(ns % 1000000000) };
		assert_true(na_ts_micros(cur) >= na_ts_micros(prev));
		prev = cur;
	}
}

/* SipHash-2-4 reference vectors: key 00 01 .. 0f, message 00 01 .. (len-1),
 * from the reference implementation's vectors (the paper's appendix gives
 * the 15-byte case). */
static void test_siphash_vectors(void **state)
{
	(void)state;
	uint8_t key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	static const struct { size_t len; uint64_t h; } v[] = {
		{ 0, 0x726fdb47dd0e0e31ULL },
		{ 1, 0x74f839c593dc67fdULL },
		{ 2, 0x0d6c8009d9a94f5aULL },
		{ 3, 0x85676696d7fb7e2dULL },
		{ 4, 0xcf2794e0277187b7ULL },
		{ 7, 0xab0200f58b01d137ULL },
		{ 8, 0x93f5f5799a932462ULL },
		{ 15, 0xa129ca6149be45e5ULL },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint64_t h = na_siphash(key, msg, v[i].len);
		if (h != v[i].h)
			fail_msg("siphash of %zu bytes: %016llx, want %016llx", v[i].len,
				 (unsigned long long)h, (unsigned long long)v[i].h);
	}
}

static void test_siphash_properties(void **state)
{
	(void)state;
	uint8_t key[16] = { 0 }, key2[16] = { 1 };
	uint8_t msg[64];
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)(i * 7);
	/* all lengths 0..63 give distinct values; the key matters; the input
	 * is read only up to len (a copy at an odd address gives the same) */
	uint64_t seen[64];
	uint8_t shifted[65];
	memcpy(shifted + 1, msg, 64);
	for (size_t len = 0; len < 64; len++) {
		seen[len] = na_siphash(key, msg, len);
		for (size_t j = 0; j < len; j++)
			assert_true(seen[j] != seen[len]);
		assert_true(na_siphash(key2, msg, len) != seen[len]);
		assert_true(na_siphash(key, shifted + 1, len) == seen[len]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_order_is_time_order),
		cmocka_unit_test(test_key_before_1970),
		cmocka_unit_test(test_key_equal_times_by_seq),
		cmocka_unit_test(test_key_round_trip),
		cmocka_unit_test(test_ts_micros_floor),
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_siphash_properties),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
