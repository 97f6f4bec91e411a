/*
 * uv.c - the libuv adapter: moves the protocol core's bytes over a uv
 * stream and turns raw responses into typed replies.
 *
 * TLS (tls:// addresses): the TLS engine (proto/tls.h) sits between the
 * stream and the core. The client context is built from the files when
 * na_uv_client_connect is called; the handshake runs after the TCP connect,
 * still in S_CONNECTING and under the connect timer, and the connect
 * callback reports success only when it has finished. Calls queued before
 * then stay in the core's output until the session is up.
 */
#include "internal.h"
#include "newsarch_uv.h"
#include "tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBUF 65536

enum { S_CONNECTING, S_CONNECTED, S_DEAD, S_CLOSING };

struct na_uv_client {
	uv_loop_t *loop;
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} io;
	uv_timer_t timer;
	uv_connect_t creq;
	uv_getaddrinfo_t gai;
	uv_write_t wreq;
	na_proto *proto;
	na_options opts;
	na__addr addr;
	int state;
	int err;               /* S_DEAD: the code the connection failed with */
	int refs;              /* close callbacks and requests still due */
	bool gai_pending, writing, connect_reported;
	na_uv_connect_cb ccb;
	void *cud;
	char *wbuf;
	na_tls_ctx *tls_ctx;   /* tls:// until the session exists */
	na_tls *tls;
	char tls_name[256];    /* the name to verify */
	char rbuf[RBUF];
	char pbuf[RBUF];       /* plaintext decrypted from rbuf */
};

static void maybe_free(na_uv_client *c)
{
	if (c->refs > 0)
		return;
	na_proto_free(c->proto);
	na_tls_free(c->tls);
	na_tls_ctx_free(c->tls_ctx);
	free(c->wbuf);
	free(c);
}

static void on_closed(uv_handle_t *h)
{
	na_uv_client *c = h->data;
	c->refs--;
	maybe_free(c);
}

static void report_connect(na_uv_client *c, int status, const char *msg)
{
	if (c->connect_reported)
		return;
	c->connect_reported = true;
	c->ccb(c, status, msg ? msg : "", c->cud);
}

/* The connection failed: report it to whoever waits. */
static void conn_fail(na_uv_client *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conn_fail(na_uv_client *c, int err, const char *fmt, ...)
{
	if (c->state != S_CONNECTING && c->state != S_CONNECTED)
		return;
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (c->state == S_CONNECTED || c->tls)
		uv_read_stop(&c->io.s);
	c->state = S_DEAD;
	c->err = err; /* the core learns it only after the connect callback */
	uv_timer_stop(&c->timer);
	if (c->gai_pending)
		uv_cancel((uv_req_t *)&c->gai);
	report_connect(c, err, m);
	na_proto_fail(c->proto, err, m);
}

void na_uv_client_close(na_uv_client *c)
{
	if (!c || c->state == S_CLOSING)
		return;
	c->state = S_CLOSING;
	report_connect(c, NA_ECLOSED, "client closed");
	na_proto_fail(c->proto, NA_ECLOSED, "client closed");
	if (c->gai_pending)
		uv_cancel((uv_req_t *)&c->gai);
	uv_close(&c->io.h, on_closed);
	uv_close((uv_handle_t *)&c->timer, on_closed);
}

size_t na_uv_pending(const na_uv_client *c)
{
	return c ? na_proto_pending(c->proto) : 0;
}

/* ---- timers --------------------------------------------------------- */

static void on_io_timeout(uv_timer_t *t)
{
	na_uv_client *c = t->data;
	if (na_proto_pending(c->proto) > 0)
		conn_fail(c, NA_ETIMEDOUT, "no data from the server within %d ms",
			  c->opts.io_timeout_ms);
}

/* (Re)starts the I/O timer when calls are pending, else stops it. */
static void arm_io(na_uv_client *c, bool restart)
{
	if (c->state != S_CONNECTED || c->opts.io_timeout_ms <= 0)
		return;
	if (na_proto_pending(c->proto) == 0)
		uv_timer_stop(&c->timer);
	else if (restart || !uv_is_active((uv_handle_t *)&c->timer))
		uv_timer_start(&c->timer, on_io_timeout, (uint64_t)c->opts.io_timeout_ms, 0);
}

static void on_connect_timeout(uv_timer_t *t)
{
	na_uv_client *c = t->data;
	if (c->state == S_CONNECTING)
		conn_fail(c, NA_ETIMEDOUT, "connect: no answer within %d ms",
			  c->opts.connect_timeout_ms);
}

/* ---- writing and reading -------------------------------------------- */

static void flush(na_uv_client *c);

static void on_write(uv_write_t *req, int status)
{
	na_uv_client *c = req->data;
	free(c->wbuf);
	c->wbuf = NULL;
	c->writing = false;
	if (c->state != S_CONNECTED && !(c->tls && c->state == S_CONNECTING))
		return;
	if (status < 0) {
		conn_fail(c, NA_ECONN, "write: %s", uv_strerror(status));
		return;
	}
	flush(c);
}

/* TLS: encrypts the core's output once the session is up, and writes the
 * engine's ciphertext (handshake messages included). */
static void tls_flush(na_uv_client *c)
{
	const uint8_t *p;
	size_t n;
	if (c->state == S_CONNECTED) {
		na_proto_output(c->proto, &p, &n);
		if (n) {
			int rc = na_tls_write(c->tls, p, n);
			if (rc) {
				conn_fail(c, rc == NA_TLS_NOMEM ? NA_ENOMEM : NA_ETLS, "TLS: %s",
					  rc == NA_TLS_NOMEM ? "out of memory" : na_tls_errmsg(c->tls));
				return;
			}
			na_proto_consume(c->proto, n);
		}
	}
	uint8_t *b = na_tls_output_release(c->tls, &n);
	if (!b) {
		if (n)
			conn_fail(c, NA_ENOMEM, "out of memory for the write buffer");
		return;
	}
	c->wbuf = (char *)b;
	uv_buf_t buf = uv_buf_init(c->wbuf, (unsigned)n);
	c->wreq.data = c;
	int rc = uv_write(&c->wreq, &c->io.s, &buf, 1, on_write);
	if (rc < 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		conn_fail(c, NA_ECONN, "write: %s", uv_strerror(rc));
		return;
	}
	c->writing = true;
}

static void flush(na_uv_client *c)
{
	if (c->tls && !c->writing && (c->state == S_CONNECTED || c->state == S_CONNECTING)) {
		tls_flush(c);
		return;
	}
	if (c->state != S_CONNECTED || c->writing)
		return;
	const uint8_t *b;
	size_t n;
	na_proto_output(c->proto, &b, &n);
	if (n == 0)
		return;
	c->wbuf = malloc(n);
	if (!c->wbuf) {
		conn_fail(c, NA_ENOMEM, "out of memory for the write buffer");
		return;
	}
	memcpy(c->wbuf, b, n);
	na_proto_consume(c->proto, n);
	uv_buf_t buf = uv_buf_init(c->wbuf, (unsigned)n);
	c->wreq.data = c;
	int rc = uv_write(&c->wreq, &c->io.s, &buf, 1, on_write);
	if (rc < 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		conn_fail(c, NA_ECONN, "write: %s", uv_strerror(rc));
		return;
	}
	c->writing = true;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	na_uv_client *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* TLS: nread bytes of ciphertext in rbuf. */
static void tls_read(na_uv_client *c, size_t nread)
{
	bool was_done = na_tls_handshake_done(c->tls);
	if (na_tls_feed(c->tls, c->rbuf, nread)) {
		conn_fail(c, NA_ENOMEM, "out of memory for TLS input");
		return;
	}
	for (;;) {
		size_t got;
		int rc = na_tls_read(c->tls, c->pbuf, sizeof c->pbuf, &got);
		if (rc == NA_TLS_EOF) {
			conn_fail(c, NA_ECONN, "connection closed by the server");
			return;
		}
		if (rc) {
			if (!c->writing) /* the alert, if the socket is free */
				tls_flush(c);
			if (was_done)
				conn_fail(c, NA_ETLS, "TLS: %s", na_tls_errmsg(c->tls));
			else
				conn_fail(c, NA_ETLS, "TLS handshake with %s failed: %s", c->tls_name,
					  na_tls_errmsg(c->tls));
			return;
		}
		if (!was_done && na_tls_handshake_done(c->tls)) {
			was_done = true;
			uv_timer_stop(&c->timer);
			c->state = S_CONNECTED;
			report_connect(c, 0, "");
			if (c->state != S_CONNECTED)
				return; /* closed by the callback */
		}
		if (got == 0)
			break;
		rc = na_proto_feed(c->proto, c->pbuf, got);
		if (c->state != S_CONNECTED)
			return; /* a callback closed the client */
		if (rc) { /* bad reply: the core failed every call */
			uv_read_stop(&c->io.s);
			uv_timer_stop(&c->timer);
			c->state = S_DEAD;
			c->err = rc;
			return;
		}
	}
	flush(c);
	arm_io(c, c->state == S_CONNECTED);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	na_uv_client *c = s->data;
	(void)buf;
	if (c->tls && c->state == S_CONNECTING && nread < 0) {
		conn_fail(c, NA_ETLS, "TLS handshake with %s: the server closed the connection "
				      "(is it a TLS port?)", c->tls_name);
		return;
	}
	if (c->tls && (c->state == S_CONNECTED || c->state == S_CONNECTING) && nread > 0) {
		tls_read(c, (size_t)nread);
		return;
	}
	if (c->state != S_CONNECTED)
		return;
	if (nread > 0) {
		int rc = na_proto_feed(c->proto, c->rbuf, (size_t)nread);
		if (c->state != S_CONNECTED)
			return; /* a callback closed the client */
		if (rc) { /* bad reply: the core failed every call */
			uv_read_stop(&c->io.s);
			uv_timer_stop(&c->timer);
			c->state = S_DEAD;
			c->err = rc;
			return;
		}
		arm_io(c, true);
	} else if (nread < 0) {
		if (nread == UV_EOF)
			conn_fail(c, NA_ECONN, "connection closed by the server");
		else
			conn_fail(c, NA_ECONN, "read: %s", uv_strerror((int)nread));
	}
}

/* ---- connecting ----------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
	na_uv_client *c = req->data;
	if (c->state != S_CONNECTING)
		return; /* closed, or timed out */
	if (status < 0) {
		conn_fail(c, NA_ECONN, "connect: %s", uv_strerror(status));
		return;
	}
	int rc = uv_read_start(&c->io.s, on_alloc, on_read);
	if (rc < 0) {
		conn_fail(c, NA_ECONN, "read: %s", uv_strerror(rc));
		return;
	}
	if (c->tls_ctx) {
		/* the handshake, still under the connect timer */
		if (c->io.h.type == UV_TCP)
			uv_tcp_nodelay(&c->io.tcp, 1);
		rc = na_tls_new(c->tls_ctx, c->tls_name, &c->tls);
		na_tls_ctx_free(c->tls_ctx);
		c->tls_ctx = NULL;
		if (rc) {
			conn_fail(c, NA_ETLS, "TLS: cannot start a session for \"%s\"", c->tls_name);
			return;
		}
		flush(c); /* the ClientHello */
		return;
	}
	uv_timer_stop(&c->timer);
	c->state = S_CONNECTED;
	if (c->io.h.type == UV_TCP)
		uv_tcp_nodelay(&c->io.tcp, 1);
	report_connect(c, 0, "");
	if (c->state != S_CONNECTED)
		return;
	flush(c);
	arm_io(c, false);
}

static int start_tcp(na_uv_client *c, const struct sockaddr *sa)
{
	c->creq.data = c;
	return uv_tcp_connect(&c->creq, &c->io.tcp, sa, on_connect);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	na_uv_client *c = req->data;
	int rc;
	c->gai_pending = false;
	if (c->state == S_CLOSING) {
		uv_freeaddrinfo(res);
		c->refs--;
		maybe_free(c);
		return;
	}
	c->refs--;
	if (status < 0 || !res)
		conn_fail(c, NA_ECONN, "resolve %s: %s", c->addr.host,
			  status < 0 ? uv_strerror(status) : "no address");
	else if (c->state == S_CONNECTING && (rc = start_tcp(c, res->ai_addr)) < 0)
		conn_fail(c, NA_ECONN, "connect: %s", uv_strerror(rc));
	uv_freeaddrinfo(res);
}

int na_uv_client_connect(uv_loop_t *loop, const char *addr, const na_options *opts,
			 na_uv_connect_cb cb, void *ud, na_uv_client **out)
{
	char err[256];
	if (!loop || !cb || !out)
		return NA_EINVAL;
	na_uv_client *c = calloc(1, sizeof *c);
	if (!c)
		return NA_ENOMEM;
	na_options_init(&c->opts);
	if (opts)
		c->opts = *opts;
	int rc = na__addr_parse(addr, &c->addr, err, sizeof err);
	if (rc) {
		free(c);
		return rc;
	}
	if (c->addr.tls) {
		const char *name = c->opts.tls_server_name && *c->opts.tls_server_name
					   ? c->opts.tls_server_name
					   : c->addr.host;
		if (strlen(name) >= sizeof c->tls_name ||
		    na_tls_ctx_client(c->opts.tls_ca_file, c->opts.tls_cert_file,
				      c->opts.tls_key_file, &c->tls_ctx, err, sizeof err)) {
			free(c);
			return NA_ETLS;
		}
		memcpy(c->tls_name, name, strlen(name) + 1);
	}
	/* the borrowed strings are not kept */
	c->opts.token = c->opts.tls_ca_file = c->opts.tls_cert_file = c->opts.tls_key_file =
		c->opts.tls_server_name = NULL;
	rc = na_proto_new(c->opts.max_response_bytes, &c->proto);
	if (rc) {
		na_tls_ctx_free(c->tls_ctx);
		free(c);
		return rc;
	}
	c->loop = loop;
	c->ccb = cb;
	c->cud = ud;
	c->state = S_CONNECTING;
	if ((c->addr.is_unix ? uv_pipe_init(loop, &c->io.pipe, 0) : uv_tcp_init(loop, &c->io.tcp)) < 0) {
		na_proto_free(c->proto);
		na_tls_ctx_free(c->tls_ctx);
		free(c);
		return NA_ECONN;
	}
	c->io.h.data = c;
	uv_timer_init(loop, &c->timer); /* cannot fail */
	c->timer.data = c;
	c->refs = 2;
	if (c->opts.connect_timeout_ms > 0)
		uv_timer_start(&c->timer, on_connect_timeout, (uint64_t)c->opts.connect_timeout_ms, 0);

	rc = 0;
	if (c->addr.is_unix) {
		c->creq.data = c;
		uv_pipe_connect(&c->creq, &c->io.pipe, c->addr.path, on_connect); /* reports later */
	} else {
		struct sockaddr_storage ss;
		if (uv_ip4_addr(c->addr.host, atoi(c->addr.port), (struct sockaddr_in *)&ss) == 0 ||
		    uv_ip6_addr(c->addr.host, atoi(c->addr.port), (struct sockaddr_in6 *)&ss) == 0) {
			rc = start_tcp(c, (struct sockaddr *)&ss);
		} else {
			struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
						  .ai_flags = AI_NUMERICSERV };
			c->gai.data = c;
			rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->addr.host, c->addr.port,
					    &hints);
			if (rc == 0) {
				c->gai_pending = true;
				c->refs++;
			}
		}
	}
	if (rc < 0) {
		/* libuv refused at once (e.g. no descriptor left): the caller gets
		 * the error instead of a callback from inside this call; the
		 * handles are freed by the loop */
		c->state = S_CLOSING;
		uv_close(&c->io.h, on_closed);
		uv_close((uv_handle_t *)&c->timer, on_closed);
		return NA_ECONN;
	}
	*out = c;
	return 0;
}

/* ---- calls ---------------------------------------------------------- */

enum { K_RAW, K_PING, K_PUT, K_BATCH, K_GET, K_DELETE, K_COUNT, K_STATS, K_PAGE };

typedef struct ucall {
	na_uv_client *c;
	int kind;
	size_t n;     /* batch size */
	na_uv_cb cb;
	void *ud;
} ucall;

static const char *const kind_name[] = { "raw", "ping", "put", "put_batch", "get",
					 "delete", "count", "stats", "range" };

static void on_response(const na_response *r, void *ud)
{
	ucall *k = ud;
	na_uv_reply rep = { .err = r->err, .errmsg = r->errmsg, .raw = r->result,
			    .raw_len = r->result_len };
	na_put_result *items = NULL;
	char *arena = NULL;
	na_article art = { 0 }, *arts = NULL;
	const na_article **ptrs = NULL;
	na_server_stats *stats = NULL;
	uint32_t npage = 0;
	int rc = 0;
	if (r->err == 0) {
		switch (k->kind) {
		case K_PING: rc = na__dec_pong(r->result, r->result_len); break;
		case K_PUT: rc = na__dec_put(r->result, r->result_len, &rep.put); break;
		case K_BATCH:
			items = calloc(k->n, sizeof *items);
			rc = items ? na__dec_batch(r->result, r->result_len, k->n, items, &arena)
				   : NA_ENOMEM;
			rep.items = items;
			rep.nitems = k->n;
			break;
		case K_GET:
			rc = na__article_index(&art, r->result, r->result_len);
			rep.article = &art;
			break;
		case K_DELETE:
			rc = na__dec_delete(r->result, r->result_len, &rep.deleted, &rep.seq);
			break;
		case K_COUNT: rc = na__dec_count(r->result, r->result_len, &rep.count); break;
		case K_STATS:
			rc = na__dec_stats(r->result, r->result_len, &stats);
			rep.stats = stats;
			break;
		case K_PAGE: {
			const uint8_t *ab;
			size_t al;
			rc = na__dec_page(r->result, r->result_len, &ab, &al, &npage, &rep.next);
			if (rc)
				break;
			arts = calloc(npage ? npage : 1, sizeof *arts);
			ptrs = calloc(npage ? npage : 1, sizeof *ptrs);
			if (!arts || !ptrs) {
				rc = NA_ENOMEM;
				break;
			}
			na_mp mr;
			na_mp_init(&mr, ab, al);
			for (uint32_t i = 0; i < npage && !rc; i++) {
				rc = na__page_article(&mr, &arts[i]);
				ptrs[i] = &arts[i];
			}
			rep.articles = ptrs;
			rep.narticles = npage;
			break;
		}
		default: break;
		}
		if (rc) {
			char m[128];
			snprintf(m, sizeof m, rc == NA_ENOMEM ? "out of memory decoding the %s reply"
							      : "malformed %s reply",
				 kind_name[k->kind]);
			na_uv_reply e = { .err = rc == NA_EINVAL ? NA_EPROTO : rc, .errmsg = m };
			k->cb(k->c, &e, k->ud);
		}
	}
	if (r->err || !rc)
		k->cb(k->c, &rep, k->ud);
	free(items);
	free(arena);
	free(art.fields);
	if (arts)
		for (uint32_t i = 0; i < npage; i++)
			free(arts[i].fields);
	free(arts);
	free(ptrs);
	na_server_stats_free(stats);
	free(k);
}

static int queue(na_uv_client *c, int kind, size_t n, const char *method,
		 const msgpack_sbuffer *params, na_uv_cb cb, void *ud)
{
	if (c->state == S_CLOSING)
		return NA_ECLOSED;
	if (c->state == S_DEAD)
		return c->err;
	ucall *k = malloc(sizeof *k);
	if (!k)
		return NA_ENOMEM;
	*k = (ucall){ .c = c, .kind = kind, .n = n, .cb = cb, .ud = ud };
	int rc = na_proto_call(c->proto, method, params ? params->data : NULL,
			       params ? params->size : 0, on_response, k, NULL);
	if (rc) {
		free(k);
		return rc;
	}
	flush(c);
	arm_io(c, false);
	return 0;
}

#define QUEUE(c, kind, n, method, encode_expr, cb, ud)                  \
	do {                                                            \
		if (!(c) || !(cb))                                      \
			return NA_EINVAL;                               \
		msgpack_sbuffer sb_;                                    \
		msgpack_sbuffer_init(&sb_);                             \
		msgpack_sbuffer *sb = &sb_;                             \
		int rc_ = (encode_expr);                                \
		if (!rc_)                                               \
			rc_ = queue(c, kind, n, method, &sb_, cb, ud);  \
		msgpack_sbuffer_destroy(&sb_);                          \
		return rc_;                                             \
	} while (0)

int na_uv_ping(na_uv_client *c, na_uv_cb cb, void *ud)
{
	if (!c || !cb)
		return NA_EINVAL;
	return queue(c, K_PING, 0, "ping", NULL, cb, ud);
}

int na_uv_put(na_uv_client *c, const na_article *a, na_uv_cb cb, void *ud)
{
	if (!a)
		return NA_EINVAL;
	QUEUE(c, K_PUT, 0, "put", na__enc_put(sb, a), cb, ud);
}

int na_uv_put_batch(na_uv_client *c, const na_article *const *articles, size_t n, na_uv_cb cb,
		    void *ud)
{
	if (!articles || n == 0)
		return NA_EINVAL;
	QUEUE(c, K_BATCH, n, "put_batch", na__enc_put_batch(sb, articles, n), cb, ud);
}

int na_uv_get(na_uv_client *c, const char *guid, size_t guid_len, const char *const *fields,
	      size_t nfields, na_uv_cb cb, void *ud)
{
	if (!guid || guid_len == 0 || guid_len > NA_GUID_MAX_BYTES)
		return NA_EINVAL;
	QUEUE(c, K_GET, 0, "get", na__enc_guid(sb, guid, guid_len, fields, nfields), cb, ud);
}

int na_uv_delete(na_uv_client *c, const char *guid, size_t guid_len, na_uv_cb cb, void *ud)
{
	if (!guid || guid_len == 0 || guid_len > NA_GUID_MAX_BYTES)
		return NA_EINVAL;
	QUEUE(c, K_DELETE, 0, "delete", na__enc_guid(sb, guid, guid_len, NULL, 0), cb, ud);
}

int na_uv_count(na_uv_client *c, const na_time *from, const na_time *to, na_uv_cb cb, void *ud)
{
	QUEUE(c, K_COUNT, 0, "count", na__enc_count(sb, from, to), cb, ud);
}

int na_uv_stats(na_uv_client *c, na_uv_cb cb, void *ud)
{
	if (!c || !cb)
		return NA_EINVAL;
	return queue(c, K_STATS, 0, "stats", NULL, cb, ud);
}

static int enc_page(msgpack_sbuffer *sb, const na_range_opts *opts, const na_cursor *after)
{
	na_range_opts o = { 0 };
	if (opts)
		o = *opts;
	if (o.fields && o.nfields > NA_MAX_FIELDS)
		return NA_EINVAL;
	if (after && after->len > sizeof after->bytes)
		return NA_EINVAL;
	msgpack_sbuffer names;
	msgpack_sbuffer_init(&names);
	int rc = o.fields ? na__enc_names(&names, o.fields, o.nfields) : 0;
	if (!rc)
		rc = na__enc_range(sb, &o, o.fields ? (const uint8_t *)names.data : NULL,
				   names.size, after);
	msgpack_sbuffer_destroy(&names);
	return rc;
}

int na_uv_range_page(na_uv_client *c, const na_range_opts *opts, const na_cursor *after,
		     na_uv_cb cb, void *ud)
{
	QUEUE(c, K_PAGE, 0, "range", enc_page(sb, opts, after), cb, ud);
}

int na_uv_call_raw(na_uv_client *c, const char *method, const void *params, size_t params_len,
		   na_uv_cb cb, void *ud)
{
	if (!c || !cb || !method || (!params && params_len))
		return NA_EINVAL;
	msgpack_sbuffer sb = { .size = params_len, .data = (char *)params, .alloc = params_len };
	return queue(c, K_RAW, 0, method, params ? &sb : NULL, cb, ud);
}
