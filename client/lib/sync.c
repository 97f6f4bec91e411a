/*
 * sync.c - the blocking client: a non-blocking socket driven with poll(2)
 * around the protocol core, and the range iterator.
 *
 * With a tls:// address the TLS engine (proto/tls.h) sits between the
 * socket and the core: the core's output is encrypted before it is sent,
 * and what arrives is decrypted before the core sees it. The handshake is
 * finished inside connect, within the connect timeout.
 */
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ERRMSG_MAX 2048
#define RBUF 65536

struct na_client {
	int fd;
	na_tls *tls;           /* tls:// connections */
	na_proto *proto;
	na_options opts;
	int dead;              /* 0, or the code the connection died with */
	uint8_t *reply;        /* result bytes of the last call (owned) */
	size_t reply_len;
	char *arena;           /* batch error messages of the last call */
	char errmsg[ERRMSG_MAX];
	uint8_t rbuf[RBUF];
	uint8_t pbuf[RBUF];    /* plaintext decrypted from rbuf */
};

void na_options_init(na_options *o)
{
	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 5000;
	o->io_timeout_ms = 30000;
	o->max_response_bytes = NA_MAX_RESPONSE_BYTES;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none), at least 0. */
static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t l = deadline - now_ms();
	return l < 0 ? 0 : l > INT32_MAX ? INT32_MAX : (int)l;
}

static void setmsg(na_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void setmsg(na_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
}

/* ---- connecting ----------------------------------------------------- */

/* Waits for a non-blocking connect on fd; returns 0 or an NA_E* code with
 * errno-style detail in *e. */
static int finish_connect(int fd, int64_t deadline, int *e)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int n = poll(&pfd, 1, left_ms(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*e = errno;
			return NA_ECONN;
		}
		if (n == 0) {
			*e = ETIMEDOUT;
			return NA_ETIMEDOUT;
		}
		socklen_t sl = sizeof *e;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, e, &sl) < 0)
			*e = errno;
		return *e ? NA_ECONN : 0;
	}
}

static int connect_one(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline,
		       int *fdp, int *e)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*e = errno;
		return NA_ECONN;
	}
	int rc = 0;
	if (connect(fd, sa, len) < 0) {
		if (errno == EINPROGRESS)
			rc = finish_connect(fd, deadline, e);
		else {
			*e = errno;
			rc = NA_ECONN;
		}
	}
	if (rc) {
		close(fd);
		return rc;
	}
	if (family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	*fdp = fd;
	return 0;
}

static int open_socket(const na__addr *a, const char *addr, int timeout_ms, int *fdp, char *err,
		       size_t errlen)
{
	int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
	int e = 0, rc;
	if (a->is_unix) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
		rc = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, deadline, fdp, &e);
		if (rc)
			snprintf(err, errlen, "connect to %s: %s", addr, strerror(e));
		return rc;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(a->host, a->port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "resolve %s: %s", a->host, gai_strerror(g));
		return NA_ECONN;
	}
	rc = NA_ECONN;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, fdp, &e);
		if (rc == 0 || rc == NA_ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (rc == NA_ETIMEDOUT)
		snprintf(err, errlen, "connect to %s: no answer within %d ms", addr, timeout_ms);
	else if (rc)
		snprintf(err, errlen, "connect to %s: %s", addr, strerror(e));
	return rc;
}

/* Sends what the engine holds, waiting for the socket until deadline.
 * 0, NA_ECONN or NA_ETIMEDOUT (e set). */
static int tls_send_all(na_tls *t, int fd, int64_t deadline, int *e)
{
	for (;;) {
		const uint8_t *b;
		size_t n;
		na_tls_output(t, &b, &n);
		if (n == 0)
			return 0;
		ssize_t s = send(fd, b, n, MSG_NOSIGNAL);
		if (s > 0) {
			na_tls_consume(t, (size_t)s);
			continue;
		}
		if (s < 0 && errno == EINTR)
			continue;
		if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int pn = poll(&pfd, 1, left_ms(deadline));
			if (pn == 0) {
				*e = ETIMEDOUT;
				return NA_ETIMEDOUT;
			}
			continue;
		}
		*e = s < 0 ? errno : EPIPE;
		return NA_ECONN;
	}
}

/* Runs the TLS handshake on c->fd. Plaintext that arrives with the end of
 * the handshake goes to the core. 0 or an NA_E* code with errbuf set. */
static int tls_handshake(na_client *c, const na__addr *a, const na_options *o, const char *addr,
			 char *errbuf, size_t errlen)
{
	int64_t deadline = o->connect_timeout_ms > 0 ? now_ms() + o->connect_timeout_ms : -1;
	na_tls_ctx *x;
	char m[1024];
	if (na_tls_ctx_client(o->tls_ca_file, o->tls_cert_file, o->tls_key_file, &x, m, sizeof m)) {
		snprintf(errbuf, errlen, "TLS: %s", m);
		return NA_ETLS;
	}
	const char *name = o->tls_server_name && *o->tls_server_name ? o->tls_server_name : a->host;
	int rc = na_tls_new(x, name, &c->tls);
	na_tls_ctx_free(x);
	if (rc) {
		snprintf(errbuf, errlen, rc == NA_TLS_NOMEM ? "out of memory"
							    : "TLS: bad server name \"%s\"", name);
		return rc == NA_TLS_NOMEM ? NA_ENOMEM : NA_ETLS;
	}
	int e = 0;
	while (!na_tls_handshake_done(c->tls)) {
		rc = tls_send_all(c->tls, c->fd, deadline, &e);
		if (rc)
			break;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pn = poll(&pfd, 1, left_ms(deadline));
		if (pn < 0 && errno == EINTR)
			continue;
		if (pn == 0) {
			rc = NA_ETIMEDOUT;
			break;
		}
		ssize_t n = recv(c->fd, c->rbuf, sizeof c->rbuf, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : 0;
			rc = NA_ECONN;
			break;
		}
		if (na_tls_feed(c->tls, c->rbuf, (size_t)n)) {
			snprintf(errbuf, errlen, "out of memory");
			return NA_ENOMEM;
		}
		for (;;) {
			size_t got;
			int r = na_tls_read(c->tls, c->pbuf, sizeof c->pbuf, &got);
			if (r) {
				tls_send_all(c->tls, c->fd, deadline, &e); /* the alert */
				snprintf(errbuf, errlen, "TLS handshake with %s failed: %s", addr,
					 r == NA_TLS_EOF ? "the server closed the session"
							 : na_tls_errmsg(c->tls));
				return NA_ETLS;
			}
			if (got == 0)
				break;
			if (na_proto_feed(c->proto, c->pbuf, got)) {
				snprintf(errbuf, errlen, "%s", na_proto_errmsg(c->proto));
				return NA_EPROTO;
			}
		}
	}
	if (rc == 0)
		rc = tls_send_all(c->tls, c->fd, deadline, &e);
	if (rc == NA_ETIMEDOUT)
		snprintf(errbuf, errlen, "TLS handshake with %s: no answer within %d ms", addr,
			 o->connect_timeout_ms);
	else if (rc == NA_ECONN && e)
		snprintf(errbuf, errlen, "TLS handshake with %s: %s", addr, strerror(e));
	else if (rc == NA_ECONN)
		snprintf(errbuf, errlen, "TLS handshake with %s: the server closed the connection "
					 "(is it a TLS port?)", addr);
	return rc;
}

int na_client_connect_ex(const char *addr, const na_options *opts, na_client **out,
			 char *errbuf, size_t errlen)
{
	char tmp[ERRMSG_MAX];
	na__addr a;
	int fd = -1;
	if (!errbuf || errlen == 0) {
		errbuf = tmp;
		errlen = sizeof tmp;
	}
	errbuf[0] = '\0';
	if (!out) {
		snprintf(errbuf, errlen, "out is NULL");
		return NA_EINVAL;
	}
	na_options o;
	na_options_init(&o);
	if (opts)
		o = *opts;
	int rc = na__addr_parse(addr, &a, errbuf, errlen);
	if (rc)
		return rc;
	na_client *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(errbuf, errlen, "out of memory");
		return NA_ENOMEM;
	}
	c->fd = -1;
	c->opts = o;
	rc = na_proto_new(o.max_response_bytes, &c->proto);
	if (rc) {
		free(c);
		snprintf(errbuf, errlen, "out of memory");
		return rc;
	}
	rc = open_socket(&a, addr ? addr : NA_DEFAULT_ADDR, o.connect_timeout_ms, &fd, errbuf,
			 errlen);
	if (rc) {
		na_proto_free(c->proto);
		free(c);
		return rc;
	}
	c->fd = fd;
	if (a.tls) {
		rc = tls_handshake(c, &a, &o, addr, errbuf, errlen);
		if (rc) {
			na_client_close(c);
			return rc;
		}
	}
	if (o.token) {
		size_t tl = strlen(o.token);
		uint8_t params[8 + 300];
		size_t pl = 0;
		if (tl > 256) {
			na_client_close(c);
			snprintf(errbuf, errlen, "token longer than 256 bytes");
			return NA_EINVAL;
		}
		params[pl++] = 0x91; /* [token] */
		params[pl++] = 0xd9;
		params[pl++] = (uint8_t)tl;
		if (tl > 255) {
			params[pl - 2] = 0xda;
			params[pl - 1] = (uint8_t)(tl >> 8);
			params[pl++] = (uint8_t)tl;
		}
		memcpy(params + pl, o.token, tl);
		pl += tl;
		rc = na_call_raw(c, "auth", params, pl, NULL, NULL);
		if (rc) {
			snprintf(errbuf, errlen, "authentication failed: %s", na_client_errmsg(c));
			na_client_close(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

int na_client_connect(const char *addr, const na_options *opts, na_client **out)
{
	return na_client_connect_ex(addr, opts, out, NULL, 0);
}

void na_client_close(na_client *c)
{
	if (!c)
		return;
	if (c->tls && c->fd >= 0 && !c->dead) {
		/* close_notify, if the socket takes it right away */
		const uint8_t *b;
		size_t n;
		na_tls_shutdown(c->tls);
		na_tls_output(c->tls, &b, &n);
		if (n && send(c->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			n = 0;
	}
	na_tls_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	na_proto_free(c->proto);
	free(c->reply);
	free(c->arena);
	free(c);
}

const char *na_client_errmsg(const na_client *c)
{
	return c ? c->errmsg : "no client";
}

/* ---- one call ------------------------------------------------------- */

typedef struct waiter {
	na_client *c;
	bool done;
	int err;
} waiter;

static void on_reply(const na_response *r, void *ud)
{
	waiter *w = ud;
	na_client *c = w->c;
	w->done = true;
	w->err = r->err;
	if (r->err) {
		setmsg(c, "%s", r->errmsg);
		return;
	}
	c->reply = malloc(r->result_len);
	if (!c->reply) {
		w->err = NA_ENOMEM;
		setmsg(c, "out of memory for a reply of %zu bytes", r->result_len);
		return;
	}
	memcpy(c->reply, r->result, r->result_len);
	c->reply_len = r->result_len;
}

/* The connection is gone: every pending call fails with err. */
static void conn_lost(na_client *c, int err, const char *what, int e)
{
	char m[ERRMSG_MAX];
	if (e)
		snprintf(m, sizeof m, "%s: %s", what, strerror(e));
	else
		snprintf(m, sizeof m, "%s", what);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->dead = err;
	na_proto_fail(c->proto, err, m);
}

/* Sends what can be sent without blocking. */
static void flush_out(na_client *c)
{
	if (c->tls) {
		const uint8_t *b;
		size_t n;
		na_proto_output(c->proto, &b, &n);
		if (n) {
			int rc = na_tls_write(c->tls, b, n);
			if (rc) {
				conn_lost(c, rc == NA_TLS_NOMEM ? NA_ENOMEM : NA_ETLS,
					  rc == NA_TLS_NOMEM ? "out of memory" : na_tls_errmsg(c->tls), 0);
				return;
			}
			na_proto_consume(c->proto, n);
		}
		for (;;) {
			na_tls_output(c->tls, &b, &n);
			if (n == 0)
				return;
			ssize_t s = send(c->fd, b, n, MSG_NOSIGNAL);
			if (s > 0) {
				na_tls_consume(c->tls, (size_t)s);
				continue;
			}
			if (s < 0 && errno == EINTR)
				continue;
			if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			conn_lost(c, NA_ECONN, "send", s < 0 ? errno : EPIPE);
			return;
		}
	}
	for (;;) {
		const uint8_t *b;
		size_t n;
		na_proto_output(c->proto, &b, &n);
		if (n == 0)
			return;
		ssize_t s = send(c->fd, b, n, MSG_NOSIGNAL);
		if (s > 0) {
			na_proto_consume(c->proto, (size_t)s);
			continue;
		}
		if (s < 0 && errno == EINTR)
			continue;
		if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_lost(c, NA_ECONN, "send", s < 0 ? errno : EPIPE);
		return;
	}
}

/* n bytes of ciphertext in c->rbuf: decrypt them into the core. */
static void tls_in(na_client *c, size_t n)
{
	if (na_tls_feed(c->tls, c->rbuf, n)) {
		conn_lost(c, NA_ENOMEM, "out of memory", 0);
		return;
	}
	for (;;) {
		size_t got;
		int r = na_tls_read(c->tls, c->pbuf, sizeof c->pbuf, &got);
		if (r == NA_TLS_EOF) {
			conn_lost(c, NA_ECONN, "connection closed by the server", 0);
			return;
		}
		if (r) {
			char m[400];
			snprintf(m, sizeof m, "TLS: %s", na_tls_errmsg(c->tls));
			conn_lost(c, NA_ETLS, m, 0);
			return;
		}
		if (got == 0)
			break;
		int rc = na_proto_feed(c->proto, c->pbuf, got);
		if (rc) { /* protocol error: the core failed every call */
			close(c->fd);
			c->fd = -1;
			c->dead = rc;
			return;
		}
	}
	flush_out(c); /* whatever the engine wants to say back */
}

/* Reads what is there without blocking, until w is done or the deadline
 * (-1: none) has passed: a server that never stops sending (notifications,
 * late replies) must not keep the call from timing out. */
static void read_in(na_client *c, waiter *w, int64_t deadline)
{
	while (!w->done && c->fd >= 0) {
		if (left_ms(deadline) == 0)
			return;
		ssize_t n = recv(c->fd, c->rbuf, sizeof c->rbuf, 0);
		if (n > 0 && c->tls) {
			tls_in(c, (size_t)n);
			continue;
		}
		if (n > 0) {
			int rc = na_proto_feed(c->proto, c->rbuf, (size_t)n);
			if (rc) { /* protocol error: the core failed every call */
				close(c->fd);
				c->fd = -1;
				c->dead = rc;
			}
			continue;
		}
		if (n == 0) {
			conn_lost(c, NA_ECONN, "connection closed by the server", 0);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_lost(c, NA_ECONN, "recv", errno);
		return;
	}
}

/* Sends method(params) and waits for its reply. On success the result
 * bytes are in c->reply / c->reply_len. */
static int call(na_client *c, const char *method, const msgpack_sbuffer *params)
{
	free(c->reply);
	c->reply = NULL;
	c->reply_len = 0;
	free(c->arena);
	c->arena = NULL;
	if (c->dead) {
		setmsg(c, "connection lost earlier: %s", na_proto_errmsg(c->proto));
		return c->dead;
	}
	c->errmsg[0] = '\0';
	waiter w = { .c = c };
	uint32_t id;
	int rc = na_proto_call(c->proto, method, params ? params->data : NULL,
			       params ? params->size : 0, on_reply, &w, &id);
	if (rc) {
		setmsg(c, "%s", rc == NA_ENOMEM ? "out of memory" : "bad parameters");
		return rc;
	}
	int64_t deadline = c->opts.io_timeout_ms > 0 ? now_ms() + c->opts.io_timeout_ms : -1;
	while (!w.done) {
		const uint8_t *b;
		size_t n;
		int tmo = left_ms(deadline);
		if (tmo == 0) {
			na_proto_cancel(c->proto, id);
			setmsg(c, "no reply to %s within %d ms", method, c->opts.io_timeout_ms);
			return NA_ETIMEDOUT;
		}
		na_proto_output(c->proto, &b, &n);
		if (c->tls && n == 0) {
			na_tls_output(c->tls, &b, &n);
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN | (n ? POLLOUT : 0) };
		int pn = poll(&pfd, 1, tmo);
		if (pn < 0 && errno == EINTR)
			continue;
		if (pn < 0) {
			conn_lost(c, NA_ECONN, "poll", errno);
			break;
		}
		if (pn == 0)
			continue;
		if (pfd.revents & POLLOUT)
			flush_out(c);
		if (!w.done && c->fd >= 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			read_in(c, &w, deadline);
	}
	return w.err;
}

/* Encodes with enc into a fresh buffer and calls. */
#define CALL(c, method, encode_expr)                                          \
	do {                                                                  \
		msgpack_sbuffer sb_;                                          \
		msgpack_sbuffer_init(&sb_);                                   \
		msgpack_sbuffer *sb = &sb_;                                   \
		int erc_ = (encode_expr);                                     \
		if (erc_) {                                                   \
			msgpack_sbuffer_destroy(&sb_);                        \
			setmsg(c, "%s", erc_ == NA_ENOMEM ? "out of memory"   \
						       : "invalid argument"); \
			return erc_;                                          \
		}                                                             \
		erc_ = call(c, method, &sb_);                                 \
		msgpack_sbuffer_destroy(&sb_);                                \
		if (erc_)                                                     \
			return erc_;                                          \
	} while (0)

static int bad_reply(na_client *c, int rc, const char *method)
{
	if (rc == NA_ENOMEM)
		setmsg(c, "out of memory decoding the %s reply", method);
	else
		setmsg(c, "malformed %s reply", method);
	return rc;
}

int na_ping(na_client *c)
{
	if (!c)
		return NA_EINVAL;
	int rc = call(c, "ping", NULL);
	if (rc)
		return rc;
	rc = na__dec_pong(c->reply, c->reply_len);
	return rc ? bad_reply(c, rc, "ping") : 0;
}

int na_put(na_client *c, const na_article *a, na_put_result *res)
{
	if (!c)
		return NA_EINVAL;
	if (!a) {
		setmsg(c, "article is NULL");
		return NA_EINVAL;
	}
	CALL(c, "put", na__enc_put(sb, a));
	na_put_result tmp;
	int rc = na__dec_put(c->reply, c->reply_len, &tmp);
	if (rc)
		return bad_reply(c, rc, "put");
	if (res)
		*res = tmp;
	return 0;
}

int na_put_batch(na_client *c, const na_article *const *articles, size_t n,
		 na_put_result *results)
{
	if (!c)
		return NA_EINVAL;
	if (!articles || !results || n == 0) {
		setmsg(c, "articles and results must be non-NULL and n > 0");
		return NA_EINVAL;
	}
	CALL(c, "put_batch", na__enc_put_batch(sb, articles, n));
	int rc = na__dec_batch(c->reply, c->reply_len, n, results, &c->arena);
	return rc ? bad_reply(c, rc, "put_batch") : 0;
}

int na_get(na_client *c, const char *guid, size_t guid_len, const char *const *fields,
	   size_t nfields, na_article **out)
{
	if (!c)
		return NA_EINVAL;
	if (!guid || !out || guid_len == 0 || guid_len > NA_GUID_MAX_BYTES) {
		setmsg(c, "guid must be 1..%d bytes and out non-NULL", NA_GUID_MAX_BYTES);
		return NA_EINVAL;
	}
	CALL(c, "get", na__enc_guid(sb, guid, guid_len, fields, nfields));
	uint8_t *buf = c->reply;
	size_t len = c->reply_len;
	c->reply = NULL;
	c->reply_len = 0;
	int rc = na__article_adopt(buf, len, out);
	if (rc == NA_EINVAL)
		rc = NA_EPROTO;
	return rc ? bad_reply(c, rc, "get") : 0;
}

int na_delete(na_client *c, const char *guid, size_t guid_len, int *deleted, uint64_t *seq)
{
	if (!c)
		return NA_EINVAL;
	if (!guid || guid_len == 0 || guid_len > NA_GUID_MAX_BYTES) {
		setmsg(c, "guid must be 1..%d bytes", NA_GUID_MAX_BYTES);
		return NA_EINVAL;
	}
	CALL(c, "delete", na__enc_guid(sb, guid, guid_len, NULL, 0));
	int rc = na__dec_delete(c->reply, c->reply_len, deleted, seq);
	return rc ? bad_reply(c, rc, "delete") : 0;
}

int na_count(na_client *c, const na_time *from, const na_time *to, uint64_t *out)
{
	if (!c)
		return NA_EINVAL;
	if (!out) {
		setmsg(c, "out is NULL");
		return NA_EINVAL;
	}
	CALL(c, "count", na__enc_count(sb, from, to));
	int rc = na__dec_count(c->reply, c->reply_len, out);
	return rc ? bad_reply(c, rc, "count") : 0;
}

int na_stats(na_client *c, na_server_stats **out)
{
	if (!c)
		return NA_EINVAL;
	if (!out) {
		setmsg(c, "out is NULL");
		return NA_EINVAL;
	}
	int rc = call(c, "stats", NULL);
	if (rc)
		return rc;
	rc = na__dec_stats(c->reply, c->reply_len, out);
	return rc ? bad_reply(c, rc, "stats") : 0;
}

int na_call_raw(na_client *c, const char *method, const void *params, size_t params_len,
		const uint8_t **result, size_t *result_len)
{
	if (!c)
		return NA_EINVAL;
	if (!method || (!params && params_len)) {
		setmsg(c, "method is NULL");
		return NA_EINVAL;
	}
	msgpack_sbuffer sb = { .size = params_len, .data = (char *)params, .alloc = params_len };
	int rc = call(c, method, params ? &sb : NULL);
	if (rc)
		return rc;
	if (result)
		*result = c->reply;
	if (result_len)
		*result_len = c->reply_len;
	return 0;
}

/* ---- range iterator ------------------------------------------------- */

/* A server may send an empty page that is not the last, but one that keeps
 * doing so (with cursors that change, so the scan seems to move, e.g. A, B,
 * A, ...) would keep one na_range_next / na_search_next looping for ever. */
#define MAX_EMPTY_PAGES 16

struct na_range {
	na_client *c;
	na_range_opts opts;
	na_time from, to;
	uint8_t *fields;       /* encoded names array, or NULL */
	size_t fields_len;
	na_cursor next;
	bool started;
	unsigned empty;        /* empty pages in a row that were not the last */
	int state;             /* 1 running, 0 ended, < 0 failed */
	uint8_t *page;         /* result of the current page (owned) */
	na_mp r;               /* over the page's articles */
	uint32_t left;
	na_article cur;        /* borrows from page */
};

int na_range_open(na_client *c, const na_range_opts *opts, na_range **out)
{
	if (!c || !out)
		return NA_EINVAL;
	na_range_opts o = { 0 };
	if (opts)
		o = *opts;
	if (o.fields && o.nfields > NA_MAX_FIELDS) {
		setmsg(c, "at most %d fields", NA_MAX_FIELDS);
		return NA_EINVAL;
	}
	if ((o.from && o.from->nsec > 999999999u) || (o.to && o.to->nsec > 999999999u)) {
		setmsg(c, "nsec must be below 1e9");
		return NA_EINVAL;
	}
	na_range *it = calloc(1, sizeof *it);
	if (!it)
		return NA_ENOMEM;
	it->c = c;
	it->opts = o;
	if (o.from) {
		it->from = *o.from;
		it->opts.from = &it->from;
	}
	if (o.to) {
		it->to = *o.to;
		it->opts.to = &it->to;
	}
	it->opts.fields = NULL;
	it->opts.nfields = 0;
	if (o.fields) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		int rc = na__enc_names(&sb, o.fields, o.nfields);
		if (rc) {
			msgpack_sbuffer_destroy(&sb);
			free(it);
			setmsg(c, "bad field names");
			return rc;
		}
		it->fields_len = sb.size;
		it->fields = (uint8_t *)msgpack_sbuffer_release(&sb);
	}
	it->state = 1;
	for (int i = 0; i < NA_K__COUNT; i++)
		it->cur.known[i] = -1;
	*out = it;
	return 0;
}

static int fetch_page(na_range *it)
{
	na_client *c = it->c;
	free(it->page);
	it->page = NULL;
	CALL(c, "range", na__enc_range(sb, &it->opts, it->fields, it->fields_len,
				       it->started ? &it->next : NULL));
	it->page = c->reply;
	size_t len = c->reply_len;
	c->reply = NULL;
	c->reply_len = 0;
	const uint8_t *arts;
	size_t alen;
	uint32_t n;
	int rc = na__dec_page(it->page, len, &arts, &alen, &n, &it->next);
	if (rc)
		return bad_reply(c, rc, "range");
	it->empty = n == 0 && it->next.len ? it->empty + 1 : 0;
	if (it->empty > MAX_EMPTY_PAGES) {
		setmsg(c, "range: the server sent more than %d empty pages in a row",
		       MAX_EMPTY_PAGES);
		return NA_EPROTO;
	}
	it->started = true;
	na_mp_init(&it->r, arts, alen);
	it->left = n;
	return 0;
}

int na_range_next(na_range *it, const na_article **out)
{
	if (!it || !out)
		return NA_EINVAL;
	if (it->state <= 0)
		return it->state;
	while (it->left == 0) {
		if (it->started && it->next.len == 0) {
			free(it->page);
			it->page = NULL;
			return it->state = 0;
		}
		int rc = fetch_page(it);
		if (rc)
			return it->state = rc;
	}
	int rc = na__page_article(&it->r, &it->cur);
	if (rc) {
		setmsg(it->c, "range: an article in the reply is not a valid article");
		return it->state = rc;
	}
	it->left--;
	*out = &it->cur;
	return 1;
}

void na_range_close(na_range *it)
{
	if (!it)
		return;
	free(it->cur.fields);
	free(it->page);
	free(it->fields);
	free(it);
}

/* ---- search iterator ------------------------------------------------ */

struct na_search {
	na_client *c;
	na_search_opts opts;
	na_time from, to;
	char *query;
	uint8_t *fields;       /* encoded names array, or NULL */
	size_t fields_len;
	na_cursor next;
	bool started;
	unsigned empty;        /* empty pages in a row that were not the last */
	int state;             /* 1 running, 0 ended, < 0 failed */
	uint8_t *page;
	na_mp r;
	uint32_t left;
	uint64_t total;
	na_article cur;
};

int na_search_open(na_client *c, const na_search_opts *opts, na_search **out)
{
	if (!c || !out)
		return NA_EINVAL;
	if (!opts || !opts->query) {
		setmsg(c, "search: the query is required");
		return NA_EINVAL;
	}
	na_search_opts o = *opts;
	size_t qlen = strlen(o.query);
	if (qlen > 4096) {
		setmsg(c, "search: the query is longer than 4096 bytes");
		return NA_EINVAL;
	}
	if ((unsigned)o.order > NA_SEARCH_RELEVANCE) {
		setmsg(c, "search: unknown order");
		return NA_EINVAL;
	}
	if (o.fields && o.nfields > NA_MAX_FIELDS) {
		setmsg(c, "at most %d fields", NA_MAX_FIELDS);
		return NA_EINVAL;
	}
	if ((o.from && o.from->nsec > 999999999u) || (o.to && o.to->nsec > 999999999u)) {
		setmsg(c, "nsec must be below 1e9");
		return NA_EINVAL;
	}
	na_search *it = calloc(1, sizeof *it);
	char *qc = malloc(qlen + 1);
	if (!it || !qc) {
		free(it);
		free(qc);
		return NA_ENOMEM;
	}
	memcpy(qc, o.query, qlen + 1);
	it->c = c;
	it->opts = o;
	it->query = qc;
	it->opts.query = qc;
	if (o.from) {
		it->from = *o.from;
		it->opts.from = &it->from;
	}
	if (o.to) {
		it->to = *o.to;
		it->opts.to = &it->to;
	}
	it->opts.fields = NULL;
	it->opts.nfields = 0;
	if (o.fields) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		int rc = na__enc_names(&sb, o.fields, o.nfields);
		if (rc) {
			msgpack_sbuffer_destroy(&sb);
			free(qc);
			free(it);
			setmsg(c, "bad field names");
			return rc;
		}
		it->fields_len = sb.size;
		it->fields = (uint8_t *)msgpack_sbuffer_release(&sb);
	}
	it->state = 1;
	for (int i = 0; i < NA_K__COUNT; i++)
		it->cur.known[i] = -1;
	*out = it;
	return 0;
}

static int enc_search(msgpack_sbuffer *sb, const na_search *it)
{
	static const char *const orders[] = { "newest", "oldest", "relevance" };
	const na_search_opts *o = &it->opts;
	bool has_after = it->started && it->next.len > 0;
	uint32_t n = 2 + (o->from != NULL) + (o->to != NULL) + (o->limit > 0) + has_after +
		     (it->fields != NULL) + (o->min_seq > 0) * 2;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	int bad = msgpack_pack_array(&pk, 1);
	bad |= msgpack_pack_map(&pk, n);
	bad |= na_mp_pack_cstr(&pk, "q");
	bad |= na_mp_pack_cstr(&pk, o->query);
	bad |= na_mp_pack_cstr(&pk, "order");
	bad |= na_mp_pack_cstr(&pk, orders[o->order]);
	if (o->from) {
		bad |= na_mp_pack_cstr(&pk, "from");
		bad |= na_mp_pack_ts(&pk, (na_ts){ o->from->sec, o->from->nsec });
	}
	if (o->to) {
		bad |= na_mp_pack_cstr(&pk, "to");
		bad |= na_mp_pack_ts(&pk, (na_ts){ o->to->sec, o->to->nsec });
	}
	if (o->limit > 0) {
		bad |= na_mp_pack_cstr(&pk, "limit");
		bad |= msgpack_pack_unsigned_int(&pk, o->limit);
	}
	if (has_after) {
		bad |= na_mp_pack_cstr(&pk, "after");
		bad |= msgpack_pack_bin(&pk, it->next.len);
		bad |= msgpack_pack_bin_body(&pk, it->next.bytes, it->next.len);
	}
	if (it->fields) {
		bad |= na_mp_pack_cstr(&pk, "fields");
		bad |= msgpack_sbuffer_write(sb, (const char *)it->fields, it->fields_len);
	}
	if (o->min_seq > 0) {
		bad |= na_mp_pack_cstr(&pk, "min_seq");
		bad |= msgpack_pack_uint64(&pk, o->min_seq);
		bad |= na_mp_pack_cstr(&pk, "timeout_ms");
		bad |= msgpack_pack_unsigned_int(&pk, o->timeout_ms ? o->timeout_ms : 5000);
	}
	return bad ? NA_ENOMEM : 0;
}

/* The "total" of a search page (0 when absent). */
static uint64_t page_total(const uint8_t *res, size_t len)
{
	na_mp r;
	uint32_t n;
	na_mp_init(&r, res, len);
	if (na_mp_map(&r, &n))
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		uint64_t v;
		if (na_mp_str(&r, &k, &kn))
			return 0;
		if (na_mp_streq(k, kn, "total"))
			return na_mp_u64(&r, &v) ? 0 : v;
		if (na_mp_skip(&r))
			return 0;
	}
	return 0;
}

static int search_page(na_search *it)
{
	na_client *c = it->c;
	free(it->page);
	it->page = NULL;
	CALL(c, "search", enc_search(sb, it));
	it->page = c->reply;
	size_t len = c->reply_len;
	c->reply = NULL;
	c->reply_len = 0;
	const uint8_t *arts;
	size_t alen;
	uint32_t n;
	int rc = na__dec_page(it->page, len, &arts, &alen, &n, &it->next);
	if (rc)
		return bad_reply(c, rc, "search");
	it->empty = n == 0 && it->next.len ? it->empty + 1 : 0;
	if (it->empty > MAX_EMPTY_PAGES) {
		setmsg(c, "search: the server sent more than %d empty pages in a row",
		       MAX_EMPTY_PAGES);
		return NA_EPROTO;
	}
	it->total = page_total(it->page, len);
	it->started = true;
	na_mp_init(&it->r, arts, alen);
	it->left = n;
	return 0;
}

int na_search_next(na_search *it, const na_article **out)
{
	if (!it || !out)
		return NA_EINVAL;
	if (it->state <= 0)
		return it->state;
	while (it->left == 0) {
		if (it->started && it->next.len == 0) {
			free(it->page);
			it->page = NULL;
			return it->state = 0;
		}
		int rc = search_page(it);
		if (rc)
			return it->state = rc;
	}
	int rc = na__page_article(&it->r, &it->cur);
	if (rc) {
		setmsg(it->c, "search: an article in the reply is not a valid article");
		return it->state = rc;
	}
	it->left--;
	*out = &it->cur;
	return 1;
}

uint64_t na_search_total(const na_search *it)
{
	return it ? it->total : 0;
}

void na_search_close(na_search *it)
{
	if (!it)
		return;
	free(it->cur.fields);
	free(it->page);
	free(it->fields);
	free(it->query);
	free(it);
}

int na_reindex(na_client *c)
{
	if (!c)
		return NA_EINVAL;
	return call(c, "reindex", NULL);
}
