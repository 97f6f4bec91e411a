/*
 * fuzz_dispatch.c - libFuzzer target: the request path of newsarchd without
 * a socket. A real na_server (store in a temporary directory, writer
 * thread, private uv loop) gets one connection whose replies go to a sink
 * (na_conn.sink); each input is fed to na_conn_feed in a few chunks, then
 * the loop runs until every request has been answered.
 *
 * Invariants: every reply is one well-formed MessagePack-RPC response
 * [1, msgid, error, result] with exactly one of error/result nil, and
 * nothing is left in flight.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "rpc.h"
#include "server.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static uv_loop_t loop;
static na_server srv;
static bool ready;
static uint8_t *pend;     /* reply bytes not yet framed */
static size_t pend_len;

static void check_reply(const uint8_t *m, size_t n)
{
	na_mp r;
	uint32_t an;
	uint64_t type, id;
	na_mp_init(&r, m, n);
	CHECK(na_mp_array(&r, &an) == 0);
	CHECK(na_mp_u64(&r, &type) == 0);
	if (type == NA_RPC_NOTIFY)
		return;
	CHECK(an == 4 && type == NA_RPC_RESPONSE);
	CHECK(na_mp_u64(&r, &id) == 0 && id <= UINT32_MAX);
	bool err_nil = na_mp_peek(&r) == NA_MP_NIL;
	if (!err_nil) {
		/* {"code": str, "message": str} */
		uint32_t mn;
		CHECK(na_mp_map(&r, &mn) == 0 && mn == 2);
		const char *s;
		uint32_t sn;
		CHECK(na_mp_str(&r, &s, &sn) == 0 && na_mp_streq(s, sn, "code"));
		CHECK(na_mp_str(&r, &s, &sn) == 0);
		CHECK(na_code_parse(s, sn) != NA_CODE_OK);
		CHECK(na_mp_str(&r, &s, &sn) == 0 && na_mp_streq(s, sn, "message"));
		CHECK(na_mp_str(&r, &s, &sn) == 0);
	} else {
		CHECK(na_mp_nil(&r) == 0);
	}
	bool res_nil = na_mp_peek(&r) == NA_MP_NIL;
	CHECK(err_nil != res_nil);
	CHECK(na_mp_skip(&r) == 0 && na_mp_left(&r) == 0);
}

static void sink(na_conn *c, const void *data, size_t len)
{
	(void)c;
	uint8_t *np = realloc(pend, pend_len + len);
	CHECK(np);
	pend = np;
	memcpy(pend + pend_len, data, len);
	pend_len += len;
	/* frame the replies (the server may split nothing, but be general) */
	size_t off = 0;
	for (;;) {
		na_scan s;
		na_scan_init(&s, NA_MAX_RESPONSE_BYTES, NA_MP_DEPTH_CEILING);
		size_t ml;
		int rc = na_scan_feed(&s, pend + off, pend_len - off, &ml);
		CHECK(rc >= 0);
		if (rc == 0)
			break;
		check_reply(pend + off, ml);
		off += ml;
	}
	memmove(pend, pend + off, pend_len - off);
	pend_len -= off;
}

static void setup(void)
{
	char dir[256];
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/na-fuzz-XXXXXX", t && *t ? t : "/tmp");
	CHECK(mkdtemp(dir));
	na_log_set_level(NA_LOG_ERROR);
	na_config cfg;
	na_config_defaults(&cfg);
	snprintf(cfg.data, sizeof cfg.data, "%s", dir);
	cfg.listen[0] = 0;
	cfg.relaxed = true;
	cfg.map_size = 64u << 20;
	cfg.max_map_size = 1u << 30;
	cfg.max_request_bytes = 1u << 20;
	cfg.max_batch = 100;
	CHECK(uv_loop_init(&loop) == 0);
	CHECK(na_server_init(&srv, &loop, &cfg) == 0);
	ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		setup();
	na_conn *c = na_conn_new(&srv);
	CHECK(c);
	c->sink = sink;
	c->refs++; /* ours: a closed sink connection is freed synchronously */
	pend_len = 0;
	/* feed in up to three chunks split at positions from the input */
	size_t a = size ? data[0] % (size + 1) : 0;
	size_t b = a + (size > 1 ? data[size - 1] % (size - a + 1) : 0);
	if (b > size)
		b = size;
	na_conn_feed(c, data, a);
	na_conn_feed(c, data + a, b - a);
	na_conn_feed(c, data + b, size - b);
	/* let the worker pool and the writer answer everything */
	while (srv.inflight > 0)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(c->pending == 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(pend_len == 0); /* no half reply */
	if (!c->closing)
		na_conn_close(c);
	CHECK(c->refs == 1);
	na_conn_unref(c);
	CHECK(srv.conns == NULL && srv.nconns == 0);
	return 0;
}
