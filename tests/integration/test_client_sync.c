/*
 * test_client_sync.c - the synchronous libnewsarch API against a real
 * newsarchd (tests/support/daemon.h), plus fake servers on loopback for
 * the failures a real daemon does not produce on demand.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "daemon.h"
#include "newsarch.h"
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

static na_client *connect_ok(const char *addr)
{
	na_client *c = NULL;
	char err[256];
	int rc = na_client_connect_ex(addr, NULL, &c, err, sizeof err);
	if (rc)
		fail_msg("connect %s: %s (%s)", addr, na_strerror(rc), err);
	return c;
}

static na_article *make_article(const char *guid, int64_t sec, uint32_t nsec, const char *title)
{
	na_article_builder *b;
	na_article *a = NULL;
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", guid, strlen(guid)), 0);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ sec, nsec }), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", title, strlen(title)), 0);
	assert_int_equal(na_article_builder_set_str(b, "body", "body text", 9), 0);
	assert_int_equal(na_article_builder_add_tag(b, "t", 1), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	return a;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback port with nothing listening on it. */
static int dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A listening loopback socket; its port in *port. */
static int listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* ---- connecting ----------------------------------------------------- */

static void test_connect_failures(void **state)
{
	(void)state;
	na_client *c = NULL;
	char addr[400], err[256];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", dead_port());
	assert_int_equal(na_client_connect_ex(addr, NULL, &c, err, sizeof err), NA_ECONN);
	assert_null(c);
	assert_non_null(strstr(err, "refused"));
	snprintf(addr, sizeof addr, "unix:%s/no-such.sock", D.dir);
	assert_int_equal(na_client_connect_ex(addr, NULL, &c, err, sizeof err), NA_ECONN);
	assert_null(c);
	static const char *const bad[] = { "localhost", "127.0.0.1:", "127.0.0.1:0",
					   "127.0.0.1:65536", "[::1", "[::1]7411", "::1:7411",
					   "unix:", ":7411", "127.0.0.1:7x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(na_client_connect_ex(bad[i], NULL, &c, err, sizeof err), NA_EINVAL);
		assert_true(strlen(err) > 0);
	}
	assert_null(c);
	assert_int_equal(na_client_connect("no-such-host.invalid:7411", NULL, &c), NA_ECONN);
	assert_null(c);
}

static void test_ping_tcp_unix(void **state)
{
	(void)state;
	char v6[64];
	na_client *c = connect_ok(D.addr);
	assert_int_equal(na_ping(c), 0);
	assert_string_equal(na_client_errmsg(c), "");
	na_client_close(c);
	c = connect_ok(D.uaddr);
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
	/* "localhost:port" goes through the resolver */
	snprintf(v6, sizeof v6, "localhost:%d", D.port);
	c = connect_ok(v6);
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
}

/* ---- put / get / delete / count ------------------------------------- */

static void test_put_get_delete(void **state)
{
	(void)state;
	na_client *c = connect_ok(D.addr);
	na_article *a = make_article("pgd-1", 1600000000, 123456789, "first");
	na_put_result r1, r2, r3;
	assert_int_equal(na_put(c, a, &r1), 0);
	assert_int_equal(r1.status, NA_PUT_CREATED);
	assert_int_equal(r1.err, 0);
	assert_true(r1.seq > 0);
	assert_int_equal(na_put(c, a, &r2), 0);
	assert_int_equal(r2.status, NA_PUT_UNCHANGED);
	assert_int_equal(r2.seq, r1.seq);
	na_article *a2 = make_article("pgd-1", 1600000001, 0, "second");
	assert_int_equal(na_put(c, a2, &r3), 0);
	assert_int_equal(r3.status, NA_PUT_UPDATED);
	assert_true(r3.seq > r1.seq);

	/* get returns exactly the bytes stored */
	na_article *g = NULL;
	assert_int_equal(na_get(c, "pgd-1", 5, NULL, 0, &g), 0);
	const uint8_t *gb, *ab;
	size_t gl, al;
	na_article_bytes(g, &gb, &gl);
	na_article_bytes(a2, &ab, &al);
	assert_int_equal(gl, al);
	assert_memory_equal(gb, ab, al);
	na_time t;
	assert_int_equal(na_article_get_published(g, &t), 0);
	assert_int_equal(t.sec, 1600000001);
	na_article_free(g);

	/* with fields: only those that exist, in stored order */
	const char *const fields[] = { "title", "nope", "guid" };
	assert_int_equal(na_get(c, "pgd-1", 5, fields, 3, &g), 0);
	assert_int_equal(na_article_field_count(g), 2);
	na_field f;
	assert_int_equal(na_article_get_field(g, 0, &f), 0);
	assert_memory_equal(f.name, "guid", 4);
	const char *s;
	size_t n;
	assert_int_equal(na_article_get_title(g, &s, &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(s, "second", 6);
	assert_int_equal(na_article_get_body(g, &s, &n), NA_ENOFIELD);
	na_article_free(g);

	int deleted = -1;
	uint64_t seq = 0;
	assert_int_equal(na_delete(c, "pgd-1", 5, &deleted, &seq), 0);
	assert_int_equal(deleted, 1);
	assert_true(seq > r3.seq);
	assert_int_equal(na_delete(c, "pgd-1", 5, &deleted, &seq), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(seq, 0);
	g = (na_article *)1;
	assert_int_equal(na_get(c, "pgd-1", 5, NULL, 0, &g), NA_ENOTFOUND);
	assert_ptr_equal(g, (na_article *)1);
	assert_true(strlen(na_client_errmsg(c)) > 0);
	/* local argument checks */
	assert_int_equal(na_get(c, "", 0, NULL, 0, &g), NA_EINVAL);
	assert_int_equal(na_put(c, NULL, NULL), NA_EINVAL);
	assert_int_equal(na_ping(c), 0);
	na_article_free(a);
	na_article_free(a2);
	na_client_close(c);
}

static void test_put_batch(void **state)
{
	(void)state;
	na_client *c = connect_ok(D.uaddr);
	na_article *as[4];
	as[0] = make_article("batch-1", 1500000000, 0, "one");
	/* no title: the server refuses this item only */
	static const uint8_t notitle[] = "\x82\xa4guid\xa7" "batch-x\xa9published\xd6\xff\x59\x68\x2f\x00";
	assert_int_equal(na_article_parse(notitle, sizeof notitle - 1, &as[1]), 0);
	as[2] = make_article("batch-2", 1500000001, 0, "two");
	as[3] = make_article("batch-1", 1500000002, 0, "one again"); /* same guid: later wins */
	na_put_result res[4];
	assert_int_equal(na_put_batch(c, (const na_article *const *)as, 4, res), 0);
	assert_int_equal(res[0].err, 0);
	assert_int_equal(res[0].status, NA_PUT_CREATED);
	assert_int_equal(res[1].err, NA_EBADREQ);
	assert_non_null(strstr(res[1].errmsg, "title"));
	assert_int_equal(res[2].err, 0);
	assert_int_equal(res[2].status, NA_PUT_CREATED);
	assert_int_equal(res[3].err, 0);
	assert_int_equal(res[3].status, NA_PUT_UPDATED);
	assert_true(res[3].seq > res[0].seq);
	na_article *g;
	assert_int_equal(na_get(c, "batch-1", 7, NULL, 0, &g), 0);
	const char *s;
	size_t n;
	assert_int_equal(na_article_get_title(g, &s, &n), 0);
	assert_int_equal(n, 9);
	na_article_free(g);
	assert_int_equal(na_get(c, "batch-x", 7, NULL, 0, &g), NA_ENOTFOUND);
	assert_int_equal(na_put_batch(c, (const na_article *const *)as, 0, res), NA_EINVAL);
	for (int i = 0; i < 4; i++)
		na_article_free(as[i]);
	na_client_close(c);
}

/* ---- server errors on demand ---------------------------------------- */

static void test_server_errors(void **state)
{
	(void)state;
	na_client *c = connect_ok(D.addr);
	/* BAD_REQUEST: an article without a title */
	na_article *a;
	static const uint8_t notitle[] = "\x82\xa4guid\xa2" "bx\xa9published\xd6\xff\x59\x68\x2f\x00";
	assert_int_equal(na_article_parse(notitle, sizeof notitle - 1, &a), 0);
	assert_int_equal(na_put(c, a, NULL), NA_EBADREQ);
	assert_non_null(strstr(na_client_errmsg(c), "title"));
	na_article_free(a);
	/* BAD_REQUEST through the raw call: params of the wrong type */
	assert_int_equal(na_call_raw(c, "get", "\x91\x01", 2, NULL, NULL), NA_EBADREQ);
	/* NOT_FOUND */
	na_article *g;
	assert_int_equal(na_get(c, "missing", 7, NULL, 0, &g), NA_ENOTFOUND);
	/* UNKNOWN_METHOD, and its message names it */
	assert_int_equal(na_call_raw(c, "no_such_method", NULL, 0, NULL, NULL), NA_EUNKNOWNMETHOD);
	assert_non_null(strstr(na_client_errmsg(c), "no_such_method"));
	/* TOO_LARGE: a range page above 1000 */
	na_range *it;
	const na_article *x;
	na_range_opts o = { .page_size = 1001 };
	assert_int_equal(na_range_open(c, &o, &it), 0);
	assert_int_equal(na_range_next(it, &x), NA_ETOOLARGE);
	assert_int_equal(na_range_next(it, &x), NA_ETOOLARGE); /* sticky */
	na_range_close(it);
	/* TOO_LARGE: too many fields sent raw (the typed API refuses > 64) */
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, "g", 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "fields", 6);
	msgpack_pack_array(&pk, 65);
	for (int i = 0; i < 65; i++)
		msgpack_pack_str_with_body(&pk, "f", 1);
	assert_int_equal(na_call_raw(c, "get", sb.data, sb.size, NULL, NULL), NA_ETOOLARGE);
	msgpack_sbuffer_destroy(&sb);
	const char *many[65];
	for (int i = 0; i < 65; i++)
		many[i] = "f";
	assert_int_equal(na_get(c, "g", 1, many, 65, &g), NA_EINVAL);
	/* the connection survives all of that */
	const uint8_t *res;
	size_t rl;
	assert_int_equal(na_call_raw(c, "ping", NULL, 0, &res, &rl), 0);
	assert_int_equal(rl, 5);
	assert_memory_equal(res, "\xa4pong", 5);
	assert_int_equal(na_call_raw(c, "ping", "\x01", 1, &res, &rl), NA_EINVAL);
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
}


/* The server codes that need a particular server to produce: READONLY from a
 * follower, TIMEOUT from a bounded wait, NO_SPACE from a full archive. */
static void test_server_errors_situational(void **state)
{
	(void)state;
	/* READONLY, naming the primary */
	na_test_daemon f;
	memset(&f, 0, sizeof f);
	f.extra[0] = "--follow";
	f.extra[1] = D.addr;
	assert_int_equal(na_test_daemon_start(&f), 0);
	na_client *c = connect_ok(f.addr);
	na_article *a = make_article("ro-1", 1000, 0, "read only");
	assert_int_equal(na_put(c, a, NULL), NA_EREADONLY);
	assert_non_null(strstr(na_client_errmsg(c), D.addr));
	na_article_free(a);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&f), 0);

	/* TIMEOUT: wait for a sequence number that never comes */
	c = connect_ok(D.addr);
	static const uint8_t wait_params[] = "\x92\xa1x\x82\xa7min_seq\xcf\x00\x00\x01\x00\x00\x00\x00\x00"
					      "\xaatimeout_ms\x32";
	assert_int_equal(na_call_raw(c, "get", wait_params, sizeof wait_params - 1, NULL, NULL),
			 NA_ETIMEOUT);
	assert_non_null(strstr(na_client_errmsg(c), "min_seq"));
	na_client_close(c);

	/* NO_SPACE: a map that may not grow past 2 MiB */
	na_test_daemon n;
	memset(&n, 0, sizeof n);
	n.extra[0] = "--map-size";
	n.extra[1] = "1M";
	n.extra[2] = "--max-map-size";
	n.extra[3] = "2M";
	assert_int_equal(na_test_daemon_start(&n), 0);
	c = connect_ok(n.addr);
	int rc = 0;
	char body[8192];
	uint64_t x = 88172645463325252ULL; /* xorshift: text that compresses poorly */
	body[sizeof body - 1] = 0;
	for (int i = 0; i < 2000 && rc == 0; i++) {
		char g[32];
		snprintf(g, sizeof g, "full-%d", i);
		na_article_builder *b;
		assert_int_equal(na_article_builder_new(&b), 0);
		na_article_builder_set_str(b, "guid", g, strlen(g));
		na_article_builder_set_time(b, "published", (na_time){ 1000 + i, 0 });
		na_article_builder_set_str(b, "title", "full", 4);
		for (size_t k = 0; k < sizeof body - 1; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			body[k] = (char)('a' + x % 26);
		}
		na_article_builder_set_str(b, "body", body, strlen(body));
		assert_int_equal(na_article_builder_finish(b, &a), 0);
		na_article_builder_free(b);
		rc = na_put(c, a, NULL);
		na_article_free(a);
	}
	assert_int_equal(rc, NA_ENOSPACE);
	/* reads keep working */
	assert_int_equal(na_get(c, "full-0", 6, NULL, 0, &a), 0);
	na_article_free(a);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&n), 0);
}

/* ---- range ---------------------------------------------------------- */

#define RN 2500
#define RBASE 1000000000LL

static void test_range_many_pages(void **state)
{
	(void)state;
	na_client *c = connect_ok(D.addr);
	/* articles i at RBASE + i/2 seconds (two per second, nsec apart),
	 * stored in a scrambled order */
	na_article **as = calloc(RN, sizeof *as);
	char guid[32];
	for (int i = 0; i < RN; i++) {
		int j = (int)(((long)i * 7919) % RN);
		snprintf(guid, sizeof guid, "r-%05d", j);
		as[i] = make_article(guid, RBASE + j / 2, (uint32_t)(j % 2) * 1000, guid);
	}
	na_put_result *res = calloc(RN, sizeof *res);
	assert_int_equal(na_put_batch(c, (const na_article *const *)as, RN, res), 0);
	for (int i = 0; i < RN; i++) {
		assert_int_equal(res[i].err, 0);
		na_article_free(as[i]);
	}
	free(as);
	free(res);

	na_time from = { RBASE, 0 }, to = { RBASE + RN, 0 };
	uint64_t cnt;
	assert_int_equal(na_count(c, &from, &to, &cnt), 0);
	assert_int_equal(cnt, RN);

	na_server_stats *st0, *st1;
	assert_int_equal(na_stats(c, &st0), 0);

	/* forward, 100 per page */
	na_range *it;
	na_range_opts o = { .from = &from, .to = &to, .page_size = 100 };
	assert_int_equal(na_range_open(c, &o, &it), 0);
	const na_article *x;
	int i = 0, rc;
	while ((rc = na_range_next(it, &x)) == 1) {
		const char *s;
		size_t n;
		snprintf(guid, sizeof guid, "r-%05d", i);
		assert_int_equal(na_article_get_guid(x, &s, &n), 0);
		assert_int_equal(n, strlen(guid));
		assert_memory_equal(s, guid, n);
		na_time t;
		assert_int_equal(na_article_get_published(x, &t), 0);
		assert_int_equal(t.sec, RBASE + i / 2);
		assert_int_equal(t.nsec, (uint32_t)(i % 2) * 1000);
		i++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, RN);
	assert_int_equal(na_range_next(it, &x), 0);
	na_range_close(it);
	assert_int_equal(na_stats(c, &st1), 0);
	/* 25 pages at least: the iterator did follow the cursor */
	assert_true(st1->requests - st0->requests >= 25 + 1);
	na_server_stats_free(st0);
	na_server_stats_free(st1);

	/* reverse, sub-range [RBASE+100, RBASE+200), projected */
	na_time f2 = { RBASE + 100, 0 }, t2 = { RBASE + 200, 0 };
	const char *const fields[] = { "guid" };
	na_range_opts o2 = { .from = &f2, .to = &t2, .page_size = 7, .reverse = true,
			     .fields = fields, .nfields = 1 };
	assert_int_equal(na_range_open(c, &o2, &it), 0);
	i = 399;
	while ((rc = na_range_next(it, &x)) == 1) {
		const char *s;
		size_t n;
		snprintf(guid, sizeof guid, "r-%05d", i);
		assert_int_equal(na_article_field_count(x), 1);
		assert_int_equal(na_article_get_guid(x, &s, &n), 0);
		assert_memory_equal(s, guid, n);
		i--;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, 199);
	na_range_close(it);
	assert_int_equal(na_count(c, &f2, &t2, &cnt), 0);
	assert_int_equal(cnt, 200);
	assert_int_equal(na_count(c, NULL, &f2, &cnt), 0);
	assert_int_equal(cnt, 200);

	/* an empty range ends at once */
	na_time f3 = { RBASE - 10, 0 }, t3 = { RBASE - 5, 0 };
	na_range_opts o3 = { .from = &f3, .to = &t3 };
	assert_int_equal(na_range_open(c, &o3, &it), 0);
	assert_int_equal(na_range_next(it, &x), 0);
	na_range_close(it);
	na_client_close(c);
}

static void test_stats(void **state)
{
	(void)state;
	na_client *c = connect_ok(D.addr);
	uint64_t all;
	assert_int_equal(na_count(c, NULL, NULL, &all), 0);
	na_server_stats *st;
	assert_int_equal(na_stats(c, &st), 0);
	assert_int_equal(st->articles, all);
	assert_int_equal(st->role_len, 7);
	assert_memory_equal(st->role, "primary", 7);
	assert_true(st->version_len > 0);
	assert_true(st->connections >= 1);
	assert_true(st->map_size > 0);
	const uint8_t *v;
	size_t vl;
	assert_int_equal(na_server_stats_find(st, "uptime", &v, &vl), 0);
	assert_true(vl >= 1);
	assert_int_equal(na_server_stats_find(st, "no-such-key", &v, &vl), NA_ENOFIELD);
	na_server_stats_free(st);
	na_client_close(c);
}

/* ---- failures ------------------------------------------------------- */

static void test_io_timeout(void **state)
{
	(void)state;
	int port, lfd = listener(&port); /* accepts (in the kernel), never answers */
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 200;
	na_client *c = NULL;
	assert_int_equal(na_client_connect(addr, &o, &c), 0);
	int64_t t0 = now_ms();
	assert_int_equal(na_ping(c), NA_ETIMEDOUT);
	int64_t dt = now_ms() - t0;
	assert_true(dt >= 200);
	assert_true(dt < 5000);
	assert_non_null(strstr(na_client_errmsg(c), "200 ms"));
	/* the connection stays usable: the next call times out the same way */
	assert_int_equal(na_count(c, NULL, NULL, &(uint64_t){ 0 }), NA_ETIMEDOUT);
	na_client_close(c);
	close(lfd);
}

/* A fake server: accepts one connection, reads one request, answers with
 * the given bytes, then waits for the client to go away. */
typedef struct fake {
	int lfd;
	const void *reply;
	size_t len;
	bool hangup; /* close the sending side after the reply */
} fake;

static void *fake_server(void *arg)
{
	fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[4096];
	if (read(fd, buf, sizeof buf) > 0 && write(fd, f->reply, f->len) < 0)
		perror("fake server write");
	if (f->hangup)
		shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof buf) > 0)
		;
	close(fd);
	return NULL;
}

/* dead: whether the connection must be dead afterwards */
static void check_fake(const void *reply, size_t len, int want, bool dead)
{
	int port;
	fake f = { .lfd = listener(&port), .reply = reply, .len = len, .hangup = dead };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fake_server, &f), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = dead ? 5000 : 500;
	na_client *c = NULL;
	assert_int_equal(na_client_connect(addr, &o, &c), 0);
	int rc = na_ping(c);
	if (rc != want)
		fail_msg("reply %02x.. of %zu bytes: got %d (%s), want %d", ((const uint8_t *)reply)[2], len, rc, na_client_errmsg(c), want);
	assert_true(strlen(na_client_errmsg(c)) > 0);
	if (dead) { /* fails fast with the same code */
		assert_int_equal(na_ping(c), want);
		assert_non_null(strstr(na_client_errmsg(c), "earlier"));
	} else { /* one bad result: the stream itself is fine */
		assert_int_equal(na_count(c, NULL, NULL, &(uint64_t){ 0 }), NA_ETIMEDOUT);
	}
	na_client_close(c);
	pthread_join(th, NULL);
	close(f.lfd);
}

#define FAKE(lit, want, dead) check_fake(lit, sizeof lit - 1, want, dead)

static void test_bad_replies(void **state)
{
	(void)state;
	FAKE("\xc1", NA_EPROTO, true); /* not msgpack */
	FAKE("\x94\x01\x09\xc0\xa4pong", NA_EPROTO, true); /* unknown msgid */
	FAKE("\x94\x01\x01\xc0\xdb\x7f\xff\xff\xff", NA_EPROTO, true); /* 2 GiB string */
	FAKE("\x94\x01\x01", NA_ECONN, true); /* cut short */
	FAKE("\x94\x01\x01\xc0\xa4pang", NA_EPROTO, false); /* wrong result */
}

/* A server that, once the request arrived, never stops sending
 * notifications [2, "x", []]: the call must still end at io_timeout_ms.
 * A server thread cannot be relied on to keep ahead of the client on a busy
 * machine, so while flood_until (now_ms) lies ahead recv never runs dry:
 * when the socket has nothing, it hands out notifications instead. */
static _Atomic int64_t flood_until;

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	static ssize_t (*real)(int, void *, size_t, int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "recv");
	ssize_t r = real(fd, buf, n, flags);
	if (r < 0 && errno == EAGAIN && n >= 5 && now_ms() < flood_until) {
		for (r = 0; (size_t)r + 5 <= n; r += 5)
			memcpy((char *)buf + r, "\x93\x02\xa1x\x90", 5);
	}
	return r;
}

static void test_io_timeout_flood(void **state)
{
	(void)state;
	int port;
	/* the first notification makes the socket readable */
	fake f = { .lfd = listener(&port), .reply = "\x93\x02\xa1x\x90", .len = 5 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fake_server, &f), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 200;
	na_client *c = NULL;
	assert_int_equal(na_client_connect(addr, &o, &c), 0);
	int64_t t0 = now_ms();
	flood_until = t0 + 5000; /* a client that ignores its deadline ends here */
	int rc = na_ping(c);
	int64_t dt = now_ms() - t0;
	flood_until = 0;
	na_client_close(c);
	pthread_join(th, NULL);
	close(f.lfd);
	assert_int_equal(rc, NA_ETIMEDOUT);
	assert_true(dt >= 200);
	assert_true(dt < 2500);
}

/* A scripted server: accepts one connection and answers request i (from
 * 0) with whatever reply() packs as its result, for at most `limit`
 * requests; then it stays silent until the client goes away. */
typedef struct scripted {
	int lfd;
	int limit;
	void (*reply)(msgpack_packer *pk, int i);
	_Atomic int served;
} scripted;

static void *scripted_server(void *arg)
{
	scripted *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	na_trpc t;
	na_trpc_init(&t, fd);
	msgpack_object m;
	while (na_trpc_read(&t, &m) == 1 && s->served < s->limit) {
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
		s->reply(&pk, s->served++);
		int rc = na_trpc_send(&t, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		if (rc)
			break;
	}
	while (na_trpc_read(&t, &m) == 1)
		;
	na_trpc_close(&t);
	return NULL;
}

static na_client *scripted_start(scripted *s, pthread_t *th)
{
	int port;
	s->lfd = listener(&port);
	assert_int_equal(pthread_create(th, NULL, scripted_server, s), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 2000; /* a client that keeps asking ends here */
	na_client *c = NULL;
	assert_int_equal(na_client_connect(addr, &o, &c), 0);
	return c;
}

static void scripted_stop(scripted *s, na_client *c, pthread_t th)
{
	na_client_close(c);
	pthread_join(th, NULL);
	close(s->lfd);
}

/* {"articles": [{} x n], "next": cursor (len 16, every byte b) or nil} */
static void pack_page(msgpack_packer *pk, uint32_t n, int b)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "articles", 8);
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_map(pk, 0);
	msgpack_pack_str_with_body(pk, "next", 4);
	if (b < 0) {
		msgpack_pack_nil(pk);
		return;
	}
	uint8_t cur[16];
	memset(cur, b, sizeof cur);
	msgpack_pack_bin(pk, sizeof cur);
	msgpack_pack_bin_body(pk, cur, sizeof cur);
}

static void empty_alternating(msgpack_packer *pk, int i)
{
	pack_page(pk, 0, 'A' + i % 2);
}

/* three empty pages, then one article and the end */
static void empty_then_one(msgpack_packer *pk, int i)
{
	pack_page(pk, i < 3 ? 0 : 1, i < 3 ? 'a' + i : -1);
}

/* 1000 articles (the most a page may hold), then 1001 */
static void pages_1000_1001(msgpack_packer *pk, int i)
{
	pack_page(pk, i == 0 ? 1000 : 1001, i == 0 ? 'c' : -1);
}

static void article_4097_fields(msgpack_packer *pk, int i)
{
	(void)i;
	msgpack_pack_map(pk, 4097);
	for (int k = 0; k < 4097; k++) {
		char name[16];
		int n = snprintf(name, sizeof name, "k%d", k);
		msgpack_pack_str_with_body(pk, name, (size_t)n);
		msgpack_pack_nil(pk);
	}
}

static void test_empty_pages(void **state)
{
	(void)state;
	const na_article *x;
	pthread_t th;
	/* empty pages whose cursors alternate A, B, A, ...: the iterators
	 * give up after a bounded number of them */
	scripted s = { .limit = 1000, .reply = empty_alternating };
	na_client *c = scripted_start(&s, &th);
	na_range *it;
	assert_int_equal(na_range_open(c, NULL, &it), 0);
	assert_int_equal(na_range_next(it, &x), NA_EPROTO);
	assert_non_null(strstr(na_client_errmsg(c), "empty pages"));
	assert_true(s.served < 100);
	na_range_close(it);
	int before = s.served;
	na_search *se;
	assert_int_equal(na_search_open(c, &(na_search_opts){ .query = "q" }, &se), 0);
	assert_int_equal(na_search_next(se, &x), NA_EPROTO);
	assert_true(s.served - before < 100);
	na_search_close(se);
	scripted_stop(&s, c, th);

	/* a few empty pages are tolerated */
	s = (scripted){ .limit = 4, .reply = empty_then_one };
	c = scripted_start(&s, &th);
	assert_int_equal(na_range_open(c, NULL, &it), 0);
	assert_int_equal(na_range_next(it, &x), 1);
	assert_int_equal(na_range_next(it, &x), 0);
	na_range_close(it);
	scripted_stop(&s, c, th);
}

static void test_oversized_replies(void **state)
{
	(void)state;
	const na_article *x;
	na_range *it;
	pthread_t th;
	/* more articles in one page than any limit allows */
	scripted s = { .limit = 2, .reply = pages_1000_1001 };
	na_client *c = scripted_start(&s, &th);
	assert_int_equal(na_range_open(c, NULL, &it), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(na_range_next(it, &x), 1);
	assert_int_equal(na_range_next(it, &x), NA_EPROTO);
	na_range_close(it);
	scripted_stop(&s, c, th);

	/* an article with more fields than the protocol allows */
	s = (scripted){ .limit = 1, .reply = article_4097_fields };
	c = scripted_start(&s, &th);
	na_article *g = NULL;
	assert_int_equal(na_get(c, "g", 1, NULL, 0, &g), NA_EPROTO);
	assert_null(g);
	scripted_stop(&s, c, th);
}

/* Killed mid-request: the daemon is stopped (SIGSTOP) so it cannot answer,
 * a thread sends a request and waits, and the daemon is then SIGKILLed. */
typedef struct pinger {
	na_client *c;
	int rc;
} pinger;

static void *do_ping(void *arg)
{
	pinger *p = arg;
	p->rc = na_ping(p->c);
	return NULL;
}

static void test_killed_mid_request(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_options o;
	na_options_init(&o);
	o.io_timeout_ms = 20000; /* a hang would show as NA_ETIMEDOUT */
	na_client *c = NULL;
	assert_int_equal(na_client_connect(d.addr, &o, &c), 0);
	assert_int_equal(na_ping(c), 0);
	assert_int_equal(kill(d.pid, SIGSTOP), 0);
	pinger p = { .c = c, .rc = 1 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, do_ping, &p), 0);
	na_test_daemon_kill(&d);
	pthread_join(th, NULL);
	assert_int_equal(p.rc, NA_ECONN);
	assert_true(strlen(na_client_errmsg(c)) > 0);
	/* later calls fail fast, even once a daemon is back */
	assert_int_equal(na_test_daemon_restart(&d), 0);
	int64_t t0 = now_ms();
	assert_int_equal(na_ping(c), NA_ECONN);
	assert_int_equal(na_count(c, NULL, NULL, &(uint64_t){ 0 }), NA_ECONN);
	assert_true(now_ms() - t0 < 1000);
	na_client_close(c);
	/* a new client works */
	c = connect_ok(d.addr);
	assert_int_equal(na_ping(c), 0);
	/* the daemon stops cleanly while a client is idle: next call fails */
	assert_int_equal(na_test_daemon_stop(&d), 0);
	assert_int_equal(na_ping(c), NA_ECONN);
	na_client_close(c);
	na_test_daemon_cleanup(&d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_failures),
		cmocka_unit_test(test_ping_tcp_unix),
		cmocka_unit_test(test_put_get_delete),
		cmocka_unit_test(test_put_batch),
		cmocka_unit_test(test_server_errors),
		cmocka_unit_test(test_server_errors_situational),
		cmocka_unit_test(test_range_many_pages),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_io_timeout),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_io_timeout_flood),
		cmocka_unit_test(test_empty_pages),
		cmocka_unit_test(test_oversized_replies),
		cmocka_unit_test(test_killed_mid_request),
	};
	return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
