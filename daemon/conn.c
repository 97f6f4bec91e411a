/*
 * conn.c - client connections: reading and framing requests, queueing
 * replies, and back-pressure.
 *
 * Bytes are framed with na_scan as they arrive; each whole message goes to
 * na_dispatch. Replies accumulate in c->out and are written once per loop
 * callback (uv_try_write first, uv_write for the rest). Two things pause
 * reading from a client: more than output_queue_bytes of replies it has not
 * read yet (slow reader), and more than max_pending requests in progress.
 * While paused, already received requests wait in the input buffer, so the
 * server never buffers more than one maximal request plus one read per
 * client, and never more replies than the output cap plus one reply.
 * A connection with nothing buffered reads into the server's one read
 * buffer (s->rbuf) and handles the requests there; only the rest of a
 * partial request, if any, is copied into a buffer of its own. So the
 * usual small request costs no allocation, and idle clients hold none.
 *
 * TLS: a connection from the TLS listener has an engine (proto/tls.h) between
 * the socket and the same machinery: ciphertext read from the socket is fed
 * to it and the plaintext lands in c->in, so framing, limits and pausing
 * work unchanged; at each flush the replies in c->out are encrypted, in
 * chunks of at most TLS_CHUNK bytes of plaintext, and every chunk's
 * ciphertext is handed to the socket (uv_try_write, then uv_write) before
 * the next is made; c->out is freed once all of it is encrypted. So
 * out_queued counts ciphertext, the output cap holds as for plaintext, and
 * a reply exists twice (plaintext and ciphertext) only within one flush of
 * one connection. Pausing stops socket reads, hence decryption.
 * The handshake is bounded by request_timeout from the accept (server.c's
 * tick), and by idle_timeout like any connection. A handshake or record
 * error is logged with OpenSSL's reason and closes only that connection.
 *
 * Lifetime: a connection holds one reference for its handle and one per
 * request in progress. It is freed when the handle is closed and the last
 * request has finished (whose reply is then dropped).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "log.h"
#include "rpc.h"
#include "server.h"

#define READ_CHUNK 65536
#define TLS_CHUNK (256u << 10) /* plaintext encrypted per write */

typedef struct wreq {
	uv_write_t req;
	na_conn *c;
	char *data;
	size_t len;
} wreq;

static void process(na_conn *c);

na_conn *na_conn_new(na_server *s)
{
	na_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->srv = s;
	c->refs = 1;
	c->method = -1;
	/* without tokens everybody may do everything (see auth.c) */
	c->role = s->cfg.tokens.n ? NA_ROLE_NONE : NA_ROLE_ADMIN;
	na_scan_init(&c->scan, s->cfg.max_request_bytes, s->cfg.max_depth);
	msgpack_sbuffer_init(&c->out);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->last_active = s->loop ? uv_now(s->loop) : 0;
	c->accepted_ms = c->last_active;
	snprintf(c->peer, sizeof c->peer, "?");
	return c;
}


void na_conn_unref(na_conn *c)
{
	if (--c->refs > 0)
		return;
	na_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->in);
	msgpack_sbuffer_destroy(&c->out);
	na_tls_free(c->tls);
	free(c);
	if (s->stopping)
		na_server_maybe_finish(s);
}

static void on_close(uv_handle_t *h)
{
	na_conn_unref(h->data);
}

void na_conn_close(na_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->sender)
		na_repl_conn_closed(c);
	if (c->sink) {
		na_conn_unref(c);
		return;
	}
	if (c->tls && c->out_queued == 0) {
		/* say goodbye properly when it costs nothing (best effort) */
		const uint8_t *b;
		size_t n;
		na_tls_shutdown(c->tls);
		na_tls_output(c->tls, &b, &n);
		if (n) {
			uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
			uv_try_write(&c->h.stream, &ub, 1);
		}
	}
	uv_close(&c->h.handle, on_close);
}

static bool over_limits(const na_conn *c)
{
	const na_config *cfg = &c->srv->cfg;
	return c->pending >= cfg->max_pending ||
	       c->out.size + c->out_queued + c->parked_bytes >= cfg->output_queue_bytes;
}

static void pause_reading(na_conn *c)
{
	if (c->paused)
		return;
	c->paused = true;
	if (!c->sink && !c->closing)
		uv_read_stop(&c->h.stream);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void resume_reading(na_conn *c)
{
	if (!c->paused || c->closing || c->srv->stopping || over_limits(c))
		return;
	c->paused = false;
	process(c);  /* requests that waited in the buffer first */
	if (c->tls_eof && !c->paused && !c->closing) {
		na_conn_close(c); /* the peer said close_notify after them */
		return;
	}
	if (!c->paused && !c->closing && !c->sink)
		uv_read_start(&c->h.stream, on_alloc, on_read);
}

static void on_write(uv_write_t *req, int status)
{
	wreq *w = (wreq *)req;
	na_conn *c = w->c;
	c->out_queued -= w->len;
	free(w->data);
	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED)
			log_debug("%s: write failed: %s", c->peer, uv_strerror(status));
		na_conn_close(c);
		return;
	}
	if (c->srv->stopping && c->out_queued == 0 && c->pending == 0) {
		na_conn_close(c); /* its last reply is out */
		return;
	}
	if (c->paused)
		resume_reading(c);
	if (c->sender && c->out_queued == 0)
		na_repl_pump(c->sender);
}

/* Writes len bytes of data (malloc'd, taken) from offset done on. */
static void queue_write(na_conn *c, char *data, size_t len, size_t done)
{
	wreq *w = malloc(sizeof *w);
	if (!w) {
		free(data);
		na_conn_close(c);
		return;
	}
	w->c = c;
	if (done) {
		w->len = len - done;
		w->data = malloc(w->len);
		if (!w->data) {
			free(w);
			free(data);
			na_conn_close(c);
			return;
		}
		memcpy(w->data, data + done, w->len);
		free(data);
	} else {
		w->len = len;
		w->data = data;
	}
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	c->out_queued += w->len;
	int rc = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
	if (rc < 0) {
		c->out_queued -= w->len;
		free(w->data);
		free(w);
		na_conn_close(c);
	}
}

/* Sends the ciphertext the engine holds. -1 when the connection closed. */
static int tls_send(na_conn *c)
{
	size_t len;
	uint8_t *b = na_tls_output_release(c->tls, &len);
	if (!b) {
		if (len == 0)
			return 0;
		na_conn_close(c); /* out of memory */
		return -1;
	}
	size_t done = 0;
	if (c->out_queued == 0 && !c->defer) {
		uv_buf_t ub = uv_buf_init((char *)b, (unsigned)len);
		int n = uv_try_write(&c->h.stream, &ub, 1);
		if (n > 0)
			done = (size_t)n;
		if (done == len) {
			free(b);
			return 0;
		}
	}
	queue_write(c, (char *)b, len, done);
	return c->closing ? -1 : 0;
}

/* A fatal TLS error: log why, let the alert go out, hang up. */
static void tls_fail(na_conn *c)
{
	const char *why = na_tls_errmsg(c->tls);
	log_warn("%s: %s; closing the connection", c->peer, why[0] ? why : "TLS error");
	c->srv->metrics.tls_errors++;
	const uint8_t *b;
	size_t n;
	na_tls_output(c->tls, &b, &n);
	if (n && c->out_queued == 0) {
		uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
		uv_try_write(&c->h.stream, &ub, 1);
	}
	na_tls_consume(c->tls, n);
	na_conn_close(c);
}

static void tls_flush(na_conn *c)
{
	if (c->out.size && na_tls_handshake_done(c->tls)) {
		c->srv->metrics.bytes_out += c->out.size;
		for (size_t off = 0; off < c->out.size;) {
			size_t n = c->out.size - off < TLS_CHUNK ? c->out.size - off : TLS_CHUNK;
			if (na_tls_write(c->tls, c->out.data + off, n)) {
				tls_fail(c);
				return;
			}
			off += n;
			if (tls_send(c))
				return;
		}
		c->out.size = 0;
		if (c->out.alloc > READ_CHUNK) {
			msgpack_sbuffer_destroy(&c->out);
			msgpack_sbuffer_init(&c->out);
		}
	}
	tls_send(c);
}

void na_conn_flush(na_conn *c)
{
	if (c->closing)
		return;
	if (c->tls) {
		tls_flush(c);
		return;
	}
	if (c->out.size == 0)
		return;
	c->srv->metrics.bytes_out += c->out.size;
	if (c->sink) {
		c->sink(c, c->out.data, c->out.size);
		c->out.size = 0;
		return;
	}
	size_t done = 0;
	if (c->out_queued == 0 && !c->defer) {
		uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.size);
		int n = uv_try_write(&c->h.stream, &b, 1);
		if (n > 0)
			done = (size_t)n;
		if (done == c->out.size) {
			c->out.size = 0;
			if (c->out.alloc > READ_CHUNK) { /* a big reply went out: give it back */
				msgpack_sbuffer_destroy(&c->out);
				msgpack_sbuffer_init(&c->out);
			}
			return;
		}
	}
	size_t len = c->out.size;
	char *data = msgpack_sbuffer_release(&c->out);
	queue_write(c, data, len, done);
}

void na_conn_flush_deferred(na_conn *c)
{
	c->defer = true;
	na_conn_flush(c);
	c->defer = false;
}

void na_conn_send(na_conn *c, msgpack_sbuffer *out)
{
	if (c->closing || out->size == 0)
		return;
	if (c->out.size == 0 || c->sink) {
		/* nothing queued before it: the buffer becomes the output */
		msgpack_sbuffer_destroy(&c->out);
		c->out = *out;
		msgpack_sbuffer_init(out);
		return;
	}
	msgpack_sbuffer_write(&c->out, out->data, out->size);
}

/* After a fatal framing error: answer if we can, then hang up. */
static void protocol_error(na_conn *c, int rc)
{
	na_server *s = c->srv;
	const char *what;
	char msg[160];
	switch (rc) {
	case NA_MP_ETOOBIG:
		what = "request too large";
		snprintf(msg, sizeof msg, "request exceeds max_request_bytes (%zu bytes)",
			 s->cfg.max_request_bytes);
		break;
	case NA_MP_EDEPTH:
		what = "nesting too deep";
		snprintf(msg, sizeof msg, "request nesting exceeds max_depth (%u)", s->cfg.max_depth);
		break;
	default:
		what = "malformed msgpack";
		snprintf(msg, sizeof msg, "malformed MessagePack");
		break;
	}
	if (c->scan.have_msgid) {
		na_reply_error(c, c->scan.msgid, rc == NA_MP_EMALFORMED ? NA_CODE_BAD_REQUEST
								   : NA_CODE_TOO_LARGE, "%s", msg);
		na_conn_flush(c);
	}
	log_warn("%s: %s; closing the connection", c->peer, what);
	na_conn_close(c);
}

static void process(na_conn *c)
{
	size_t off = 0;
	c->refs++; /* a close inside dispatch must not free c under us */
	while (!c->paused && !c->closing && off < c->in_len) {
		size_t mlen;
		int rc = na_scan_feed(&c->scan, c->in + off, c->in_len - off, &mlen);
		if (rc == 0)
			break;
		if (rc < 0) {
			protocol_error(c, rc);
			na_conn_unref(c);
			return;
		}
		c->srv->requests++;
		na_dispatch(c, c->in + off, mlen);
		off += mlen;
		if (over_limits(c))
			pause_reading(c);
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	/* a request begun but not finished starts the slow-sender clock; over
	 * TLS so does a record begun but not finished (else a peer could hold
	 * the connection by dribbling one record's bytes) */
	bool partial = c->in_len > 0 || (c->tls && na_tls_input_partial(c->tls));
	if (!partial || c->paused)
		c->partial_since = 0;
	else if (off || !c->partial_since)
		c->partial_since = c->srv->loop ? uv_now(c->srv->loop) : 0;
	na_conn_flush(c);
	if (over_limits(c))
		pause_reading(c);
	na_conn_unref(c);
}

/* ciphertext lands here and is fed to the engine at once (one loop thread) */
static uint8_t tls_rbuf[READ_CHUNK];

static int grow_in(na_conn *c)
{
	if (c->in_cap - c->in_len >= READ_CHUNK / 4)
		return 0;
	size_t want = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
	if (want < c->in_len + READ_CHUNK)
		want = c->in_len + READ_CHUNK;
	uint8_t *n = realloc(c->in, want);
	if (!n)
		return -1;
	c->in = n;
	c->in_cap = want;
	return 0;
}

/*
 * The first byte from a client on the TLS port must begin a TLS handshake
 * record (0x16). Anything else is refused at once rather than left to wait
 * for bytes that never come: in particular a plaintext MessagePack-RPC
 * client (its requests begin with an array header), which is told in
 * plaintext where it went wrong. 0, or -1 when the connection was closed.
 */
static int tls_sniff(na_conn *c, uint8_t first)
{
	if (first == 0x16)
		return 0;
	bool rpc = (first & 0xf0) == 0x90 || first == 0xdc || first == 0xdd;
	log_warn("%s: not a TLS ClientHello (first byte 0x%02x%s); closing the connection",
		 c->peer, first, rpc ? ": a plaintext MessagePack-RPC client on the TLS port?" : "");
	c->srv->metrics.tls_errors++;
	if (rpc) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint8(&pk, NA_RPC_NOTIFY);
		na_mp_pack_cstr(&pk, "error");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 2);
		na_mp_pack_cstr(&pk, "code");
		na_mp_pack_cstr(&pk, "BAD_REQUEST");
		na_mp_pack_cstr(&pk, "message");
		na_mp_pack_cstr(&pk, "this port speaks TLS: connect with tls://HOST:PORT");
		uv_buf_t ub = uv_buf_init(sb.data, (unsigned)sb.size);
		uv_try_write(&c->h.stream, &ub, 1);
		msgpack_sbuffer_destroy(&sb);
	}
	na_conn_close(c);
	return -1;
}

/* Ciphertext arrived: decrypt all of it into c->in, then frame as usual. */
static void tls_input(na_conn *c, const uint8_t *p, size_t n)
{
	bool was_done = na_tls_handshake_done(c->tls);
	if (!c->tls_started) {
		c->tls_started = true;
		if (tls_sniff(c, p[0]))
			return;
	}
	if (na_tls_feed(c->tls, p, n)) {
		log_warn("%s: out of memory for TLS input; closing the connection", c->peer);
		na_conn_close(c);
		return;
	}
	bool eof = false;
	for (;;) {
		if (grow_in(c)) {
			log_warn("%s: out of memory for TLS input; closing the connection", c->peer);
			na_conn_close(c);
			return;
		}
		size_t got;
		int rc = na_tls_read(c->tls, c->in + c->in_len, c->in_cap - c->in_len, &got);
		if (rc == NA_TLS_EOF) {
			eof = true;
			break;
		}
		if (rc) {
			tls_fail(c);
			return;
		}
		if (got == 0)
			break;
		c->in_len += got;
	}
	if (!was_done && na_tls_handshake_done(c->tls)) {
		char d[300];
		na_tls_describe(c->tls, d, sizeof d);
		log_debug("%s: TLS established: %s", c->peer, d);
	}
	/* requests that arrived before a close_notify are served like those
	 * before a plaintext end of file: dispatched, then the hang-up */
	process(c); /* ends with na_conn_flush: handshake replies go out there */
	if (!c->closing && c->out.size == 0)
		tls_send(c);
	if (eof && !c->closing) {
		if (c->paused)
			c->tls_eof = true; /* the rest when reading resumes, then hang up */
		else
			na_conn_close(c);
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	na_conn *c = h->data;
	if (c->tls) {
		*buf = uv_buf_init((char *)tls_rbuf, sizeof tls_rbuf);
		return;
	}
	na_server *s = c->srv;
	if (c->in_len == 0) {
		/* nothing buffered: read into the shared buffer (on_read hands
		 * it back before libuv asks for another one) */
		if (!s->rbuf)
			s->rbuf = malloc(READ_CHUNK);
		if (s->rbuf) {
			*buf = uv_buf_init((char *)s->rbuf, READ_CHUNK);
			return;
		}
	}
	if (c->in_cap - c->in_len < READ_CHUNK) {
		size_t want = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
		if (want < c->in_len + READ_CHUNK)
			want = c->in_len + READ_CHUNK;
		uint8_t *n = realloc(c->in, want);
		if (!n) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		c->in = n;
		c->in_cap = want;
	}
	*buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

/* The bytes are in the shared buffer: handle them in place, then keep what
 * is left (a partial request, or requests held back while paused) in the
 * connection's own buffer, since the next read of any client reuses it. */
static void on_read_shared(na_conn *c, size_t nread)
{
	free(c->in); /* nothing buffered, or on_alloc would not have lent it */
	c->in = c->srv->rbuf;
	c->in_cap = READ_CHUNK;
	c->in_len = nread;
	process(c);
	size_t left = c->closing ? 0 : c->in_len;
	c->in = NULL;
	c->in_cap = 0;
	c->in_len = 0;
	if (left == 0)
		return;
	uint8_t *own = malloc(left + READ_CHUNK);
	if (!own) {
		log_warn("%s: out of memory for a partial request; closing", c->peer);
		na_conn_close(c);
		return;
	}
	memcpy(own, c->srv->rbuf, left);
	c->in = own;
	c->in_cap = left + READ_CHUNK;
	c->in_len = left;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	na_conn *c = st->data;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("%s: read error: %s", c->peer, uv_strerror((int)nread));
		na_conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->srv->metrics.bytes_in += (size_t)nread;
	c->last_active = uv_now(c->srv->loop);
	if (c->tls) {
		tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
	} else if (buf->base && buf->base == (char *)c->srv->rbuf) {
		on_read_shared(c, (size_t)nread);
		return;
	} else {
		c->in_len += (size_t)nread;
		process(c);
	}
	/* an idle client keeps no input buffer (1,000 idle clients cost no
	 * 64 MiB); the next read allocates one again */
	if (c->in_len == 0) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

void na_conn_start(na_conn *c)
{
	c->h.handle.data = c;
	uv_read_start(&c->h.stream, on_alloc, on_read);
}

void na_conn_feed(na_conn *c, const uint8_t *data, size_t len)
{
	/* len 0: nothing to add (and c->in may still be NULL: no pointer
	 * arithmetic or memcpy on it) */
	if (c->closing || len == 0)
		return;
	if (c->in_cap - c->in_len < len) {
		size_t want = c->in_len + len;
		uint8_t *n = realloc(c->in, want);
		if (!n)
			return;
		c->in = n;
		c->in_cap = want;
	}
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
	process(c);
}

void na_conn_request_done(na_conn *c)
{
	na_server *s = c->srv;
	c->pending--;
	s->inflight--;
	if (!c->closing) {
		na_conn_flush(c);
		resume_reading(c);
	}
	na_conn_unref(c);
	if (s->stopping)
		na_server_maybe_finish(s);
}

/* ---- shutdown ------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void na_server_maybe_finish(na_server *s)
{
	if (s->inflight > 0)
		return;
	/* every request answered: hang up on clients whose replies are out
	 * (the others when their last write completes, or when forced) */
	for (na_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->out_queued == 0 || s->force_close)
			na_conn_close(c);
	}
	if (s->nconns > 0)
		return;
	na_writer_set_hook(&s->writer, NULL, NULL);
	na_indexer_stop(s->indexer);
	s->indexer = NULL;
	close_handle((uv_handle_t *)&s->ix_async);
	na_writer_stop(&s->writer);
	for (int i = 0; i < 3; i++)
		close_handle((uv_handle_t *)&s->sig[i]);
	close_handle((uv_handle_t *)&s->tick);
	close_handle((uv_handle_t *)&s->watchdog);
}

void na_server_shutdown(na_server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_ms = uv_now(s->loop);
	log_info("shutting down: %llu requests in progress", (unsigned long long)s->inflight);
	if (s->have_tcp)
		close_handle((uv_handle_t *)&s->tcp);
	if (s->have_pipe)
		close_handle((uv_handle_t *)&s->pipe);
	if (s->have_tls)
		close_handle((uv_handle_t *)&s->tls_tcp);
	if (s->have_metrics)
		close_handle((uv_handle_t *)&s->metrics_tcp);
	for (na_conn *c = s->conns; c; c = c->next)
		pause_reading(c);
	na_follow_stop(s);
	na_repl_shutdown(s);
	na_server_maybe_finish(s);
}
