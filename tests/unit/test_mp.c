/*
 * test_mp.c - the bounded msgpack framer (na_scan_*) and the zero-copy
 * reader (na_mp_*) of proto/mp.c.
 *
 * Truncation tests copy every prefix into its own heap block of exactly
 * that size, so a read one byte past the end is an ASan report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "mp.h"
#include "rpc.h"

/* ---- helpers ------------------------------------------------------- */

typedef struct bytes {
	uint8_t *p;
	size_t n;
} bytes;

static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	assert_non_null(b);
	if (n)
		memcpy(b, p, n);
	return b;
}

/* A stream of varied messages, with the length of each. */
static void build_stream(msgpack_sbuffer *sb, size_t *lens, size_t *nmsg)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	size_t before = 0;
	size_t k = 0;
#define END_MSG() do { lens[k++] = sb->size - before; before = sb->size; } while (0)
	/* [0, 1, "ping", []] */
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 1);
	na_mp_pack_cstr(&pk, "ping");
	msgpack_pack_array(&pk, 0);
	END_MSG();
	/* a put with an article holding every kind of value */
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 70000);
	na_mp_pack_cstr(&pk, "put");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 9);
	na_mp_pack_cstr(&pk, "guid");
	na_mp_pack_cstr(&pk, "urn:x:1");
	na_mp_pack_cstr(&pk, "published");
	na_mp_pack_ts(&pk, (na_ts){ -5, 123456789 });
	na_mp_pack_cstr(&pk, "title");
	char big[300];
	memset(big, 'b', sizeof big);
	na_mp_pack_str(&pk, big, sizeof big); /* str16 */
	na_mp_pack_cstr(&pk, "bin");
	msgpack_pack_bin(&pk, 40);
	msgpack_pack_bin_body(&pk, big, 40);
	na_mp_pack_cstr(&pk, "f");
	msgpack_pack_double(&pk, 2.5);
	na_mp_pack_cstr(&pk, "g");
	msgpack_pack_float(&pk, 1.5f);
	na_mp_pack_cstr(&pk, "ints");
	msgpack_pack_array(&pk, 8);
	msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_int8(&pk, -1);
	msgpack_pack_int16(&pk, -300);
	msgpack_pack_int32(&pk, -70000);
	msgpack_pack_uint16(&pk, 300);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	na_mp_pack_cstr(&pk, "exts");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_ext(&pk, 5, 1); /* ext8 */
	msgpack_pack_ext_body(&pk, "12345", 5);
	msgpack_pack_ext(&pk, 16, 2); /* fixext16 */
	msgpack_pack_ext_body(&pk, big, 16);
	msgpack_pack_ext(&pk, 300, 3); /* ext16 */
	msgpack_pack_ext_body(&pk, big, 300);
	na_mp_pack_cstr(&pk, "nest");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_map(&pk, 0);
	END_MSG();
	/* scalars at top level */
	msgpack_pack_uint8(&pk, 5);
	END_MSG();
	msgpack_pack_int64(&pk, -1234567890123LL);
	END_MSG();
	na_mp_pack_cstr(&pk, "");
	END_MSG();
	/* array16 of 20 fixints, map16 of 17 pairs */
	msgpack_pack_array(&pk, 20);
	for (int i = 0; i < 20; i++)
		msgpack_pack_int(&pk, i - 10);
	END_MSG();
	msgpack_pack_map(&pk, 17);
	for (int i = 0; i < 17; i++) {
		msgpack_pack_int(&pk, i);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_nil(&pk);
	}
	END_MSG();
	/* a notification */
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint8(&pk, 2);
	na_mp_pack_cstr(&pk, "x");
	msgpack_pack_array(&pk, 0);
	END_MSG();
#undef END_MSG
	*nmsg = k;
}

/* Frames stream[0..avail) the way conn.c does, appending found lengths.
 * *off is the start of the message being framed. */
static int frame(na_scan *s, const uint8_t *stream, size_t avail, size_t *off, size_t *found,
		 size_t *nfound)
{
	while (*off < avail) {
		size_t mlen = 0;
		int rc = na_scan_feed(s, stream + *off, avail - *off, &mlen);
		if (rc <= 0)
			return rc;
		assert_true(mlen > 0);
		assert_true(*off + mlen <= avail);
		found[(*nfound)++] = mlen;
		*off += mlen;
	}
	return 0;
}

/* ---- framer -------------------------------------------------------- */

static void test_scan_every_split(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	size_t lens[32], n;
	build_stream(&sb, lens, &n);
	const uint8_t *st = (const uint8_t *)sb.data;

	/* all at once */
	na_scan s;
	size_t found[32], nf = 0, off = 0;
	na_scan_init(&s, 1 << 20, 32);
	assert_int_equal(frame(&s, st, sb.size, &off, found, &nf), 0);
	assert_int_equal(nf, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(found[i], lens[i]);

	/* in two pieces, split at every byte boundary */
	for (size_t cut = 0; cut <= sb.size; cut++) {
		na_scan_init(&s, 1 << 20, 32);
		nf = 0;
		off = 0;
		assert_int_equal(frame(&s, st, cut, &off, found, &nf), 0);
		assert_int_equal(frame(&s, st, sb.size, &off, found, &nf), 0);
		assert_int_equal(off, sb.size);
		assert_int_equal(nf, n);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(found[i], lens[i]);
	}

	/* one byte at a time: every boundary at once */
	na_scan_init(&s, 1 << 20, 32);
	nf = 0;
	off = 0;
	for (size_t avail = 0; avail <= sb.size; avail++)
		assert_int_equal(frame(&s, st, avail, &off, found, &nf), 0);
	assert_int_equal(nf, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(found[i], lens[i]);

	/* the msgid of the first request is seen before it completes */
	na_scan_init(&s, 1 << 20, 32);
	size_t ml;
	assert_int_equal(na_scan_feed(&s, st, 3, &ml), 0);
	assert_true(s.have_msgid);
	assert_int_equal(s.msgid, 1);
	msgpack_sbuffer_destroy(&sb);
}

/* The framer must not keep a pointer into the buffer between calls. */
static void test_scan_buffer_moves(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	size_t lens[32], n;
	build_stream(&sb, lens, &n);
	na_scan s;
	na_scan_init(&s, 1 << 20, 32);
	size_t ml;
	/* feed the second message in growing prefixes, each a fresh copy */
	int rc = 0;
	for (size_t avail = 1; avail <= lens[1]; avail++) {
		uint8_t *copy = dup_exact(sb.data + lens[0], avail);
		rc = na_scan_feed(&s, copy, avail, &ml);
		free(copy);
		if (avail < lens[1])
			assert_int_equal(rc, 0);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(ml, lens[1]);
	msgpack_sbuffer_destroy(&sb);
}

static void test_scan_huge_headers(void **state)
{
	(void)state;
	/* str32, bin32, array32, map32, ext32 claiming ~4 GiB: refused from
	 * the 5-byte header alone (no further bytes offered) */
	static const uint8_t tags[] = { 0xdb, 0xc6, 0xdd, 0xdf, 0xc9 };
	for (size_t i = 0; i < sizeof tags; i++) {
		uint8_t h[6] = { tags[i], 0xff, 0xff, 0xff, 0xf0, 0x01 };
		size_t hl = tags[i] == 0xc9 ? 6 : 5;
		uint8_t *b = dup_exact(h, hl);
		na_scan s;
		size_t ml;
		na_scan_init(&s, 1 << 20, 32);
		assert_int_equal(na_scan_feed(&s, b, hl, &ml), NA_MP_ETOOBIG);
		assert_false(s.have_msgid);
		free(b);
	}
	/* str16 just over a tiny limit, but the same length below it is fine
	 * (needs more bytes) */
	{
		uint8_t h[3] = { 0xda, 0x01, 0x00 }; /* 256 bytes */
		na_scan s;
		size_t ml;
		na_scan_init(&s, 258, 32);
		assert_int_equal(na_scan_feed(&s, h, 3, &ml), NA_MP_ETOOBIG);
		na_scan_init(&s, 259, 32);
		assert_int_equal(na_scan_feed(&s, h, 3, &ml), 0);
	}
	/* inside a request: [0, 7, "put", [ <huge> ]] */
	static const uint8_t msgid_forms[][6] = {
		{ 1, 0x07 }, { 2, 0xcc, 0x07 }, { 3, 0xcd, 0x00, 0x07 }, { 5, 0xce, 0x00, 0x00, 0x00, 0x07 },
	};
	for (size_t f = 0; f < 4; f++) {
		for (size_t i = 0; i < sizeof tags; i++) {
			uint8_t m[32];
			size_t k = 0;
			m[k++] = 0x94;
			m[k++] = 0x00;
			memcpy(m + k, msgid_forms[f] + 1, msgid_forms[f][0]);
			k += msgid_forms[f][0];
			m[k++] = 0xa3;
			m[k++] = 'p';
			m[k++] = 'u';
			m[k++] = 't';
			m[k++] = 0x91;
			m[k++] = tags[i];
			m[k++] = 0xff;
			m[k++] = 0xff;
			m[k++] = 0xff;
			m[k++] = 0xff;
			if (tags[i] == 0xc9)
				m[k++] = 0x01;
			uint8_t *b = dup_exact(m, k);
			na_scan s;
			size_t ml;
			na_scan_init(&s, NA_MAX_REQUEST_BYTES_DEFAULT, 32);
			assert_int_equal(na_scan_feed(&s, b, k, &ml), NA_MP_ETOOBIG);
			assert_true(s.have_msgid);
			assert_int_equal(s.msgid, 7);
			free(b);
		}
	}
	/* a huge msgid (uint64) is not captured as a msgid */
	{
		uint8_t m[] = { 0x94, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 7, 0xdb, 0xff, 0xff, 0xff, 0xff };
		na_scan s;
		size_t ml;
		na_scan_init(&s, 1 << 20, 32);
		assert_int_equal(na_scan_feed(&s, m, sizeof m, &ml), NA_MP_ETOOBIG);
		assert_false(s.have_msgid);
	}
}

/* The whole message, not only each header, must respect max_bytes:
 * many small elements that each fit must not add up past the limit. */
static void test_scan_total_size_limit(void **state)
{
	(void)state;
	/* fixarray of 4 uint64: 1 + 4 * 9 = 37 bytes */
	uint8_t m[37];
	m[0] = 0x94;
	for (int i = 0; i < 4; i++) {
		m[1 + 9 * i] = 0xcf;
		memset(m + 2 + 9 * i, 0x11, 8);
	}
	na_scan s;
	size_t ml = 0;
	na_scan_init(&s, 37, 32);
	assert_int_equal(na_scan_feed(&s, m, sizeof m, &ml), 1);
	assert_int_equal(ml, 37);
	na_scan_init(&s, 36, 32);
	assert_int_equal(na_scan_feed(&s, m, sizeof m, &ml), NA_MP_ETOOBIG);
	na_scan_init(&s, 16, 32);
	assert_int_equal(na_scan_feed(&s, m, sizeof m, &ml), NA_MP_ETOOBIG);
	/* and it is refused as soon as the offending header is there */
	na_scan_init(&s, 16, 32);
	assert_int_equal(na_scan_feed(&s, m, 10, &ml), 0);
	assert_int_equal(na_scan_feed(&s, m, 11, &ml), NA_MP_ETOOBIG);

	/* nested arrays each within their own bound, together far beyond */
	uint8_t big[1 + 3 * (3 + 100)];
	size_t k = 0;
	big[k++] = 0x93;
	for (int a = 0; a < 3; a++) {
		big[k++] = 0xdc;
		big[k++] = 0;
		big[k++] = 100;
		memset(big + k, 0x01, 100);
		k += 100;
	}
	na_scan_init(&s, 200, 32);
	assert_int_equal(na_scan_feed(&s, big, k, &ml), NA_MP_ETOOBIG);
	na_scan_init(&s, k, 32);
	assert_int_equal(na_scan_feed(&s, big, k, &ml), 1);
	assert_int_equal(ml, k);
}

static size_t nest(uint8_t *b, unsigned depth, bool maps)
{
	size_t k = 0;
	for (unsigned i = 0; i < depth; i++) {
		if (maps) {
			b[k++] = 0x81;
			b[k++] = 0x00; /* key */
		} else {
			b[k++] = 0x91;
		}
	}
	b[k++] = 0x2a;
	return k;
}

static void test_scan_depth(void **state)
{
	(void)state;
	uint8_t b[512];
	na_scan s;
	size_t ml, k;
	for (int maps = 0; maps < 2; maps++) {
		k = nest(b, 4, maps);
		na_scan_init(&s, 1 << 20, 4);
		assert_int_equal(na_scan_feed(&s, b, k, &ml), 1);
		assert_int_equal(ml, k);
		k = nest(b, 5, maps);
		na_scan_init(&s, 1 << 20, 4);
		assert_int_equal(na_scan_feed(&s, b, k, &ml), NA_MP_EDEPTH);
		/* refused before the rest arrives */
		na_scan_init(&s, 1 << 20, 4);
		assert_int_equal(na_scan_feed(&s, b, maps ? 9 : 5, &ml), NA_MP_EDEPTH);
	}
	/* max_depth is clamped to the ceiling */
	na_scan_init(&s, 1 << 20, 1000);
	assert_int_equal(s.max_depth, NA_MP_DEPTH_CEILING);
	k = nest(b, NA_MP_DEPTH_CEILING, false);
	assert_int_equal(na_scan_feed(&s, b, k, &ml), 1);
	k = nest(b, NA_MP_DEPTH_CEILING + 1, false);
	na_scan_init(&s, 1 << 20, 1000);
	assert_int_equal(na_scan_feed(&s, b, k, &ml), NA_MP_EDEPTH);
	k = nest(b, 200, true);
	na_scan_init(&s, 1 << 20, 1000);
	assert_int_equal(na_scan_feed(&s, b, k, &ml), NA_MP_EDEPTH);
	/* empty containers do not open a level */
	uint8_t e[] = { 0x91, 0x91, 0x90 };
	na_scan_init(&s, 1 << 20, 2);
	assert_int_equal(na_scan_feed(&s, e, sizeof e, &ml), 1);
	assert_int_equal(ml, 3);
}

static void test_scan_malformed(void **state)
{
	(void)state;
	na_scan s;
	size_t ml;
	uint8_t a[] = { 0xc1 };
	na_scan_init(&s, 1 << 20, 32);
	assert_int_equal(na_scan_feed(&s, a, 1, &ml), NA_MP_EMALFORMED);
	uint8_t b[] = { 0x94, 0x00, 0x09, 0xc1 };
	na_scan_init(&s, 1 << 20, 32);
	assert_int_equal(na_scan_feed(&s, b, sizeof b, &ml), NA_MP_EMALFORMED);
	assert_true(s.have_msgid);
	assert_int_equal(s.msgid, 9);
	/* after a complete message the next one starts fresh */
	uint8_t c[] = { 0x01, 0xc1 };
	na_scan_init(&s, 1 << 20, 32);
	assert_int_equal(na_scan_feed(&s, c, 2, &ml), 1);
	assert_int_equal(ml, 1);
	assert_int_equal(na_scan_feed(&s, c + 1, 1, &ml), NA_MP_EMALFORMED);
	/* an empty feed needs more */
	na_scan_init(&s, 1 << 20, 32);
	assert_int_equal(na_scan_feed(&s, c, 0, &ml), 0);
}

/* ---- reader: values, truncation ------------------------------------ */

enum rk { R_NIL, R_BOOL, R_U64, R_I64, R_F64, R_STR, R_BIN, R_ARRAY, R_MAP, R_EXT, R_TS, R_SKIP,
	  R_RAW, R__N };

static int run_reader(enum rk k, na_mp *r)
{
	bool bv;
	uint64_t u;
	int64_t i;
	double d;
	const char *s;
	const uint8_t *b;
	uint32_t n;
	int8_t t;
	na_ts ts;
	size_t sz;
	switch (k) {
	case R_NIL: return na_mp_nil(r);
	case R_BOOL: return na_mp_bool(r, &bv);
	case R_U64: return na_mp_u64(r, &u);
	case R_I64: return na_mp_i64(r, &i);
	case R_F64: return na_mp_f64(r, &d);
	case R_STR: return na_mp_str(r, &s, &n);
	case R_BIN: return na_mp_bin(r, &b, &n);
	case R_ARRAY: return na_mp_array(r, &n);
	case R_MAP: return na_mp_map(r, &n);
	case R_EXT: return na_mp_ext(r, &t, &b, &n);
	case R_TS: return na_mp_ts(r, &ts);
	case R_SKIP: return na_mp_skip(r);
	case R_RAW: return na_mp_raw(r, &b, &sz);
	default: return -100;
	}
}

typedef struct sample {
	enum rk kind;      /* the reader that accepts it */
	bool header_only;  /* containers: only their header is the value */
	uint8_t b[40];
	size_t n;
} sample;

static const sample samples[] = {
	{ R_NIL, false, { 0xc0 }, 1 },
	{ R_BOOL, false, { 0xc3 }, 1 },
	{ R_U64, false, { 0xcc, 0xff }, 2 },
	{ R_U64, false, { 0xcd, 0xff, 0xff }, 3 },
	{ R_U64, false, { 0xce, 1, 2, 3, 4 }, 5 },
	{ R_U64, false, { 0xcf, 1, 2, 3, 4, 5, 6, 7, 8 }, 9 },
	{ R_I64, false, { 0xd0, 0x80 }, 2 },
	{ R_I64, false, { 0xd1, 0x80, 0 }, 3 },
	{ R_I64, false, { 0xd2, 0x80, 0, 0, 0 }, 5 },
	{ R_I64, false, { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 9 },
	{ R_F64, false, { 0xca, 0x3f, 0xc0, 0, 0 }, 5 },
	{ R_F64, false, { 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0 }, 9 },
	{ R_STR, false, { 0xa3, 'a', 'b', 'c' }, 4 },
	{ R_STR, false, { 0xd9, 3, 'a', 'b', 'c' }, 5 },
	{ R_STR, false, { 0xda, 0, 3, 'a', 'b', 'c' }, 6 },
	{ R_STR, false, { 0xdb, 0, 0, 0, 3, 'a', 'b', 'c' }, 8 },
	{ R_BIN, false, { 0xc4, 2, 1, 2 }, 4 },
	{ R_BIN, false, { 0xc5, 0, 2, 1, 2 }, 5 },
	{ R_BIN, false, { 0xc6, 0, 0, 0, 2, 1, 2 }, 7 },
	{ R_ARRAY, true, { 0xdc, 0, 2 }, 3 },
	{ R_ARRAY, true, { 0xdd, 0, 0, 0, 2 }, 5 },
	{ R_MAP, true, { 0xde, 0, 1 }, 3 },
	{ R_MAP, true, { 0xdf, 0, 0, 0, 1 }, 5 },
	{ R_EXT, false, { 0xd4, 5, 1 }, 3 },
	{ R_EXT, false, { 0xd8, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, 18 },
	{ R_EXT, false, { 0xc7, 3, 5, 1, 2, 3 }, 6 },
	{ R_EXT, false, { 0xc8, 0, 3, 5, 1, 2, 3 }, 7 },
	{ R_EXT, false, { 0xc9, 0, 0, 0, 3, 5, 1, 2, 3 }, 9 },
	{ R_TS, false, { 0xd6, 0xff, 0, 0, 0, 1 }, 6 },
	{ R_TS, false, { 0xd7, 0xff, 0, 0, 0, 4, 0, 0, 0, 1 }, 10 },
	{ R_TS, false, { 0xc7, 12, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 15 },
	/* whole containers, for skip/raw */
	{ R_SKIP, false, { 0x92, 0xa1, 'x', 0x81, 0x01, 0x91, 0xc0 }, 7 },
	{ R_SKIP, false, { 0xdc, 0, 2, 0xc4, 1, 0, 0xd5, 1, 2, 3 }, 10 },
};

static void test_reader_truncated(void **state)
{
	(void)state;
	for (size_t si = 0; si < sizeof samples / sizeof samples[0]; si++) {
		const sample *sm = &samples[si];
		/* the whole value is accepted by its reader and consumed */
		{
			uint8_t *b = dup_exact(sm->b, sm->n);
			na_mp r;
			na_mp_init(&r, b, sm->n);
			assert_int_equal(run_reader(sm->kind, &r), 0);
			assert_int_equal(na_mp_left(&r), 0);
			assert_int_equal(r.err, 0);
			/* skip and raw accept every complete value (headers of
			 * containers are complete values only with their items) */
			if (!sm->header_only) {
				na_mp_init(&r, b, sm->n);
				assert_int_equal(na_mp_skip(&r), 0);
				assert_int_equal(na_mp_left(&r), 0);
			}
			free(b);
		}
		/* every proper prefix: every reader fails, nothing overreads */
		for (size_t len = 0; len < sm->n; len++) {
			for (int k = 0; k < R__N; k++) {
				/* prefixes of whole containers hold complete inner
				 * headers: only skip/raw must refuse them */
				if (sm->kind == R_SKIP && k != R_SKIP && k != R_RAW)
					continue;
				uint8_t *b = dup_exact(sm->b, len);
				na_mp r;
				na_mp_init(&r, b, len);
				int rc = run_reader((enum rk)k, &r);
				if (rc == 0) {
					fail_msg("sample %zu (kind %d) cut to %zu bytes: reader %d succeeded",
						 si, sm->kind, len, k);
				}
				assert_true(rc < 0);
				assert_int_equal(r.err, rc);
				/* the error is latched: later reads fail the same way */
				assert_int_equal(run_reader(R_NIL, &r), rc);
				assert_int_equal(na_mp_peek(&r), NA_MP_INVALID);
				free(b);
			}
		}
	}
	/* a container whose items are missing: the header reads, skip fails */
	uint8_t arr[] = { 0x93, 0x01 };
	uint8_t *b = dup_exact(arr, sizeof arr);
	na_mp r;
	uint32_t n;
	na_mp_init(&r, b, sizeof arr);
	assert_int_equal(na_mp_array(&r, &n), 0);
	assert_int_equal(n, 3);
	na_mp_init(&r, b, sizeof arr);
	assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
	free(b);
}

static void test_reader_types(void **state)
{
	(void)state;
	/* a value of another type: ETYPE and the cursor does not move */
	uint8_t v[] = { 0xa1, 'x' };
	na_mp r;
	uint64_t u;
	na_mp_init(&r, v, sizeof v);
	assert_int_equal(na_mp_peek(&r), NA_MP_STR);
	assert_int_equal(na_mp_u64(&r, &u), NA_MP_ETYPE);
	assert_ptr_equal(r.p, v);
	static const struct { uint8_t b; na_mp_type t; } peeks[] = {
		{ 0x00, NA_MP_UINT }, { 0x7f, NA_MP_UINT }, { 0xcf, NA_MP_UINT }, { 0xe0, NA_MP_INT },
		{ 0xd3, NA_MP_INT }, { 0x80, NA_MP_MAP }, { 0xdf, NA_MP_MAP }, { 0x90, NA_MP_ARRAY },
		{ 0xdd, NA_MP_ARRAY }, { 0xa0, NA_MP_STR }, { 0xdb, NA_MP_STR }, { 0xc0, NA_MP_NIL },
		{ 0xc2, NA_MP_BOOL }, { 0xc4, NA_MP_BIN }, { 0xcb, NA_MP_FLOAT }, { 0xc7, NA_MP_EXT },
		{ 0xd8, NA_MP_EXT }, { 0xc1, NA_MP_INVALID },
	};
	for (size_t i = 0; i < sizeof peeks / sizeof peeks[0]; i++) {
		na_mp_init(&r, &peeks[i].b, 1);
		assert_int_equal(na_mp_peek(&r), peeks[i].t);
	}
	na_mp_init(&r, v, 0);
	assert_int_equal(na_mp_peek(&r), NA_MP_INVALID);

	/* strings and binaries point into the buffer */
	uint8_t s[] = { 0xa3, 'a', 'b', 'c', 0xc4, 0x00 };
	const char *sp;
	const uint8_t *bp;
	uint32_t n;
	na_mp_init(&r, s, sizeof s);
	assert_int_equal(na_mp_str(&r, &sp, &n), 0);
	assert_ptr_equal(sp, (const char *)s + 1);
	assert_int_equal(n, 3);
	assert_true(na_mp_streq(sp, n, "abc"));
	assert_false(na_mp_streq(sp, n, "ab"));
	assert_false(na_mp_streq(sp, n, "abcd"));
	assert_int_equal(na_mp_bin(&r, &bp, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(na_mp_left(&r), 0);

	/* floats: float32 widened, float64 exact; integers are not floats */
	uint8_t f[] = { 0xca, 0x3f, 0xc0, 0, 0, 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0, 0x01 };
	double d;
	na_mp_init(&r, f, sizeof f);
	assert_int_equal(na_mp_f64(&r, &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(na_mp_f64(&r, &d), 0);
	assert_true(d == 2.5);
	assert_int_equal(na_mp_f64(&r, &d), NA_MP_ETYPE);

	/* bool, nil */
	uint8_t bn[] = { 0xc2, 0xc3, 0xc0 };
	bool bv = true;
	na_mp_init(&r, bn, sizeof bn);
	assert_int_equal(na_mp_bool(&r, &bv), 0);
	assert_false(bv);
	assert_int_equal(na_mp_bool(&r, &bv), 0);
	assert_true(bv);
	assert_int_equal(na_mp_nil(&r), 0);
}

static void test_reader_integers(void **state)
{
	(void)state;
	na_mp r;
	uint64_t u;
	int64_t i;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	/* INT64_MIN */
	uint8_t imin[] = { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 };
	na_mp_init(&r, imin, sizeof imin);
	assert_int_equal(na_mp_i64(&r, &i), 0);
	assert_true(i == INT64_MIN);
	na_mp_init(&r, imin, sizeof imin);
	assert_int_equal(na_mp_u64(&r, &u), NA_MP_ERANGE);
	assert_ptr_equal(r.p, imin);

	/* UINT64_MAX */
	uint8_t umax[] = { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	na_mp_init(&r, umax, sizeof umax);
	assert_int_equal(na_mp_u64(&r, &u), 0);
	assert_true(u == UINT64_MAX);
	na_mp_init(&r, umax, sizeof umax);
	assert_int_equal(na_mp_i64(&r, &i), NA_MP_ERANGE);
	assert_ptr_equal(r.p, umax);

	/* INT64_MAX as uint64 fits i64; INT64_MAX + 1 does not */
	uint8_t smax[] = { 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	na_mp_init(&r, smax, sizeof smax);
	assert_int_equal(na_mp_i64(&r, &i), 0);
	assert_true(i == INT64_MAX);
	uint8_t over[] = { 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0 };
	na_mp_init(&r, over, sizeof over);
	assert_int_equal(na_mp_i64(&r, &i), NA_MP_ERANGE);

	/* a non-negative value in a signed encoding is fine for u64 */
	uint8_t spos[] = { 0xd3, 0, 0, 0, 0, 0, 0, 0, 5 };
	na_mp_init(&r, spos, sizeof spos);
	assert_int_equal(na_mp_u64(&r, &u), 0);
	assert_int_equal(u, 5);

	/* negative into u64: every signed form */
	static const uint8_t negs[][9] = {
		{ 0xff }, { 0xe0 }, { 0xd0, 0xff }, { 0xd1, 0xff, 0xfe }, { 0xd2, 0xff, 0xff, 0xff, 0xfe },
		{ 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	};
	static const size_t neglen[] = { 1, 1, 2, 3, 5, 9 };
	static const int64_t negval[] = { -1, -32, -1, -2, -2, -1 };
	for (size_t k = 0; k < 6; k++) {
		na_mp_init(&r, negs[k], neglen[k]);
		assert_int_equal(na_mp_u64(&r, &u), NA_MP_ERANGE);
		assert_int_equal(r.err, NA_MP_ERANGE);
		na_mp_init(&r, negs[k], neglen[k]);
		assert_int_equal(na_mp_i64(&r, &i), 0);
		assert_true(i == negval[k]);
	}

	/* round trips through msgpack-c's packer at every width boundary */
	static const int64_t sv[] = { 0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128,
				      -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
				      INT64_MIN, INT64_MIN + 1, INT64_MAX };
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t k = 0; k < sizeof sv / sizeof sv[0]; k++)
		msgpack_pack_int64(&pk, sv[k]);
	na_mp_init(&r, sb.data, sb.size);
	for (size_t k = 0; k < sizeof sv / sizeof sv[0]; k++) {
		assert_int_equal(na_mp_i64(&r, &i), 0);
		assert_true(i == sv[k]);
	}
	assert_int_equal(na_mp_left(&r), 0);
	msgpack_sbuffer_clear(&sb);
	static const uint64_t uv[] = { 0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
				       (uint64_t)UINT32_MAX + 1, UINT64_MAX };
	for (size_t k = 0; k < sizeof uv / sizeof uv[0]; k++)
		msgpack_pack_uint64(&pk, uv[k]);
	na_mp_init(&r, sb.data, sb.size);
	for (size_t k = 0; k < sizeof uv / sizeof uv[0]; k++) {
		assert_int_equal(na_mp_u64(&r, &u), 0);
		assert_true(u == uv[k]);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* ---- timestamps ---------------------------------------------------- */

static size_t ts32(uint8_t *b, uint32_t sec)
{
	b[0] = 0xd6;
	b[1] = 0xff;
	for (int i = 0; i < 4; i++)
		b[2 + i] = (uint8_t)(sec >> (24 - 8 * i));
	return 6;
}

static size_t ts64(uint8_t *b, uint64_t sec34, uint32_t nsec)
{
	uint64_t v = (uint64_t)nsec << 34 | (sec34 & 0x3ffffffffULL);
	b[0] = 0xd7;
	b[1] = 0xff;
	for (int i = 0; i < 8; i++)
		b[2 + i] = (uint8_t)(v >> (56 - 8 * i));
	return 10;
}

static size_t ts96(uint8_t *b, int64_t sec, uint32_t nsec)
{
	b[0] = 0xc7;
	b[1] = 12;
	b[2] = 0xff;
	for (int i = 0; i < 4; i++)
		b[3 + i] = (uint8_t)(nsec >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		b[7 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
	return 15;
}

static void expect_ts(const uint8_t *b, size_t n, int rc, int64_t sec, uint32_t nsec)
{
	uint8_t *c = dup_exact(b, n);
	na_mp r;
	na_ts ts = { 0, 0 };
	na_mp_init(&r, c, n);
	assert_int_equal(na_mp_ts(&r, &ts), rc);
	if (rc == 0) {
		assert_true(ts.sec == sec);
		assert_int_equal(ts.nsec, nsec);
		assert_int_equal(na_mp_left(&r), 0);
	} else {
		assert_ptr_equal(r.p, c); /* not consumed */
	}
	free(c);
}

static void test_timestamps(void **state)
{
	(void)state;
	uint8_t b[16];
	size_t n;
	/* 32-bit: unsigned seconds */
	n = ts32(b, 0);
	expect_ts(b, n, 0, 0, 0);
	n = ts32(b, 1700000000u);
	expect_ts(b, n, 0, 1700000000, 0);
	n = ts32(b, UINT32_MAX);
	expect_ts(b, n, 0, UINT32_MAX, 0);
	/* 64-bit: 34-bit seconds, 30-bit nanoseconds */
	n = ts64(b, 1700000000u, 999999999u);
	expect_ts(b, n, 0, 1700000000, 999999999);
	n = ts64(b, 0x3ffffffffULL, 1);
	expect_ts(b, n, 0, 0x3ffffffffLL, 1);
	n = ts64(b, 5, 1000000000u);
	expect_ts(b, n, NA_MP_ERANGE, 0, 0);
	n = ts64(b, 5, 0x3fffffffu);
	expect_ts(b, n, NA_MP_ERANGE, 0, 0);
	/* 96-bit: signed seconds */
	n = ts96(b, -1, 500000000u);
	expect_ts(b, n, 0, -1, 500000000);
	n = ts96(b, NA_TS_MIN_SEC, 0);
	expect_ts(b, n, 0, NA_TS_MIN_SEC, 0);
	n = ts96(b, INT64_MIN, 999999999u);
	expect_ts(b, n, 0, INT64_MIN, 999999999);
	n = ts96(b, NA_TS_MAX_SEC, 999999999u);
	expect_ts(b, n, 0, NA_TS_MAX_SEC, 999999999);
	n = ts96(b, -1, 1000000000u);
	expect_ts(b, n, NA_MP_ERANGE, 0, 0);
	n = ts96(b, 0, UINT32_MAX);
	expect_ts(b, n, NA_MP_ERANGE, 0, 0);
	/* not a timestamp: other ext type, wrong size, not an ext */
	uint8_t other[] = { 0xd6, 0x01, 0, 0, 0, 1 };
	expect_ts(other, sizeof other, NA_MP_ETYPE, 0, 0);
	uint8_t odd[] = { 0xc7, 5, 0xff, 0, 0, 0, 0, 1 };
	expect_ts(odd, sizeof odd, NA_MP_ETYPE, 0, 0);
	uint8_t fix16[18] = { 0xd8, 0xff };
	expect_ts(fix16, sizeof fix16, NA_MP_ETYPE, 0, 0);
	uint8_t intv[] = { 0x05 };
	expect_ts(intv, 1, NA_MP_ETYPE, 0, 0);
	/* na_ts_decode directly */
	na_ts ts;
	assert_int_equal(na_ts_decode(b, 3, &ts), NA_MP_ETYPE);

	/* what msgpack-c packs (smallest form) reads back the same */
	static const na_ts vals[] = { { 0, 0 }, { 1, 0 }, { UINT32_MAX, 0 }, { 1, 1 },
				      { 0x3ffffffffLL, 999999999 }, { 0x400000000LL, 0 },
				      { -1, 0 }, { -1, 999999999 }, { NA_TS_MIN_SEC, 1 },
				      { NA_TS_MAX_SEC, 999999999 } };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
		assert_int_equal(na_mp_pack_ts(&pk, vals[i]), 0);
	na_mp r;
	na_mp_init(&r, sb.data, sb.size);
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		assert_int_equal(na_mp_ts(&r, &ts), 0);
		assert_true(ts.sec == vals[i].sec);
		assert_int_equal(ts.nsec, vals[i].nsec);
	}
	assert_int_equal(na_mp_left(&r), 0);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- skip ---------------------------------------------------------- */

static void test_skip_nested(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* [ {"a": [1, -2, {"b": bin(3)}], "c": ext, "d": {}}, "x", [[[]]], 1.5 ] */
	msgpack_pack_array(&pk, 4);
	msgpack_pack_map(&pk, 3);
	na_mp_pack_cstr(&pk, "a");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, -2);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "b");
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "\0\1\2", 3);
	na_mp_pack_cstr(&pk, "c");
	msgpack_pack_ext(&pk, 3, 7);
	msgpack_pack_ext_body(&pk, "abc", 3);
	na_mp_pack_cstr(&pk, "d");
	msgpack_pack_map(&pk, 0);
	na_mp_pack_cstr(&pk, "x");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_double(&pk, 1.5);
	size_t obj_len = sb.size;
	msgpack_pack_true(&pk); /* sentinel */

	na_mp r;
	na_mp_init(&r, sb.data, sb.size);
	assert_int_equal(na_mp_skip(&r), 0);
	assert_int_equal(na_mp_left(&r), 1);
	bool bv = false;
	assert_int_equal(na_mp_bool(&r, &bv), 0);
	assert_true(bv);

	/* raw gives the same span */
	const uint8_t *o;
	size_t on;
	na_mp_init(&r, sb.data, sb.size);
	assert_int_equal(na_mp_raw(&r, &o, &on), 0);
	assert_ptr_equal(o, (const uint8_t *)sb.data);
	assert_int_equal(on, obj_len);

	/* skipping the inner pieces one by one lands at the same place */
	uint32_t n;
	na_mp_init(&r, sb.data, sb.size);
	assert_int_equal(na_mp_array(&r, &n), 0);
	assert_int_equal(n, 4);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(na_mp_skip(&r), 0);
	assert_int_equal(na_mp_left(&r), 1);

	/* every prefix of the object fails to skip, without overreading */
	for (size_t len = 0; len < obj_len; len++) {
		uint8_t *c = dup_exact(sb.data, len);
		na_mp_init(&r, c, len);
		assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
		free(c);
	}
	msgpack_sbuffer_destroy(&sb);

	/* very deep nesting: iterative, no depth limit, no recursion */
	size_t deep = 100000;
	uint8_t *d = malloc(deep + 1);
	assert_non_null(d);
	memset(d, 0x91, deep);
	d[deep] = 0xc0;
	na_mp_init(&r, d, deep + 1);
	assert_int_equal(na_mp_skip(&r), 0);
	assert_int_equal(na_mp_left(&r), 0);
	na_mp_init(&r, d, deep);
	assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
	free(d);

	/* 0xc1 inside, and counts that cannot fit the buffer */
	uint8_t bad[] = { 0x92, 0x01, 0xc1 };
	na_mp_init(&r, bad, sizeof bad);
	assert_int_equal(na_mp_skip(&r), NA_MP_EMALFORMED);
	uint8_t lie[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02 };
	na_mp_init(&r, lie, sizeof lie);
	assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
	uint8_t maplie[] = { 0xdf, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02 };
	na_mp_init(&r, maplie, sizeof maplie);
	assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
	uint8_t strlie[] = { 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' };
	na_mp_init(&r, strlie, sizeof strlie);
	assert_int_equal(na_mp_skip(&r), NA_MP_ETRUNC);
	const char *sp;
	na_mp_init(&r, strlie, sizeof strlie);
	assert_int_equal(na_mp_str(&r, &sp, &n), NA_MP_ETRUNC);
}

static void test_rpc_codes(void **state)
{
	(void)state;
	for (int c = 0; c < NA_CODE__COUNT; c++) {
		const char *name = na_code_name(c);
		assert_int_equal(na_code_parse(name, strlen(name)), c);
	}
	assert_string_equal(na_code_name(NA_CODE_NO_SPACE), "NO_SPACE");
	assert_string_equal(na_code_name(-1), "INTERNAL");
	assert_string_equal(na_code_name(NA_CODE__COUNT), "INTERNAL");
	assert_int_equal(na_code_parse("NOT_FOUNDX", 9), NA_CODE_NOT_FOUND);
	assert_int_equal(na_code_parse("NOT_FOUN", 8), NA_CODE_INTERNAL);
	assert_int_equal(na_code_parse("", 0), NA_CODE_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_every_split),
		cmocka_unit_test(test_scan_buffer_moves),
		cmocka_unit_test(test_scan_huge_headers),
		cmocka_unit_test(test_scan_total_size_limit),
		cmocka_unit_test(test_scan_depth),
		cmocka_unit_test(test_scan_malformed),
		cmocka_unit_test(test_reader_truncated),
		cmocka_unit_test(test_reader_types),
		cmocka_unit_test(test_reader_integers),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_skip_nested),
		cmocka_unit_test(test_rpc_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
