/*
 * fuzz_follow.c - libFuzzer target: the follower's decoding of what a
 * primary sends (daemon/follow.c through follow.h: na_follow_parse_hello,
 * na_follow_parse_log, na_follow_parse_rows, which on_handshake, on_log and
 * on_rows run on every message).
 *
 * The input is taken as one message and walked like on_message does
 * (a response [1, id, error, result] carries the handshake; a notification
 * [2, method, params] a "log" or "rows" batch); the same bytes are also
 * given straight to each parser (byte 0 as the log's param count), so the
 * fuzzer need not find the envelope first.
 *
 * Invariants: whatever is decoded points into the input; a log entry is
 * 'P' (key, optional old key, optional record), 'D' or 'Z' (dictionary id
 * 1..NA_MAX_DICTS, non-empty); no more entries or rows than 21 bytes each
 * allow; a handshake has a 16-byte history and a chain of whole 24-byte
 * pairs, at most 16.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "follow.h"
#include "rpc.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static const uint8_t *lo, *hi; /* the input */

static void in_input(const void *p, size_t n)
{
	const uint8_t *b = p;
	CHECK(b >= lo && b <= hi && n <= (size_t)(hi - b));
}

static void hello(na_mp *r)
{
	na_follow_hello h;
	if (na_follow_parse_hello(r, &h) != 0)
		return;
	CHECK(h.mode);
	in_input(h.mode, h.mode_n);
	in_input(h.history, 16);
	CHECK(h.chain && h.chain_bytes % 24 == 0 && h.chain_bytes <= 16 * 24);
	in_input(h.chain, h.chain_bytes);
	if (h.hash_key)
		in_input(h.hash_key, h.hash_key_n);
	else
		CHECK(h.hash_key_n == 0);
}

static void log_batch(const uint8_t *p, size_t len, uint32_t np)
{
	na_rentry *e = NULL;
	uint32_t n = 0;
	bool has_head = false;
	uint64_t head = 0, t = 0;
	if (na_follow_parse_log(p, len, np, &e, &n, &has_head, &head, &t) != 0) {
		CHECK(e == NULL && n == 0);
		return;
	}
	CHECK(e != NULL && n <= len / 21);
	CHECK(!has_head || np >= 3);
	for (uint32_t i = 0; i < n; i++) {
		switch (e[i].op) {
		case 'P':
			CHECK(e[i].dict == NULL && e[i].dict_id == 0);
			if (e[i].rec)
				in_input(e[i].rec, e[i].rec_len);
			else
				CHECK(e[i].rec_len == 0);
			break;
		case 'D':
			CHECK(e[i].rec == NULL && !e[i].has_old && e[i].dict == NULL);
			break;
		case 'Z':
			CHECK(e[i].dict_id >= 1 && e[i].dict_id <= NA_MAX_DICTS);
			CHECK(e[i].dict && e[i].dict_len > 0 && e[i].rec == NULL);
			in_input(e[i].dict, e[i].dict_len);
			break;
		default:
			CHECK(!"unknown op decoded");
		}
	}
	free(e);
}

static void rows(const uint8_t *p, size_t len)
{
	na_srow *v = NULL;
	uint32_t n = 0;
	if (na_follow_parse_rows(p, len, &v, &n) != 0) {
		CHECK(v == NULL && n == 0);
		return;
	}
	CHECK(v != NULL && n <= len / 21);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(v[i].rec != NULL || v[i].rec_len == 0);
		if (v[i].rec)
			in_input(v[i].rec, v[i].rec_len);
	}
	free(v);
}

/* What on_message does with one message, minus the follower. */
static void message(const uint8_t *msg, size_t len)
{
	na_mp r;
	na_mp_init(&r, msg, len);
	uint32_t n, np;
	uint64_t type, id;
	if (na_mp_array(&r, &n) || na_mp_u64(&r, &type))
		return;
	if (type == NA_RPC_RESPONSE && n == 4) {
		if (na_mp_u64(&r, &id) || (id != 1 && id != 2) || na_mp_nil(&r))
			return;
		hello(&r);
		return;
	}
	const char *m;
	uint32_t mn;
	if (type != NA_RPC_NOTIFY || n != 3 || na_mp_str(&r, &m, &mn) || na_mp_array(&r, &np))
		return;
	size_t off = (size_t)(r.p - msg);
	if (na_mp_streq(m, mn, "log"))
		log_batch(msg + off, len - off, np);
	else if (na_mp_streq(m, mn, "rows") && np == 1)
		rows(msg + off, len - off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the follower parses a heap copy of each message (new_job) */
	uint8_t *b = malloc(size ? size : 1);
	CHECK(b);
	memcpy(b, data, size);
	lo = b;
	hi = b + size;
	message(b, size);
	if (size > 0) {
		log_batch(b + 1, size - 1, b[0] % 4);
		rows(b, size);
		na_mp r;
		na_mp_init(&r, b, size);
		hello(&r);
	}
	free(b);
	return 0;
}
