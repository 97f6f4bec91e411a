/*
 * mp.h - bounded MessagePack reading, shared by the daemon and the client.
 *
 * Two pieces live here:
 *
 *  - na_scan: a resumable framer. MessagePack-RPC has no framing; messages
 *    are msgpack objects laid end to end. The framer walks object headers as
 *    bytes arrive, remembers where it stopped, and reports when one whole
 *    object is buffered. It never allocates. It refuses, as soon as a header
 *    announces it, any object that would exceed the configured message size
 *    or nesting depth, so a 5-byte header claiming 4 GiB costs nothing.
 *
 *  - na_mp: a zero-copy cursor over one complete, already framed object.
 *    Every read is bounds-checked; the first failure latches r->err and all
 *    later reads fail too, so callers may check once at the end.
 *
 * Writing uses msgpack-c's packer (msgpack/pack.h) everywhere.
 */
#ifndef NA_PROTO_MP_H
#define NA_PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Error codes shared by proto/ users (all negative). */
enum {
	NA_MP_OK = 0,
	NA_MP_EMALFORMED = -1,  /* bytes are not valid msgpack (e.g. 0xc1) */
	NA_MP_ETOOBIG = -2,     /* message exceeds max_bytes */
	NA_MP_EDEPTH = -3,      /* nesting deeper than max_depth */
	NA_MP_ETYPE = -4,       /* reader: value has another type */
	NA_MP_ETRUNC = -5,      /* reader: object runs past the buffer */
	NA_MP_ERANGE = -6,      /* reader: number does not fit the asked type */
};

/* Hard ceiling for max_depth; msgpack-c itself stops at 32. */
#define NA_MP_DEPTH_CEILING 64

/* ---- framer -------------------------------------------------------- */

typedef struct na_scan {
	size_t max_bytes;      /* largest message accepted */
	unsigned max_depth;    /* deepest container nesting accepted */
	/* internal state; zeroed by na_scan_init and after each message */
	size_t pos;            /* bytes of the current message walked */
	unsigned depth;        /* open containers */
	uint64_t left[NA_MP_DEPTH_CEILING + 1]; /* objects still due per level */
	int top_index;         /* index of the next element of a top array */
	bool top_is_array;
	bool have_msgid;
	uint32_t msgid;        /* second element of a top-level array, if uint */
} na_scan;

/* Prepares a framer. max_depth is clamped to NA_MP_DEPTH_CEILING. */
void na_scan_init(na_scan *s, size_t max_bytes, unsigned max_depth);

/*
 * Continues walking buf[0..len), where buf starts at the first byte of the
 * message being framed and len only grows between calls (the caller may move
 * the buffer; offsets are what is kept).
 * Returns 1 and sets *msg_len when one whole object is present (the framer is
 * then reset for the next message), 0 when more bytes are needed, or a
 * negative NA_MP_E* code. After an error the stream cannot be resynchronised;
 * s->have_msgid/s->msgid tell whether the request id was already seen, so the
 * caller can answer it before closing.
 */
int na_scan_feed(na_scan *s, const uint8_t *buf, size_t len, size_t *msg_len);

/* ---- reader -------------------------------------------------------- */

typedef enum na_mp_type {
	NA_MP_NIL, NA_MP_BOOL, NA_MP_UINT, NA_MP_INT, NA_MP_FLOAT,
	NA_MP_STR, NA_MP_BIN, NA_MP_ARRAY, NA_MP_MAP, NA_MP_EXT, NA_MP_INVALID
} na_mp_type;

typedef struct na_mp {
	const uint8_t *p;      /* next byte */
	const uint8_t *end;    /* one past the last byte */
	int err;               /* first error, latched */
} na_mp;

/* A msgpack timestamp (extension -1): seconds and nanoseconds since 1970. */
typedef struct na_ts {
	int64_t sec;
	uint32_t nsec;         /* 0 .. 999,999,999 */
} na_ts;

void na_mp_init(na_mp *r, const void *buf, size_t len);
static inline size_t na_mp_left(const na_mp *r) { return (size_t)(r->end - r->p); }

/* Type of the next object without consuming it (NA_MP_INVALID at end/bad). */
na_mp_type na_mp_peek(const na_mp *r);

/* Each reader consumes one object of the named type or latches an error
 * and returns that error (negative); 0 on success. Strings and binaries are
 * returned as pointers into the buffer: valid as long as the buffer is. */
int na_mp_nil(na_mp *r);
int na_mp_bool(na_mp *r, bool *v);
int na_mp_u64(na_mp *r, uint64_t *v);  /* accepts non-negative int too */
int na_mp_i64(na_mp *r, int64_t *v);   /* accepts uint up to INT64_MAX */
int na_mp_f64(na_mp *r, double *v);    /* float32/64 only */
int na_mp_str(na_mp *r, const char **s, uint32_t *n);
int na_mp_bin(na_mp *r, const uint8_t **b, uint32_t *n);
int na_mp_array(na_mp *r, uint32_t *n);
int na_mp_map(na_mp *r, uint32_t *n);
int na_mp_ext(na_mp *r, int8_t *type, const uint8_t **data, uint32_t *n);
/* Timestamp extension in any of its three forms (4, 8 or 12 bytes). */
int na_mp_ts(na_mp *r, na_ts *ts);
/* Skips one whole object (iteratively: no recursion, any depth). */
int na_mp_skip(na_mp *r);
/* Reads the raw bytes of the next whole object without decoding it. */
int na_mp_raw(na_mp *r, const uint8_t **obj, size_t *n);

/* Decodes a timestamp extension payload (type already checked to be -1). */
int na_ts_decode(const uint8_t *data, uint32_t n, na_ts *ts);

/* Packs a timestamp in the smallest form (msgpack-c's packer does this). */
int na_mp_pack_ts(msgpack_packer *pk, na_ts ts);
/* Packs a C string / explicit-length string. */
int na_mp_pack_str(msgpack_packer *pk, const char *s, size_t n);
int na_mp_pack_cstr(msgpack_packer *pk, const char *s);
/* Appends bytes that already are encoded msgpack. */
static inline int na_mp_pack_raw(msgpack_packer *pk, const void *p, size_t n)
{
	return pk->callback(pk->data, (const char *)p, n);
}

/* True when a and b are the same string (explicit lengths). */
static inline bool na_mp_streq(const char *a, uint32_t an, const char *b)
{
	size_t i = 0;
	for (; i < an; i++)
		if (b[i] == '\0' || b[i] != a[i])
			return false;
	return b[i] == '\0';
}

#endif
