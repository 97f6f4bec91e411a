/*
 * test_client_uv.c - the libuv adapter against a real newsarchd:
 * pipelined calls, paging, and the exactly-once callback contract on
 * connect failure, close, daemon death and I/O timeout.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "newsarch_uv.h"
#include "testrpc.h"

static na_test_daemon D;

static int start_daemon(void **state)
{
	(void)state;
	memset(&D, 0, sizeof D);
	return na_test_daemon_start(&D) == 0 ? 0 : -1;
}

static int stop_daemon(void **state)
{
	(void)state;
	na_test_daemon_cleanup(&D);
	return 0;
}

static na_article *make_article(const char *guid, int64_t sec, const char *title)
{
	na_article_builder *b;
	na_article *a = NULL;
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", guid, strlen(guid)), 0);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ sec, 0 }), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", title, strlen(title)), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	return a;
}

/* One record per call: how often its callback ran and with what. */
typedef struct call_rec {
	int calls;
	int err;
	na_put_status status;
	uint64_t count;
	char title[32];
} call_rec;

typedef struct conn_rec {
	int calls;
	int status;
} conn_rec;

static void on_connect(na_uv_client *c, int status, const char *msg, void *ud)
{
	(void)c;
	(void)msg;
	conn_rec *r = ud;
	r->calls++;
	r->status = status;
}

static void on_call(na_uv_client *c, const na_uv_reply *r, void *ud)
{
	(void)c;
	call_rec *x = ud;
	x->calls++;
	x->err = r->err;
	if (r->err)
		assert_true(strlen(r->errmsg) > 0);
	x->status = r->put.status;
	x->count = r->count;
	const char *s;
	size_t n;
	if (r->article && na_article_get_title(r->article, &s, &n) == 0)
		snprintf(x->title, sizeof x->title, "%.*s", (int)n, s);
}

/* ---- pipelined calls ------------------------------------------------- */

#define NP 200

static void test_pipelined(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	conn_rec cr = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, D.addr, NULL, on_connect, &cr, &c), 0);
	/* queued before the connection is even made */
	static call_rec puts[NP], gets[NP], cnt, miss, unk;
	memset(puts, 0, sizeof puts);
	memset(gets, 0, sizeof gets);
	memset(&cnt, 0, sizeof cnt);
	memset(&miss, 0, sizeof miss);
	memset(&unk, 0, sizeof unk);
	char guid[32];
	for (int i = 0; i < NP; i++) {
		snprintf(guid, sizeof guid, "uv-%d", i);
		na_article *a = make_article(guid, 1700000000 + i, guid);
		assert_int_equal(na_uv_put(c, a, on_call, &puts[i]), 0);
		na_article_free(a); /* copied by the call */
	}
	assert_int_equal(na_uv_pending(c), NP);
	while (na_uv_pending(c) > 0)
		uv_run(&loop, UV_RUN_ONCE);
	/* then the reads, also pipelined: a get may overtake a put that waits
	 * for its fsync, so they only start once every put was answered */
	for (int i = 0; i < NP; i++) {
		snprintf(guid, sizeof guid, "uv-%d", i);
		assert_int_equal(na_uv_get(c, guid, strlen(guid), NULL, 0, on_call, &gets[i]), 0);
	}
	na_time from = { 1700000000, 0 }, to = { 1700000000 + NP, 0 };
	assert_int_equal(na_uv_count(c, &from, &to, on_call, &cnt), 0);
	assert_int_equal(na_uv_get(c, "uv-missing", 10, NULL, 0, on_call, &miss), 0);
	assert_int_equal(na_uv_call_raw(c, "nope", NULL, 0, on_call, &unk), 0);
	assert_int_equal(na_uv_pending(c), NP + 3);
	while (na_uv_pending(c) > 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(cr.calls, 1);
	assert_int_equal(cr.status, 0);
	for (int i = 0; i < NP; i++) {
		snprintf(guid, sizeof guid, "uv-%d", i);
		assert_int_equal(puts[i].calls, 1);
		assert_int_equal(puts[i].err, 0);
		assert_int_equal(puts[i].status, NA_PUT_CREATED);
		assert_int_equal(gets[i].calls, 1);
		assert_int_equal(gets[i].err, 0);
		assert_string_equal(gets[i].title, guid);
	}
	assert_int_equal(cnt.calls, 1);
	assert_int_equal(cnt.count, NP);
	assert_int_equal(miss.err, NA_ENOTFOUND);
	assert_int_equal(unk.err, NA_EUNKNOWNMETHOD);
	na_uv_client_close(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	for (int i = 0; i < NP; i++)
		assert_int_equal(puts[i].calls + gets[i].calls, 2);
	assert_int_equal(cr.calls, 1);
}

/* ---- paging with the cursor ------------------------------------------ */

typedef struct pager {
	na_range_opts opts;
	na_time from, to;
	int seen, pages, err;
	bool done;
} pager;

static void on_page(na_uv_client *c, const na_uv_reply *r, void *ud)
{
	pager *p = ud;
	p->pages++;
	if (r->err) {
		p->err = r->err;
		p->done = true;
		na_uv_client_close(c);
		return;
	}
	for (size_t i = 0; i < r->narticles; i++) {
		char want[32];
		const char *s;
		size_t n;
		snprintf(want, sizeof want, "uv-%d", p->seen);
		assert_int_equal(na_article_get_guid(r->articles[i], &s, &n), 0);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(s, want, n);
		p->seen++;
	}
	if (r->next.len == 0) {
		p->done = true;
		na_uv_client_close(c); /* closing from a callback */
		return;
	}
	assert_int_equal(na_uv_range_page(c, &p->opts, &r->next, on_page, p), 0);
}

static void test_range_pages(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	conn_rec cr = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, D.uaddr, NULL, on_connect, &cr, &c), 0);
	pager p = { .from = { 1700000000, 0 }, .to = { 1700000000 + NP, 0 } };
	p.opts = (na_range_opts){ .from = &p.from, .to = &p.to, .page_size = 30 };
	assert_int_equal(na_uv_range_page(c, &p.opts, NULL, on_page, &p), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_true(p.done);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.seen, NP);
	assert_true(p.pages >= (NP + 29) / 30);
	assert_int_equal(cr.calls, 1);
}

/* ---- exactly once on failures ----------------------------------------- */

static void test_connect_refused(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	conn_rec cr = { 0 };
	call_rec r[3] = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, addr, NULL, on_connect, &cr, &c), 0);
	assert_int_equal(na_uv_ping(c, on_call, &r[0]), 0);
	assert_int_equal(na_uv_stats(c, on_call, &r[1]), 0);
	while (cr.calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(cr.status, NA_ECONN);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ECONN);
	}
	assert_int_equal(na_uv_ping(c, on_call, &r[2]), NA_ECONN); /* not queued */
	na_uv_client_close(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(cr.calls, 1);
	assert_int_equal(r[0].calls + r[1].calls + r[2].calls, 2);
	/* bad address: refused at once, no callback */
	assert_int_equal(na_uv_client_connect(&loop, "nonsense", NULL, on_connect, &cr, &c),
			 NA_EINVAL);
}

static void test_close_with_pending(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	conn_rec cr = { 0 };
	call_rec r[3] = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, D.addr, NULL, on_connect, &cr, &c), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(na_uv_ping(c, on_call, &r[i]), 0);
	na_uv_client_close(c); /* before the loop ever ran */
	assert_int_equal(cr.calls, 1);
	assert_int_equal(cr.status, NA_ECLOSED);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ECLOSED);
	}
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(cr.calls, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r[i].calls, 1);
}

/* The daemon is stopped, so it cannot answer; it is killed as soon as the
 * client is connected, with the calls pending. */
typedef struct killer {
	na_test_daemon *d;
	conn_rec cr;
} killer;

static void on_connect_kill(na_uv_client *c, int status, const char *msg, void *ud)
{
	killer *k = ud;
	on_connect(c, status, msg, &k->cr);
	na_test_daemon_kill(k->d);
}

static void test_daemon_killed(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	assert_int_equal(na_test_daemon_start(&d), 0);
	assert_int_equal(kill(d.pid, SIGSTOP), 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	killer k = { .d = &d };
	call_rec r[10] = { 0 };
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 20000; /* a hang would show as NA_ETIMEDOUT */
	assert_int_equal(na_uv_client_connect(&loop, d.addr, &o, on_connect_kill, &k, &c), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(na_uv_count(c, NULL, NULL, on_call, &r[i]), 0);
	while (na_uv_pending(c) > 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(k.cr.calls, 1);
	assert_int_equal(k.cr.status, 0);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ECONN);
	}
	na_uv_client_close(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(r[i].calls, 1);
	na_test_daemon_cleanup(&d);
}

static void test_io_timeout(void **state)
{
	(void)state;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(lfd, 4), 0); /* never accepted, never answered */
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 150;
	na_uv_client *c;
	conn_rec cr = { 0 };
	call_rec r[2] = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, addr, &o, on_connect, &cr, &c), 0);
	assert_int_equal(na_uv_ping(c, on_call, &r[0]), 0);
	assert_int_equal(na_uv_ping(c, on_call, &r[1]), 0);
	uint64_t t0 = uv_now(&loop);
	while (na_uv_pending(c) > 0)
		uv_run(&loop, UV_RUN_ONCE);
	uv_update_time(&loop);
	assert_true(uv_now(&loop) - t0 >= 150);
	assert_int_equal(cr.status, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, NA_ETIMEDOUT);
	}
	na_uv_client_close(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	close(lfd);
}

/* A loopback address with nothing listening on it. */
static void dead_addr(char *addr, size_t n)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	snprintf(addr, n, "127.0.0.1:%d", ntohs(a.sin_port));
}

/* The connect callback queues a call on the client whose connect failed:
 * it must be refused (or, if accepted, answered) - never lost. */
typedef struct requeue {
	conn_rec cr;
	call_rec call;
	int rc;
} requeue;

static void on_connect_requeue(na_uv_client *c, int status, const char *msg, void *ud)
{
	requeue *q = ud;
	on_connect(c, status, msg, &q->cr);
	q->rc = na_uv_ping(c, on_call, &q->call);
}

static void test_call_from_failed_connect(void **state)
{
	(void)state;
	char addr[64];
	dead_addr(addr, sizeof addr);
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	requeue q = { .rc = 1 };
	assert_int_equal(na_uv_client_connect(&loop, addr, NULL, on_connect_requeue, &q, &c), 0);
	while (q.cr.calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(q.cr.status, NA_ECONN);
	assert_int_equal(q.rc, NA_ECONN);
	na_uv_client_close(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(q.call.calls, 0);
}

/* libuv cannot even start the connect (no file descriptor left, with the
 * limit lowered to what is open): the call returns NA_ECONN, the callback
 * never runs, and the loop frees what was made. */
static void test_connect_sync_failure(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	int fd = open("/dev/null", O_RDONLY); /* the lowest free descriptor */
	assert_true(fd >= 0);
	close(fd);
	struct rlimit old, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	conn_rec cr = { 0 };
	na_uv_client *c = NULL;
	int rc = na_uv_client_connect(&loop, "127.0.0.1:7411", NULL, on_connect, &cr, &c);
	int calls = cr.calls; /* from inside na_uv_client_connect */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(calls, 0);
	assert_int_equal(rc, NA_ECONN);
	assert_null(c);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(cr.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A fake server on the listening socket *arg: accepts one connection and
 * answers range request i with a page of 1000 articles and a cursor
 * (i == 0), else 1001 and the end. */
static void *page_server(void *arg)
{
	int fd = accept(*(int *)arg, NULL, NULL);
	if (fd < 0)
		return NULL;
	na_trpc t;
	na_trpc_init(&t, fd);
	msgpack_object m;
	for (int i = 0; na_trpc_read(&t, &m) == 1; i++) {
		if (m.type != MSGPACK_OBJECT_ARRAY || m.via.array.size != 4)
			break;
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, 1);
		msgpack_pack_uint32(&pk, (uint32_t)m.via.array.ptr[1].via.u64);
		msgpack_pack_nil(&pk);
		msgpack_pack_map(&pk, 2);
		msgpack_pack_str_with_body(&pk, "articles", 8);
		uint32_t n = i == 0 ? 1000 : 1001;
		msgpack_pack_array(&pk, n);
		for (uint32_t k = 0; k < n; k++)
			msgpack_pack_map(&pk, 0); /* one byte each */
		msgpack_pack_str_with_body(&pk, "next", 4);
		if (i == 0) {
			msgpack_pack_bin(&pk, 16);
			msgpack_pack_bin_body(&pk, "cccccccccccccccc", 16);
		} else {
			msgpack_pack_nil(&pk);
		}
		int rc = na_trpc_send(&t, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		if (rc)
			break;
	}
	na_trpc_close(&t);
	return NULL;
}

typedef struct page_rec {
	int calls[2];
	int err[2];
	size_t n[2];
	na_cursor next;
} page_rec;

static void on_page_rec(na_uv_client *c, const na_uv_reply *r, void *ud)
{
	page_rec *p = ud;
	int i = p->calls[0] ? 1 : 0;
	p->calls[i]++;
	p->err[i] = r->err;
	p->n[i] = r->err ? 0 : r->narticles;
	if (i == 0 && r->err == 0) {
		p->next = r->next;
		assert_int_equal(na_uv_range_page(c, NULL, &p->next, on_page_rec, p), 0);
	} else {
		na_uv_client_close(c);
	}
}

static void test_range_page_limit(void **state)
{
	(void)state;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, page_server, &lfd), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_uv_client *c;
	conn_rec cr = { 0 };
	page_rec p = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, addr, NULL, on_connect, &cr, &c), 0);
	assert_int_equal(na_uv_range_page(c, NULL, NULL, on_page_rec, &p), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	pthread_join(th, NULL);
	close(lfd);
	assert_int_equal(p.calls[0], 1);
	assert_int_equal(p.err[0], 0);
	assert_int_equal(p.n[0], 1000);
	assert_int_equal(p.calls[1], 1);
	assert_int_equal(p.err[1], NA_EPROTO);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_range_pages),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_close_with_pending),
		cmocka_unit_test(test_daemon_killed),
		cmocka_unit_test(test_io_timeout),
		cmocka_unit_test(test_call_from_failed_connect),
		cmocka_unit_test(test_connect_sync_failure),
		cmocka_unit_test(test_range_page_limit),
	};
	return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
