/*
 * test_daemon.c - newsarchd end to end over its socket: every method, the
 * bad inputs PROTOCOL.md lists, restart persistence, a slow reader, and a
 * 100,000-article round trip compared field by field.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "testrpc.h"

static na_test_daemon D;

typedef struct params {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} params;

static void p_init(params *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void p_free(params *p) { msgpack_sbuffer_destroy(&p->sb); }

static int setup(void **state)
{
	(void)state;
	memset(&D, 0, sizeof D);
	D.extra[0] = "--train-min";
	D.extra[1] = "500";
	D.extra[2] = "--log-level";
	D.extra[3] = "warn";
	return na_test_daemon_start(&D);
}

static int teardown(void **state)
{
	(void)state;
	return na_test_daemon_cleanup(&D);
}

static void conn(na_trpc *t)
{
	int fd = na_test_connect_tcp(&D);
	assert_true(fd >= 0);
	na_trpc_init(t, fd);
}

/* put one article; returns status string in st (caller buffer) and seq */
static void put1(na_trpc *t, const char *guid, int64_t sec, uint32_t nsec, const char *title,
		 const char *body, char *st, uint64_t *seq)
{
	params p;
	p_init(&p);
	na_pack_article(&p.pk, guid, sec, nsec, title, body);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "put", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	const msgpack_object *s = na_obj_get(&res, "status");
	assert_non_null(s);
	snprintf(st, 16, "%.*s", (int)s->via.str.size, s->via.str.ptr);
	const msgpack_object *q = na_obj_get(&res, "seq");
	assert_non_null(q);
	if (seq)
		*seq = q->via.u64;
	assert_true(na_obj_streq(na_obj_get(&res, "guid"), guid));
}

static void expect_error(na_trpc *t, const char *method, params *p, uint32_t n, const char *code,
			 const char *needle)
{
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, method, n, p ? &p->sb : NULL, &err, &res), 1);
	char buf[32];
	if (strcmp(na_obj_code(&err, buf, sizeof buf), code) != 0) {
		const msgpack_object *m = na_obj_get(&err, "message");
		fail_msg("%s: expected %s, got %s (%.*s)", method, code, buf,
			 m ? (int)m->via.str.size : 0, m ? m->via.str.ptr : "");
	}
	if (needle) {
		const msgpack_object *m = na_obj_get(&err, "message");
		assert_non_null(m);
		char msg[600];
		snprintf(msg, sizeof msg, "%.*s", (int)m->via.str.size, m->via.str.ptr);
		if (!strstr(msg, needle))
			fail_msg("message \"%s\" does not mention \"%s\"", msg, needle);
	}
}

static void test_ping(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));
	na_trpc_close(&t);
	/* and over the Unix socket */
	int fd = na_test_connect_unix(&D);
	assert_true(fd >= 0);
	na_trpc_init(&t, fd);
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));
	na_trpc_close(&t);
}

static void test_put_get_update(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	char st[16];
	uint64_t s1, s2, s3;
	put1(&t, "pg-1", 1600000000, 0, "First", "Body one", st, &s1);
	assert_string_equal(st, "created");
	put1(&t, "pg-1", 1600000000, 0, "First", "Body one", st, &s2);
	assert_string_equal(st, "unchanged");
	assert_int_equal(s1, s2);
	put1(&t, "pg-1", 1600000000, 0, "First", "Body two", st, &s3);
	assert_string_equal(st, "updated");
	assert_true(s3 > s1);

	/* get returns exactly the bytes put */
	params p;
	p_init(&p);
	na_pack_article(&p.pk, "pg-1", 1600000000, 0, "First", "Body two");
	msgpack_sbuffer expect;
	msgpack_sbuffer_init(&expect);
	msgpack_sbuffer_write(&expect, p.sb.data, p.sb.size);
	p_free(&p);
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "pg-1");
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "get", 1, &p.sb, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	msgpack_sbuffer got;
	msgpack_sbuffer_init(&got);
	msgpack_packer gp;
	msgpack_packer_init(&gp, &got, msgpack_sbuffer_write);
	msgpack_pack_object(&gp, res);
	assert_int_equal(got.size, expect.size);
	assert_memory_equal(got.data, expect.data, got.size);
	msgpack_sbuffer_destroy(&got);
	msgpack_sbuffer_destroy(&expect);

	/* fields projection */
	p_free(&p);
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "pg-1");
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "fields");
	msgpack_pack_array(&p.pk, 2);
	na_mp_pack_cstr(&p.pk, "title");
	na_mp_pack_cstr(&p.pk, "nosuch");
	assert_int_equal(na_trpc_call(&t, "get", 2, &p.sb, &err, &res), 1);
	assert_int_equal(res.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(res.via.map.size, 1);
	assert_true(na_obj_streq(na_obj_get(&res, "title"), "First"));
	p_free(&p);

	/* not found */
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "pg-nope");
	expect_error(&t, "get", &p, 1, "NOT_FOUND", "pg-nope");
	p_free(&p);
	na_trpc_close(&t);
}


/* Pipelined writes of one guid apply in the order they were sent, even
 * though compression runs on several worker threads. */
static void test_pipelined_writes_keep_order(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	char body[64];
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 40; i++) {
			params p;
			p_init(&p);
			msgpack_pack_array(&p.pk, i % 2 ? 1 : 50);
			snprintf(body, sizeof body, "version %d.%d", round, i);
			for (int k = 0; k < (i % 2 ? 1 : 50); k++) {
				char g[32];
				snprintf(g, sizeof g, k ? "order-pad-%d-%d" : "order-1", i, k);
				na_pack_article(&p.pk, g, 1900000000, 0, "ordered", body);
			}
			assert_true(na_trpc_request(&t, "put_batch", 1, &p.sb) != 0);
			p_free(&p);
		}
		for (int i = 0; i < 40; i++) {
			msgpack_object o;
			assert_int_equal(na_trpc_read(&t, &o), 1);
		}
		params p;
		p_init(&p);
		na_mp_pack_cstr(&p.pk, "order-1");
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "get", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_true(na_obj_streq(na_obj_get(&res, "body"), body));
	}
	na_trpc_close(&t);
}

static int64_t range_count(na_trpc *t, int64_t from, int64_t to)
{
	params p;
	p_init(&p);
	msgpack_pack_map(&p.pk, 2);
	na_mp_pack_cstr(&p.pk, "from");
	na_mp_pack_ts(&p.pk, (na_ts){ from, 0 });
	na_mp_pack_cstr(&p.pk, "to");
	na_mp_pack_ts(&p.pk, (na_ts){ to, 0 });
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "count", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	return (int64_t)res.via.u64;
}

/* Packs [0, msgid, "get", [guid]] into sb. */
static void pack_get(msgpack_sbuffer *sb, uint32_t msgid, const char *guid)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, msgid);
	msgpack_pack_str_with_body(&pk, "get", 3);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, guid, strlen(guid));
}

static void expect_title(na_trpc *t, uint32_t msgid, const char *title)
{
	msgpack_object err, res;
	assert_int_equal(na_trpc_wait(t, msgid, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_true(na_obj_streq(na_obj_get(&res, "title"), title));
}

/* Requests cut at every kind of boundary, on two connections at once: the
 * rest of a partial request must survive other clients' reads (the server
 * reads every connection into one shared buffer), and several requests in
 * one read must all be answered. Each step waits for a reply, so the server
 * has provably read the bytes before the next part goes out. */
static void test_split_requests(void **state)
{
	(void)state;
	na_trpc a, b;
	conn(&a);
	conn(&b);
	char st[16];
	put1(&a, "split:1", 1700000000, 0, "first split", "body one", st, NULL);
	put1(&a, "split:2", 1700000001, 0, "second split", "body two", st, NULL);
	msgpack_sbuffer r1, r2, r3;
	msgpack_sbuffer_init(&r1);
	msgpack_sbuffer_init(&r2);
	msgpack_sbuffer_init(&r3);
	pack_get(&r1, 9001, "split:1");
	pack_get(&r2, 9002, "split:2");
	pack_get(&r3, 9003, "split:1");
	size_t half = r2.size / 2;
	/* a: one whole request and the first half of the next */
	msgpack_sbuffer sa;
	msgpack_sbuffer_init(&sa);
	msgpack_sbuffer_write(&sa, r1.data, r1.size);
	msgpack_sbuffer_write(&sa, r2.data, half);
	assert_int_equal(na_trpc_send(&a, sa.data, sa.size), 0);
	expect_title(&a, 9001, "first split");
	/* b: whole requests while a's half waits */
	assert_int_equal(na_trpc_send(&b, r2.data, r2.size), 0);
	expect_title(&b, 9002, "second split");
	/* a: all but the last byte of the second request, then b again */
	assert_int_equal(na_trpc_send(&a, r2.data + half, r2.size - half - 1), 0);
	assert_int_equal(na_trpc_send(&b, r1.data, r1.size), 0);
	expect_title(&b, 9001, "first split");
	/* a: the last byte together with a whole third request */
	msgpack_sbuffer_clear(&sa);
	msgpack_sbuffer_write(&sa, r2.data + r2.size - 1, 1);
	msgpack_sbuffer_write(&sa, r3.data, r3.size);
	assert_int_equal(na_trpc_send(&a, sa.data, sa.size), 0);
	expect_title(&a, 9002, "second split");
	expect_title(&a, 9003, "first split");
	/* one byte at a time, each followed by a round trip on b */
	for (size_t i = 0; i < r3.size; i++) {
		assert_int_equal(na_trpc_send(&a, r3.data + i, 1), 0);
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&b, "ping", 0, NULL, &err, &res), 1);
		assert_true(na_obj_streq(&res, "pong"));
	}
	expect_title(&a, 9003, "first split");
	/* an article larger than one read (64 KiB) arrives in several */
	size_t big = 300000;
	char *body = malloc(big + 1);
	assert_non_null(body);
	for (size_t i = 0; i < big; i++)
		body[i] = (char)('a' + (i * 7 + i / 13) % 26);
	body[big] = 0;
	put1(&a, "split:big", 1700000002, 0, "big split", body, st, NULL);
	msgpack_sbuffer rb;
	msgpack_sbuffer_init(&rb);
	pack_get(&rb, 9004, "split:big");
	msgpack_sbuffer_write(&rb, r1.data, r1.size);
	assert_int_equal(na_trpc_send(&a, rb.data, rb.size), 0);
	msgpack_object err, res;
	assert_int_equal(na_trpc_wait(&a, 9004, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	const msgpack_object *bo = na_obj_get(&res, "body");
	assert_non_null(bo);
	assert_int_equal(bo->via.str.size, big);
	assert_memory_equal(bo->via.str.ptr, body, big);
	expect_title(&a, 9001, "first split");
	free(body);
	msgpack_sbuffer_destroy(&rb);
	msgpack_sbuffer_destroy(&sa);
	msgpack_sbuffer_destroy(&r1);
	msgpack_sbuffer_destroy(&r2);
	msgpack_sbuffer_destroy(&r3);
	na_trpc_close(&a);
	na_trpc_close(&b);
}

static void test_move_and_delete(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	char st[16];
	put1(&t, "mv-1", 100, 0, "Moving", NULL, st, NULL);
	assert_int_equal(range_count(&t, 100, 101), 1);
	put1(&t, "mv-1", 200, 0, "Moving", NULL, st, NULL);
	assert_string_equal(st, "updated");
	assert_int_equal(range_count(&t, 100, 101), 0);
	assert_int_equal(range_count(&t, 200, 201), 1);

	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "mv-1");
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
	assert_true(na_obj_get(&res, "deleted")->via.boolean);
	assert_int_equal(na_obj_get(&res, "seq")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(na_trpc_call(&t, "delete", 1, &p.sb, &err, &res), 1);
	assert_false(na_obj_get(&res, "deleted")->via.boolean);
	assert_int_equal(na_obj_get(&res, "seq")->type, MSGPACK_OBJECT_NIL);
	expect_error(&t, "get", &p, 1, "NOT_FOUND", NULL);
	p_free(&p);
	assert_int_equal(range_count(&t, 200, 201), 0);
	na_trpc_close(&t);
}

static void test_put_batch(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 5);
	na_pack_article(&p.pk, "pb-1", 1700000300, 0, "one", NULL);
	msgpack_pack_map(&p.pk, 2); /* missing title */
	na_mp_pack_cstr(&p.pk, "guid");
	na_mp_pack_cstr(&p.pk, "pb-bad");
	na_mp_pack_cstr(&p.pk, "published");
	na_mp_pack_ts(&p.pk, (na_ts){ 1700000300, 0 });
	na_mp_pack_cstr(&p.pk, "not an article");
	na_pack_article(&p.pk, "pb-2", 1700000301, 5000, "two", "b");
	na_pack_article(&p.pk, "pb-1", 1700000302, 0, "one again", NULL);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(res.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(res.via.array.size, 5);
	msgpack_object *r = res.via.array.ptr;
	assert_true(na_obj_streq(na_obj_get(&r[0], "status"), "created"));
	char code[32];
	assert_string_equal(na_obj_code(na_obj_get(&r[1], "error"), code, sizeof code), "BAD_REQUEST");
	const msgpack_object *m = na_obj_get(na_obj_get(&r[1], "error"), "message");
	assert_non_null(m);
	assert_non_null(memmem(m->via.str.ptr, m->via.str.size, "title", 5));
	assert_string_equal(na_obj_code(na_obj_get(&r[2], "error"), code, sizeof code), "BAD_REQUEST");
	assert_true(na_obj_streq(na_obj_get(&r[3], "status"), "created"));
	assert_true(na_obj_streq(na_obj_get(&r[4], "status"), "updated"));
	assert_int_equal(range_count(&t, 1700000300, 1700000303), 2);
	na_trpc_close(&t);
}

/* Reads a whole range with paging; checks order; returns article count. */
static int walk_range(na_trpc *t, int64_t from, int64_t to, bool reverse, uint32_t limit,
		      char guids[][16], int max)
{
	uint8_t cursor[16];
	bool have_cursor = false;
	int total = 0;
	int64_t prev = reverse ? INT64_MAX : INT64_MIN;
	for (;;) {
		params p;
		p_init(&p);
		msgpack_pack_map(&p.pk, have_cursor ? 5 : 4);
		na_mp_pack_cstr(&p.pk, "from");
		na_mp_pack_ts(&p.pk, (na_ts){ from, 0 });
		na_mp_pack_cstr(&p.pk, "to");
		msgpack_pack_int64(&p.pk, to); /* unix seconds work too */
		na_mp_pack_cstr(&p.pk, "limit");
		msgpack_pack_uint32(&p.pk, limit);
		na_mp_pack_cstr(&p.pk, "reverse");
		if (reverse) msgpack_pack_true(&p.pk); else msgpack_pack_false(&p.pk);
		if (have_cursor) {
			na_mp_pack_cstr(&p.pk, "after");
			msgpack_pack_bin(&p.pk, 16);
			msgpack_pack_bin_body(&p.pk, cursor, 16);
		}
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(t, "range", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		const msgpack_object *arts = na_obj_get(&res, "articles");
		const msgpack_object *next = na_obj_get(&res, "next");
		assert_non_null(arts);
		assert_non_null(next);
		assert_true(arts->via.array.size <= limit);
		for (uint32_t i = 0; i < arts->via.array.size; i++) {
			const msgpack_object *a = &arts->via.array.ptr[i];
			const msgpack_object *pub = na_obj_get(a, "published");
			assert_non_null(pub);
			assert_int_equal(pub->type, MSGPACK_OBJECT_EXT);
			na_ts ts;
			assert_int_equal(na_ts_decode((const uint8_t *)pub->via.ext.ptr, pub->via.ext.size, &ts), 0);
			int64_t us = ts.sec * 1000000 + ts.nsec / 1000;
			if (reverse)
				assert_true(us <= prev);
			else
				assert_true(us >= prev);
			assert_true(ts.sec >= from && ts.sec < to);
			prev = us;
			if (total < max) {
				const msgpack_object *g = na_obj_get(a, "guid");
				snprintf(guids[total], 16, "%.*s", (int)g->via.str.size, g->via.str.ptr);
			}
			total++;
		}
		if (next->type == MSGPACK_OBJECT_NIL)
			break;
		assert_int_equal(next->type, MSGPACK_OBJECT_BIN);
		assert_int_equal(next->via.bin.size, 16);
		memcpy(cursor, next->via.bin.ptr, 16);
		have_cursor = true;
	}
	return total;
}

static void test_range_order_and_paging(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	/* 30 articles: 10 before 1970, 10 sharing one time, 10 after */
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 30);
	for (int i = 0; i < 30; i++) {
		char g[16];
		snprintf(g, sizeof g, "ro-%02d", i);
		int64_t sec = i < 10 ? -1000000 + i * 1000 : i < 20 ? 5000 : 6000 + i;
		na_pack_article(&p.pk, g, sec, 0, "t", NULL);
	}
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	char guids[64][16], rguids[64][16];
	int n = walk_range(&t, -2000000, 7000, false, 7, guids, 64);
	assert_int_equal(n, 30);
	/* same time: insertion order; pre-1970 first */
	for (int i = 0; i < 30; i++) {
		char g[16];
		snprintf(g, sizeof g, "ro-%02d", i);
		assert_string_equal(guids[i], g);
	}
	n = walk_range(&t, -2000000, 7000, true, 4, rguids, 64);
	assert_int_equal(n, 30);
	for (int i = 0; i < 30; i++)
		assert_string_equal(rguids[i], guids[29 - i]);
	/* window */
	n = walk_range(&t, -1000000, 5000, false, 100, guids, 64);
	assert_int_equal(n, 10);
	assert_int_equal(range_count(&t, 5000, 5001), 10);

	/* fields */
	p_init(&p);
	msgpack_pack_map(&p.pk, 3);
	na_mp_pack_cstr(&p.pk, "from");
	msgpack_pack_int64(&p.pk, 5000);
	na_mp_pack_cstr(&p.pk, "to");
	msgpack_pack_int64(&p.pk, 5001);
	na_mp_pack_cstr(&p.pk, "fields");
	msgpack_pack_array(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "guid");
	assert_int_equal(na_trpc_call(&t, "range", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	const msgpack_object *arts = na_obj_get(&res, "articles");
	assert_int_equal(arts->via.array.size, 10);
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(arts->via.array.ptr[i].via.map.size, 1);
	na_trpc_close(&t);
}

static void test_count_stats(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "count", 0, NULL, &err, &res), 1);
	uint64_t all = res.via.u64;
	assert_true(all > 0);
	assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(na_obj_get(&res, "articles")->via.u64, all);
	const char *keys[] = { "raw_bytes", "stored_bytes", "ratio", "dictionary", "map_size",
			       "map_used", "page_bytes", "seq", "connections", "requests",
			       "uptime", "role" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!na_obj_get(&res, keys[i]))
			fail_msg("stats lacks %s", keys[i]);
	assert_true(na_obj_streq(na_obj_get(&res, "role"), "primary"));
	assert_true(na_obj_get(&res, "connections")->via.u64 >= 1);
	na_trpc_close(&t);
}

/* ---- bad input --------------------------------------------------------- */

static void still_serving(void)
{
	na_trpc t;
	conn(&t);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));
	na_trpc_close(&t);
}

static void expect_closed(na_trpc *t)
{
	msgpack_object o;
	int rc;
	while ((rc = na_trpc_read(t, &o)) == 1)
		;
	assert_int_equal(rc, 0);
}

static void test_bad_msgpack(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	uint8_t bad[] = { 0x94, 0x00, 0x01, 0xc1 };
	assert_int_equal(na_trpc_send(&t, bad, sizeof bad), 0);
	/* msgid 1 was read before the bad byte: BAD_REQUEST, then close */
	msgpack_object o;
	assert_int_equal(na_trpc_read(&t, &o), 1);
	assert_int_equal(o.via.array.ptr[1].via.u64, 1);
	char code[32];
	assert_string_equal(na_obj_code(&o.via.array.ptr[2], code, sizeof code), "BAD_REQUEST");
	expect_closed(&t);
	na_trpc_close(&t);

	conn(&t);
	uint8_t bad2[] = { 0xc1 };
	assert_int_equal(na_trpc_send(&t, bad2, 1), 0);
	expect_closed(&t);
	na_trpc_close(&t);

	/* a message that is not an array */
	conn(&t);
	uint8_t notarr[] = { 0xa3, 'a', 'b', 'c' };
	assert_int_equal(na_trpc_send(&t, notarr, sizeof notarr), 0);
	expect_closed(&t);
	na_trpc_close(&t);
	still_serving();
}

static void test_huge_headers(void **state)
{
	(void)state;
	/* [0, 9, "put", [ str32 of ~4 GiB ]] */
	const uint8_t heads[][5] = {
		{ 0xdb, 0xff, 0xff, 0xff, 0xf0 }, { 0xc6, 0xff, 0xff, 0xff, 0xf0 },
		{ 0xdd, 0xff, 0xff, 0xff, 0xf0 }, { 0xdf, 0xff, 0xff, 0xff, 0xf0 },
	};
	for (size_t i = 0; i < 4; i++) {
		na_trpc t;
		conn(&t);
		uint8_t msg[] = { 0x94, 0x00, 0x09, 0xa3, 'p', 'u', 't', 0x91 };
		assert_int_equal(na_trpc_send(&t, msg, sizeof msg), 0);
		assert_int_equal(na_trpc_send(&t, heads[i], 5), 0);
		msgpack_object o;
		assert_int_equal(na_trpc_read(&t, &o), 1);
		assert_int_equal(o.via.array.ptr[1].via.u64, 9);
		char code[32];
		assert_string_equal(na_obj_code(&o.via.array.ptr[2], code, sizeof code), "TOO_LARGE");
		expect_closed(&t);
		na_trpc_close(&t);
	}
	/* at top level, with no msgid: closed */
	na_trpc t;
	conn(&t);
	assert_int_equal(na_trpc_send(&t, heads[0], 5), 0);
	expect_closed(&t);
	na_trpc_close(&t);
	still_serving();
}

static void test_deep_nesting(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	uint8_t msg[8 + 200];
	memcpy(msg, (uint8_t[]){ 0x94, 0x00, 0x05, 0xa3, 'p', 'u', 't', 0x91 }, 8);
	memset(msg + 8, 0x91, 200); /* 200 nested one-element arrays */
	assert_int_equal(na_trpc_send(&t, msg, sizeof msg), 0);
	msgpack_object o;
	assert_int_equal(na_trpc_read(&t, &o), 1);
	char code[32];
	assert_string_equal(na_obj_code(&o.via.array.ptr[2], code, sizeof code), "TOO_LARGE");
	expect_closed(&t);
	na_trpc_close(&t);
	still_serving();
}

static void test_bad_requests(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	params p;
	msgpack_object err, res;

	expect_error(&t, "frobnicate", NULL, 0, "UNKNOWN_METHOD", "frobnicate");

	/* wrong param counts and types */
	expect_error(&t, "get", NULL, 0, "BAD_REQUEST", "parameter");
	p_init(&p);
	msgpack_pack_int(&p.pk, 42);
	expect_error(&t, "get", &p, 1, "BAD_REQUEST", "guid");
	expect_error(&t, "put", &p, 1, "BAD_REQUEST", "map");
	expect_error(&t, "put_batch", &p, 1, "BAD_REQUEST", "array");
	expect_error(&t, "range", &p, 1, "BAD_REQUEST", "map");
	p_free(&p);

	/* article field errors name the field */
	struct { const char *field; int kind; const char *needle; } cases[] = {
		{ "guid", 0, "guid" },       /* guid as integer */
		{ "published", 1, "published" }, /* published as string */
		{ "title", 0, "title" },     /* title as integer */
		{ "body", 0, "body" },
		{ "authors", 1, "authors" }, /* authors as string */
		{ "updated", 0, "updated" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		p_init(&p);
		const char *f[] = { "guid", "published", "title" };
		bool replaced = false;
		msgpack_pack_map(&p.pk, 4);
		for (int k = 0; k < 3; k++) {
			na_mp_pack_cstr(&p.pk, f[k]);
			if (strcmp(f[k], cases[i].field) == 0) {
				replaced = true;
				if (cases[i].kind == 0) msgpack_pack_int(&p.pk, 7);
				else na_mp_pack_cstr(&p.pk, "x");
			} else if (k == 1) {
				na_mp_pack_ts(&p.pk, (na_ts){ 10, 0 });
			} else {
				na_mp_pack_cstr(&p.pk, "bad-field-case");
			}
		}
		na_mp_pack_cstr(&p.pk, replaced ? "extra" : cases[i].field);
		if (replaced) na_mp_pack_cstr(&p.pk, "kept");
		else if (cases[i].kind == 0) msgpack_pack_int(&p.pk, 7);
		else na_mp_pack_cstr(&p.pk, "x");
		expect_error(&t, "put", &p, 1, "BAD_REQUEST", cases[i].needle);
		p_free(&p);
	}
	/* timestamp out of range (year 10000+) and bad nanoseconds */
	p_init(&p);
	na_pack_article(&p.pk, "bad-ts", 253402300800LL, 0, "t", NULL);
	expect_error(&t, "put", &p, 1, "BAD_REQUEST", "published");
	p_free(&p);
	p_init(&p);
	msgpack_pack_map(&p.pk, 3);
	na_mp_pack_cstr(&p.pk, "guid");
	na_mp_pack_cstr(&p.pk, "bad-ns");
	na_mp_pack_cstr(&p.pk, "published");
	uint8_t ext96[12] = { 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1 }; /* nsec > 1e9 */
	msgpack_pack_ext(&p.pk, 12, -1);
	msgpack_pack_ext_body(&p.pk, ext96, 12);
	na_mp_pack_cstr(&p.pk, "title");
	na_mp_pack_cstr(&p.pk, "t");
	expect_error(&t, "put", &p, 1, "BAD_REQUEST", "published");
	p_free(&p);
	/* duplicate key */
	p_init(&p);
	msgpack_pack_map(&p.pk, 4);
	na_mp_pack_cstr(&p.pk, "guid");
	na_mp_pack_cstr(&p.pk, "dup");
	na_mp_pack_cstr(&p.pk, "published");
	na_mp_pack_ts(&p.pk, (na_ts){ 1, 0 });
	na_mp_pack_cstr(&p.pk, "title");
	na_mp_pack_cstr(&p.pk, "a");
	na_mp_pack_cstr(&p.pk, "title");
	na_mp_pack_cstr(&p.pk, "b");
	expect_error(&t, "put", &p, 1, "BAD_REQUEST", "twice");
	p_free(&p);
	/* guid too long */
	char longg[1100];
	memset(longg, 'g', sizeof longg - 1);
	longg[sizeof longg - 1] = 0;
	p_init(&p);
	na_pack_article(&p.pk, longg, 1, 0, "t", NULL);
	expect_error(&t, "put", &p, 1, "BAD_REQUEST", "1024");
	p_free(&p);
	/* range: limit too big, bad cursor, unknown key */
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "limit");
	msgpack_pack_int(&p.pk, 5000);
	expect_error(&t, "range", &p, 1, "TOO_LARGE", "limit");
	p_free(&p);
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "after");
	msgpack_pack_bin(&p.pk, 3);
	msgpack_pack_bin_body(&p.pk, "abc", 3);
	expect_error(&t, "range", &p, 1, "BAD_REQUEST", "cursor");
	p_free(&p);
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "colour");
	msgpack_pack_int(&p.pk, 1);
	expect_error(&t, "range", &p, 1, "BAD_REQUEST", "colour");
	p_free(&p);
	/* nil means "not given" for the keys a method takes, not for others:
	 * a misspelt "form": nil is an error, and so is count's "limit" */
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "form");
	msgpack_pack_nil(&p.pk);
	expect_error(&t, "range", &p, 1, "BAD_REQUEST", "form");
	p_free(&p);
	p_init(&p);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "limit");
	msgpack_pack_nil(&p.pk);
	expect_error(&t, "count", &p, 1, "BAD_REQUEST", "limit");
	p_free(&p);
	/* not a request array of 4 */
	uint8_t short_req[] = { 0x93, 0x00, 0x21, 0xa4, 'p', 'i', 'n', 'g' };
	assert_int_equal(na_trpc_send(&t, short_req, sizeof short_req), 0);
	assert_int_equal(na_trpc_wait(&t, 0x21, &err, &res), 1);
	char code[32];
	assert_string_equal(na_obj_code(&err, code, sizeof code), "BAD_REQUEST");
	/* the connection still works after all of that */
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));
	/* and nothing was stored */
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "bad-field-case");
	expect_error(&t, "get", &p, 1, "NOT_FOUND", NULL);
	p_free(&p);
	na_trpc_close(&t);
}

static void test_too_large_batch_and_article(void **state)
{
	(void)state;
	na_test_daemon d2;
	memset(&d2, 0, sizeof d2);
	d2.extra[0] = "--max-batch";
	d2.extra[1] = "3";
	d2.extra[2] = "--max-article-bytes";
	d2.extra[3] = "1000";
	d2.extra[4] = "--max-request-bytes";
	d2.extra[5] = "64K";
	assert_int_equal(na_test_daemon_start(&d2), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&d2));
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 4);
	for (int i = 0; i < 4; i++)
		na_pack_article(&p.pk, "tl", 1, 0, "t", NULL);
	expect_error(&t, "put_batch", &p, 1, "TOO_LARGE", "max_batch");
	p_free(&p);
	char body[2000];
	memset(body, 'b', sizeof body - 1);
	body[sizeof body - 1] = 0;
	p_init(&p);
	na_pack_article(&p.pk, "tl", 1, 0, "t", body);
	expect_error(&t, "put", &p, 1, "TOO_LARGE", "max_article_bytes");
	p_free(&p);
	/* a request over 64K, sent whole */
	char *big = malloc(70000);
	memset(big, 'x', 69999);
	big[69999] = 0;
	p_init(&p);
	na_pack_article(&p.pk, "tl", 1, 0, "t", big);
	free(big);
	expect_error(&t, "put", &p, 1, "TOO_LARGE", "max_request_bytes");
	p_free(&p);
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&d2), 0);
}

/* ---- persistence, slow readers, volume ------------------------------- */

static void test_restart_persistence(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	char st[16];
	uint64_t seq;
	put1(&t, "persist-1", 1234567890, 123456789, "Persisted", "Kept across restarts", st, &seq);
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_stop(&D), 0);
	assert_int_equal(na_test_daemon_restart(&D), 0);
	conn(&t);
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "persist-1");
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "get", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_true(na_obj_streq(na_obj_get(&res, "body"), "Kept across restarts"));
	/* the sequence keeps growing */
	uint64_t seq2;
	put1(&t, "persist-2", 1, 0, "After restart", NULL, st, &seq2);
	assert_true(seq2 > seq);
	na_trpc_close(&t);
}

static void test_slow_reader(void **state)
{
	(void)state;
	na_test_daemon d2;
	memset(&d2, 0, sizeof d2);
	d2.extra[0] = "--output-queue-bytes";
	d2.extra[1] = "1M";
	d2.extra[2] = "--log-level";
	d2.extra[3] = "warn";
	assert_int_equal(na_test_daemon_start(&d2), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&d2));
	/* 1,000 articles of ~4 KiB */
	char body[4096];
	for (size_t i = 0; i < sizeof body - 1; i++)
		body[i] = (char)('a' + (i * 7919 + i / 13) % 26);
	body[sizeof body - 1] = 0;
	for (int b = 0; b < 10; b++) {
		params p;
		p_init(&p);
		msgpack_pack_array(&p.pk, 100);
		for (int i = 0; i < 100; i++) {
			char g[32];
			snprintf(g, sizeof g, "slow-%d", b * 100 + i);
			body[0] = (char)('A' + i % 26);
			na_pack_article(&p.pk, g, 1000 + b * 100 + i, 0, "slow", body);
		}
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
		p_free(&p);
	}
	long before = na_test_rss_kb(d2.pid);
	/* a reader that asks for 2,000 pages of ~4 MiB and reads nothing */
	int fd = na_test_connect_tcp(&d2);
	int one = 1 << 16;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 4);
	msgpack_pack_uint8(&p.pk, 0);
	msgpack_pack_uint32(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "range");
	msgpack_pack_array(&p.pk, 1);
	msgpack_pack_map(&p.pk, 1);
	na_mp_pack_cstr(&p.pk, "limit");
	msgpack_pack_uint32(&p.pk, 1000);
	size_t sent = 0;
	for (int i = 0; i < 2000; i++) {
		ssize_t w = send(fd, p.sb.data, p.sb.size, MSG_NOSIGNAL);
		if (w < 0)
			break; /* the server stopped reading us: that is the point */
		sent += (size_t)w;
	}
	p_free(&p);
	/* others are served meanwhile: ping and a range on another connection */
	msgpack_object err, res;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
		assert_int_equal(na_trpc_call(&t, "count", 0, NULL, &err, &res), 1);
		assert_int_equal(res.via.u64, 1000);
	}
	long after = na_test_rss_kb(d2.pid);
	/* 2,000 x 4 MiB would be 8 GB; the cap is 1 MiB plus one reply */
	if (after - before > 200 * 1024)
		fail_msg("server RSS grew from %ld to %ld kB", before, after);
	close(fd);
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&d2), 0);
}

static void test_dictionary_trained(void **state)
{
	(void)state;
	/* a fresh archive, so the first dictionary is trained during this test */
	na_test_daemon dd;
	memset(&dd, 0, sizeof dd);
	dd.extra[0] = "--train-min";
	dd.extra[1] = "500";
	assert_int_equal(na_test_daemon_start(&dd), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&dd));
	/* keep writing article-like text until a dictionary is in use */
	const char *words[] = { "market", "shares", "company", "said", "percent", "billion",
				"quarter", "profit", "bank", "rates", "trade", "oil", "prices" };
	uint64_t dict = 0;
	for (int round = 0; round < 200 && dict == 0; round++) {
		params p;
		p_init(&p);
		msgpack_pack_array(&p.pk, 100);
		for (int i = 0; i < 100; i++) {
			char g[32], body[600] = "";
			snprintf(g, sizeof g, "dict-%d-%d", round, i);
			for (int w = 0; w < 60; w++) {
				strcat(body, words[(round * 31 + i * 7 + w * 3) % 13]);
				strcat(body, " ");
			}
			na_pack_article(&p.pk, g, 3000000000LL + round * 100 + i, 0, "Dictionary training", body);
		}
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
		dict = na_obj_get(&res, "dictionary")->via.u64;
	}
	assert_true(dict > 0);
	/* the articles stored before the dictionary existed are re-encoded with
	 * it in the background (stats counts them) */
	msgpack_object err0, res0;
	uint64_t recoded = 0;
	for (int i = 0; i < 4000 && recoded == 0; i++) { /* bounded poll */
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err0, &res0), 1);
		recoded = na_obj_get(&res0, "recoded")->via.u64;
		if (!recoded) {
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
	}
	assert_true(recoded > 0);
	/* and the pass is over (it lowers stored_bytes, measured below) */
	bool recoding = true;
	for (int i = 0; i < 4000 && recoding; i++) { /* bounded poll */
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err0, &res0), 1);
		const msgpack_object *r = na_obj_get(&res0, "recoding");
		assert_non_null(r);
		assert_int_equal(r->type, MSGPACK_OBJECT_BOOLEAN);
		recoding = r->via.boolean;
		if (recoding) {
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
	}
	assert_false(recoding);
	/* old records (before the dictionary) and new ones read back */
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, "dict-0-0");
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "get", 1, &p.sb, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	p_free(&p);
	/* re-encoded, not changed: the first article's bytes are as sent */
	{
		char g0[32], body0[600] = "";
		snprintf(g0, sizeof g0, "dict-0-0");
		for (int w = 0; w < 60; w++) {
			strcat(body0, words[(0 * 31 + 0 * 7 + w * 3) % 13]);
			strcat(body0, " ");
		}
		params q0;
		p_init(&q0);
		na_pack_article(&q0.pk, g0, 3000000000LL, 0, "Dictionary training", body0);
		msgpack_sbuffer got;
		msgpack_sbuffer_init(&got);
		msgpack_packer gp;
		msgpack_packer_init(&gp, &got, msgpack_sbuffer_write);
		msgpack_pack_object(&gp, res);
		assert_int_equal(got.size, q0.sb.size);
		assert_memory_equal(got.data, q0.sb.data, got.size);
		msgpack_sbuffer_destroy(&got);
		p_free(&q0);
	}
	/* articles written now are compressed with the dictionary: measure
	 * the ratio of just those, from the byte counters */
	assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
	uint64_t raw0 = na_obj_get(&res, "raw_bytes")->via.u64;
	uint64_t st0 = na_obj_get(&res, "stored_bytes")->via.u64;
	p_init(&p);
	msgpack_pack_array(&p.pk, 100);
	for (int i = 0; i < 100; i++) {
		char g[32], body[600] = "";
		snprintf(g, sizeof g, "dict-after-%d", i);
		for (int w = 0; w < 60; w++) {
			strcat(body, words[(i * 11 + w * 5) % 13]);
			strcat(body, " ");
		}
		na_pack_article(&p.pk, g, 3100000000LL + i, 0, "Dictionary training", body);
	}
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
	uint64_t raw1 = na_obj_get(&res, "raw_bytes")->via.u64;
	uint64_t st1 = na_obj_get(&res, "stored_bytes")->via.u64;
	assert_true(st1 > st0);
	double ratio = (double)(raw1 - raw0) / (double)(st1 - st0);
	if (ratio < 2.0)
		fail_msg("articles compressed with the dictionary: ratio %.2f", ratio);
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&dd), 0);
}

/* A bulk load sent all at once: the first dictionary is trained from the
 * first train_min articles to arrive, and the rest wait for it rather than
 * be stored without it (and re-encoded afterwards). */
static void test_dictionary_before_bulk_load(void **state)
{
	(void)state;
	na_test_daemon dd;
	memset(&dd, 0, sizeof dd);
	dd.extra[0] = "--train-min";
	dd.extra[1] = "300";
	assert_int_equal(na_test_daemon_start(&dd), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&dd));
	const char *words[] = { "harvest", "exports", "tonnes", "wheat", "central", "minister",
				"growth", "figures", "dollar", "yen", "talks", "output", "crude" };
	enum { BATCHES = 40, PER = 100 };
	uint32_t ids[BATCHES];
	for (int b = 0; b < BATCHES; b++) { /* every batch sent before any reply is read */
		params p;
		p_init(&p);
		msgpack_pack_array(&p.pk, PER);
		for (int i = 0; i < PER; i++) {
			char g[32], body[600] = "";
			snprintf(g, sizeof g, "bulk-%d-%d", b, i);
			for (int w = 0; w < 60; w++) {
				strcat(body, words[(b * 17 + i * 5 + w * 7) % 13]);
				strcat(body, " ");
			}
			na_pack_article(&p.pk, g, 3200000000LL + b * PER + i, 0, "Bulk load", body);
		}
		ids[b] = na_trpc_request(&t, "put_batch", 1, &p.sb);
		p_free(&p);
	}
	msgpack_object err, res;
	for (int b = 0; b < BATCHES; b++) {
		assert_int_equal(na_trpc_wait(&t, ids[b], &err, &res), 1);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		assert_int_equal(res.type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(res.via.array.size, PER);
		for (uint32_t i = 0; i < PER; i++)
			assert_true(na_obj_streq(na_obj_get(&res.via.array.ptr[i], "status"), "created"));
	}
	/* wait for the re-encoding of what came before the dictionary to end */
	bool recoding = true;
	uint64_t dict = 0;
	for (int i = 0; i < 4000 && (recoding || dict == 0); i++) { /* bounded poll */
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
		recoding = na_obj_get(&res, "recoding")->via.boolean;
		dict = na_obj_get(&res, "dictionary")->via.u64;
		if (recoding || dict == 0) {
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
	}
	assert_false(recoding);
	assert_int_equal(dict, 1);
	assert_int_equal(na_obj_get(&res, "articles")->via.u64, BATCHES * PER);
	/* only the samples were stored without it: at most train_min re-encoded */
	uint64_t recoded = na_obj_get(&res, "recoded")->via.u64;
	if (recoded > 300)
		fail_msg("%llu of %d articles were stored before the dictionary",
			 (unsigned long long)recoded, BATCHES * PER);
	/* and every article reads back */
	for (int b = 0; b < BATCHES; b += 13) {
		params p;
		p_init(&p);
		char g[32];
		snprintf(g, sizeof g, "bulk-%d-%d", b, b % PER);
		na_mp_pack_cstr(&p.pk, g);
		assert_int_equal(na_trpc_call(&t, "get", 1, &p.sb, &err, &res), 1);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		assert_true(na_obj_streq(na_obj_get(&res, "guid"), g));
		p_free(&p);
	}
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&dd), 0);
}

/* synced_seq in stats: with strict durability every reply follows a sync,
 * so it is seq itself; with relaxed, the syncer thread catches up within
 * about a second, and a clean stop syncs the rest. */
static void put_some(na_trpc *t, const char *prefix, int n, uint64_t *seq)
{
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		char g[48];
		snprintf(g, sizeof g, "%s-%d", prefix, i);
		na_pack_article(&p.pk, g, 3300000000LL + i, 0, "Synced", "text of the article");
	}
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "put_batch", 1, &p.sb, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(res.via.array.size, (uint32_t)n);
	*seq = na_obj_get(&res.via.array.ptr[n - 1], "seq")->via.u64;
	p_free(&p);
}

static uint64_t stat_u64(na_trpc *t, const char *key)
{
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "stats", 0, NULL, &err, &res), 1);
	const msgpack_object *v = na_obj_get(&res, key);
	assert_non_null(v);
	assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return v->via.u64;
}

static void test_synced_seq(void **state)
{
	(void)state;
	/* strict (the shared daemon): synced as soon as acknowledged */
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&D));
	uint64_t seq;
	put_some(&t, "strict-sync", 10, &seq);
	assert_true(stat_u64(&t, "synced_seq") >= seq);
	assert_int_equal(stat_u64(&t, "synced_seq"), stat_u64(&t, "seq"));
	na_trpc_close(&t);

	na_test_daemon dd;
	memset(&dd, 0, sizeof dd);
	dd.extra[0] = "--durability";
	dd.extra[1] = "relaxed";
	assert_int_equal(na_test_daemon_start(&dd), 0);
	na_trpc_init(&t, na_test_connect_tcp(&dd));
	for (int round = 0; round < 3; round++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "relaxed-%d", round);
		put_some(&t, prefix, 50, &seq);
		uint64_t synced = 0;
		for (int i = 0; i < 4000; i++) { /* bounded poll: about a second */
			synced = stat_u64(&t, "synced_seq");
			assert_true(synced <= stat_u64(&t, "seq"));
			if (synced >= seq)
				break;
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
		if (synced < seq)
			fail_msg("relaxed: seq %llu still not synced (synced_seq %llu)",
				 (unsigned long long)seq, (unsigned long long)synced);
	}
	na_trpc_close(&t);
	/* a clean stop keeps everything; after the restart all is synced */
	assert_int_equal(na_test_daemon_stop(&dd), 0);
	assert_int_equal(na_test_daemon_restart(&dd), 0);
	na_trpc_init(&t, na_test_connect_tcp(&dd));
	assert_int_equal(stat_u64(&t, "articles"), 150);
	assert_int_equal(stat_u64(&t, "synced_seq"), stat_u64(&t, "seq"));
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&dd), 0);
}

#define BIG_N 100000

static void pack_big_article(msgpack_packer *pk, int i)
{
	char g[32], title[64], body[400];
	snprintf(g, sizeof g, "big-%06d", i);
	snprintf(title, sizeof title, "Article number %d about topic %d", i, i % 97);
	snprintf(body, sizeof body,
		 "Paragraph for article %d. The committee met on day %d and reported %d items; "
		 "prices moved by %d.%02d percent while volume reached %d lots.",
		 i, i % 365, i * 7 % 1000, i % 13, i % 100, i * 31 % 100000);
	msgpack_pack_map(pk, 7);
	na_mp_pack_cstr(pk, "guid");
	na_mp_pack_cstr(pk, g);
	na_mp_pack_cstr(pk, "published");
	na_mp_pack_ts(pk, (na_ts){ 500000000 + (int64_t)i * 37, (uint32_t)(i % 1000) * 1000000 });
	na_mp_pack_cstr(pk, "title");
	na_mp_pack_cstr(pk, title);
	na_mp_pack_cstr(pk, "body");
	na_mp_pack_cstr(pk, body);
	na_mp_pack_cstr(pk, "tags");
	msgpack_pack_array(pk, 2);
	na_mp_pack_cstr(pk, i % 2 ? "odd" : "even");
	na_mp_pack_cstr(pk, "generated");
	na_mp_pack_cstr(pk, "rank");
	msgpack_pack_int(pk, i);
	na_mp_pack_cstr(pk, "score");
	msgpack_pack_double(pk, i / 3.0);
}

/* literal_compression = no reaches the codec through the config and the
 * store: the same articles take more stored bytes with raw literals, and
 * read back the same. */
static na_test_daemon E[2]; /* two more daemons, stopped by teardown_e */

static int teardown_e(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++)
		if (E[i].dir[0])
			na_test_daemon_cleanup(&E[i]);
	return 0;
}

static uint64_t put_big_batch(na_trpc *t, int n)
{
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, (uint32_t)n);
	for (int i = 0; i < n; i++)
		pack_big_article(&p.pk, i);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "put_batch", 1, &p.sb, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_int_equal(res.via.array.size, (uint32_t)n);
	p_free(&p);
	return stat_u64(t, "stored_bytes");
}

/* The article with this guid, packed again into out (initialised here). */
static void get_packed(na_trpc *t, const char *guid, msgpack_sbuffer *out)
{
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, guid);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "get", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	msgpack_sbuffer_init(out);
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, res);
}

static void test_literal_compression_setting(void **state)
{
	(void)state;
	memset(E, 0, sizeof E);
	for (int i = 0; i < 2; i++) {
		E[i].extra[0] = "--train-min";
		E[i].extra[1] = "500";
		E[i].extra[2] = "--literal-compression";
		E[i].extra[3] = i ? "no" : "yes";
		assert_int_equal(na_test_daemon_start(&E[i]), 0);
	}
	na_trpc a, b;
	na_trpc_init(&a, na_test_connect_tcp(&E[0]));
	na_trpc_init(&b, na_test_connect_tcp(&E[1]));
	uint64_t huf = put_big_batch(&a, 300), raw = put_big_batch(&b, 300);
	assert_true(huf > 0);
	assert_true(raw > huf);
	/* the same bytes come back from both */
	for (int i = 0; i < 300; i += 37) {
		char g[32];
		snprintf(g, sizeof g, "big-%06d", i);
		msgpack_sbuffer ga, gb;
		get_packed(&a, g, &ga);
		get_packed(&b, g, &gb);
		assert_int_equal(ga.size, gb.size);
		assert_memory_equal(ga.data, gb.data, ga.size);
		msgpack_sbuffer_destroy(&ga);
		msgpack_sbuffer_destroy(&gb);
	}
	na_trpc_close(&a);
	na_trpc_close(&b);
	for (int i = 0; i < 2; i++)
		assert_int_equal(na_test_daemon_cleanup(&E[i]), 0);
}

static void test_round_trip_100k(void **state)
{
	(void)state;
	na_trpc t;
	conn(&t);
	/* pipeline all batches, then collect the replies */
	uint32_t ids[100];
	for (int b = 0; b < 100; b++) {
		params p;
		p_init(&p);
		msgpack_pack_array(&p.pk, 1000);
		for (int i = 0; i < 1000; i++)
			pack_big_article(&p.pk, b * 1000 + i);
		ids[b] = na_trpc_request(&t, "put_batch", 1, &p.sb);
		p_free(&p);
	}
	int created = 0;
	for (int b = 0; b < 100; b++) {
		msgpack_object o;
		assert_int_equal(na_trpc_read(&t, &o), 1);
		assert_int_equal(o.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
		bool known = false;
		for (int k = 0; k < 100; k++)
			known |= ids[k] == o.via.array.ptr[1].via.u64;
		assert_true(known);
		msgpack_object *r = &o.via.array.ptr[3];
		for (uint32_t i = 0; i < r->via.array.size; i++) {
			const msgpack_object *it = &r->via.array.ptr[i];
			if (na_obj_streq(na_obj_get(it, "status"), "created")) {
				created++;
				continue;
			}
			const msgpack_object *m = na_obj_get(na_obj_get(it, "error"), "message");
			const msgpack_object *st = na_obj_get(it, "status");
			if (m)
				fail_msg("item %u of a batch: %.*s", i, (int)m->via.str.size, m->via.str.ptr);
			fail_msg("item %u of a batch: status %.*s", i, st ? (int)st->via.str.size : 1,
				 st ? st->via.str.ptr : "?");
		}
	}
	assert_int_equal(created, BIG_N);
	/* read everything back in time order and compare field by field */
	uint8_t cursor[16];
	bool have = false;
	int seen = 0;
	msgpack_sbuffer want;
	msgpack_sbuffer_init(&want);
	for (;;) {
		params p;
		p_init(&p);
		msgpack_pack_map(&p.pk, have ? 4 : 3);
		na_mp_pack_cstr(&p.pk, "from");
		msgpack_pack_int64(&p.pk, 500000000);
		na_mp_pack_cstr(&p.pk, "to");
		msgpack_pack_int64(&p.pk, 500000000 + (int64_t)BIG_N * 37);
		na_mp_pack_cstr(&p.pk, "limit");
		msgpack_pack_int(&p.pk, 1000);
		if (have) {
			na_mp_pack_cstr(&p.pk, "after");
			msgpack_pack_bin(&p.pk, 16);
			msgpack_pack_bin_body(&p.pk, cursor, 16);
		}
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "range", 1, &p.sb, &err, &res), 1);
		p_free(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		const msgpack_object *arts = na_obj_get(&res, "articles");
		for (uint32_t i = 0; i < arts->via.array.size; i++) {
			want.size = 0;
			msgpack_packer wp;
			msgpack_packer_init(&wp, &want, msgpack_sbuffer_write);
			pack_big_article(&wp, seen);
			msgpack_unpacked u;
			msgpack_unpacked_init(&u);
			size_t off = 0;
			assert_int_equal(msgpack_unpack_next(&u, want.data, want.size, &off),
					 MSGPACK_UNPACK_SUCCESS);
			const msgpack_object *a = &arts->via.array.ptr[i];
			assert_int_equal(a->via.map.size, u.data.via.map.size);
			for (uint32_t f = 0; f < a->via.map.size; f++) {
				if (!msgpack_object_equal(a->via.map.ptr[f].key, u.data.via.map.ptr[f].key) ||
				    !msgpack_object_equal(a->via.map.ptr[f].val, u.data.via.map.ptr[f].val))
					fail_msg("article %d field %u differs", seen, f);
			}
			msgpack_unpacked_destroy(&u);
			seen++;
		}
		const msgpack_object *next = na_obj_get(&res, "next");
		if (next->type == MSGPACK_OBJECT_NIL)
			break;
		memcpy(cursor, next->via.bin.ptr, 16);
		have = true;
	}
	msgpack_sbuffer_destroy(&want);
	assert_int_equal(seen, BIG_N);
	na_trpc_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_put_get_update),
		cmocka_unit_test(test_move_and_delete),
		cmocka_unit_test(test_put_batch),
		cmocka_unit_test(test_pipelined_writes_keep_order),
		cmocka_unit_test(test_split_requests),
		cmocka_unit_test(test_range_order_and_paging),
		cmocka_unit_test(test_count_stats),
		cmocka_unit_test(test_bad_msgpack),
		cmocka_unit_test(test_huge_headers),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_too_large_batch_and_article),
		cmocka_unit_test(test_restart_persistence),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_dictionary_trained),
		cmocka_unit_test(test_dictionary_before_bulk_load),
		cmocka_unit_test(test_synced_seq),
		cmocka_unit_test_teardown(test_literal_compression_setting, teardown_e),
		cmocka_unit_test(test_round_trip_100k),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("daemon", tests, setup, teardown);
}
