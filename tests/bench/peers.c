/*
 * peers.c - newsarch-bench --peer MODE: the Redis and PostgreSQL side of
 * `make bench-compare` (tests/bench/compare.sh starts and stops the servers).
 *
 *   --peer export        writes, from the same scaled corpus newsarch-bench
 *                        sends to newsarchd: the Redis protocol stream for
 *                        `redis-cli --pipe` (SET guid <msgpack article>, and
 *                        ZADD pub <published µs> guid per 100 articles), the
 *                        PostgreSQL COPY text (guid, published, title, body,
 *                        the other fields as JSON for jsonb), and the key and
 *                        time tables the pgbench scripts pick from, plus the
 *                        rows for the Redis lag run
 *   --peer redis-get     GET of a random guid, N client threads, one request
 *                        in flight each (the same choice of keys as the get
 *                        workload of newsarch-bench)
 *   --peer redis-range   EVALSHA of a Lua script (ZRANGEBYSCORE from a random
 *                        article's time, LIMIT 100, then MGET), N clients
 *   --peer redis-catchup polls a fresh replica's INFO every 5 ms until it has
 *                        loaded the full sync (and written its AOF)
 *   --peer redis-lag     SET+ZADD batches on a steady schedule on the primary;
 *                        a subscriber to the replica's keyspace events notes
 *                        when each batch's ZADD is applied there
 *
 * Every measurement prints one line "key=value ..." on stdout for
 * compare.sh. Replies are parsed with a bounded RESP reader (no allocation
 * driven by the server beyond BENCH_MAX_REPLY). Every loop is bounded.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc.h"
#include "../../client/cli/json.h"
#include "../../client/cli/timefmt.h"

#define ZADD_BATCH 100
#define RANGE_N 100
#define MAX_PEER_CLIENTS 64
#define IO_TIMEOUT_MS 60000
#define DEFAULT_CORPUS "../shared/corpus/reuters21578.jsonl.zst"

typedef struct popts {
	const char *mode, *addr, *replica, *corpus, *out_dir;
	unsigned scale, clients, batch;
	size_t articles, offset;
	double seconds, rate, timeout;
	uint64_t since_ns;
	size_t synthetic;
	bool wait_aof;
} popts;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- a blocking RESP connection --------------------------------------- */

typedef struct rconn {
	int fd;
	uint8_t *in;
	size_t off, len, cap;
	uint8_t *out;
	size_t olen, ocap;
} rconn;

static int rc_open(rconn *c, const char *addr)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	if (bc_resolve(addr, &ss, &sl, err, sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return -1;
	}
	bconn b;
	if (bc_open(&b, &ss, sl))
		return -1;
	c->fd = b.fd;
	b.fd = -1;
	bc_close(&b);
	c->cap = 1u << 20;
	c->in = malloc(c->cap);
	c->ocap = 1u << 16;
	c->out = malloc(c->ocap);
	if (!c->in || !c->out) {
		close(c->fd);
		free(c->in);
		free(c->out);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void rc_close(rconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static int rc_put(rconn *c, const void *p, size_t n)
{
	if (c->ocap - c->olen < n) {
		size_t nc = c->ocap;
		while (nc - c->olen < n) {
			if (nc > BENCH_MAX_REPLY)
				return -1;
			nc *= 2;
		}
		uint8_t *o = realloc(c->out, nc);
		if (!o)
			return -1;
		c->out = o;
		c->ocap = nc;
	}
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	return 0;
}

/* Appends one command (array of bulk strings). */
static int rc_cmd(rconn *c, int argc, const char *const *argv, const size_t *argl)
{
	char h[32];
	int n = snprintf(h, sizeof h, "*%d\r\n", argc);
	if (rc_put(c, h, (size_t)n))
		return -1;
	for (int i = 0; i < argc; i++) {
		n = snprintf(h, sizeof h, "$%zu\r\n", argl[i]);
		if (rc_put(c, h, (size_t)n) || rc_put(c, argv[i], argl[i]) || rc_put(c, "\r\n", 2))
			return -1;
	}
	return 0;
}

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r = poll(&p, 1, ms);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

static int rc_flush(rconn *c)
{
	size_t done = 0;
	while (done < c->olen) {
		ssize_t w = write(c->fd, c->out + done, c->olen - done);
		if (w > 0) {
			done += (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(c->fd, POLLOUT, IO_TIMEOUT_MS))
				return -1;
		} else {
			return -1;
		}
	}
	c->olen = 0;
	return 0;
}

/* Parses one RESP value at p[*pos..n). 1: complete (pos advanced; *elems
 * set to the element count of a top-level array, *is_err for an error
 * reply), 0: incomplete, -1: malformed. */
static int resp_value(const uint8_t *p, size_t n, size_t *pos, int depth, long *elems,
		      bool *is_err)
{
	if (depth > 8)
		return -1;
	if (*pos >= n)
		return 0;
	uint8_t t = p[*pos];
	const uint8_t *nl = memchr(p + *pos, '\n', n - *pos);
	if (!nl)
		return n - *pos > 64 && t != '+' && t != '-' ? -1 : 0;
	size_t line_end = (size_t)(nl - p) + 1;
	if (t == '+' || t == '-' || t == ':') {
		if (t == '-' && is_err)
			*is_err = true;
		*pos = line_end;
		return 1;
	}
	if (t != '$' && t != '*' && t != '>')
		return -1;
	char *e;
	long v = strtol((const char *)p + *pos + 1, &e, 10);
	if ((const uint8_t *)e != nl - 1 || v < -1 || v > (long)BENCH_MAX_REPLY)
		return -1;
	if (t == '$') {
		if (v < 0) {
			*pos = line_end;
			return 1;
		}
		if (n - line_end < (size_t)v + 2)
			return 0;
		*pos = line_end + (size_t)v + 2;
		return 1;
	}
	if (elems)
		*elems = v;
	size_t q = line_end;
	for (long i = 0; i < v; i++) {
		int r = resp_value(p, n, &q, depth + 1, NULL, NULL);
		if (r <= 0)
			return r;
	}
	*pos = q;
	return 1;
}

/* Reads one whole reply; sets *msg and *mlen (valid until the next read). */
static int rc_reply(rconn *c, const uint8_t **msg, size_t *mlen, long *elems, bool *is_err,
		    int timeout_ms)
{
	if (is_err)
		*is_err = false;
	for (;;) {
		size_t pos = c->off;
		int r = resp_value(c->in, c->len, &pos, 0, elems, is_err);
		if (r < 0) {
			errno = EPROTO;
			return -1;
		}
		if (r == 1) {
			*msg = c->in + c->off;
			*mlen = pos - c->off;
			c->off = pos;
			return 0;
		}
		if (c->off > 0) {
			memmove(c->in, c->in + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len == c->cap) {
			if (c->cap >= BENCH_MAX_REPLY) {
				errno = EMSGSIZE;
				return -1;
			}
			uint8_t *ni = realloc(c->in, c->cap * 2);
			if (!ni)
				return -1;
			c->in = ni;
			c->cap *= 2;
		}
		/* poll, then read: the same write, poll, read per request as
		 * newsarch-bench makes against newsarchd */
		if (wait_fd(c->fd, POLLIN, timeout_ms))
			return -1;
		ssize_t got = read(c->fd, c->in + c->len, c->cap - c->len);
		if (got > 0) {
			c->len += (size_t)got;
		} else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
			continue;
		} else {
			if (got == 0)
				errno = ECONNRESET;
			return -1;
		}
	}
}

/* One command, its reply. */
static int rc_call(rconn *c, int argc, const char *const *argv, const uint8_t **msg,
		   size_t *mlen)
{
	size_t l[16];
	for (int i = 0; i < argc && i < 16; i++)
		l[i] = strlen(argv[i]);
	bool err;
	if (rc_cmd(c, argc, argv, l) || rc_flush(c) ||
	    rc_reply(c, msg, mlen, NULL, &err, IO_TIMEOUT_MS))
		return -1;
	if (err) {
		fprintf(stderr, "newsarch-bench: redis: %.*s\n", (int)(*mlen > 200 ? 200 : *mlen),
			(const char *)*msg);
		return -1;
	}
	return 0;
}

/* ---- corpus ------------------------------------------------------------ */

static int load(const popts *o, bench_corpus *c, size_t target)
{
	const char *path = o->corpus;
	if (!path && !o->synthetic && access(DEFAULT_CORPUS, R_OK) == 0)
		path = DEFAULT_CORPUS;
	char err[512];
	unsigned scale = o->scale;
	if (target)
		scale = 0;
	if (bench_corpus_load(c, path, o->synthetic ? o->synthetic : 20000, scale, target,
			      o->articles, err, sizeof err)) {
		fprintf(stderr, "newsarch-bench: %s\n", err);
		return -1;
	}
	return 0;
}

static const char *guid_of(const bench_corpus *c, size_t i, size_t *n)
{
	*n = c->guid_len[i];
	return (const char *)c->data + c->off[i] + c->guid_off[i];
}

static int64_t pub_us(const bench_corpus *c, size_t i)
{
	na_mp r;
	na_mp_init(&r, c->data + c->off[i], c->off[i + 1] - c->off[i]);
	uint32_t n;
	if (na_mp_map(&r, &n))
		return 0;
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		uint32_t kn;
		if (na_mp_str(&r, &key, &kn))
			return 0;
		if (na_mp_streq(key, kn, "published")) {
			na_ts ts;
			if (na_mp_ts(&r, &ts))
				return 0;
			return ts.sec * 1000000 + ts.nsec / 1000;
		}
		if (na_mp_skip(&r))
			return 0;
	}
	return 0;
}

/* ---- export ----------------------------------------------------------- */

/* COPY text format: backslash escapes for \, tab, newline, CR. */
static void copy_text(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		switch (ch) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(ch, f);
		}
	}
}

static void resp_bulk(FILE *f, const void *p, size_t n)
{
	fprintf(f, "$%zu\r\n", n);
	fwrite(p, 1, n, f);
	fputs("\r\n", f);
}

/* PostgreSQL row of article i: guid, published, title, body, rest. */
static int pg_row(FILE *f, const bench_corpus *c, size_t i, msgpack_sbuffer *js)
{
	na_mp r;
	na_mp_init(&r, c->data + c->off[i], c->off[i + 1] - c->off[i]);
	uint32_t n;
	if (na_mp_map(&r, &n))
		return -1;
	const char *guid = NULL, *title = "", *body = NULL;
	uint32_t gn = 0, tn = 0, bn = 0;
	na_ts pub = { 0, 0 };
	js->size = 0;
	msgpack_sbuffer_write(js, "{", 1);
	bool first = true;
	char err[256];
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		uint32_t kn;
		if (na_mp_str(&r, &key, &kn))
			return -1;
		if (na_mp_streq(key, kn, "guid")) {
			if (na_mp_str(&r, &guid, &gn))
				return -1;
		} else if (na_mp_streq(key, kn, "published")) {
			if (na_mp_ts(&r, &pub))
				return -1;
		} else if (na_mp_streq(key, kn, "title")) {
			if (na_mp_str(&r, &title, &tn))
				return -1;
		} else if (na_mp_streq(key, kn, "body")) {
			if (na_mp_str(&r, &body, &bn))
				return -1;
		} else {
			if (!first)
				msgpack_sbuffer_write(js, ",", 1);
			first = false;
			if (na_json_quote(js, key, kn))
				return -1;
			msgpack_sbuffer_write(js, ":", 1);
			if (na_json_from_mp(&r, js, err, sizeof err)) {
				fprintf(stderr, "newsarch-bench: article %zu: %s\n", i, err);
				return -1;
			}
		}
	}
	msgpack_sbuffer_write(js, "}", 1);
	if (!guid || r.err)
		return -1;
	char ts[NA_RFC3339_BUFSZ];
	if (na_rfc3339_format(pub, ts, sizeof ts) < 0)
		return -1;
	copy_text(f, guid, gn);
	fprintf(f, "\t%s\t", ts);
	copy_text(f, title, tn);
	fputc('\t', f);
	if (body)
		copy_text(f, body, bn);
	else
		fputs("\\N", f);
	fputc('\t', f);
	copy_text(f, js->data, js->size);
	fputc('\n', f);
	return 0;
}

static FILE *open_out(const popts *o, const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", o->out_dir, name);
	FILE *f = fopen(p, "wb");
	if (!f)
		fprintf(stderr, "newsarch-bench: %s: %s\n", p, strerror(errno));
	return f;
}

static int mode_export(const popts *o)
{
	if (!o->out_dir) {
		fprintf(stderr, "newsarch-bench: --peer export needs --out DIR\n");
		return 2;
	}
	bench_corpus c;
	if (load(o, &c, 0))
		return 1;
	int rc = 1;
	FILE *resp = open_out(o, "redis.resp"), *copy = open_out(o, "pg.copy"),
	     *keys = open_out(o, "pg.keys"), *times = open_out(o, "pg.times");
	msgpack_sbuffer js;
	msgpack_sbuffer_init(&js);
	if (!resp || !copy || !keys || !times)
		goto out;
	for (size_t i = 0; i < c.n; i += ZADD_BATCH) {
		size_t end = i + ZADD_BATCH < c.n ? i + ZADD_BATCH : c.n;
		for (size_t j = i; j < end; j++) {
			size_t gn;
			const char *g = guid_of(&c, j, &gn);
			fputs("*3\r\n", resp);
			resp_bulk(resp, "SET", 3);
			resp_bulk(resp, g, gn);
			resp_bulk(resp, c.data + c.off[j], c.off[j + 1] - c.off[j]);
			if (pg_row(copy, &c, j, &js)) {
				fprintf(stderr, "newsarch-bench: cannot convert article %zu\n", j);
				goto out;
			}
			fprintf(keys, "%zu\t", j + 1);
			copy_text(keys, g, gn);
			fputc('\n', keys);
		}
		fprintf(resp, "*%zu\r\n", 2 + 2 * (end - i));
		resp_bulk(resp, "ZADD", 4);
		resp_bulk(resp, "pub", 3);
		for (size_t j = i; j < end; j++) {
			char num[32];
			int nl = snprintf(num, sizeof num, "%" PRId64, pub_us(&c, j));
			resp_bulk(resp, num, (size_t)nl);
			size_t gn;
			const char *g = guid_of(&c, j, &gn);
			resp_bulk(resp, g, gn);
		}
	}
	/* the range starts: the same choice newsarch-bench makes (a random
	 * article's time, among those with 100 articles after it) */
	for (size_t i = 0; i < c.n; i++) {
		int64_t us = c.sorted_us[i];
		int64_t sec = us / 1000000, rem = us % 1000000;
		if (rem < 0) {
			rem += 1000000;
			sec--;
		}
		char ts[NA_RFC3339_BUFSZ];
		na_ts t = { sec, (uint32_t)rem * 1000u };
		if (na_rfc3339_format(t, ts, sizeof ts) < 0)
			goto out;
		fprintf(times, "%zu\t%s\n", i + 1, ts);
	}
	if (ferror(resp) || ferror(copy) || ferror(keys) || ferror(times)) {
		fprintf(stderr, "newsarch-bench: export: write error\n");
		goto out;
	}
	printf("articles=%zu json_bytes=%" PRIu64 " msgpack_bytes=%zu\n", c.n, c.json_bytes, c.len);
	rc = 0;
out:
	if (resp && fclose(resp))
		rc = 1;
	if (copy && fclose(copy))
		rc = 1;
	if (keys && fclose(keys))
		rc = 1;
	if (times && fclose(times))
		rc = 1;
	msgpack_sbuffer_destroy(&js);
	bench_corpus_free(&c);
	return rc;
}

/* ---- get / range ------------------------------------------------------ */

typedef struct rworker {
	const popts *o;
	const bench_corpus *c;
	bool range;
	const char *sha;
	pthread_barrier_t *bar;
	pthread_t th;
	uint64_t rng;
	hist h;
	uint64_t n, errors, short_ranges, bytes;
	uint64_t t0, t1;
	bool failed;
} rworker;

static void *rworker_main(void *arg)
{
	rworker *w = arg;
	rconn c;
	bool open = rc_open(&c, w->o->addr) == 0;
	if (!open)
		w->failed = true;
	pthread_barrier_wait(w->bar);
	if (!open)
		return NULL;
	const bench_corpus *cp = w->c;
	size_t span = cp->n > RANGE_N ? cp->n - RANGE_N + 1 : 1;
	w->t0 = bench_now_ns();
	uint64_t end = w->t0 + (uint64_t)(w->o->seconds * 1e9);
	for (uint64_t it = 0; it < 50000000ULL; it++) {
		uint64_t t = bench_now_ns();
		if (t >= end)
			break;
		const char *argv[5];
		size_t argl[5];
		int argc;
		char num[32];
		if (!w->range) {
			size_t i = (size_t)(rng_next(&w->rng) % cp->n);
			argv[0] = "GET";
			argl[0] = 3;
			argv[1] = guid_of(cp, i, &argl[1]);
			argc = 2;
		} else {
			int64_t us = cp->sorted_us[rng_next(&w->rng) % span];
			argv[0] = "EVALSHA";
			argl[0] = 7;
			argv[1] = w->sha;
			argl[1] = strlen(w->sha);
			argv[2] = "1";
			argl[2] = 1;
			argv[3] = "pub";
			argl[3] = 3;
			argl[4] = (size_t)snprintf(num, sizeof num, "%" PRId64, us);
			argv[4] = num;
			argc = 5;
		}
		const uint8_t *msg;
		size_t mlen;
		long elems = -1;
		bool err;
		if (rc_cmd(&c, argc, argv, argl) || rc_flush(&c) ||
		    rc_reply(&c, &msg, &mlen, &elems, &err, IO_TIMEOUT_MS)) {
			w->failed = true;
			break;
		}
		hist_add(&w->h, bench_now_ns() - t);
		w->n++;
		w->bytes += mlen;
		if (err || (!w->range && msg[0] != '$') || (!w->range && mlen >= 5 && !memcmp(msg, "$-1", 3)))
			w->errors++;
		if (w->range && elems < RANGE_N)
			w->short_ranges++;
	}
	w->t1 = bench_now_ns();
	rc_close(&c);
	return NULL;
}

static const char range_lua[] =
	"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, 100)\n"
	"if #ids == 0 then return {} end\n"
	"return redis.call('MGET', unpack(ids))\n";

static int mode_read(const popts *o, bool range)
{
	bench_corpus c;
	if (load(o, &c, 0))
		return 1;
	char sha[64] = "";
	if (range) {
		rconn s;
		const uint8_t *msg;
		size_t mlen;
		const char *argv[] = { "SCRIPT", "LOAD", range_lua };
		if (rc_open(&s, o->addr) || rc_call(&s, 3, argv, &msg, &mlen) || mlen < 45 ||
		    msg[0] != '$') {
			fprintf(stderr, "newsarch-bench: SCRIPT LOAD failed\n");
			rc_close(&s);
			bench_corpus_free(&c);
			return 1;
		}
		const uint8_t *p = memchr(msg, '\n', mlen);
		snprintf(sha, sizeof sha, "%.40s", (const char *)p + 1);
		rc_close(&s);
	}
	unsigned n = o->clients;
	rworker *ws = calloc(n, sizeof *ws);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		ws[i] = (rworker){ .o = o, .c = &c, .range = range, .sha = sha, .bar = &bar,
				   .rng = 0x1234567ULL * (i + 1) + (uint64_t)bench_now_ns() };
		pthread_create(&ws[i].th, NULL, rworker_main, &ws[i]);
	}
	pthread_barrier_wait(&bar);
	hist h = { 0 };
	uint64_t total = 0, errors = 0, shorts = 0, bytes = 0, t0 = UINT64_MAX, t1 = 0;
	bool failed = false;
	for (unsigned i = 0; i < n; i++) {
		pthread_join(ws[i].th, NULL);
		failed |= ws[i].failed;
		hist_merge(&h, &ws[i].h);
		total += ws[i].n;
		errors += ws[i].errors;
		shorts += ws[i].short_ranges;
		bytes += ws[i].bytes;
		if (ws[i].t0 && ws[i].t0 < t0)
			t0 = ws[i].t0;
		if (ws[i].t1 > t1)
			t1 = ws[i].t1;
	}
	pthread_barrier_destroy(&bar);
	double secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	printf("rate=%.0f p50_us=%.1f p99_us=%.1f requests=%" PRIu64 " errors=%" PRIu64
	       " short=%" PRIu64 " reply_bytes=%" PRIu64 "\n", secs > 0 ? (double)total / secs : 0,
	       hist_quantile(&h, 0.5) / 1e3, hist_quantile(&h, 0.99) / 1e3, total, errors, shorts,
	       bytes);
	free(ws);
	bench_corpus_free(&c);
	if (failed || errors) {
		fprintf(stderr, "newsarch-bench: redis %s: %s, %" PRIu64 " errors\n",
			range ? "range" : "get", failed ? "a connection failed" : "ok", errors);
		return 1;
	}
	return 0;
}

/* ---- catch-up --------------------------------------------------------- */

/* Value of "name:" in an INFO reply, or -1. */
static long long info_val(const uint8_t *msg, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i + nl + 1 < n; i++) {
		if ((i == 0 || msg[i - 1] == '\n') && !memcmp(msg + i, name, nl) && msg[i + nl] == ':') {
			const char *s = (const char *)msg + i + nl + 1;
			if (!strncmp(s, "up", 2))
				return 1;
			if (!strncmp(s, "down", 4))
				return 0;
			return strtoll(s, NULL, 10);
		}
	}
	return -1;
}

static int mode_catchup(const popts *o)
{
	uint64_t start = o->since_ns ? o->since_ns : bench_now_ns();
	uint64_t deadline = bench_now_ns() + (uint64_t)(o->timeout * 1e9);
	rconn p;
	const uint8_t *msg;
	size_t mlen;
	const char *dbsize[] = { "DBSIZE" };
	if (rc_open(&p, o->addr) || rc_call(&p, 1, dbsize, &msg, &mlen)) {
		fprintf(stderr, "newsarch-bench: no answer from the primary %s\n", o->addr);
		rc_close(&p);
		return 1;
	}
	long long want = strtoll((const char *)msg + 1, NULL, 10);
	rc_close(&p);
	rconn r;
	bool open = false;
	uint64_t t_loaded = 0, t_done = 0;
	long long keys = -1;
	for (unsigned it = 0; it < 100000000u && bench_now_ns() < deadline; it++) {
		if (!open) {
			if (rc_open(&r, o->replica)) {
				usleep(5000);
				continue;
			}
			open = true;
		}
		const char *info[] = { "INFO", "all" };
		if (rc_call(&r, 2, info, &msg, &mlen)) {
			rc_close(&r);
			open = false;
			usleep(5000);
			continue;
		}
		long long up = info_val(msg, mlen, "master_link_status");
		long long syncing = info_val(msg, mlen, "master_sync_in_progress");
		long long loading = info_val(msg, mlen, "loading");
		const char *ks = strstr((const char *)msg, "db0:keys=");
		keys = ks && (size_t)(ks - (const char *)msg) < mlen ? strtoll(ks + 9, NULL, 10) : 0;
		if (up == 1 && syncing == 0 && loading == 0 && keys >= want) {
			if (!t_loaded)
				t_loaded = bench_now_ns();
			long long rw = info_val(msg, mlen, "aof_rewrite_in_progress");
			long long sched = info_val(msg, mlen, "aof_rewrite_scheduled");
			long long aof = info_val(msg, mlen, "aof_enabled");
			if (!o->wait_aof || aof != 1 || (rw == 0 && sched == 0)) {
				t_done = bench_now_ns();
				break;
			}
		}
		usleep(5000);
	}
	if (open)
		rc_close(&r);
	if (!t_done) {
		fprintf(stderr, "newsarch-bench: the replica did not catch up (%lld of %lld keys)\n",
			keys, want);
		return 1;
	}
	double secs = (double)(t_done - start) / 1e9;
	printf("rate=%.0f seconds=%.3f loaded_seconds=%.3f keys=%lld\n",
	       (double)(want - 1) / secs, secs, (double)(t_loaded - start) / 1e9, keys);
	return 0;
}

/* ---- lag -------------------------------------------------------------- */

typedef struct lagsub {
	const popts *o;
	uint64_t *arrival;
	size_t nb, seen;
	_Atomic int ready;
	_Atomic uint64_t stop_ns;
	bool failed;
} lagsub;

static void *lagsub_main(void *arg)
{
	lagsub *s = arg;
	rconn c;
	if (rc_open(&c, s->o->replica)) {
		s->failed = true;
		atomic_store(&s->ready, -1);
		return NULL;
	}
	const char *argv[] = { "SUBSCRIBE", "__keyspace@0__:pub" };
	size_t argl[] = { 9, strlen(argv[1]) };
	const uint8_t *msg;
	size_t mlen;
	if (rc_cmd(&c, 2, argv, argl) || rc_flush(&c) ||
	    rc_reply(&c, &msg, &mlen, NULL, NULL, IO_TIMEOUT_MS)) {
		s->failed = true;
		atomic_store(&s->ready, -1);
		rc_close(&c);
		return NULL;
	}
	atomic_store(&s->ready, 1);
	while (s->seen < s->nb) {
		uint64_t stop = atomic_load(&s->stop_ns);
		if (stop && bench_now_ns() > stop)
			break;
		if (rc_reply(&c, &msg, &mlen, NULL, NULL, 200)) {
			if (errno == ETIMEDOUT)
				continue;
			s->failed = true;
			break;
		}
		if (mlen > 20 && memmem(msg, mlen, "zadd", 4))
			s->arrival[s->seen++] = bench_now_ns();
	}
	rc_close(&c);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static int mode_lag(const popts *o)
{
	unsigned batch = o->batch ? o->batch : 50;
	double period_s = (double)batch / o->rate;
	size_t nb = (size_t)(o->seconds / period_s + 0.5);
	if (nb < 1 || nb > 1000000) {
		fprintf(stderr, "newsarch-bench: lag: %zu batches is out of range\n", nb);
		return 2;
	}
	bench_corpus c;
	if (load(o, &c, o->offset + nb * batch))
		return 1;
	if (c.n < o->offset + nb * batch) {
		fprintf(stderr, "newsarch-bench: lag: the corpus is too small\n");
		bench_corpus_free(&c);
		return 1;
	}
	lagsub s = { .o = o, .nb = nb, .arrival = calloc(nb, sizeof(uint64_t)) };
	uint64_t *reply = calloc(nb, sizeof(uint64_t));
	pthread_t th;
	bool th_live = false;
	int ret = 1;
	rconn w;
	bool w_open = false;
	if (!s.arrival || !reply || pthread_create(&th, NULL, lagsub_main, &s))
		goto out;
	th_live = true;
	for (int i = 0; i < 10000 && atomic_load(&s.ready) == 0; i++)
		usleep(1000);
	if (atomic_load(&s.ready) != 1 || rc_open(&w, o->addr))
		goto out;
	w_open = true;
	uint64_t period_ns = (uint64_t)(period_s * 1e9);
	uint64_t t0 = bench_now_ns() + 10000000;
	size_t late = 0;
	for (size_t b = 0; b < nb; b++) {
		uint64_t due = t0 + b * period_ns, now = bench_now_ns();
		if (now < due)
			usleep((useconds_t)((due - now) / 1000));
		else if (now > due + period_ns)
			late++;
		size_t first = o->offset + b * batch;
		for (size_t j = first; j < first + batch; j++) {
			const char *argv[3] = { "SET" };
			size_t argl[3] = { 3 };
			argv[1] = guid_of(&c, j, &argl[1]);
			argv[2] = (const char *)c.data + c.off[j];
			argl[2] = c.off[j + 1] - c.off[j];
			if (rc_cmd(&w, 3, argv, argl))
				goto out;
		}
		const char *zargv[2 + 2 * 64];
		size_t zargl[2 + 2 * 64];
		char nums[64][24];
		int za = 2;
		zargv[0] = "ZADD";
		zargl[0] = 4;
		zargv[1] = "pub";
		zargl[1] = 3;
		for (size_t j = first; j < first + batch && za < 2 + 2 * 64; j++) {
			zargl[za] = (size_t)snprintf(nums[j - first], 24, "%" PRId64, pub_us(&c, j));
			zargv[za] = nums[j - first];
			za++;
			zargv[za] = guid_of(&c, j, &zargl[za]);
			za++;
		}
		if (rc_cmd(&w, za, zargv, zargl) || rc_flush(&w))
			goto out;
		for (unsigned k = 0; k <= batch; k++) {
			const uint8_t *msg;
			size_t mlen;
			bool err;
			if (rc_reply(&w, &msg, &mlen, NULL, &err, IO_TIMEOUT_MS) || err)
				goto out;
		}
		reply[b] = bench_now_ns();
	}
	atomic_store(&s.stop_ns, bench_now_ns() + 10000000000ULL);
	pthread_join(th, NULL);
	th_live = false;
	size_t missing = nb - s.seen;
	uint64_t *lag = calloc(nb, sizeof *lag);
	size_t nl = 0;
	for (size_t b = 0; b < s.seen; b++)
		lag[nl++] = s.arrival[b] > reply[b] ? s.arrival[b] - reply[b] : 0;
	qsort(lag, nl, sizeof *lag, cmp_u64);
	if (nl) {
		printf("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f batches=%zu missing=%zu late=%zu\n",
		       (double)lag[nl / 2] / 1e6, (double)lag[(size_t)((double)nl * 0.99)] / 1e6,
		       (double)lag[nl - 1] / 1e6, nb, missing, late);
		ret = missing || s.failed ? 1 : 0;
	}
	free(lag);
out:
	if (th_live) {
		atomic_store(&s.stop_ns, 1);
		pthread_join(th, NULL);
	}
	if (w_open)
		rc_close(&w);
	free(s.arrival);
	free(reply);
	bench_corpus_free(&c);
	if (ret)
		fprintf(stderr, "newsarch-bench: redis lag run failed\n");
	return ret;
}

/* ---- options ---------------------------------------------------------- */

static void peer_usage(FILE *f)
{
	fprintf(f,
		"usage: newsarch-bench --peer MODE [options]\n"
		"  MODE: export | redis-get | redis-range | redis-catchup | redis-lag\n"
		"  --addr HOST:PORT      the Redis server (the primary for catchup and lag)\n"
		"  --replica HOST:PORT   catchup, lag: the replica\n"
		"  --corpus FILE | --synthetic N, --scale N, --articles N\n"
		"  --out DIR             export: where to write the files\n"
		"  --clients N --seconds S   get, range (default 1, 5)\n"
		"  --offset N --rate R --batch N   lag: first article (the primary's count),\n"
		"                        articles/s (5000), articles per batch (50)\n"
		"  --since-ns T --timeout S --wait-aof   catchup\n");
}

int bench_peer_main(int argc, char **argv)
{
	if (argc < 3) {
		peer_usage(stderr);
		return 2;
	}
	popts o = { .mode = argv[2], .addr = "127.0.0.1:6379", .scale = 1, .clients = 1,
		    .seconds = 5, .rate = 5000, .timeout = 300, .batch = 50 };
	enum { O_ADDR = 1, O_REPLICA, O_CORPUS, O_SYNTH, O_SCALE, O_ARTICLES, O_OUT, O_CLIENTS,
	       O_SECONDS, O_OFFSET, O_RATE, O_BATCH, O_SINCE, O_TIMEOUT, O_WAITAOF, O_HELP };
	static const struct option lo[] = {
		{ "addr", required_argument, NULL, O_ADDR },
		{ "replica", required_argument, NULL, O_REPLICA },
		{ "corpus", required_argument, NULL, O_CORPUS },
		{ "synthetic", required_argument, NULL, O_SYNTH },
		{ "scale", required_argument, NULL, O_SCALE },
		{ "articles", required_argument, NULL, O_ARTICLES },
		{ "out", required_argument, NULL, O_OUT },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "rate", required_argument, NULL, O_RATE },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "since-ns", required_argument, NULL, O_SINCE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "wait-aof", no_argument, NULL, O_WAITAOF },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 3;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *e = NULL;
		switch (ch) {
		case O_ADDR: o.addr = optarg; break;
		case O_REPLICA: o.replica = optarg; break;
		case O_CORPUS: o.corpus = optarg; break;
		case O_OUT: o.out_dir = optarg; break;
		case O_SYNTH: o.synthetic = strtoul(optarg, &e, 10); break;
		case O_SCALE: o.scale = (unsigned)strtoul(optarg, &e, 10); break;
		case O_ARTICLES: o.articles = strtoul(optarg, &e, 10); break;
		case O_CLIENTS: o.clients = (unsigned)strtoul(optarg, &e, 10); break;
		case O_SECONDS: o.seconds = strtod(optarg, &e); break;
		case O_OFFSET: o.offset = strtoul(optarg, &e, 10); break;
		case O_RATE: o.rate = strtod(optarg, &e); break;
		case O_BATCH: o.batch = (unsigned)strtoul(optarg, &e, 10); break;
		case O_SINCE: o.since_ns = strtoull(optarg, &e, 10); break;
		case O_TIMEOUT: o.timeout = strtod(optarg, &e); break;
		case O_WAITAOF: o.wait_aof = true; break;
		case O_HELP: peer_usage(stdout); return 0;
		default: peer_usage(stderr); return 2;
		}
		if (e && (*e || e == optarg)) {
			fprintf(stderr, "newsarch-bench: bad value for --%s: \"%s\"\n", lo[ch - 1].name,
				optarg);
			return 2;
		}
	}
	if (o.clients < 1 || o.clients > MAX_PEER_CLIENTS || o.scale < 1 || o.scale > 100000 ||
	    !(o.seconds > 0 && o.seconds <= 3600) || !(o.rate > 0) || o.batch < 1 || o.batch > 64 ||
	    !(o.timeout > 0)) {
		fprintf(stderr, "newsarch-bench: --peer: an option is out of range\n");
		return 2;
	}
	if (!strcmp(o.mode, "export"))
		return mode_export(&o);
	if (!strcmp(o.mode, "redis-get"))
		return mode_read(&o, false);
	if (!strcmp(o.mode, "redis-range"))
		return mode_read(&o, true);
	if ((!strcmp(o.mode, "redis-catchup") || !strcmp(o.mode, "redis-lag")) && !o.replica) {
		fprintf(stderr, "newsarch-bench: --peer %s needs --replica\n", o.mode);
		return 2;
	}
	if (!strcmp(o.mode, "redis-catchup"))
		return mode_catchup(&o);
	if (!strcmp(o.mode, "redis-lag"))
		return mode_lag(&o);
	fprintf(stderr, "newsarch-bench: unknown --peer mode \"%s\"\n", o.mode);
	peer_usage(stderr);
	return 2;
}
