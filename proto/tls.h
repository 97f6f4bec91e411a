/*
 * tls.h - the TLS engine shared by newsarchd (client listener, follower
 * link) and libnewsarch (blocking client, libuv adapter, CLI pipeline).
 *
 * Design: OpenSSL 3 behind two memory BIOs, with no I/O of its own, in the
 * same style as the protocol core (na_proto). The owner of a connection
 * moves bytes:
 *
 *   socket --ciphertext--> na_tls_feed()    na_tls_read() --plaintext--> app
 *   app --plaintext--> na_tls_write()    na_tls_output() --ciphertext--> socket
 *
 * and calls na_tls_read() after every feed (it also drives the handshake),
 * then sends whatever na_tls_output() holds. The engine never blocks and
 * never touches a file descriptor, so one implementation serves a libuv
 * stream, a poll(2) loop and a test harness alike. Contexts (certificate,
 * key, CA, verification policy) are built once from files and shared by
 * every connection; each connection holds its own reference, so a context
 * can be replaced (SIGHUP) while older connections keep the old one.
 *
 * Policy: TLS 1.2 is the minimum version; the cipher suites are OpenSSL's
 * defaults (which exclude the weak ones); renegotiation is off. A client
 * always verifies the server's chain and name (an IP address is checked
 * against the certificate's IP SANs); there is no switch to skip that.
 *
 * Errors are returned as NA_TLS_* codes and described by na_tls_errmsg(),
 * which names the cause OpenSSL gave (e.g. "certificate has expired",
 * "wrong version number", "tlsv13 alert certificate required").
 * Not thread-safe per object; contexts may be shared between threads.
 */
#ifndef NA_TLS_H
#define NA_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NA_TLS_OK 0
#define NA_TLS_ERROR (-1)  /* handshake or record failure: close the connection */
#define NA_TLS_EOF (-2)    /* the peer closed the session cleanly (close_notify) */
#define NA_TLS_AGAIN (-3)  /* na_tls_write before the handshake finished: retry later */
#define NA_TLS_NOMEM (-4)

/* Client certificate policy of a server context. */
enum { NA_TLS_VERIFY_NO, NA_TLS_VERIFY_OPTIONAL, NA_TLS_VERIFY_REQUIRE };

typedef struct na_tls_ctx na_tls_ctx;
typedef struct na_tls na_tls;

/*
 * A server context from PEM files: cert (the chain, leaf first) and key are
 * required; ca (may be NULL or "") holds the CAs client certificates must
 * chain to, required unless verify is NA_TLS_VERIFY_NO. On success *out is a
 * new context (na_tls_ctx_free). On failure -1 with err naming the file and
 * OpenSSL's reason.
 */
int na_tls_ctx_server(const char *cert, const char *key, const char *ca, int verify,
		      na_tls_ctx **out, char *err, size_t errlen);

/*
 * A client context. ca: PEM file of trusted CAs, or NULL/"" for the system's
 * default trust store. cert and key (both or neither; NULL or "") are the
 * client certificate for servers that ask for one. 0 or -1 (err set).
 */
int na_tls_ctx_client(const char *ca, const char *cert, const char *key, na_tls_ctx **out,
		      char *err, size_t errlen);

/* Drops the caller's reference; connections made from it keep working. */
void na_tls_ctx_free(na_tls_ctx *x);

/*
 * A connection. For a client context, name is the server name to verify
 * (an IP address literal is verified against IP SANs; a DNS name against
 * DNS SANs and sent as SNI) and is required: NULL or "" is NA_TLS_ERROR,
 * as is a name OpenSSL does not accept; the ClientHello is ready in
 * na_tls_output() at once. For a server context name is ignored (NULL).
 * 0, or NA_TLS_NOMEM / NA_TLS_ERROR (*out untouched).
 */
int na_tls_new(na_tls_ctx *x, const char *name, na_tls **out);
void na_tls_free(na_tls *t);

/* Hands ciphertext from the network to the engine (copied). 0 or
 * NA_TLS_NOMEM. Call na_tls_read() afterwards until it yields nothing. */
int na_tls_feed(na_tls *t, const void *buf, size_t len);

/*
 * Advances the handshake and decrypts: *got bytes of plaintext (at most cap)
 * were written to buf; *got == 0 means more input is needed. Returns 0,
 * NA_TLS_EOF or NA_TLS_ERROR (see na_tls_errmsg). Output may become pending
 * (handshake messages, alerts): send na_tls_output() after each call.
 */
int na_tls_read(na_tls *t, void *buf, size_t cap, size_t *got);

/*
 * Encrypts len bytes of plaintext (all of them) into the output. Returns 0,
 * NA_TLS_AGAIN before the handshake has finished (nothing taken), or
 * NA_TLS_ERROR / NA_TLS_NOMEM.
 */
int na_tls_write(na_tls *t, const void *buf, size_t len);

/* The ciphertext waiting to be sent (borrowed until the next call). */
void na_tls_output(const na_tls *t, const uint8_t **buf, size_t *len);
/* Marks n bytes of the output as sent. */
void na_tls_consume(na_tls *t, size_t n);
/* Takes the whole pending output as a malloc'd block (*len bytes; NULL
 * when none or out of memory, see *len). The caller frees it. */
uint8_t *na_tls_output_release(na_tls *t, size_t *len);

/* Queues a close_notify alert (best effort; send na_tls_output after). */
void na_tls_shutdown(na_tls *t);

bool na_tls_handshake_done(const na_tls *t);
/* Whether fed ciphertext waits for the rest of its record (the peer began a
 * record and has not finished it): what a slow-sender clock looks at. */
bool na_tls_input_partial(const na_tls *t);
/* Why the last call failed; "" if it did not. Valid until the next call. */
const char *na_tls_errmsg(const na_tls *t);
/* Protocol version and cipher after the handshake, e.g. "TLSv1.3
 * TLS_AES_256_GCM_SHA384"; the peer certificate's subject (or "none"). */
void na_tls_describe(const na_tls *t, char *buf, size_t len);

#endif
