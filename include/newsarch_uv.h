/*
 * newsarch_uv.h - asynchronous libnewsarch on a libuv loop.
 *
 * A na_uv_client is one connection driven by a uv_loop_t. Calls return at
 * once; their callback runs later on the loop thread. Any number of calls
 * may be pending (they are pipelined on the connection, and the server may
 * answer them in any order: replies are matched by msgid).
 *
 * The callback contract:
 *  - A call that returns 0 has its callback called EXACTLY ONCE: with the
 *    result, or with an error (server error, NA_EPROTO, NA_ECONN when the
 *    connection fails, NA_ETIMEDOUT, NA_ECLOSED when na_uv_client_close is
 *    called first). A call that returns an error never calls its callback.
 *  - Callbacks are never called from inside the na_uv_* call that queued
 *    them, except that na_uv_client_close calls the pending ones itself.
 *  - A callback may queue new calls and may call na_uv_client_close.
 *
 * Everything in a na_uv_reply is borrowed: valid only during the callback.
 * Copy what you keep (na_article_dup for articles).
 *
 * All functions must be called on the loop's thread. Uses the same error
 * codes, article type and options as newsarch.h.
 */
#ifndef NEWSARCH_UV_H
#define NEWSARCH_UV_H

#include <uv.h>

#include "newsarch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct na_uv_client na_uv_client;

/*
 * The outcome of one call. err and errmsg are always set; raw/raw_len hold
 * the result's msgpack bytes for any successful call; the other fields are
 * filled for the call named in their comment, when err == 0.
 */
typedef struct na_uv_reply {
	int err;                        /* 0 or a negative NA_E* code */
	const char *errmsg;             /* NUL-terminated; "" when err == 0 */
	const uint8_t *raw;             /* result bytes (err == 0) */
	size_t raw_len;
	na_put_result put;              /* na_uv_put */
	const na_put_result *items;     /* na_uv_put_batch: one per article */
	size_t nitems;
	const na_article *article;      /* na_uv_get */
	int deleted;                    /* na_uv_delete: 1 if it existed */
	uint64_t seq;                   /* na_uv_delete: seq of the deletion */
	uint64_t count;                 /* na_uv_count */
	const na_server_stats *stats;   /* na_uv_stats */
	const na_article *const *articles; /* na_uv_range_page: the page */
	size_t narticles;
	na_cursor next;                 /* na_uv_range_page: len 0 at the end */
} na_uv_reply;

typedef void (*na_uv_cb)(na_uv_client *c, const na_uv_reply *r, void *ud);

/* status: 0 when connected (for tls://, once the TLS handshake is done),
 * else NA_ECONN, NA_ETIMEDOUT, NA_ETLS (handshake failed or the server's
 * certificate was refused) or NA_ECLOSED; errmsg describes the failure
 * (borrowed, valid during the callback). */
typedef void (*na_uv_connect_cb)(na_uv_client *c, int status, const char *errmsg, void *ud);

/*
 * Starts connecting to addr (same forms as na_client_connect, tls:// with
 * the tls_* options included; host names are resolved with uv_getaddrinfo
 * and the first address is used). opts may be NULL; its strings are only
 * read during this call (the TLS files are loaded here, the server name is
 * copied). On success *out is the client and cb(ud) will be called exactly once
 * when the connection is made or has failed. Calls may be queued right
 * away: they are sent once connected (and fail with the connect error).
 *
 * connect_timeout_ms bounds the connect. io_timeout_ms: when calls are
 * pending and nothing arrives from the server for that long, the
 * connection is declared failed and every pending call gets NA_ETIMEDOUT.
 * With TLS the handshake runs within connect_timeout_ms; calls queued
 * meanwhile are sent once it is done.
 *
 * Whatever happens, the client must be released with na_uv_client_close
 * (also after a failed connect); its memory is freed on a later loop turn.
 * Errors (cb not called, *out not set, nothing to close): NA_EINVAL (NULL
 * loop/cb/out, bad address syntax), NA_ENOMEM, NA_ECONN (libuv refused to
 * start the connect or the resolution at once, e.g. no file descriptor
 * left; the handles already opened are freed on a later loop turn, so run
 * the loop before uv_loop_close), NA_ETLS (a tls_* file could not be
 * loaded, or tls_server_name is longer than 255 bytes;
 * na_client_connect_ex with the same options gives the reason).
 */
int na_uv_client_connect(uv_loop_t *loop, const char *addr, const na_options *opts,
			 na_uv_connect_cb cb, void *ud, na_uv_client **out);

/*
 * Closes the client: the connect callback (if still due) and every pending
 * call's callback are called now with NA_ECLOSED, the socket is closed, and
 * the client is freed by the loop afterwards. c must not be used after this
 * call (except inside the callbacks it triggers, where calls return
 * NA_ECLOSED). Calling it twice (e.g. from a callback) is harmless. NULL is
 * ignored.
 */
void na_uv_client_close(na_uv_client *c);

/* Number of calls whose callback is still due. */
size_t na_uv_pending(const na_uv_client *c);

/*
 * The calls. Each copies its arguments (articles, guid, options) before it
 * returns. Each returns 0 when queued, else (callback not called):
 * NA_EINVAL (NULL client, cb, or bad argument as for the synchronous
 * call), NA_ENOMEM, or the connection's failure code (NA_ECONN,
 * NA_ETIMEDOUT, NA_EPROTO, NA_ETLS, NA_ECLOSED) once it has failed or was
 * closed (also inside the connect callback that reports the failure).
 * The errors the callback can get are those of the synchronous call of the
 * same name, plus NA_ECLOSED.
 */
int na_uv_ping(na_uv_client *c, na_uv_cb cb, void *ud);
int na_uv_put(na_uv_client *c, const na_article *a, na_uv_cb cb, void *ud);
/* reply.items[i] is article i's outcome (errmsg borrowed). */
int na_uv_put_batch(na_uv_client *c, const na_article *const *articles, size_t n, na_uv_cb cb,
		    void *ud);
int na_uv_get(na_uv_client *c, const char *guid, size_t guid_len, const char *const *fields,
	      size_t nfields, na_uv_cb cb, void *ud);
int na_uv_delete(na_uv_client *c, const char *guid, size_t guid_len, na_uv_cb cb, void *ud);
int na_uv_count(na_uv_client *c, const na_time *from, const na_time *to, na_uv_cb cb, void *ud);
int na_uv_stats(na_uv_client *c, na_uv_cb cb, void *ud);
/*
 * One page of a range scan: opts as for na_range_open, after NULL (or len 0)
 * for the first page, else the reply.next of the previous page. The reply
 * has the page's articles and the cursor of the next page (len 0: done).
 * A page of more than 1000 articles (no range limit allows it) or with an
 * article of more than 4096 fields gets NA_EPROTO.
 */
int na_uv_range_page(na_uv_client *c, const na_range_opts *opts, const na_cursor *after,
		     na_uv_cb cb, void *ud);
/* Any method; params as for na_call_raw. The result is in reply.raw. */
int na_uv_call_raw(na_uv_client *c, const char *method, const void *params, size_t params_len,
		   na_uv_cb cb, void *ud);

#ifdef __cplusplus
}
#endif

#endif /* NEWSARCH_UV_H */
