/*
 * fuzz_frame.c - libFuzzer target: the framer (na_scan_feed) over random
 * bytes fed in random chunk sizes, then the readers on each framed message.
 *
 * Input: byte 0 picks max_depth, byte 1 the size limit, bytes 2..3 seed the
 * chunk sizes; the rest is the stream. Invariants checked (abort on
 * violation): a framed message is exactly what na_mp_skip consumes, the
 * typed walk consumes it too, and chunking never changes what is framed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

/* Walks one object with the typed readers (iteratively). */
static void walk(const uint8_t *msg, size_t len)
{
	na_mp r;
	na_mp_init(&r, msg, len);
	uint64_t pending = 1;
	while (pending > 0) {
		pending--;
		na_mp_type t = na_mp_peek(&r);
		bool b;
		uint64_t u;
		int64_t i;
		double d;
		const char *s;
		const uint8_t *p;
		uint32_t n;
		int8_t et;
		na_ts ts;
		int rc = 0;
		switch (t) {
		case NA_MP_NIL: rc = na_mp_nil(&r); break;
		case NA_MP_BOOL: rc = na_mp_bool(&r, &b); break;
		case NA_MP_UINT: rc = na_mp_u64(&r, &u); break;
		case NA_MP_INT: rc = na_mp_i64(&r, &i); break;
		case NA_MP_FLOAT: rc = na_mp_f64(&r, &d); break;
		case NA_MP_STR: rc = na_mp_str(&r, &s, &n); break;
		case NA_MP_BIN: rc = na_mp_bin(&r, &p, &n); break;
		case NA_MP_ARRAY: rc = na_mp_array(&r, &n); if (!rc) pending += n; break;
		case NA_MP_MAP: rc = na_mp_map(&r, &n); if (!rc) pending += 2 * (uint64_t)n; break;
		case NA_MP_EXT: {
			const uint8_t *save = r.p;
			if (na_mp_ts(&r, &ts) == 0) {
				CHECK(ts.nsec < 1000000000u);
				break;
			}
			/* not a (valid) timestamp: read it as a plain ext */
			r.err = 0;
			r.p = save;
			rc = na_mp_ext(&r, &et, &p, &n);
			break;
		}
		default: CHECK(!"framed message holds an invalid byte");
		}
		CHECK(rc == 0);
	}
	CHECK(na_mp_left(&r) == 0);
}

static void check_msg(const uint8_t *stream, size_t off, size_t mlen)
{
	/* an exact-size copy, so any overread is an ASan report */
	uint8_t *m = malloc(mlen);
	memcpy(m, stream + off, mlen);
	na_mp r;
	na_mp_init(&r, m, mlen);
	CHECK(na_mp_skip(&r) == 0);
	CHECK(na_mp_left(&r) == 0);
	const uint8_t *obj;
	size_t on;
	na_mp_init(&r, m, mlen);
	CHECK(na_mp_raw(&r, &obj, &on) == 0 && obj == m && on == mlen);
	walk(m, mlen);
	/* every proper prefix is incomplete for skip */
	if (mlen < 64)
		for (size_t k = 0; k < mlen; k++) {
			na_mp_init(&r, m, k);
			CHECK(na_mp_skip(&r) < 0);
		}
	free(m);
}

/* Frames the stream; returns the message lengths found and the result. */
static int frame(const uint8_t *d, size_t n, size_t max_bytes, unsigned depth, uint32_t seed,
		 size_t *lens, size_t *nlens, size_t cap)
{
	na_scan s;
	na_scan_init(&s, max_bytes, depth);
	size_t off = 0, avail = 0;
	*nlens = 0;
	while (avail < n) {
		size_t step = 1;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			step = 1 + (seed >> 16) % 17;
		} else {
			step = n; /* all at once */
		}
		avail = avail + step > n ? n : avail + step;
		while (off < avail) {
			size_t ml = 0;
			int rc = na_scan_feed(&s, d + off, avail - off, &ml);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break;
			CHECK(ml > 0 && ml <= max_bytes && off + ml <= avail);
			if (*nlens < cap)
				lens[(*nlens)++] = ml;
			off += ml;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	unsigned depth = data[0] % 70;
	size_t max_bytes = data[1] < 128 ? (size_t)data[1] + 1 : (size_t)1 << 20;
	uint32_t seed = (uint32_t)data[2] << 8 | data[3];
	const uint8_t *d = data + 4;
	size_t n = size - 4;

	static size_t la[4096], lb[4096];
	size_t na, nb;
	int ra = frame(d, n, max_bytes, depth, 0, la, &na, 4096);
	int rb = frame(d, n, max_bytes, depth, seed | 1, lb, &nb, 4096);
	/* chunking changes nothing: same messages, same verdict */
	CHECK(ra == rb);
	CHECK(na == nb);
	CHECK(memcmp(la, lb, na * sizeof la[0]) == 0);
	size_t off = 0;
	for (size_t i = 0; i < na; i++) {
		check_msg(d, off, la[i]);
		off += la[i];
	}
	return 0;
}
