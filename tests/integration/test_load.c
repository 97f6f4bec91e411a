/*
 * test_load.c - 1,000 concurrent connections doing a mix of get, range and
 * put for LOAD_SECONDS (default 30): every request is answered without an
 * error, the server's memory stays bounded, and a client that asks for big
 * ranges and never reads its replies does not grow the server's memory past
 * its output cap while everyone else keeps being served. Figures (requests,
 * p50/p99 latency, peak RSS) are printed, not asserted: tests never assert
 * on speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "testrpc.h"

#define CONNS 1000
#define PRELOAD 2000

typedef struct lconn {
	int fd;
	na_scan scan;
	uint8_t *in;
	size_t len, cap;
	uint64_t sent_ns;
	uint32_t msgid;
	int kind;
	bool waiting;
} lconn;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void send_request(lconn *c, uint32_t id, uint64_t *rnd)
{
	*rnd ^= *rnd << 13;
	*rnd ^= *rnd >> 7;
	*rnd ^= *rnd << 17;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, id);
	int r = (int)(*rnd % 100);
	char g[32];
	if (r < 80) {
		c->kind = 0;
		na_mp_pack_cstr(&pk, "get");
		msgpack_pack_array(&pk, 1);
		snprintf(g, sizeof g, "load-%05d", (int)(*rnd / 100 % PRELOAD));
		na_mp_pack_cstr(&pk, g);
	} else if (r < 95) {
		c->kind = 1;
		na_mp_pack_cstr(&pk, "range");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 2);
		na_mp_pack_cstr(&pk, "from");
		msgpack_pack_int64(&pk, 1000000 + (int64_t)(*rnd / 100 % PRELOAD));
		na_mp_pack_cstr(&pk, "limit");
		msgpack_pack_int(&pk, 20);
	} else {
		c->kind = 2;
		na_mp_pack_cstr(&pk, "put");
		msgpack_pack_array(&pk, 1);
		snprintf(g, sizeof g, "load-new-%llu", (unsigned long long)(*rnd % 1000000));
		na_pack_article(&pk, g, 2000000 + (int64_t)(*rnd % 1000000), 0, "load", "written under load");
	}
	ssize_t w = send(c->fd, sb.data, sb.size, MSG_NOSIGNAL);
	assert_int_equal(w, (ssize_t)sb.size); /* small requests fit the socket buffer */
	msgpack_sbuffer_destroy(&sb);
	c->msgid = id;
	c->sent_ns = now_ns();
	c->waiting = true;
}

static void test_thousand_connections(void **state)
{
	(void)state;
	struct rlimit rl = { 8192, 8192 };
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < CONNS + 100)
			skip(); /* cannot open 1,000 sockets here; said by cmocka */
	}
	int seconds = getenv("LOAD_SECONDS") ? atoi(getenv("LOAD_SECONDS")) : 30;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--output-queue-bytes";
	d.extra[1] = "1M";
	d.extra[2] = "--log-level";
	d.extra[3] = "warn";
	assert_int_equal(na_test_daemon_start(&d), 0);
	/* preload */
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&d));
	for (int b = 0; b < PRELOAD / 500; b++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 500);
		for (int i = 0; i < 500; i++) {
			char g[32], body[600];
			snprintf(g, sizeof g, "load-%05d", b * 500 + i);
			memset(body, 'a' + i % 26, sizeof body - 1);
			body[sizeof body - 1] = 0;
			na_pack_article(&pk, g, 1000000 + b * 500 + i, 0, "preloaded", body);
		}
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "put_batch", 1, &sb, &err, &res), 1);
		msgpack_sbuffer_destroy(&sb);
	}
	long rss_start = na_test_rss_kb(d.pid);

	/* a client that asks for big ranges and never reads */
	int hog = na_test_connect_tcp(&d);
	assert_true(hog >= 0);
	int small = 1 << 16;
	setsockopt(hog, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	fcntl(hog, F_SETFL, fcntl(hog, F_GETFL) | O_NONBLOCK);

	lconn *cs = calloc(CONNS, sizeof *cs);
	struct pollfd *pf = calloc(CONNS, sizeof *pf);
	assert_non_null(cs);
	assert_non_null(pf);
	for (int i = 0; i < CONNS; i++) {
		cs[i].fd = na_test_connect_tcp(&d);
		assert_true(cs[i].fd >= 0);
		na_scan_init(&cs[i].scan, 64u << 20, 64);
	}
	size_t maxlat = (size_t)seconds * 200000 + 100000;
	uint64_t *lat = malloc(sizeof *lat * maxlat);
	size_t nlat = 0, errors = 0, hog_sent = 0;
	uint64_t rnd = 0x2545f4914f6cdd1dULL;
	uint32_t next_id = 1;
	long rss_peak = rss_start;
	uint64_t start = now_ns(), last_rss = start;
	for (int i = 0; i < CONNS; i++)
		send_request(&cs[i], next_id++, &rnd);
	while (now_ns() - start < (uint64_t)seconds * 1000000000ULL) {
		/* keep the hog's requests coming until the server stops reading them */
		static uint8_t req[] = { 0x94, 0x00, 0x01, 0xa5, 'r', 'a', 'n', 'g', 'e', 0x91, 0x81,
					 0xa5, 'l', 'i', 'm', 'i', 't', 0xcd, 0x03, 0xe8 };
		if (send(hog, req, sizeof req, MSG_NOSIGNAL) > 0)
			hog_sent++;
		for (int i = 0; i < CONNS; i++)
			pf[i] = (struct pollfd){ .fd = cs[i].fd, .events = POLLIN };
		int n = poll(pf, CONNS, 1000);
		assert_true(n >= 0);
		for (int i = 0; i < CONNS && n > 0; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			lconn *c = &cs[i];
			if (c->cap - c->len < 65536) {
				c->cap = c->cap ? c->cap * 2 : 131072;
				c->in = realloc(c->in, c->cap);
			}
			ssize_t r = recv(c->fd, c->in + c->len, c->cap - c->len, MSG_DONTWAIT);
			if (r <= 0)
				fail_msg("connection %d closed by the server (%zd, %s)", i, r, strerror(errno));
			c->len += (size_t)r;
			size_t mlen;
			int rc = na_scan_feed(&c->scan, c->in, c->len, &mlen);
			if (rc < 0)
				fail_msg("connection %d: unframeable reply", i);
			if (rc == 0)
				continue;
			na_mp m;
			na_mp_init(&m, c->in, mlen);
			uint32_t an;
			uint64_t type, id;
			if (na_mp_array(&m, &an) || an != 4 || na_mp_u64(&m, &type) || na_mp_u64(&m, &id) ||
			    id != c->msgid)
				fail_msg("connection %d: not the reply it waited for", i);
			if (na_mp_peek(&m) != NA_MP_NIL)
				errors++;
			if (nlat < maxlat)
				lat[nlat++] = now_ns() - c->sent_ns;
			memmove(c->in, c->in + mlen, c->len - mlen);
			c->len -= mlen;
			send_request(c, next_id++, &rnd);
		}
		if (now_ns() - last_rss > 1000000000ULL) {
			long r = na_test_rss_kb(d.pid);
			if (r > rss_peak)
				rss_peak = r;
			last_rss = now_ns();
		}
	}
	qsort(lat, nlat, sizeof *lat, cmp_u64);
	double p50 = nlat ? lat[nlat / 2] / 1e3 : 0, p99 = nlat ? lat[nlat * 99 / 100] / 1e3 : 0;
	printf("load: %d connections, %d s: %zu requests (%.0f/s), %zu errors, latency p50 %.0f us "
	       "p99 %.0f us; server RSS %ld kB at start, %ld kB peak; the non-reading client got "
	       "%zu range requests in before the server stopped reading it\n",
	       CONNS, seconds, nlat, nlat / (double)seconds, errors, p50, p99, rss_start, rss_peak,
	       hog_sent);
	assert_int_equal(errors, 0);
	assert_true(nlat > (size_t)CONNS); /* every connection was answered, and more */
	/* bounded: 1,000 clients and the hog's 1 MiB cap, not 1,000-article
	 * ranges times the requests it sent */
	if (!getenv("ASAN_OPTIONS") && rss_peak - rss_start > 256 * 1024)
		fail_msg("server RSS grew by %ld kB", rss_peak - rss_start);
	for (int i = 0; i < CONNS; i++) {
		close(cs[i].fd);
		free(cs[i].in);
	}
	close(hog);
	free(cs);
	free(pf);
	free(lat);
	na_trpc_close(&t);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thousand_connections),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("load", tests, NULL, NULL);
}
