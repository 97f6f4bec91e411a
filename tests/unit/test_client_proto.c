/*
 * test_client_proto.c - the client's protocol core without sockets:
 * out-of-order replies, replies split anywhere, bad replies, disconnects,
 * cancellation and re-entrant callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "mp.h"
#include "newsarch.h"

typedef struct rec {
	int calls;
	int err;
	uint64_t value;       /* result, when it is a uint */
	char msg[256];
	uint32_t msgid;
} rec;

static void on_rec(const na_response *r, void *ud)
{
	rec *x = ud;
	x->calls++;
	x->err = r->err;
	x->msgid = r->msgid;
	snprintf(x->msg, sizeof x->msg, "%s", r->errmsg);
	x->value = UINT64_MAX;
	if (r->err == 0) {
		na_mp m;
		na_mp_init(&m, r->result, r->result_len);
		if (na_mp_u64(&m, &x->value))
			x->value = UINT64_MAX - 1;
	}
}

/* Reads every queued request from the core's output; returns their msgids
 * and method names, and consumes the output. */
static size_t take_requests(na_proto *p, uint32_t *ids, char (*methods)[32], size_t max)
{
	const uint8_t *b;
	size_t n, count = 0;
	na_proto_output(p, &b, &n);
	na_mp r;
	na_mp_init(&r, b, n);
	while (na_mp_left(&r) > 0) {
		uint32_t an;
		uint64_t type, id;
		const char *m;
		uint32_t ml;
		assert_int_equal(na_mp_array(&r, &an), 0);
		assert_int_equal(an, 4);
		assert_int_equal(na_mp_u64(&r, &type), 0);
		assert_int_equal(type, 0);
		assert_int_equal(na_mp_u64(&r, &id), 0);
		assert_int_equal(na_mp_str(&r, &m, &ml), 0);
		assert_int_equal(na_mp_peek(&r), NA_MP_ARRAY);
		assert_int_equal(na_mp_skip(&r), 0);
		assert_true(count < max);
		ids[count] = (uint32_t)id;
		if (methods) {
			assert_true(ml < 32);
			memcpy(methods[count], m, ml);
			methods[count][ml] = '\0';
		}
		count++;
	}
	na_proto_consume(p, n);
	na_proto_output(p, &b, &n);
	assert_int_equal(n, 0);
	return count;
}

/* Appends [1, id, nil, value] to sb. */
static void pack_ok(msgpack_sbuffer *sb, uint32_t id, uint64_t value)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint32(&pk, id);
	msgpack_pack_nil(&pk);
	msgpack_pack_uint64(&pk, value);
}

/* Appends [1, id, {"code": code, "message": msg}, nil]. */
static void pack_err(msgpack_sbuffer *sb, uint32_t id, const char *code, const char *msg)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint32(&pk, id);
	msgpack_pack_map(&pk, 2);
	na_mp_pack_cstr(&pk, "code");
	na_mp_pack_cstr(&pk, code);
	na_mp_pack_cstr(&pk, "message");
	na_mp_pack_cstr(&pk, msg);
	msgpack_pack_nil(&pk);
}

static na_proto *new_proto(size_t max)
{
	na_proto *p = NULL;
	assert_int_equal(na_proto_new(max, &p), 0);
	assert_non_null(p);
	return p;
}

static void test_out_of_order(void **state)
{
	(void)state;
	na_proto *p = new_proto(0);
	rec r[3] = { 0 };
	uint32_t ids[3], got[3];
	const uint8_t params[] = { 0x91, 0x01 }; /* [1] */
	for (int i = 0; i < 3; i++)
		assert_int_equal(na_proto_call(p, "m", params, sizeof params, on_rec, &r[i], &ids[i]), 0);
	assert_int_equal(na_proto_pending(p), 3);
	char methods[3][32];
	assert_int_equal(take_requests(p, got, methods, 3), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(got[i], ids[i]);
		assert_string_equal(methods[i], "m");
	}
	assert_true(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);

	/* answered 3rd, 1st, 2nd; each result says which request it was */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_ok(&sb, ids[2], 302);
	pack_ok(&sb, ids[0], 100);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	assert_int_equal(r[2].calls, 1);
	assert_int_equal(r[2].value, 302);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].value, 100);
	assert_int_equal(r[1].calls, 0);
	assert_int_equal(na_proto_pending(p), 1);
	sb.size = 0;
	pack_ok(&sb, ids[1], 201);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].value, 201);
	assert_int_equal(r[1].msgid, ids[1]);
	assert_int_equal(na_proto_pending(p), 0);
	msgpack_sbuffer_destroy(&sb);
	na_proto_free(p);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r[i].calls, 1); /* free did not call them again */
}

/* Three replies (one of them an error) split at every pair of points. */
static void test_split_everywhere(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	/* the core numbers calls 1, 2, 3 in a fresh instance */
	pack_ok(&sb, 2, 0x123456789aULL);
	pack_err(&sb, 3, "NOT_FOUND", "no article with guid \"x\"");
	pack_ok(&sb, 1, 7);
	for (size_t a = 0; a <= sb.size; a++) {
		for (size_t b = a; b <= sb.size; b++) {
			na_proto *p = new_proto(0);
			rec r[3] = { 0 };
			uint32_t ids[3];
			for (int i = 0; i < 3; i++)
				assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], &ids[i]), 0);
			assert_int_equal(ids[0], 1);
			assert_int_equal(ids[2], 3);
			assert_int_equal(na_proto_feed(p, sb.data, a), 0);
			assert_int_equal(na_proto_feed(p, sb.data + a, b - a), 0);
			assert_int_equal(na_proto_feed(p, sb.data + b, sb.size - b), 0);
			assert_int_equal(r[0].calls, 1);
			assert_int_equal(r[0].value, 7);
			assert_int_equal(r[1].calls, 1);
			assert_int_equal(r[1].value, 0x123456789aULL);
			assert_int_equal(r[2].calls, 1);
			assert_int_equal(r[2].err, NA_ENOTFOUND);
			assert_string_equal(r[2].msg, "no article with guid \"x\"");
			na_proto_free(p);
		}
	}
	/* and one byte at a time */
	na_proto *p = new_proto(0);
	rec r[3] = { 0 };
	for (int i = 0; i < 3; i++)
		assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], NULL), 0);
	for (size_t i = 0; i < sb.size; i++)
		assert_int_equal(na_proto_feed(p, sb.data + i, 1), 0);
	assert_int_equal(r[0].calls + r[1].calls + r[2].calls, 3);
	assert_int_equal(r[1].value, 0x123456789aULL);
	na_proto_free(p);
	msgpack_sbuffer_destroy(&sb);
}

/* Feeds bad bytes to a core with three pending calls and one answered
 * already; checks each pending callback gets NA_EPROTO exactly once. */
static void check_bad_reply(const void *bad, size_t n, size_t max)
{
	na_proto *p = new_proto(max);
	rec r[4] = { 0 };
	uint32_t ids[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], &ids[i]), 0);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_ok(&sb, ids[3], 1);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	assert_int_equal(r[3].calls, 1);

	assert_int_equal(na_proto_feed(p, bad, n), NA_EPROTO);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_EPROTO);
		assert_true(strlen(r[i].msg) > 0);
	}
	assert_int_equal(r[3].calls, 1);
	assert_int_equal(na_proto_pending(p), 0);
	assert_int_equal(na_proto_dead(p), NA_EPROTO);
	assert_true(strlen(na_proto_errmsg(p)) > 0);
	/* dead: no new calls, no more input, no second callback */
	rec late = { 0 };
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &late, NULL), NA_EPROTO);
	assert_int_equal(na_proto_feed(p, "\x90", 1), NA_EPROTO);
	na_proto_fail(p, NA_ECONN, "later");
	na_proto_free(p);
	assert_int_equal(late.calls, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].calls, 1);
}

static void test_malformed(void **state)
{
	(void)state;
	/* not msgpack */
	check_bad_reply("\xc1", 1, 0);
	/* msgpack, but not a response */
	check_bad_reply("\x92\x01\x01", 3, 0);            /* [1, 1] */
	check_bad_reply("\x94\x00\x01\xc0\xc0", 5, 0);    /* a request */
	check_bad_reply("\x94\x01\xa1x\xc0\xc0", 6, 0);   /* msgid a string */
	check_bad_reply("\x94\x01\x01\x07\xc0", 5, 0);    /* error is an int */
	check_bad_reply("\x94\x01\x01\x80\xc0", 5, 0);    /* error map without code */
	check_bad_reply("\x81\xa1x\x01", 4, 0);           /* a map */
	/* a reply to a msgid never sent */
	check_bad_reply("\x94\x01\xce\x00\x01\x00\x00\xc0\x01", 9, 0);
}

static void test_oversized_and_deep(void **state)
{
	(void)state;
	/* header of a str32 announcing 4 GiB: refused from the header alone */
	check_bad_reply("\x94\x01\x01\xc0\xdb\xff\xff\xff\xff", 9, 0);
	/* a reply larger than the core's cap of 64 bytes */
	uint8_t big[100];
	memcpy(big, "\x94\x01\x01\xc0\xd9\x5a", 6); /* str8 of 90 bytes */
	memset(big + 6, 'a', sizeof big - 6);
	check_bad_reply(big, 30, 64); /* refused after 30 bytes already */
	/* 40 nested arrays, deeper than 32 */
	uint8_t deep[48];
	memcpy(deep, "\x94\x01\x01\xc0", 4);
	memset(deep + 4, 0x91, 40);
	deep[44] = 0x01;
	check_bad_reply(deep, 45, 0);
}

static void test_disconnect(void **state)
{
	(void)state;
	na_proto *p = new_proto(0);
	enum { N = 50 };
	rec r[N] = { 0 };
	for (int i = 0; i < N; i++)
		assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], NULL), 0);
	/* half a reply is buffered when the connection drops */
	assert_int_equal(na_proto_feed(p, "\x94\x01\x01", 3), 0);
	na_proto_fail(p, NA_ECONN, "connection closed by the server");
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ECONN);
		assert_string_equal(r[i].msg, "connection closed by the server");
	}
	assert_int_equal(na_proto_pending(p), 0);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[0], NULL), NA_ECONN);
	na_proto_fail(p, NA_EPROTO, "again"); /* no effect */
	na_proto_free(p);
	for (int i = 0; i < N; i++)
		assert_int_equal(r[i].calls, 1);
}

static void test_free_fails_pending(void **state)
{
	(void)state;
	na_proto *p = new_proto(0);
	rec r[2] = { 0 };
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[0], NULL), 0);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[1], NULL), 0);
	na_proto_free(p);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].err, NA_ECLOSED);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].err, NA_ECLOSED);
}

static void test_cancel(void **state)
{
	(void)state;
	na_proto *p = new_proto(0);
	rec r[2] = { 0 };
	uint32_t ids[2];
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[0], &ids[0]), 0);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[1], &ids[1]), 0);
	assert_int_equal(na_proto_cancel(p, ids[0]), 0);
	assert_int_equal(na_proto_cancel(p, ids[0]), NA_EINVAL);
	assert_int_equal(na_proto_cancel(p, 999), NA_EINVAL);
	assert_int_equal(na_proto_pending(p), 1);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_ok(&sb, ids[0], 1); /* the late reply is dropped, not an error */
	pack_ok(&sb, ids[1], 2);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	assert_int_equal(r[0].calls, 0);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].value, 2);
	/* a second reply to the cancelled id is now unknown: protocol error */
	sb.size = 0;
	pack_ok(&sb, ids[0], 1);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), NA_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	na_proto_free(p);
	assert_int_equal(r[0].calls, 0);
}

/* ---- re-entrant callbacks ------------------------------------------- */

typedef struct chain {
	na_proto *p;
	rec inner;
	int calls;
	int queued_rc;
} chain;

static void on_chain(const na_response *r, void *ud)
{
	chain *c = ud;
	(void)r;
	c->calls++;
	c->queued_rc = na_proto_call(c->p, "next", NULL, 0, on_rec, &c->inner, NULL);
}

typedef struct killer {
	na_proto *p;
	int calls;
} killer;

static void on_kill(const na_response *r, void *ud)
{
	killer *k = ud;
	(void)r;
	k->calls++;
	na_proto_fail(k->p, NA_ECLOSED, "closed from a callback");
}

static void test_reentrant(void **state)
{
	(void)state;
	/* a callback queues a new call, which is then answered */
	na_proto *p = new_proto(0);
	chain c = { .p = p };
	uint32_t id, ids[4];
	assert_int_equal(na_proto_call(p, "first", NULL, 0, on_chain, &c, &id), 0);
	take_requests(p, ids, NULL, 4);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_ok(&sb, id, 1);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.queued_rc, 0);
	char methods[4][32];
	assert_int_equal(take_requests(p, ids, methods, 4), 1);
	assert_string_equal(methods[0], "next");
	sb.size = 0;
	pack_ok(&sb, ids[0], 5);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	assert_int_equal(c.inner.calls, 1);
	assert_int_equal(c.inner.value, 5);
	na_proto_free(p);

	/* a callback kills the core while more replies are buffered */
	p = new_proto(0);
	killer k = { .p = p };
	rec r[2] = { 0 };
	uint32_t kid, rid[2];
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_kill, &k, &kid), 0);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[0], &rid[0]), 0);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[1], &rid[1]), 0);
	sb.size = 0;
	pack_ok(&sb, kid, 1);
	pack_ok(&sb, rid[0], 2); /* arrives in the same chunk, after the kill */
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), NA_ECLOSED);
	assert_int_equal(k.calls, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ECLOSED);
		assert_string_equal(r[i].msg, "closed from a callback");
	}
	msgpack_sbuffer_destroy(&sb);
	na_proto_free(p);
	assert_int_equal(k.calls, 1);
}

/* Many pending calls answered in a scrambled order: exercises the table's
 * growth and deletion. */
static void test_many_scrambled(void **state)
{
	(void)state;
	enum { N = 5000 };
	na_proto *p = new_proto(0);
	rec *r = calloc(N, sizeof *r);
	uint32_t *ids = calloc(N, sizeof *ids);
	assert_non_null(r);
	assert_non_null(ids);
	for (int i = 0; i < N; i++)
		assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], &ids[i]), 0);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	/* order: i * 7919 mod N (7919 is prime, coprime with N) */
	for (int i = 0; i < N; i++) {
		int j = (int)(((long)i * 7919) % N);
		pack_ok(&sb, ids[j], (uint64_t)j);
	}
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].value, (uint64_t)i);
	}
	assert_int_equal(na_proto_pending(p), 0);
	msgpack_sbuffer_destroy(&sb);
	na_proto_free(p);
	free(r);
	free(ids);
}

static void test_server_errors_and_notifications(void **state)
{
	(void)state;
	static const struct {
		const char *code;
		int err;
	} codes[] = {
		{ "BAD_REQUEST", NA_EBADREQ }, { "UNKNOWN_METHOD", NA_EUNKNOWNMETHOD },
		{ "NOT_FOUND", NA_ENOTFOUND }, { "TOO_LARGE", NA_ETOOLARGE },
		{ "NO_SPACE", NA_ENOSPACE }, { "READONLY", NA_EREADONLY },
		{ "UNAUTHORIZED", NA_EUNAUTHORIZED }, { "TIMEOUT", NA_ETIMEOUT },
		{ "UNAVAILABLE", NA_EUNAVAILABLE }, { "INTERNAL", NA_EINTERNAL },
		{ "SOMETHING_NEW", NA_EINTERNAL },
	};
	enum { N = sizeof codes / sizeof codes[0] };
	na_proto *p = new_proto(0);
	rec r[N] = { 0 };
	uint32_t ids[N];
	for (size_t i = 0; i < N; i++)
		assert_int_equal(na_proto_call(p, "x", NULL, 0, on_rec, &r[i], &ids[i]), 0);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	/* a notification first: ignored */
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint8(&pk, 2);
	na_mp_pack_cstr(&pk, "event");
	msgpack_pack_array(&pk, 0);
	for (size_t i = 0; i < N; i++)
		pack_err(&sb, ids[i], codes[i].code, codes[i].code);
	assert_int_equal(na_proto_feed(p, sb.data, sb.size), 0);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, codes[i].err);
		assert_string_equal(r[i].msg, codes[i].code);
		assert_true(NA_IS_SERVER_ERROR(r[i].err));
		assert_string_not_equal(na_strerror(r[i].err), "unknown error");
	}
	msgpack_sbuffer_destroy(&sb);
	na_proto_free(p);
	assert_string_equal(na_strerror(0), "ok");
	assert_string_equal(na_strerror(-55), "unknown error");
}

static void test_bad_calls(void **state)
{
	(void)state;
	na_proto *p = new_proto(0);
	rec r = { 0 };
	assert_int_equal(na_proto_call(p, NULL, NULL, 0, on_rec, &r, NULL), NA_EINVAL);
	assert_int_equal(na_proto_call(p, "x", NULL, 0, NULL, &r, NULL), NA_EINVAL);
	assert_int_equal(na_proto_call(p, "x", "\x01", 1, on_rec, &r, NULL), NA_EINVAL);
	assert_int_equal(na_proto_call(p, "x", "\x92\x01", 2, on_rec, &r, NULL), NA_EINVAL);
	assert_int_equal(na_proto_call(p, "x", "\x91\x01\x01", 3, on_rec, &r, NULL), NA_EINVAL);
	const uint8_t *b;
	size_t n;
	na_proto_output(p, &b, &n);
	assert_int_equal(n, 0);
	assert_int_equal(na_proto_pending(p), 0);
	na_proto_free(p);
	assert_int_equal(r.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_oversized_and_deep),
		cmocka_unit_test(test_disconnect),
		cmocka_unit_test(test_free_fails_pending),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_reentrant),
		cmocka_unit_test(test_many_scrambled),
		cmocka_unit_test(test_server_errors_and_notifications),
		cmocka_unit_test(test_bad_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
