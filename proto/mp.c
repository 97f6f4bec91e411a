/*
 * mp.c - bounded MessagePack framing and zero-copy reading.
 *
 * Owns the only code that interprets untrusted msgpack bytes. The framer
 * (na_scan_*) decides where a message ends and rejects oversized or too
 * deeply nested ones from their headers alone; the reader (na_mp_*) walks a
 * framed message with every length checked against the bytes that are there.
 * Neither allocates.
 */
#include "mp.h"

#include <string.h>

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/*
 * Describes the object whose first byte is at p (avail bytes present).
 * Sets *hdr (header bytes), *payload (bytes after the header that belong to
 * the object itself) and *children (objects nested directly inside).
 * Returns 1 when the header is complete, 0 when more bytes are needed,
 * NA_MP_EMALFORMED for the reserved byte 0xc1.
 */
static int describe(const uint8_t *p, size_t avail, size_t *hdr, uint64_t *payload,
		    uint64_t *children)
{
	uint8_t b = p[0];
	*payload = 0;
	*children = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) { *hdr = 1; return 1; }
	if ((b & 0xf0) == 0x80) { *hdr = 1; *children = 2u * (b & 0x0f); return 1; }
	if ((b & 0xf0) == 0x90) { *hdr = 1; *children = b & 0x0f; return 1; }
	if ((b & 0xe0) == 0xa0) { *hdr = 1; *payload = b & 0x1f; return 1; }
	switch (b) {
	case 0xc1: return NA_MP_EMALFORMED;
	case 0xcc: case 0xd0: *hdr = 2; return 1;
	case 0xcd: case 0xd1: *hdr = 3; return 1;
	case 0xca: case 0xce: case 0xd2: *hdr = 5; return 1;
	case 0xcb: case 0xcf: case 0xd3: *hdr = 9; return 1;
	case 0xd4: *hdr = 2; *payload = 1; return 1;
	case 0xd5: *hdr = 2; *payload = 2; return 1;
	case 0xd6: *hdr = 2; *payload = 4; return 1;
	case 0xd7: *hdr = 2; *payload = 8; return 1;
	case 0xd8: *hdr = 2; *payload = 16; return 1;
	default: break;
	}
	/* variable-length forms: 1 tag byte + 1/2/4 length bytes (+1 ext type) */
	size_t lb;
	switch (b) {
	case 0xc4: case 0xc7: case 0xd9: lb = 1; break;
	case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: lb = 2; break;
	default: lb = 4; break; /* c6 c9 db dd df */
	}
	bool ext = (b == 0xc7 || b == 0xc8 || b == 0xc9);
	*hdr = 1 + lb + (ext ? 1 : 0);
	if (avail < 1 + lb)
		return 0;
	uint64_t n = lb == 1 ? p[1] : lb == 2 ? be16(p + 1) : be32(p + 1);
	if (b == 0xdc || b == 0xdd) *children = n;
	else if (b == 0xde || b == 0xdf) *children = 2 * n;
	else *payload = n;
	return 1;
}

void na_scan_init(na_scan *s, size_t max_bytes, unsigned max_depth)
{
	memset(s, 0, sizeof *s);
	s->max_bytes = max_bytes;
	s->max_depth = max_depth > NA_MP_DEPTH_CEILING ? NA_MP_DEPTH_CEILING : max_depth;
}

static void scan_reset(na_scan *s)
{
	s->pos = 0;
	s->depth = 0;
	s->top_index = 0;
	s->top_is_array = false;
	s->have_msgid = false;
	s->msgid = 0;
}

int na_scan_feed(na_scan *s, const uint8_t *buf, size_t len, size_t *msg_len)
{
	while (s->pos < len) {
		const uint8_t *p = buf + s->pos;
		size_t hdr;
		uint64_t payload, children;
		int rc = describe(p, len - s->pos, &hdr, &payload, &children);
		if (rc < 0)
			return rc;
		/* the header itself counts against the message size too (else
		 * many small items could add up past max_bytes); pos never
		 * exceeds max_bytes, so this cannot wrap */
		if (hdr > s->max_bytes - s->pos)
			return NA_MP_ETOOBIG;
		if (rc == 0 || len - s->pos < hdr)
			return 0;
		/* every nested object needs at least one byte, so a count is
		 * bounded by the bytes the message may still have */
		uint64_t room = s->max_bytes > s->pos + hdr ? s->max_bytes - s->pos - hdr : 0;
		if (payload > room || children > room)
			return NA_MP_ETOOBIG;
		if (len - s->pos - hdr < payload)
			return 0;
		if (s->depth == 1 && s->top_is_array && s->top_index == 1) {
			uint8_t b = p[0];
			if (b <= 0x7f) { s->msgid = b; s->have_msgid = true; }
			else if (b == 0xcc) { s->msgid = p[1]; s->have_msgid = true; }
			else if (b == 0xcd) { s->msgid = be16(p + 1); s->have_msgid = true; }
			else if (b == 0xce) { s->msgid = be32(p + 1); s->have_msgid = true; }
		}
		if (s->depth == 0)
			s->top_is_array = (p[0] & 0xf0) == 0x90 || p[0] == 0xdc || p[0] == 0xdd;
		s->pos += hdr + (size_t)payload;
		if (s->depth > 0) {
			s->left[s->depth]--;
			if (s->depth == 1)
				s->top_index++;
		}
		if (children > 0) {
			if (s->depth + 1 > s->max_depth)
				return NA_MP_EDEPTH;
			s->left[++s->depth] = children;
		}
		while (s->depth > 0 && s->left[s->depth] == 0)
			s->depth--;
		if (s->depth == 0) {
			*msg_len = s->pos;
			scan_reset(s);
			return 1;
		}
	}
	return 0;
}

/* ---- reader -------------------------------------------------------- */

void na_mp_init(na_mp *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
	r->err = 0;
}

static int fail(na_mp *r, int e)
{
	if (!r->err)
		r->err = e;
	return r->err;
}

na_mp_type na_mp_peek(const na_mp *r)
{
	if (r->err || r->p >= r->end)
		return NA_MP_INVALID;
	uint8_t b = *r->p;
	if (b <= 0x7f || b == 0xcc || b == 0xcd || b == 0xce || b == 0xcf) return NA_MP_UINT;
	if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) return NA_MP_INT;
	if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) return NA_MP_MAP;
	if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) return NA_MP_ARRAY;
	if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb)) return NA_MP_STR;
	switch (b) {
	case 0xc0: return NA_MP_NIL;
	case 0xc2: case 0xc3: return NA_MP_BOOL;
	case 0xc4: case 0xc5: case 0xc6: return NA_MP_BIN;
	case 0xca: case 0xcb: return NA_MP_FLOAT;
	case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		return NA_MP_EXT;
	default: return NA_MP_INVALID;
	}
}

/* Checks that n bytes are available. */
static inline bool have(na_mp *r, size_t n)
{
	if (r->err)
		return false;
	if ((size_t)(r->end - r->p) < n) {
		fail(r, NA_MP_ETRUNC);
		return false;
	}
	return true;
}

int na_mp_nil(na_mp *r)
{
	if (!have(r, 1)) return r->err;
	if (*r->p != 0xc0) return fail(r, NA_MP_ETYPE);
	r->p++;
	return 0;
}

int na_mp_bool(na_mp *r, bool *v)
{
	if (!have(r, 1)) return r->err;
	if (*r->p != 0xc2 && *r->p != 0xc3) return fail(r, NA_MP_ETYPE);
	*v = *r->p++ == 0xc3;
	return 0;
}

/* Reads any integer as a sign flag and magnitude. */
static int read_int(na_mp *r, bool *neg, uint64_t *mag)
{
	if (!have(r, 1)) return r->err;
	uint8_t b = *r->p;
	size_t n = 0;
	int64_t sv = 0;
	*neg = false;
	if (b <= 0x7f) { *mag = b; r->p++; return 0; }
	if (b >= 0xe0) { *neg = true; *mag = (uint64_t)(-(int8_t)b); r->p++; return 0; }
	switch (b) {
	case 0xcc: case 0xd0: n = 1; break;
	case 0xcd: case 0xd1: n = 2; break;
	case 0xce: case 0xd2: n = 4; break;
	case 0xcf: case 0xd3: n = 8; break;
	default: return fail(r, NA_MP_ETYPE);
	}
	if (!have(r, 1 + n)) return r->err;
	const uint8_t *q = r->p + 1;
	uint64_t u = n == 1 ? q[0] : n == 2 ? be16(q) : n == 4 ? be32(q) : be64(q);
	r->p += 1 + n;
	if (b >= 0xcc && b <= 0xcf) { *mag = u; return 0; }
	switch (n) {
	case 1: sv = (int8_t)u; break;
	case 2: sv = (int16_t)u; break;
	case 4: sv = (int32_t)u; break;
	default: sv = (int64_t)u; break;
	}
	if (sv < 0) { *neg = true; *mag = (uint64_t)0 - (uint64_t)sv; }
	else *mag = (uint64_t)sv;
	return 0;
}

int na_mp_u64(na_mp *r, uint64_t *v)
{
	bool neg;
	uint64_t m;
	const uint8_t *save = r->p;
	if (read_int(r, &neg, &m)) return r->err;
	if (neg) { r->p = save; return fail(r, NA_MP_ERANGE); }
	*v = m;
	return 0;
}

int na_mp_i64(na_mp *r, int64_t *v)
{
	bool neg;
	uint64_t m;
	const uint8_t *save = r->p;
	if (read_int(r, &neg, &m)) return r->err;
	if (!neg && m > (uint64_t)INT64_MAX) { r->p = save; return fail(r, NA_MP_ERANGE); }
	if (neg && m > (uint64_t)INT64_MAX + 1) { r->p = save; return fail(r, NA_MP_ERANGE); }
	*v = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m) : (int64_t)m;
	return 0;
}

int na_mp_f64(na_mp *r, double *v)
{
	if (!have(r, 1)) return r->err;
	uint8_t b = *r->p;
	if (b == 0xca) {
		if (!have(r, 5)) return r->err;
		uint32_t u = be32(r->p + 1);
		float f;
		memcpy(&f, &u, 4);
		*v = f;
		r->p += 5;
		return 0;
	}
	if (b == 0xcb) {
		if (!have(r, 9)) return r->err;
		uint64_t u = be64(r->p + 1);
		memcpy(v, &u, 8);
		r->p += 9;
		return 0;
	}
	return fail(r, NA_MP_ETYPE);
}

/* Reads a length-prefixed header: returns header size and sets *n. */
static int read_len(na_mp *r, uint8_t fix_mask, uint8_t fix_tag, uint8_t fix_max,
		    uint8_t t8, uint8_t t16, uint8_t t32, uint32_t *n, size_t *hdr)
{
	if (!have(r, 1)) return r->err;
	uint8_t b = *r->p;
	if (fix_mask && (b & fix_mask) == fix_tag) { *n = b & fix_max; *hdr = 1; return 0; }
	size_t lb;
	if (t8 && b == t8) lb = 1;
	else if (b == t16) lb = 2;
	else if (b == t32) lb = 4;
	else return fail(r, NA_MP_ETYPE);
	if (!have(r, 1 + lb)) return r->err;
	*n = lb == 1 ? r->p[1] : lb == 2 ? be16(r->p + 1) : be32(r->p + 1);
	*hdr = 1 + lb;
	return 0;
}

int na_mp_str(na_mp *r, const char **s, uint32_t *n)
{
	size_t hdr;
	if (read_len(r, 0xe0, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, n, &hdr)) return r->err;
	if (!have(r, hdr + *n)) return r->err;
	*s = (const char *)r->p + hdr;
	r->p += hdr + *n;
	return 0;
}

int na_mp_bin(na_mp *r, const uint8_t **b, uint32_t *n)
{
	size_t hdr;
	if (read_len(r, 0, 0, 0, 0xc4, 0xc5, 0xc6, n, &hdr)) return r->err;
	if (!have(r, hdr + *n)) return r->err;
	*b = r->p + hdr;
	r->p += hdr + *n;
	return 0;
}

int na_mp_array(na_mp *r, uint32_t *n)
{
	size_t hdr;
	if (read_len(r, 0xf0, 0x90, 0x0f, 0, 0xdc, 0xdd, n, &hdr)) return r->err;
	r->p += hdr;
	return 0;
}

int na_mp_map(na_mp *r, uint32_t *n)
{
	size_t hdr;
	if (read_len(r, 0xf0, 0x80, 0x0f, 0, 0xde, 0xdf, n, &hdr)) return r->err;
	r->p += hdr;
	return 0;
}

int na_mp_ext(na_mp *r, int8_t *type, const uint8_t **data, uint32_t *n)
{
	if (!have(r, 1)) return r->err;
	uint8_t b = *r->p;
	size_t hdr;
	switch (b) {
	case 0xd4: *n = 1; hdr = 1; break;
	case 0xd5: *n = 2; hdr = 1; break;
	case 0xd6: *n = 4; hdr = 1; break;
	case 0xd7: *n = 8; hdr = 1; break;
	case 0xd8: *n = 16; hdr = 1; break;
	case 0xc7: if (!have(r, 2)) return r->err; *n = r->p[1]; hdr = 2; break;
	case 0xc8: if (!have(r, 3)) return r->err; *n = be16(r->p + 1); hdr = 3; break;
	case 0xc9: if (!have(r, 5)) return r->err; *n = be32(r->p + 1); hdr = 5; break;
	default: return fail(r, NA_MP_ETYPE);
	}
	if (!have(r, hdr + 1 + (size_t)*n)) return r->err;
	*type = (int8_t)r->p[hdr];
	*data = r->p + hdr + 1;
	r->p += hdr + 1 + *n;
	return 0;
}

int na_ts_decode(const uint8_t *d, uint32_t n, na_ts *ts)
{
	if (n == 4) {
		ts->sec = be32(d);
		ts->nsec = 0;
		return 0;
	}
	if (n == 8) {
		uint64_t v = be64(d);
		ts->nsec = (uint32_t)(v >> 34);
		ts->sec = (int64_t)(v & 0x3ffffffffULL);
	} else if (n == 12) {
		ts->nsec = be32(d);
		ts->sec = (int64_t)be64(d + 4);
	} else {
		return NA_MP_ETYPE;
	}
	return ts->nsec > 999999999u ? NA_MP_ERANGE : 0;
}

int na_mp_ts(na_mp *r, na_ts *ts)
{
	int8_t type;
	const uint8_t *d;
	uint32_t n;
	const uint8_t *save = r->p;
	if (na_mp_ext(r, &type, &d, &n)) return r->err;
	int rc = type == -1 ? na_ts_decode(d, n, ts) : NA_MP_ETYPE;
	if (rc) { r->p = save; return fail(r, rc); }
	return 0;
}

int na_mp_skip(na_mp *r)
{
	uint64_t pending = 1;
	while (pending > 0) {
		if (!have(r, 1)) return r->err;
		size_t hdr;
		uint64_t payload, children;
		int rc = describe(r->p, na_mp_left(r), &hdr, &payload, &children);
		if (rc < 0) return fail(r, rc);
		if (rc == 0 || !have(r, hdr) || payload > na_mp_left(r) - hdr)
			return fail(r, NA_MP_ETRUNC);
		/* a child needs a byte: more children than bytes is truncation */
		if (children > na_mp_left(r) - hdr - payload)
			return fail(r, NA_MP_ETRUNC);
		r->p += hdr + (size_t)payload;
		pending = pending - 1 + children;
		if (pending > na_mp_left(r)) /* each needs at least a byte */
			return fail(r, NA_MP_ETRUNC);
	}
	return 0;
}

int na_mp_raw(na_mp *r, const uint8_t **obj, size_t *n)
{
	const uint8_t *start = r->p;
	if (na_mp_skip(r)) return r->err;
	*obj = start;
	*n = (size_t)(r->p - start);
	return 0;
}

int na_mp_pack_ts(msgpack_packer *pk, na_ts ts)
{
	msgpack_timestamp t = { .tv_sec = ts.sec, .tv_nsec = ts.nsec };
	return msgpack_pack_timestamp(pk, &t);
}

int na_mp_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	if (n > UINT32_MAX) return -1;
	if (msgpack_pack_str(pk, n)) return -1;
	return msgpack_pack_str_body(pk, s, n);
}

int na_mp_pack_cstr(msgpack_packer *pk, const char *s)
{
	return na_mp_pack_str(pk, s, strlen(s));
}
